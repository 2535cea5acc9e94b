// `tessera fine-tune`: trains the variables of a saved model's signature (an ONNX model
// imported with --trainable, a model saved by Tessera) on NPY examples, and saves the
// result, which `tessera convert` then takes to a lite model.
#pragma once
#include <CLI/CLI.hpp>
#include <string>

namespace tessera::tools {

struct FineTuneOptions {
  std::string model;
  std::string output;
  std::string signature = "serve";
  std::string inputs;  // .npy: examples along the first axis
  std::string labels;  // .npy: integer class ids (cross-entropy) or float targets (MSE)
  int64_t steps = 10;
  int64_t batch_size = 32;
  double lr = 1e-3;
  std::string optimizer = "adam";  // adam or sgd
};

CLI::App* add_fine_tune_command(CLI::App& app, FineTuneOptions& options);
int run_fine_tune(const FineTuneOptions& options);

}  // namespace tessera::tools
