// shuffle: tf.data's buffer shuffle driven by Philox, so an order depends only on
// (seed, pass number).
#include <algorithm>
#include <array>
#include <atomic>
#include <functional>

#include "internal.h"
#include "tessera/core/error.h"
#include "tessera/core/random.h"

namespace tessera::data {
namespace detail {
namespace {

class ShuffleNode final : public DatasetNode {
 public:
  std::vector<const DatasetNode*> inputs() const override { return {input_.node().get()}; }
  void set_next_pass(uint64_t pass) const override {
    passes_ = static_cast<decltype(passes_.load())>(pass);
    DatasetNode::set_next_pass(pass);
  }
  ShuffleNode(Dataset input, int64_t buffer_size, uint64_t seed, bool reshuffle)
      : input_(std::move(input)), buffer_size_(buffer_size), seed_(seed), reshuffle_(reshuffle) {
    check(buffer_size > 0, "shuffle", "buffer_size must be positive, got ", buffer_size);
  }
  std::unique_ptr<Iterator> make_iterator() const override;
  std::optional<IndexOrder> index_order() const override;
  int64_t cardinality() const override { return input_.cardinality(); }

 private:
  uint64_t next_key() const;  // the key of the pass starting now (advances the pass)

  Dataset input_;
  int64_t buffer_size_;
  uint64_t seed_;
  bool reshuffle_;
  mutable std::atomic<uint64_t> passes_{0};
};

// tf.data's buffer algorithm over a stream of items: Examples pulled from an iterator, or
// indices of a random-access source (the same draws, so the same order, without keeping
// whole elements in the buffer).
template <typename Item>
class ShuffleBuffer {
 public:
  using Pull = std::function<std::optional<Item>()>;
  ShuffleBuffer(Pull pull, int64_t buffer_size, uint64_t key, int64_t expected)
      : pull_(std::move(pull)), buffer_size_(static_cast<size_t>(buffer_size)), key_(key) {
    // Reserve up front when the size is known, so filling a large buffer does not regrow.
    size_t want = buffer_size_;
    if (expected >= 0) want = std::min(want, static_cast<size_t>(expected));
    buffer_.reserve(std::min<size_t>(want, size_t{1} << 20));
  }

  std::optional<Item> next() {
    while (!in_done_ && buffer_.size() < buffer_size_) {
      std::optional<Item> e = pull_();
      if (!e) {
        in_done_ = true;
        pull_ = nullptr;  // releases the input
        break;
      }
      buffer_.push_back(std::move(*e));
    }
    if (buffer_.empty()) return std::nullopt;
    size_t j = below(buffer_.size());
    Item out = std::move(buffer_[j]);
    if (j + 1 != buffer_.size()) buffer_[j] = std::move(buffer_.back());
    buffer_.pop_back();
    return out;
  }

 private:
  // Uniform in [0, n) from 64 random bits (multiply-shift; the bias is below 2^-40 here).
  size_t below(size_t n) {
    if (word_ == 4) {
      words_ = philox4x32(key_, 0, counter_++);
      word_ = 0;
    }
    uint64_t r = static_cast<uint64_t>(words_[word_]) << 32 | words_[word_ + 1];
    word_ += 2;
    return static_cast<size_t>((static_cast<unsigned __int128>(r) * n) >> 64);
  }

  Pull pull_;
  size_t buffer_size_;
  uint64_t key_;
  std::vector<Item> buffer_;
  bool in_done_ = false;
  uint64_t counter_ = 0;
  std::array<uint32_t, 4> words_{};
  int word_ = 4;
};

// Counts 0, 1, ... n - 1: the indices of a random-access source in order.
std::function<std::optional<int64_t>()> count_up_to(int64_t n) {
  return [n, next = int64_t{0}]() mutable -> std::optional<int64_t> {
    if (next >= n) return std::nullopt;
    return next++;
  };
}

uint64_t ShuffleNode::next_key() const {
  uint64_t pass = passes_.fetch_add(1);
  return mix64(seed_, reshuffle_ ? pass : 0);
}

std::optional<IndexOrder> ShuffleNode::index_order() const {
  const auto& source = input_.node();
  if (!source->random_access()) return std::nullopt;
  auto buffer = std::make_shared<ShuffleBuffer<int64_t>>(
      count_up_to(input_.cardinality()), buffer_size_, next_key(), input_.cardinality());
  return IndexOrder{source, [buffer] { return buffer->next(); }};
}

std::unique_ptr<Iterator> ShuffleNode::make_iterator() const {
  struct It final : Iterator {
    std::function<std::optional<Example>()> next_element;
    std::optional<Example> next() override { return next_element(); }
  };
  auto it = std::make_unique<It>();
  if (std::optional<IndexOrder> order = index_order()) {
    it->next_element = [order = std::move(*order)]() -> std::optional<Example> {
      std::optional<int64_t> i = order.next();
      if (!i) return std::nullopt;
      return order.source->get(*i);
    };
    return it;
  }
  auto in = std::shared_ptr<Iterator>(input_.iterator());
  auto buffer = std::make_shared<ShuffleBuffer<Example>>([in] { return in->next(); }, buffer_size_,
                                                         next_key(), input_.cardinality());
  it->next_element = [buffer] { return buffer->next(); };
  return it;
}

}  // namespace
}  // namespace detail

Dataset Dataset::shuffle(int64_t buffer_size, uint64_t seed, bool reshuffle_each_iteration) const {
  return detail::make_dataset<detail::ShuffleNode>(*this, buffer_size, seed,
                                                   reshuffle_each_iteration);
}

}  // namespace tessera::data
