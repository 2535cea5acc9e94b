// Data-parallel gradient averaging, overlapped with backward (see data_parallel.h).
#include "tessera/distributed/data_parallel.h"

#include <algorithm>
#include <chrono>
#include <ctime>

#include "tessera/distributed/differentiable.h"
#include "tessera/nn/norm_layers.h"
#include "tessera/ops/creation.h"
#include "tessera/ops/shape.h"

namespace tessera::distributed {

namespace {

double thread_cpu_seconds() {
  timespec t{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + 1e-9 * static_cast<double>(t.tv_nsec);
}

}  // namespace

double GradientSyncStats::hidden_fraction() const {
  if (exchange_seconds <= 0) return 1.0;
  return std::clamp(1.0 - wait_seconds / exchange_seconds, 0.0, 1.0);
}

DataParallel::DataParallel(nn::ModulePtr module, std::shared_ptr<ProcessGroup> group,
                           DataParallelOptions options)
    : module_(std::move(module)), group_(std::move(group)), options_(options) {
  check(module_ != nullptr && group_ != nullptr, "DataParallel", "needs a module and a group");
  check(options_.bucket_bytes > 0, "DataParallel", "bucket_bytes must be positive, got ",
        options_.bucket_bytes);
  check(options_.final_bucket_bytes >= 0, "DataParallel",
        "final_bucket_bytes must not be negative, got ", options_.final_bucket_bytes);
  broadcast_parameters();
  make_buckets();
  if (options_.sync_batch_norm) {
    auto group_for_norm = group_;
    for (auto& [name, m] : module_->named_modules()) {
      if (auto* norm = dynamic_cast<nn::BatchNorm*>(m.get())) {
        norm->cross_replica_sum = [group_for_norm](const Tensor& x) {
          return sum_over_ranks_with_grad(group_for_norm, x);
        };
      }
    }
  }
  if (options_.overlap && group_->size() > 1) {
    exchange_ = group_->duplicate();
    exchange_->set_wait_mode(WaitMode::nap);  // backward computes beside it
    thread_ = std::thread([this] { exchange_loop(); });
  }
}

DataParallel::~DataParallel() {
  for (auto& accumulator : accumulators_) accumulator->post_hooks.clear();
  if (thread_.joinable()) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    wake_.notify_all();
    thread_.join();
  }
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

// Last parameters first (the order backward finishes them); a bucket holds parameters of
// one dtype, up to bucket_bytes. The first parameters, those backward finishes last, go in
// a bucket of their own of at most final_bucket_bytes: what is exchanged after backward has
// ended cannot be hidden behind it, so it is kept small.
void DataParallel::make_buckets() {
  for (const Tensor& p : module_->parameters()) {
    if (p.requires_grad()) params_.push_back(p);
  }
  bucket_of_.assign(params_.size(), 0);
  ready_.assign(params_.size(), 0);
  auto bytes_of = [&](size_t i) {
    return params_[i].numel() * static_cast<int64_t>(params_[i].element_size());
  };
  const int64_t final_cap = std::min(options_.final_bucket_bytes, options_.bucket_bytes);
  size_t split = 0;
  for (int64_t bytes = 0; split < params_.size(); ++split) {
    bytes += bytes_of(split);
    if (bytes > final_cap) break;
  }
  add_buckets(split, params_.size(), options_.bucket_bytes);
  add_buckets(0, split, final_cap);
  reset_pass();
  if (!options_.overlap || group_->size() == 1) return;
  for (size_t i = 0; i < params_.size(); ++i) {
    accumulators_.push_back(
        autodiff::on_gradient_accumulated(params_[i], [this, i] { gradient_ready(i); }));
  }
}

void DataParallel::add_buckets(size_t lo, size_t hi, int64_t cap) {
  size_t end = hi;
  while (end > lo) {
    size_t begin = end - 1;
    int64_t bytes = params_[begin].numel() * static_cast<int64_t>(params_[begin].element_size());
    while (begin > lo && params_[begin - 1].dtype() == params_[end - 1].dtype()) {
      int64_t more =
          params_[begin - 1].numel() * static_cast<int64_t>(params_[begin - 1].element_size());
      if (bytes + more > cap) break;
      bytes += more;
      --begin;
    }
    Bucket& bucket = buckets_.emplace_back();
    int64_t elements = 0;
    for (size_t i = begin; i < end; ++i) {
      bucket.params.push_back(i);
      bucket_of_[i] = buckets_.size() - 1;
      elements += params_[i].numel();
    }
    bucket.flat = Tensor::empty({elements}, params_[begin].dtype());
    end = begin;
  }
}

void DataParallel::reset_pass() {
  for (Bucket& b : buckets_) {
    b.pending = static_cast<int>(b.params.size());
    b.launched = false;
  }
  std::fill(ready_.begin(), ready_.end(), 0);
  next_launch_ = 0;
}

// Runs inside backward, on its thread, when a parameter's .grad is complete.
void DataParallel::gradient_ready(size_t param) {
  if (!sync_) return;
  check(!ready_[param], "DataParallel",
        "a second backward pass ran before average_gradients(): to accumulate gradients over "
        "several backward passes, run all but the last inside no_sync()");
  ready_[param] = 1;
  if (--buckets_[bucket_of_[param]].pending == 0) launch_ready_buckets();
}

// Buckets start in order, so every rank issues the same collectives in the same order.
void DataParallel::launch_ready_buckets() {
  while (next_launch_ < buckets_.size() && buckets_[next_launch_].pending == 0) {
    launch(buckets_[next_launch_++]);
  }
}

void DataParallel::launch(Bucket& bucket) {
  {
    NoGradGuard no_grad;
    int64_t offset = 0;
    for (size_t i : bucket.params) {
      const Tensor& p = params_[i];
      Tensor slot = bucket.flat.narrow(0, offset, p.numel());
      Tensor g = p.grad();
      if (g.defined()) {
        slot.copy_(reshape(g, {-1}));
      } else {
        slot.fill_(0.0);
      }
      offset += p.numel();
    }
  }
  bucket.launched = true;
  if (!thread_.joinable()) {
    auto start = std::chrono::steady_clock::now();
    group_->allreduce(bucket.flat, ReduceOp::mean);
    stats_.exchange_seconds +=
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    queue_.push_back(&bucket);
  }
  wake_.notify_one();
}

void DataParallel::exchange_loop() {
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    wake_.wait(lock, [&] { return stop_ || !queue_.empty(); });
    if (stop_) return;
    Bucket* bucket = queue_.front();
    queue_.pop_front();
    bool failed = error_ != nullptr;
    lock.unlock();
    double seconds = 0, cpu_seconds = 0;
    std::exception_ptr error;
    if (!failed) {
      auto start = std::chrono::steady_clock::now();
      double cpu_start = thread_cpu_seconds();
      try {
        exchange_->allreduce(bucket->flat, ReduceOp::mean);
      } catch (...) {
        error = std::current_exception();
      }
      seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      cpu_seconds = thread_cpu_seconds() - cpu_start;
    }
    lock.lock();
    if (error && !error_) error_ = error;
    exchange_seconds_ += seconds;
    exchange_cpu_seconds_ += cpu_seconds;
    ++done_;
    finished_.notify_all();
  }
}

void DataParallel::write_back(Bucket& bucket) {
  NoGradGuard no_grad;
  int64_t offset = 0;
  for (size_t i : bucket.params) {
    Tensor& p = params_[i];
    Tensor mean = bucket.flat.narrow(0, offset, p.numel()).reshape(p.shape());
    if (p.grad().defined()) {
      Tensor g = p.grad();
      g.copy_(mean);
    } else {
      p.set_grad(mean.clone());
    }
    offset += p.numel();
  }
}

void DataParallel::average_gradients() {
  stats_ = {};
  stats_.buckets = static_cast<int>(buckets_.size());
  // What backward did not start: parameters without a gradient in this pass count as
  // zeros.
  for (; next_launch_ < buckets_.size(); ++next_launch_) launch(buckets_[next_launch_]);
  if (thread_.joinable()) {
    auto start = std::chrono::steady_clock::now();
    std::exception_ptr error;
    {
      // Nothing computes now: the exchange may take the core this thread leaves.
      exchange_->set_wait_mode(WaitMode::spin);
      std::unique_lock<std::mutex> lock(mutex_);
      finished_.wait(lock, [&] { return done_ == buckets_.size(); });
      exchange_->set_wait_mode(WaitMode::nap);
      done_ = 0;
      stats_.exchange_seconds = exchange_seconds_;
      stats_.exchange_cpu_seconds = exchange_cpu_seconds_;
      exchange_seconds_ = exchange_cpu_seconds_ = 0;
      error = error_;
    }
    stats_.wait_seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (error) std::rethrow_exception(error);
  } else {
    stats_.wait_seconds = stats_.exchange_seconds;
  }
  for (Bucket& b : buckets_) write_back(b);
  reset_pass();
}

void DataParallel::sum_over_ranks(std::vector<double>& values) {
  if (values.empty()) return;
  Tensor t = from_vector(values, {static_cast<int64_t>(values.size())});
  group_->allreduce(t, ReduceOp::sum);
  values = t.to_vector<double>();
}

}  // namespace tessera::distributed
