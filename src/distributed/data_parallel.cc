// Data-parallel gradient averaging (see data_parallel.h).
#include "tessera/distributed/data_parallel.h"

#include "tessera/autodiff/autodiff.h"
#include "tessera/ops/creation.h"
#include "tessera/ops/shape.h"

namespace tessera::distributed {

DataParallel::DataParallel(nn::ModulePtr module, std::shared_ptr<ProcessGroup> group,
                           DataParallelOptions options)
    : module_(std::move(module)), group_(std::move(group)), options_(options) {
  check(module_ != nullptr && group_ != nullptr, "DataParallel", "needs a module and a group");
  check(options_.bucket_bytes > 0, "DataParallel", "bucket_bytes must be positive, got ",
        options_.bucket_bytes);
  broadcast_parameters();
}

void DataParallel::broadcast_parameters() {
  NoGradGuard no_grad;
  for (Tensor& p : module_->parameters()) group_->broadcast(p, 0);
  if (options_.broadcast_buffers) {
    for (auto& [name, b] : module_->named_buffers()) {
      Tensor t = b;
      group_->broadcast(t, 0);
    }
  }
}

void DataParallel::average_gradients() {
  NoGradGuard no_grad;
  std::vector<Tensor> params;
  for (const Tensor& p : module_->parameters()) {
    if (p.requires_grad()) params.push_back(p);
  }
  last_buckets_ = 0;
  // Last parameters first; a bucket holds parameters of one dtype, up to bucket_bytes.
  size_t end = params.size();
  while (end > 0) {
    size_t begin = end - 1;
    int64_t bytes = params[begin].numel() * static_cast<int64_t>(params[begin].element_size());
    while (begin > 0 && params[begin - 1].dtype() == params[end - 1].dtype()) {
      int64_t more =
          params[begin - 1].numel() * static_cast<int64_t>(params[begin - 1].element_size());
      if (bytes + more > options_.bucket_bytes) break;
      bytes += more;
      --begin;
    }
    TensorList flat;
    for (size_t i = begin; i < end; ++i) {
      Tensor g = params[i].grad();
      if (!g.defined()) g = zeros(params[i].shape(), params[i].dtype());
      flat.push_back(reshape(g, {-1}));
    }
    Tensor bucket = flat.size() == 1 ? flat[0].contiguous().clone() : concat(flat, 0);
    group_->allreduce(bucket, ReduceOp::mean);
    int64_t offset = 0;
    for (size_t i = begin; i < end; ++i) {
      int64_t n = params[i].numel();
      params[i].set_grad(bucket.narrow(0, offset, n).reshape(params[i].shape()).contiguous());
      offset += n;
    }
    ++last_buckets_;
    end = begin;
  }
}

}  // namespace tessera::distributed
