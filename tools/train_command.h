// `tessera train`: trains the reference CNN or MLP on Fashion-MNIST (IDX files). Started
// by `mpirun -np N`, it trains data-parallel: each rank reads its shard of every global
// batch, and rank 0 prints and writes the files.
#pragma once
#include <CLI/CLI.hpp>
#include <string>

namespace tessera::tools {

struct TrainOptions {
  std::string model = "cnn";
  int epochs = 5;
  int batch_size = 128;
  int threads = 0;  // 0: all cores
  double lr = 1e-3;
  uint64_t seed = 42;
  std::string data_dir = "/usr/share/datasets/fashion-mnist";
  std::string checkpoint = "fashion_mnist.safetensors";
  std::string saved_model = "fashion_mnist.tsm";
  std::string lite_model = "fashion_mnist.tlite";
  std::string resume;  // a checkpoint to continue from (weights, optimizer, epoch)
  int verbose = 1;
};

void add_train_command(CLI::App& app, TrainOptions& options);
int run_train(const TrainOptions& options);

}  // namespace tessera::tools
