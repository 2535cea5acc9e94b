// A small data-parallel training run (2 ranks under mpirun) that fails on purpose, driven by
// test_faults.sh:
//   fault_worker full   DIR  3 epochs; rank 0 checkpoints each epoch and writes DIR/final
//   fault_worker throw  DIR  rank 1 throws in the second epoch
//   fault_worker hang   DIR  rank 1 stops answering in the second epoch
//   fault_worker kill   DIR  rank 1 dies (SIGKILL) in the second epoch
//   fault_worker resume DIR  every rank loads DIR/epoch1, trains the rest, and rank 0 checks
//                            the weights against DIR/final (on 2 ranks, as it was written;
//                            on another number of ranks the batches differ, so it only
//                            trains)
// Errors are printed as "rank R: MESSAGE" and exit with status 1.
#include <csignal>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>

#include "../test_models.h"
#include "tessera/data/dataset.h"
#include "tessera/distributed/data_parallel.h"
#include "tessera/distributed/mpi.h"
#include "tessera/nn/nn.h"
#include "tessera/tessera.h"

using namespace tessera;

namespace {

constexpr int64_t kEpochs = 3, kSamples = 192, kBatchPerRank = 8;

nn::Model make_model(const std::shared_ptr<distributed::ProcessGroup>& group) {
  manual_seed(17 + static_cast<uint64_t>(group->rank()));  // DataParallel makes them equal
  nn::Model model(testing::make_small_net(true));
  model.compile(std::make_shared<nn::Adam>(model.module().parameters(), 1e-2),
                [](const Tensor& p, const Tensor& t) { return nn::cross_entropy(p, t); },
                {std::make_shared<nn::Accuracy>()});
  model.distribute(std::make_shared<distributed::DataParallel>(model.module_ptr(), group));
  return model;
}

data::Dataset shard(const distributed::ProcessGroup& group) {
  Generator gen(99);
  Tensor images = uniform({kSamples, 1, 16, 16}, -1, 1, DType::Float32, &gen);
  Tensor labels = randint(0, 10, {kSamples}, DType::Int64, &gen);
  return data::Dataset::from_tensors({images, labels})
      .shuffle(kSamples, 3)
      .shard(group.size(), group.rank())
      .batch(kBatchPerRank);
}

// Rank 1's failure, three batches into the second epoch.
std::shared_ptr<nn::LambdaCallback> failure(const std::string& mode, int rank) {
  auto callback = std::make_shared<nn::LambdaCallback>();
  callback->batch_begin = [mode, rank](nn::Model& model, int64_t batch) {
    if (rank != 1 || model.epoch() != 1 || batch != 3) return;
    if (mode == "throw") throw std::runtime_error("injected fault");
    if (mode == "kill") std::raise(SIGKILL);
    if (mode == "hang") std::this_thread::sleep_for(std::chrono::seconds(120));
  };
  return callback;
}

int run(const std::string& mode, const std::string& dir) {
  auto group = distributed::mpi_world();
  nn::Model model = make_model(group);
  nn::FitOptions options{.epochs = kEpochs, .verbose = 0};
  options.callbacks.push_back(
      std::make_shared<nn::ModelCheckpoint>(dir + "/epoch{epoch}.safetensors"));
  if (mode == "resume") {
    nn::Metadata meta =
        nn::load_checkpoint(dir + "/epoch1.safetensors", model.module(), &model.optimizer());
    options.initial_epoch = std::stoll(meta.at("epoch"));
  } else if (mode != "full") {
    options.callbacks.push_back(failure(mode, group->rank()));
  }
  nn::History history = model.fit(shard(*group), options);
  if (group->rank() == 0) {
    std::printf("rank 0: trained to epoch %lld, loss %.6f\n", static_cast<long long>(kEpochs),
                history["loss"].back());
  }
  if (mode == "full" && group->rank() == 0) {
    nn::save_checkpoint(dir + "/final.safetensors", model.module());
  }
  if (mode == "resume" && group->size() != 2) {
    std::printf("rank %d: resumed on %d rank%s\n", group->rank(), group->size(),
                group->size() == 1 ? "" : "s");
    return 0;
  }
  if (mode == "resume" && group->rank() == 0) {
    nn::ModulePtr uninterrupted = testing::make_small_net(true);
    nn::load_checkpoint(dir + "/final.safetensors", *uninterrupted);
    auto got = model.module().parameters(), want = uninterrupted->parameters();
    for (size_t i = 0; i < got.size(); ++i) {
      double diff = amax(abs(got[i] - want[i])).item<double>();
      if (diff > 1e-5) {
        std::printf("rank 0: resumed weights differ from the uninterrupted run: tensor %zu by %g\n",
                    i, diff);
        return 1;
      }
    }
    std::printf("rank 0: resumed run matches the uninterrupted one\n");
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: fault_worker full|throw|hang|kill|resume DIR\n");
    return 2;
  }
  int rank = 0;
  try {
    rank = distributed::mpi_world()->rank();
    return run(argv[1], argv[2]);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "rank %d: %s\n", rank, e.what());
    std::fflush(stderr);
    return 1;
  }
}
