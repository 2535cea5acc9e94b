// Model: Keras' compile / fit / evaluate / predict over a Module. Datasets yield
// batched elements {input, target} (predict uses the first component only).
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "tessera/data/dataset.h"
#include "tessera/nn/callbacks.h"
#include "tessera/nn/losses.h"
#include "tessera/nn/metrics.h"
#include "tessera/nn/module.h"
#include "tessera/nn/optim.h"
#include "tessera/nn/strategy.h"

namespace tessera::nn {

// Every logged value per epoch: "loss", each metric, "val_" + those with validation
// data, "lr", and "samples_per_second" (training throughput).
struct History {
  std::map<std::string, std::vector<double>> values;
  const std::vector<double>& operator[](const std::string& name) const;
};

struct FitOptions {
  int64_t epochs = 1;
  const data::Dataset* validation = nullptr;
  std::vector<CallbackPtr> callbacks;
  // 0 silent; 1 a progress bar on a terminal, one line per epoch otherwise; 2 one line
  // per epoch always.
  int verbose = 1;
  // To resume: epochs run from initial_epoch to epochs - 1. Epoch e always reads pass e of
  // the training pipeline (Dataset::set_next_pass), so after load_checkpoint the resumed
  // run sees the data in the order the uninterrupted run would have.
  int64_t initial_epoch = 0;
};

class Model {
 public:
  explicit Model(ModulePtr module) : module_(std::move(module)) {}
  void compile(std::shared_ptr<Optimizer> optimizer, LossFn loss,
               std::vector<MetricPtr> metrics = {});

  History fit(const data::Dataset& train, const FitOptions& options = {});
  Logs evaluate(const data::Dataset& data, int verbose = 0);
  Tensor predict(const data::Dataset& data);
  Tensor predict(const Tensor& inputs, int64_t batch_size = 256);

  // One optimization step on a batch; returns the loss (detached). The building block of
  // fit(), usable on its own in a custom loop.
  Tensor train_step(const Tensor& inputs, const Tensor& targets);

  Module& module() { return *module_; }
  ModulePtr module_ptr() { return module_; }
  // Trains through `strategy` from now on (data-parallel: distributed::DataParallel). Each
  // rank then reads its own shard of the data (Dataset::shard); fit() and evaluate() report
  // losses and metrics over all ranks, and only the chief (rank 0) prints and writes files.
  void distribute(std::shared_ptr<Strategy> strategy) { strategy_ = std::move(strategy); }
  Strategy* strategy() const { return strategy_.get(); }
  bool is_chief() const { return !strategy_ || strategy_->is_chief(); }

  Optimizer& optimizer();
  std::shared_ptr<Optimizer> optimizer_ptr() { return optimizer_; }
  // Set by callbacks to end fit() after the current epoch (or batch).
  bool stop_training = false;
  int64_t epoch() const { return epoch_; }  // the epoch running or last run

 private:
  void require_compiled(const char* what) const;
  History fit_epochs(const data::Dataset& train, const FitOptions& options);
  // With a strategy: the loss sum, sample count and metric states summed over ranks.
  void combine_over_ranks(double& loss_sum, int64_t& samples);
  ModulePtr module_;
  std::shared_ptr<Optimizer> optimizer_;
  LossFn loss_;
  std::vector<MetricPtr> metrics_;
  std::shared_ptr<Strategy> strategy_;
  int64_t epoch_ = 0;
};

}  // namespace tessera::nn
