// Dataset basics and the simple sources and transformations (one iterator class each):
// from_tensors, from_generator, range, filter, take, skip, repeat, cache, zip, shard.
#include "tessera/data/dataset.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <mutex>

#include "internal.h"
#include "tessera/core/error.h"

namespace tessera::data {
namespace detail {

Example DatasetNode::get(int64_t index) const {
  fail("Dataset", "this dataset has no random access (asked for element ", index, ")");
}

Example DatasetNode::get_batch(std::span<const int64_t> indices) const {
  std::vector<Example> elements;
  elements.reserve(indices.size());
  for (int64_t i : indices) elements.push_back(get(i));
  return stack_examples(elements, "batch");
}

Tensor int64_scalar(int64_t value) {
  Tensor t = Tensor::empty({}, DType::Int64);
  *t.data<int64_t>() = value;
  return t;
}

namespace {

class EmptyNode final : public DatasetNode {
 public:
  std::unique_ptr<Iterator> make_iterator() const override {
    struct It final : Iterator {
      std::optional<Example> next() override { return std::nullopt; }
    };
    return std::make_unique<It>();
  }
  int64_t cardinality() const override { return 0; }
};

// ---- from_tensors: element i views row i of every tensor ----
class TensorSliceNode final : public DatasetNode {
 public:
  explicit TensorSliceNode(TensorList tensors) : tensors_(std::move(tensors)) {
    check(!tensors_.empty(), "from_tensors", "needs at least one tensor");
    for (size_t c = 0; c < tensors_.size(); ++c) {
      check(tensors_[c].defined(), "from_tensors", "tensor ", c, " is undefined");
      check(tensors_[c].dim() >= 1, "from_tensors", "tensor ", c,
            " is 0-d; every tensor needs an axis 0 to slice");
    }
    rows_ = tensors_[0].shape()[0];
    for (size_t c = 1; c < tensors_.size(); ++c) {
      if (tensors_[c].shape()[0] != rows_) {
        std::string shapes;
        for (size_t k = 0; k < tensors_.size(); ++k) {
          shapes += (k ? ", " : "") + to_string(tensors_[k].shape());
        }
        fail("from_tensors", "tensors differ in length along axis 0: shapes ", shapes);
      }
    }
    for (Tensor& t : tensors_) {
      t = t.detach();
      Shape shape, strides;
      for (int64_t d = 1; d < t.dim(); ++d) {
        shape.push_back(t.shape()[d]);
        strides.push_back(t.strides()[d]);
      }
      element_shapes_.push_back(shape);
      element_strides_.push_back(strides);
      // Row-major with no gaps (size-1 axes aside): a row is one block of bytes.
      bool dense = true;
      int64_t expected = 1;
      for (size_t d = shape.size(); d-- > 0;) {
        if (shape[d] != 1 && strides[d] != expected) dense = false;
        expected *= shape[d];
      }
      dense_rows_.push_back(dense);
    }
  }

  std::unique_ptr<Iterator> make_iterator() const override {
    struct It final : Iterator {
      std::shared_ptr<const TensorSliceNode> node;
      int64_t row = 0;
      std::optional<Example> next() override {
        if (row >= node->rows_) return std::nullopt;
        return node->get(row++);
      }
    };
    auto it = std::make_unique<It>();
    it->node = self(this);
    return it;
  }
  int64_t cardinality() const override { return rows_; }
  bool random_access() const override { return true; }
  Example get(int64_t row) const override {
    Example out;
    out.reserve(tensors_.size());
    for (size_t c = 0; c < tensors_.size(); ++c) {
      const Tensor& t = tensors_[c];
      out.push_back(
          make_view(t, element_shapes_[c], element_strides_[c], t.offset() + row * t.strides()[0]));
    }
    return out;
  }
  std::optional<IndexOrder> index_order() const override {
    return IndexOrder{self(this), [rows = rows_, next = int64_t{0}]() mutable {
                        return next < rows ? std::optional<int64_t>(next++) : std::nullopt;
                      }};
  }
  // Copies each row straight into the batch (one memcpy per row when rows are dense),
  // fetching rows ahead as stacking does.
  Example get_batch(std::span<const int64_t> indices) const override {
    const auto k = static_cast<int64_t>(indices.size());
    for (int64_t i : indices) {
      check(i >= 0 && i < rows_, "batch", "index ", i, " is outside [0, ", rows_, ")");
    }
    Example out;
    out.reserve(tensors_.size());
    for (size_t c = 0; c < tensors_.size(); ++c) {
      const Tensor& t = tensors_[c];
      Shape shape = element_shapes_[c];
      shape.insert(0, k);
      Tensor batch = Tensor::empty(shape, t.dtype());
      const int64_t row_numel = shape_numel(element_shapes_[c]);
      if (row_numel == 0 || k == 0) {
        out.push_back(std::move(batch));
        continue;
      }
      const size_t row_bytes = static_cast<size_t>(row_numel) * t.element_size();
      const auto* src = static_cast<const char*>(t.data_ptr());
      const int64_t row_stride = t.strides()[0] * static_cast<int64_t>(t.element_size());
      auto* dst = static_cast<char*>(batch.data_ptr());
      for (int64_t r = 0; r < k; ++r) {
        const int64_t i = indices[static_cast<size_t>(r)];
        if (dense_rows_[c]) {
          if (static_cast<size_t>(r) + kPrefetchAhead < indices.size())
            prefetch_bytes(src + indices[static_cast<size_t>(r) + kPrefetchAhead] * row_stride,
                           row_bytes);
          std::memcpy(dst + static_cast<size_t>(r) * row_bytes, src + i * row_stride, row_bytes);
        } else {
          batch.select(0, r).copy_(get(i)[c]);
        }
      }
      out.push_back(std::move(batch));
    }
    return out;
  }

 private:
  TensorList tensors_;
  std::vector<Shape> element_shapes_, element_strides_;
  std::vector<bool> dense_rows_;
  int64_t rows_ = 0;
};

class GeneratorNode final : public DatasetNode {
 public:
  GeneratorNode(std::function<std::unique_ptr<Iterator>()> factory, int64_t cardinality)
      : factory_(std::move(factory)), cardinality_(cardinality) {
    check(static_cast<bool>(factory_), "from_generator", "the iterator factory is empty");
    check(cardinality_ >= kInfinite, "from_generator", "invalid cardinality ", cardinality_);
  }
  std::unique_ptr<Iterator> make_iterator() const override {
    auto it = factory_();
    check(it != nullptr, "from_generator", "the factory returned a null iterator");
    return it;
  }
  int64_t cardinality() const override { return cardinality_; }

 private:
  std::function<std::unique_ptr<Iterator>()> factory_;
  int64_t cardinality_;
};

class RangeNode final : public DatasetNode {
 public:
  // Distances and counts are taken in unsigned arithmetic: stop - start overflows int64
  // for the widest ranges, and so would the last element plus step.
  RangeNode(int64_t start, int64_t stop, int64_t step) : start_(start), step_(step) {
    check(step != 0, "range", "step must not be 0");
    const bool up = step > 0;
    if (up ? stop > start : start > stop) {
      const uint64_t span = up ? static_cast<uint64_t>(stop) - static_cast<uint64_t>(start)
                               : static_cast<uint64_t>(start) - static_cast<uint64_t>(stop);
      const uint64_t stride = up ? static_cast<uint64_t>(step) : 0 - static_cast<uint64_t>(step);
      const uint64_t count = (span - 1) / stride + 1;
      check(count <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()), "range", "[",
            start, ", ", stop, ") in steps of ", step, " has more than 2^63 - 1 elements");
      count_ = static_cast<int64_t>(count);
    }
  }
  std::unique_ptr<Iterator> make_iterator() const override {
    struct It final : Iterator {
      std::shared_ptr<const RangeNode> node;
      int64_t index = 0;
      std::optional<Example> next() override {
        if (index >= node->count_) return std::nullopt;
        return node->get(index++);
      }
    };
    auto it = std::make_unique<It>();
    it->node = self(this);
    return it;
  }
  int64_t cardinality() const override { return count_; }
  bool random_access() const override { return true; }
  Example get(int64_t index) const override {
    const uint64_t at =
        static_cast<uint64_t>(start_) + static_cast<uint64_t>(index) * static_cast<uint64_t>(step_);
    return {int64_scalar(static_cast<int64_t>(at))};
  }

 private:
  int64_t start_, step_, count_ = 0;
};

// Base for nodes with one input dataset.
class UnaryNode : public DatasetNode {
 public:
  explicit UnaryNode(Dataset input) : input_(std::move(input)) {}
  const Dataset& input() const { return input_; }
  std::vector<const DatasetNode*> inputs() const override { return {input_.node().get()}; }

 protected:
  Dataset input_;
};

class FilterNode final : public UnaryNode {
 public:
  FilterNode(Dataset input, std::function<bool(const Example&)> pred)
      : UnaryNode(std::move(input)), pred_(std::move(pred)) {
    check(static_cast<bool>(pred_), "filter", "the predicate is empty");
  }
  std::unique_ptr<Iterator> make_iterator() const override {
    struct It final : Iterator {
      std::shared_ptr<const FilterNode> node;
      std::unique_ptr<Iterator> in;
      std::optional<Example> next() override {
        while (auto e = in->next()) {
          if (node->pred_(*e)) return e;
        }
        return std::nullopt;
      }
    };
    auto it = std::make_unique<It>();
    it->node = self(this);
    it->in = input_.iterator();
    return it;
  }
  int64_t cardinality() const override {
    return input_.cardinality() == kInfinite ? kInfinite : kUnknown;
  }

 private:
  std::function<bool(const Example&)> pred_;
};

class TakeNode final : public UnaryNode {
 public:
  TakeNode(Dataset input, int64_t n) : UnaryNode(std::move(input)), n_(n) {}
  std::unique_ptr<Iterator> make_iterator() const override {
    struct It final : Iterator {
      std::unique_ptr<Iterator> in;
      int64_t left;
      std::optional<Example> next() override {
        if (left == 0) return std::nullopt;
        auto e = in->next();
        if (!e) {
          left = 0;
          return e;
        }
        if (left > 0) --left;
        return e;
      }
    };
    auto it = std::make_unique<It>();
    it->in = input_.iterator();
    it->left = n_;
    return it;
  }
  int64_t cardinality() const override {
    int64_t c = input_.cardinality();
    if (n_ < 0) return c;
    if (c == kInfinite) return n_;
    if (c == kUnknown) return n_ == 0 ? 0 : kUnknown;
    return std::min(c, n_);
  }

 private:
  int64_t n_;
};

class SkipNode final : public UnaryNode {
 public:
  SkipNode(Dataset input, int64_t n) : UnaryNode(std::move(input)), n_(n) {}
  std::unique_ptr<Iterator> make_iterator() const override {
    struct It final : Iterator {
      std::unique_ptr<Iterator> in;
      int64_t to_skip;
      bool started = false;
      std::optional<Example> next() override {
        if (!started) {
          started = true;
          // n < 0 skips everything: drain the input.
          while (to_skip != 0) {
            if (!in->next()) return std::nullopt;
            if (to_skip > 0) --to_skip;
          }
        }
        return in->next();
      }
    };
    auto it = std::make_unique<It>();
    it->in = input_.iterator();
    it->to_skip = n_;
    return it;
  }
  int64_t cardinality() const override {
    int64_t c = input_.cardinality();
    if (c == kInfinite) return n_ < 0 ? 0 : kInfinite;
    if (c == kUnknown) return kUnknown;
    if (n_ < 0) return 0;
    return std::max<int64_t>(0, c - n_);
  }

 private:
  int64_t n_;
};

class RepeatNode final : public UnaryNode {
 public:
  RepeatNode(Dataset input, int64_t count) : UnaryNode(std::move(input)), count_(count) {}
  std::unique_ptr<Iterator> make_iterator() const override {
    struct It final : Iterator {
      std::shared_ptr<const RepeatNode> node;
      std::unique_ptr<Iterator> in;
      int64_t done = 0;
      bool produced = false, finished = false;
      std::optional<Example> next() override {
        while (!finished) {
          if (!in) {
            if (node->count_ >= 0 && done >= node->count_) break;
            in = node->input_.iterator();
            produced = false;
          }
          if (auto e = in->next()) {
            produced = true;
            return e;
          }
          in.reset();
          ++done;
          // An empty pass would make repeat() spin forever.
          if (!produced) break;
        }
        finished = true;
        return std::nullopt;
      }
    };
    auto it = std::make_unique<It>();
    it->node = self(this);
    return it;
  }
  int64_t cardinality() const override {
    int64_t c = input_.cardinality();
    if (count_ < 0) return c == 0 ? 0 : kInfinite;  // like tf.data, unknown becomes infinite
    if (count_ == 0 || c == 0) return 0;
    if (c < 0) return c;
    int64_t total;  // saturated: a count past int64 is still finite
    return __builtin_mul_overflow(c, count_, &total) ? std::numeric_limits<int64_t>::max() : total;
  }

 private:
  int64_t count_;
};

class CacheNode final : public UnaryNode {
 public:
  explicit CacheNode(Dataset input) : UnaryNode(std::move(input)) {}
  std::unique_ptr<Iterator> make_iterator() const override {
    std::shared_ptr<const std::vector<Example>> cached;
    {
      std::lock_guard<std::mutex> lock(mu_);
      cached = cached_;
    }
    if (cached) {
      struct Replay final : Iterator {
        std::shared_ptr<const std::vector<Example>> data;
        size_t at = 0;
        std::optional<Example> next() override {
          if (at >= data->size()) return std::nullopt;
          return (*data)[at++];
        }
      };
      auto it = std::make_unique<Replay>();
      it->data = std::move(cached);
      return it;
    }
    // The filling pass: pass elements through and keep them; a pass abandoned early
    // keeps nothing.
    struct Fill final : Iterator {
      std::shared_ptr<const CacheNode> node;
      std::unique_ptr<Iterator> in;
      std::vector<Example> kept;
      bool finished = false;
      std::optional<Example> next() override {
        if (finished) return std::nullopt;
        auto e = in->next();
        if (e) {
          kept.push_back(*e);
          return e;
        }
        finished = true;
        in.reset();
        std::lock_guard<std::mutex> lock(node->mu_);
        if (!node->cached_) {
          node->cached_ = std::make_shared<const std::vector<Example>>(std::move(kept));
        }
        return std::nullopt;
      }
    };
    auto it = std::make_unique<Fill>();
    it->node = self(this);
    it->in = input_.iterator();
    return it;
  }
  int64_t cardinality() const override { return input_.cardinality(); }

 private:
  mutable std::mutex mu_;
  mutable std::shared_ptr<const std::vector<Example>> cached_;
};

class ZipNode final : public DatasetNode {
 public:
  std::vector<const DatasetNode*> inputs() const override {
    std::vector<const DatasetNode*> out;
    for (const Dataset& d : inputs_) out.push_back(d.node().get());
    return out;
  }
  explicit ZipNode(std::vector<Dataset> inputs) : inputs_(std::move(inputs)) {
    check(!inputs_.empty(), "zip", "needs at least one dataset");
  }
  std::unique_ptr<Iterator> make_iterator() const override {
    struct It final : Iterator {
      std::vector<std::unique_ptr<Iterator>> ins;
      bool finished = false;
      std::optional<Example> next() override {
        if (finished) return std::nullopt;
        Example out;
        for (auto& in : ins) {
          auto e = in->next();
          if (!e) {
            finished = true;
            ins.clear();
            return std::nullopt;
          }
          for (Tensor& t : *e) out.push_back(std::move(t));
        }
        return out;
      }
    };
    auto it = std::make_unique<It>();
    for (const Dataset& d : inputs_) it->ins.push_back(d.iterator());
    return it;
  }
  int64_t cardinality() const override {
    bool all_infinite = true, any_unknown = false;
    int64_t shortest = INT64_MAX;
    for (const Dataset& d : inputs_) {
      int64_t c = d.cardinality();
      if (c != kInfinite) all_infinite = false;
      if (c == kUnknown) any_unknown = true;
      if (c >= 0) shortest = std::min(shortest, c);
    }
    if (all_infinite) return kInfinite;
    if (shortest == 0) return 0;
    return any_unknown ? kUnknown : shortest;
  }

 private:
  std::vector<Dataset> inputs_;
};

class ShardNode final : public UnaryNode {
 public:
  ShardNode(Dataset input, int64_t num_shards, int64_t index)
      : UnaryNode(std::move(input)), num_shards_(num_shards), index_(index) {
    check(num_shards > 0, "shard", "num_shards must be positive, got ", num_shards);
    check(index >= 0 && index < num_shards, "shard", "index ", index, " is outside [0, ",
          num_shards, ")");
  }
  std::unique_ptr<Iterator> make_iterator() const override {
    struct It final : Iterator {
      std::unique_ptr<Iterator> in;
      int64_t num_shards, index, position = 0;
      std::optional<Example> next() override {
        while (auto e = in->next()) {
          if (position++ % num_shards == index) return e;
        }
        return std::nullopt;
      }
    };
    auto it = std::make_unique<It>();
    it->in = input_.iterator();
    it->num_shards = num_shards_;
    it->index = index_;
    return it;
  }
  int64_t cardinality() const override {
    int64_t c = input_.cardinality();
    if (c < 0) return c;
    return c > index_ ? (c - index_ - 1) / num_shards_ + 1 : 0;
  }
  std::optional<IndexOrder> index_order() const override {
    std::optional<IndexOrder> in = input_.node()->index_order();
    if (!in) return std::nullopt;
    auto next = [in = std::move(in->next), shards = num_shards_, index = index_,
                 position = int64_t{0}]() mutable -> std::optional<int64_t> {
      while (auto i = in()) {
        if (position++ % shards == index) return i;
      }
      return std::nullopt;
    };
    return IndexOrder{in->source, std::move(next)};
  }

 private:
  int64_t num_shards_, index_;
};

}  // namespace
}  // namespace detail

using detail::make_dataset;

Dataset::Dataset() : node_(std::make_shared<const detail::EmptyNode>()) {}

Dataset::Dataset(std::shared_ptr<const detail::DatasetNode> node) : node_(std::move(node)) {
  check(node_ != nullptr, "Dataset", "null node");
}

std::unique_ptr<Iterator> Dataset::iterator() const { return node_->make_iterator(); }

int64_t Dataset::cardinality() const { return node_->cardinality(); }

std::vector<Example> Dataset::collect() const {
  check(cardinality() != kInfinite, "collect", "the dataset is infinite");
  std::vector<Example> out;
  auto it = iterator();
  while (auto e = it->next()) out.push_back(std::move(*e));
  return out;
}

void Dataset::set_next_pass(uint64_t pass) const { node_->set_next_pass(pass); }

Dataset Dataset::from_tensors(TensorList tensors) {
  return make_dataset<detail::TensorSliceNode>(std::move(tensors));
}

Dataset Dataset::from_generator(std::function<std::unique_ptr<Iterator>()> make_iterator,
                                int64_t cardinality) {
  return make_dataset<detail::GeneratorNode>(std::move(make_iterator), cardinality);
}

Dataset Dataset::range(int64_t start, int64_t stop, int64_t step) {
  return make_dataset<detail::RangeNode>(start, stop, step);
}

Dataset Dataset::filter(std::function<bool(const Example&)> pred) const {
  return make_dataset<detail::FilterNode>(*this, std::move(pred));
}

Dataset Dataset::take(int64_t n) const { return make_dataset<detail::TakeNode>(*this, n); }

Dataset Dataset::skip(int64_t n) const { return make_dataset<detail::SkipNode>(*this, n); }

Dataset Dataset::repeat(int64_t count) const {
  return make_dataset<detail::RepeatNode>(*this, count);
}

Dataset Dataset::cache() const { return make_dataset<detail::CacheNode>(*this); }

Dataset Dataset::zip(std::vector<Dataset> datasets) {
  return make_dataset<detail::ZipNode>(std::move(datasets));
}

Dataset Dataset::shard(int64_t num_shards, int64_t index) const {
  return make_dataset<detail::ShardNode>(*this, num_shards, index);
}

}  // namespace tessera::data
