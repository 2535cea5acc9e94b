// map and map_indexed: inline, or on worker threads that return results in input order.
#include <atomic>
#include <condition_variable>
#include <exception>
#include <map>
#include <mutex>
#include <thread>

#include "internal.h"
#include "tessera/autodiff/autodiff.h"
#include "tessera/core/error.h"
#include "tessera/core/parallel.h"

namespace tessera::data {
namespace detail {
namespace {

class MapNode final : public DatasetNode {
 public:
  std::vector<const DatasetNode*> inputs() const override { return {input_.node().get()}; }
  void set_next_pass(uint64_t pass) const override {
    passes_ = static_cast<decltype(passes_.load())>(pass);
    DatasetNode::set_next_pass(pass);
  }
  MapNode(Dataset input, MapIndexedFn fn, int num_workers)
      : input_(std::move(input)), fn_(std::move(fn)), num_workers_(num_workers) {
    check(static_cast<bool>(fn_), "map", "the function is empty");
    check(num_workers >= 0, "map", "num_workers must be >= 0, got ", num_workers);
  }
  std::unique_ptr<Iterator> make_iterator() const override;
  int64_t cardinality() const override { return input_.cardinality(); }

  const MapIndexedFn& fn() const { return fn_; }

 private:
  Dataset input_;
  MapIndexedFn fn_;
  int num_workers_;
  mutable std::atomic<int64_t> passes_{0};
};

class InlineMapIterator final : public Iterator {
 public:
  InlineMapIterator(std::shared_ptr<const MapNode> node, std::unique_ptr<Iterator> in,
                    int64_t epoch)
      : node_(std::move(node)), in_(std::move(in)), epoch_(epoch) {}
  std::optional<Example> next() override {
    auto e = in_->next();
    if (!e) return e;
    NoGradGuard no_grad;  // pipelines carry no autodiff history (dataset.h)
    return node_->fn()(std::move(*e), ElementInfo{index_++, epoch_});
  }

 private:
  std::shared_ptr<const MapNode> node_;
  std::unique_ptr<Iterator> in_;
  int64_t epoch_, index_ = 0;
};

// Workers take inputs in turn (numbering them as they go), run fn unlocked, and park
// results by number; next() hands them out in number order. At most max_in_flight numbers
// are taken but not yet handed out, which bounds memory when the consumer is slow.
class ParallelMapIterator final : public Iterator {
 public:
  ParallelMapIterator(std::shared_ptr<const MapNode> node, std::unique_ptr<Iterator> in,
                      int64_t epoch, int num_workers)
      : node_(std::move(node)),
        in_(std::move(in)),
        epoch_(epoch),
        max_in_flight_(2 * static_cast<int64_t>(num_workers)) {
    workers_.reserve(num_workers);
    for (int i = 0; i < num_workers; ++i) {
      workers_.emplace_back([this] {
        set_this_thread_num_threads(1);  // parallel across workers (parallel.h)
        NoGradGuard no_grad;             // pipelines carry no autodiff history (dataset.h)
        work();
      });
    }
  }

  ~ParallelMapIterator() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    space_cv_.notify_all();
    for (std::thread& t : workers_) t.join();
  }

  std::optional<Example> next() override {
    std::unique_lock<std::mutex> lock(mu_);
    result_cv_.wait(lock, [&] { return results_.count(next_out_) > 0 || next_out_ >= end_; });
    auto found = results_.find(next_out_);
    if (found == results_.end()) return std::nullopt;
    Result r = std::move(found->second);
    results_.erase(found);
    ++next_out_;
    --in_flight_;
    lock.unlock();
    space_cv_.notify_one();
    if (r.error) std::rethrow_exception(r.error);
    return std::move(r.value);
  }

 private:
  struct Result {
    std::optional<Example> value;
    std::exception_ptr error;
  };

  void work() {
    for (;;) {
      {
        std::unique_lock<std::mutex> lock(mu_);
        space_cv_.wait(lock, [&] { return stop_ || input_done_ || in_flight_ < max_in_flight_; });
        if (stop_ || input_done_) return;
        ++in_flight_;
      }
      int64_t seq = -1;
      std::optional<Example> input;
      std::exception_ptr error;
      bool ended = false;
      {
        std::lock_guard<std::mutex> in_lock(in_mu_);
        if (!in_ended_) {
          seq = next_seq_++;
          try {
            input = in_->next();
          } catch (...) {
            error = std::current_exception();
          }
          if (!input) in_ended_ = true;
        }
        ended = in_ended_;
      }
      if (!input) {
        // The input is exhausted (or failed at `seq`): give back the reservation.
        {
          std::lock_guard<std::mutex> lock(mu_);
          --in_flight_;
          if (seq >= 0) {
            if (error) {
              results_[seq] = Result{std::nullopt, error};
              ++in_flight_;  // the error result occupies its slot until handed out
              end_ = seq + 1;
            } else {
              end_ = seq;
            }
          }
          input_done_ = input_done_ || ended;
        }
        space_cv_.notify_all();
        result_cv_.notify_all();
        return;
      }
      Result r;
      try {
        r.value = node_->fn()(std::move(*input), ElementInfo{seq, epoch_});
      } catch (...) {
        r.error = std::current_exception();
      }
      {
        std::lock_guard<std::mutex> lock(mu_);
        results_[seq] = std::move(r);
      }
      result_cv_.notify_all();
    }
  }

  std::shared_ptr<const MapNode> node_;
  std::unique_ptr<Iterator> in_;  // guarded by in_mu_
  int64_t epoch_;
  int64_t max_in_flight_;

  std::mutex in_mu_;
  int64_t next_seq_ = 0;  // guarded by in_mu_
  bool in_ended_ = false;

  std::mutex mu_;
  std::condition_variable result_cv_, space_cv_;
  std::map<int64_t, Result> results_;
  int64_t next_out_ = 0;
  int64_t end_ = INT64_MAX;  // number of the first missing element once the input ended
  int64_t in_flight_ = 0;
  bool input_done_ = false;
  bool stop_ = false;

  std::vector<std::thread> workers_;  // last: started after every other member exists
};

std::unique_ptr<Iterator> MapNode::make_iterator() const {
  int64_t epoch = passes_.fetch_add(1);
  auto in = input_.iterator();
  if (num_workers_ == 0)
    return std::make_unique<InlineMapIterator>(self(this), std::move(in), epoch);
  return std::make_unique<ParallelMapIterator>(self(this), std::move(in), epoch, num_workers_);
}

}  // namespace
}  // namespace detail

Dataset Dataset::map(MapFn fn, int num_workers) const {
  check(static_cast<bool>(fn), "map", "the function is empty");
  return detail::make_dataset<detail::MapNode>(
      *this, [fn = std::move(fn)](Example e, const ElementInfo&) { return fn(std::move(e)); },
      num_workers);
}

Dataset Dataset::map_indexed(MapIndexedFn fn, int num_workers) const {
  return detail::make_dataset<detail::MapNode>(*this, std::move(fn), num_workers);
}

}  // namespace tessera::data
