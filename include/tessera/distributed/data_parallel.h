// Data-parallel training, as PyTorch's DistributedDataParallel: every rank holds the whole
// model, trains on its own shard of each batch, and averages gradients across ranks before
// the optimizer step, so all ranks keep the same weights.
//
//   auto group = distributed::mpi_world();
//   distributed::DataParallel ddp(net, group);          // rank 0's weights everywhere
//   Dataset shard = train.shard(group->size(), group->rank()).batch(64);
//   for (...) { opt.zero_grad(); loss(net->forward(x), y).backward();
//               ddp.average_gradients(); opt.step(); }
//
// Gradient accumulation: call backward on several micro-batches and average_gradients()
// only before the step (the other backward passes exchange nothing).
#pragma once
#include <memory>

#include "tessera/distributed/process_group.h"
#include "tessera/nn/module.h"

namespace tessera::distributed {

struct DataParallelOptions {
  // Gradients travel in buckets of about this many bytes: one collective per bucket
  // instead of one per parameter.
  int64_t bucket_bytes = int64_t{25} << 20;
  // Also send rank 0's buffers (batch-norm running statistics) at construction.
  bool broadcast_buffers = true;
};

class DataParallel {
 public:
  DataParallel(nn::ModulePtr module, std::shared_ptr<ProcessGroup> group,
               DataParallelOptions options = {});

  nn::Module& module() { return *module_; }
  ProcessGroup& group() { return *group_; }

  // Copies rank 0's parameters (and buffers, when asked) to every rank.
  void broadcast_parameters();
  // Replaces every trainable parameter's .grad by its mean over ranks, in buckets, last
  // parameters first (the order backward finishes them). A parameter without a gradient
  // on this rank contributes zeros (and then has one).
  void average_gradients();
  // Number of collectives the last average_gradients() used.
  int last_bucket_count() const { return last_buckets_; }

 private:
  nn::ModulePtr module_;
  std::shared_ptr<ProcessGroup> group_;
  DataParallelOptions options_;
  int last_buckets_ = 0;
};

}  // namespace tessera::distributed
