// Data-parallel training, as PyTorch's DistributedDataParallel: every rank holds the whole
// model, trains on its own shard of each batch, and averages gradients across ranks before
// the optimizer step, so all ranks keep the same weights.
//
//   auto group = distributed::mpi_world();
//   auto ddp = std::make_shared<distributed::DataParallel>(net, group);  // rank 0's weights
//   Dataset shard = train.shuffle(n, seed).shard(group->size(), group->rank()).batch(64);
//   // with Model: model.distribute(ddp); model.fit(shard, ...);
//   // or by hand:
//   for (...) { opt.zero_grad(); loss(net->forward(x), y).backward();
//               ddp->average_gradients(); opt.step(); }
//
// Overlap: gradients travel in buckets, filled from the last parameters back. As soon as
// backward has finished every gradient of a bucket, the bucket is handed to a communication
// thread, which averages it over ranks while backward goes on; average_gradients() sends
// what is left (parameters that got no gradient count as zeros), waits, and writes the
// averages back into .grad.
//
// Gradient accumulation: run the backward passes of all micro-batches but the last inside
// no_sync() (they exchange nothing), then the last one outside it and average_gradients().
#pragma once
#include <condition_variable>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "tessera/autodiff/autodiff.h"
#include "tessera/distributed/process_group.h"
#include "tessera/nn/module.h"
#include "tessera/nn/strategy.h"

namespace tessera::distributed {

struct DataParallelOptions {
  // Gradients travel in buckets of about this many bytes (a parameter larger than this
  // travels alone). Smaller buckets start exchanging earlier in backward; larger ones cost
  // fewer collectives.
  int64_t bucket_bytes = int64_t{1} << 20;
  // The first parameters (the first layers, whose gradients backward finishes last) travel
  // in a bucket of their own of at most this many bytes: what is left to exchange once
  // backward has ended cannot be hidden behind it.
  int64_t final_bucket_bytes = int64_t{64} << 10;
  // Also send rank 0's buffers (batch-norm running statistics) at construction.
  bool broadcast_buffers = true;
  // Exchange buckets on the communication thread during backward. Off, average_gradients()
  // exchanges everything itself.
  bool overlap = true;
  // Batch norm layers normalize with the statistics of the whole global batch (summed over
  // ranks in forward and backward, as PyTorch's SyncBatchNorm) instead of each rank's own.
  bool sync_batch_norm = false;
};

// What the last average_gradients() cost.
struct GradientSyncStats {
  int buckets = 0;
  double exchange_seconds = 0;      // time the collectives took on the communication thread
  double wait_seconds = 0;          // of which average_gradients() waited (not hidden)
  double exchange_cpu_seconds = 0;  // processor time the communication thread used
  // The part of the exchange hidden behind backward.
  double hidden_fraction() const;
};

class DataParallel : public nn::Strategy {
 public:
  DataParallel(nn::ModulePtr module, std::shared_ptr<ProcessGroup> group,
               DataParallelOptions options = {});
  ~DataParallel() override;
  DataParallel(const DataParallel&) = delete;
  DataParallel& operator=(const DataParallel&) = delete;

  nn::Module& module() { return *module_; }
  ProcessGroup& group() { return *group_; }

  // Copies rank 0's parameters (and buffers, when asked) to every rank.
  void broadcast_parameters();
  // Replaces every trainable parameter's .grad by its mean over ranks.
  void average_gradients();
  // Number of collectives the last average_gradients() used.
  int last_bucket_count() const { return stats_.buckets; }
  const GradientSyncStats& last_sync() const { return stats_; }

  // While one is alive, backward passes exchange nothing: gradients accumulate locally.
  class NoSync {
   public:
    explicit NoSync(DataParallel& ddp) : ddp_(ddp), previous_(ddp.sync_) { ddp.sync_ = false; }
    ~NoSync() { ddp_.sync_ = previous_; }
    NoSync(const NoSync&) = delete;
    NoSync& operator=(const NoSync&) = delete;

   private:
    DataParallel& ddp_;
    bool previous_;
  };
  NoSync no_sync() { return NoSync(*this); }

  // nn::Strategy, for Model::distribute.
  int rank() const override { return group_->rank(); }
  int world_size() const override { return group_->size(); }
  void on_train_begin(nn::Model&) override { broadcast_parameters(); }
  void after_backward(nn::Model&) override { average_gradients(); }
  void sum_over_ranks(std::vector<double>& values) override;
  void report_failure(const std::string& message) override { group_->report_failure(message); }

 private:
  struct Bucket {
    std::vector<size_t> params;  // indices into params_
    Tensor flat;                 // the exchange buffer, reused every step
    int pending = 0;             // parameters whose gradient is not complete in this pass
    bool launched = false;
  };
  void make_buckets();
  void add_buckets(size_t lo, size_t hi, int64_t cap);  // params [lo, hi), from hi down
  void gradient_ready(size_t param);
  void launch_ready_buckets();
  void launch(Bucket& bucket);
  void write_back(Bucket& bucket);
  void exchange_loop();
  void reset_pass();

  nn::ModulePtr module_;
  std::shared_ptr<ProcessGroup> group_;     // weights, metrics, batch norm: this thread
  std::shared_ptr<ProcessGroup> exchange_;  // gradients: the communication thread
  DataParallelOptions options_;
  GradientSyncStats stats_;
  bool sync_ = true;

  std::vector<Tensor> params_;
  std::vector<size_t> bucket_of_;
  std::vector<char> ready_;
  std::vector<std::shared_ptr<autodiff::Node>> accumulators_;  // hold the hooks
  std::vector<Bucket> buckets_;
  size_t next_launch_ = 0;

  // The communication thread: buckets to exchange, in order, and how many are done.
  std::mutex mutex_;
  std::condition_variable wake_, finished_;
  std::deque<Bucket*> queue_;
  size_t done_ = 0;
  double exchange_seconds_ = 0, exchange_cpu_seconds_ = 0;
  std::exception_ptr error_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace tessera::distributed
