// prefetch: a background thread runs the input ahead of the consumer into a bounded queue.
#include <condition_variable>
#include <deque>
#include <exception>
#include <mutex>
#include <thread>
#include <utility>

#include "internal.h"
#include "tessera/core/error.h"
#include "tessera/core/parallel.h"

namespace tessera::data {
namespace detail {
namespace {

class PrefetchIterator final : public Iterator {
 public:
  PrefetchIterator(std::unique_ptr<Iterator> in, size_t capacity)
      : in_(std::move(in)), capacity_(capacity) {
    thread_ = std::thread([this] {
      set_this_thread_num_threads(1);  // training has the cores (parallel.h)
      fill();
    });
  }

  ~PrefetchIterator() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    space_cv_.notify_all();
    thread_.join();
  }

  std::optional<Example> next() override {
    std::unique_lock<std::mutex> lock(mu_);
    ready_cv_.wait(lock, [&] { return !queue_.empty() || finished_; });
    if (queue_.empty()) {
      // The producer has stopped; an input error is reported once, then the pass ends.
      if (error_) std::rethrow_exception(std::exchange(error_, nullptr));
      return std::nullopt;
    }
    Example e = std::move(queue_.front());
    queue_.pop_front();
    lock.unlock();
    space_cv_.notify_one();
    return e;
  }

 private:
  void fill() {
    for (;;) {
      {
        std::unique_lock<std::mutex> lock(mu_);
        space_cv_.wait(lock, [&] { return stop_ || queue_.size() < capacity_; });
        if (stop_) break;
      }
      std::optional<Example> e;
      std::exception_ptr error;
      try {
        e = in_->next();
      } catch (...) {
        error = std::current_exception();
      }
      std::lock_guard<std::mutex> lock(mu_);
      if (!e) {
        error_ = error;
        break;
      }
      queue_.push_back(std::move(*e));
      ready_cv_.notify_one();
    }
    in_.reset();  // release the input's resources (threads, files) early, unlocked
    std::lock_guard<std::mutex> lock(mu_);
    finished_ = true;
    ready_cv_.notify_all();
  }

  std::unique_ptr<Iterator> in_;
  size_t capacity_;
  std::mutex mu_;
  std::condition_variable ready_cv_, space_cv_;
  std::deque<Example> queue_;
  std::exception_ptr error_;
  bool finished_ = false, stop_ = false;
  std::thread thread_;  // last: started after every other member exists
};

class PrefetchNode final : public DatasetNode {
 public:
  std::vector<const DatasetNode*> inputs() const override { return {input_.node().get()}; }
  PrefetchNode(Dataset input, int64_t buffer_size)
      : input_(std::move(input)), buffer_size_(buffer_size) {
    check(buffer_size >= 0, "prefetch", "buffer_size must be >= 0, got ", buffer_size);
  }
  std::unique_ptr<Iterator> make_iterator() const override {
    if (buffer_size_ == 0) return input_.iterator();
    return std::make_unique<PrefetchIterator>(input_.iterator(), static_cast<size_t>(buffer_size_));
  }
  int64_t cardinality() const override { return input_.cardinality(); }

 private:
  Dataset input_;
  int64_t buffer_size_;
};

}  // namespace
}  // namespace detail

Dataset Dataset::prefetch(int64_t buffer_size) const {
  return detail::make_dataset<detail::PrefetchNode>(*this, buffer_size);
}

}  // namespace tessera::data
