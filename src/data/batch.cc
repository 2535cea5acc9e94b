// batch and padded_batch, and the stacking they share. Stacking copies each element
// straight into the batch tensor (one memcpy per contiguous element) instead of going
// through the stack op, which would build an autodiff-ready graph of unsqueezed views.
#include <algorithm>
#include <cstring>
#include <optional>

#include "internal.h"
#include "tessera/core/error.h"
#include "tessera/ops/creation.h"

namespace tessera::data {
namespace {

void check_arity(std::span<const Example> examples, const char* op) {
  check(!examples.empty(), op, "needs at least one element");
  for (size_t i = 1; i < examples.size(); ++i) {
    check(examples[i].size() == examples[0].size(), op, "element ", i, " has ", examples[i].size(),
          " components, expected ", examples[0].size(), " like element 0");
  }
}

// "[2,3] float32" or "undefined", for errors (built only when one is raised: batching
// checks every element).
std::string describe(const Tensor& t) {
  return t.defined() ? to_string(t.shape()) + " " + dtype_name(t.dtype()) : "undefined";
}

// Copies `src` into row `row` of `out`, a batch whose rows hold src's shape (or larger,
// padded): `region` is the part of the row that src fills.
void copy_into_row(const Tensor& out, int64_t row, const Tensor& src) {
  const Shape& s = src.shape();
  int64_t numel = shape_numel(s);
  if (numel == 0) return;
  Dims row_strides(out.strides().begin() + 1, out.strides().end());
  int64_t offset = out.offset() + row * out.strides()[0];
  bool dense = s == Shape(out.shape().begin() + 1, out.shape().end());
  if (dense && src.is_contiguous()) {
    size_t bytes = static_cast<size_t>(numel) * src.element_size();
    std::memcpy(static_cast<char*>(out.storage()->data()) + offset * out.element_size(),
                src.data_ptr(), bytes);
    return;
  }
  make_view(out, s, row_strides, offset).copy_(src);
}

// Starts loading a contiguous element's bytes.
void prefetch(const Tensor& t) {
  if (!t.defined() || !t.is_contiguous()) return;
  detail::prefetch_bytes(t.data_ptr(), static_cast<size_t>(t.numel()) * t.element_size());
}

}  // namespace

namespace {

// Stacks every component of `examples` along a new leading axis. With `padding` each
// component's batch covers the largest element along every axis and the rest holds the
// padding value; without it every element must have element 0's shape.
Example stack_components(std::span<const Example> examples, std::optional<double> padding,
                         const char* op) {
  check_arity(examples, op);
  const Example& first = examples[0];
  Example out;
  out.reserve(first.size());
  for (size_t c = 0; c < first.size(); ++c) {
    const Tensor& proto = first[c];
    check(proto.defined(), op, "component ", c, " of element 0 is undefined");
    Shape shape = proto.shape();
    for (size_t i = 1; i < examples.size(); ++i) {
      const Tensor& t = examples[i][c];
      bool same_kind = t.defined() && t.dtype() == proto.dtype();
      if (!padding) {
        if (!(same_kind && t.shape() == proto.shape()))
          fail(op, "component ", c, " of element ", i, " is ", describe(t), ", expected ",
               proto.shape(), " ", dtype_name(proto.dtype()),
               " like element 0 (use padded_batch for varying shapes)");
        continue;
      }
      if (!(same_kind && t.dim() == proto.dim()))
        fail(op, "component ", c, " of element ", i, " is ", describe(t), ", expected rank ",
             proto.dim(), " ", dtype_name(proto.dtype()), " like element 0");
      for (int64_t d = 0; d < t.dim(); ++d) shape[d] = std::max(shape[d], t.shape()[d]);
    }
    shape.insert(0, static_cast<int64_t>(examples.size()));
    Tensor batch =
        padding ? full(shape, *padding, proto.dtype()) : Tensor::empty(shape, proto.dtype());
    for (size_t i = 0; i < examples.size(); ++i) {
      if (i + detail::kPrefetchAhead < examples.size())
        prefetch(examples[i + detail::kPrefetchAhead][c]);
      copy_into_row(batch, static_cast<int64_t>(i), examples[i][c]);
    }
    out.push_back(std::move(batch));
  }
  return out;
}

}  // namespace

Example stack_examples(std::span<const Example> examples, const char* op) {
  return stack_components(examples, std::nullopt, op);
}

Example pad_and_stack_examples(std::span<const Example> examples, double padding_value,
                               const char* op) {
  return stack_components(examples, padding_value, op);
}

namespace detail {
namespace {

class BatchNode final : public DatasetNode {
 public:
  std::vector<const DatasetNode*> inputs() const override { return {input_.node().get()}; }
  BatchNode(Dataset input, int64_t batch_size, bool drop_remainder, bool padded, double pad)
      : input_(std::move(input)),
        batch_size_(batch_size),
        drop_remainder_(drop_remainder),
        padded_(padded),
        pad_(pad) {
    check(batch_size > 0, padded ? "padded_batch" : "batch", "batch_size must be positive, got ",
          batch_size);
  }

  std::unique_ptr<Iterator> make_iterator() const override {
    if (!padded_) {
      if (std::optional<IndexOrder> order = input_.node()->index_order())
        return gathering_iterator(std::move(*order));
    }
    struct It final : Iterator {
      std::shared_ptr<const BatchNode> node;
      std::unique_ptr<Iterator> in;
      std::vector<Example> pending;
      std::optional<Example> next() override {
        if (!in) return std::nullopt;
        pending.clear();
        while (static_cast<int64_t>(pending.size()) < node->batch_size_) {
          auto e = in->next();
          if (!e) {
            in.reset();
            break;
          }
          pending.push_back(std::move(*e));
        }
        if (pending.empty()) return std::nullopt;
        if (static_cast<int64_t>(pending.size()) < node->batch_size_ && node->drop_remainder_) {
          pending.clear();
          return std::nullopt;
        }
        Example out = node->padded_ ? pad_and_stack_examples(pending, node->pad_, "padded_batch")
                                    : stack_examples(pending, "batch");
        pending.clear();
        return out;
      }
    };
    auto it = std::make_unique<It>();
    it->node = self(this);
    it->in = input_.iterator();
    it->pending.reserve(static_cast<size_t>(std::min<int64_t>(batch_size_, 1 << 16)));
    return it;
  }

  int64_t cardinality() const override {
    int64_t c = input_.cardinality();
    if (c < 0) return c;
    // (Not (c + batch_size - 1) / batch_size: c may be near int64's end.)
    return c / batch_size_ + (!drop_remainder_ && c % batch_size_ != 0);
  }

 private:
  // Batches of a random-access source's rows, gathered by index (see index_order): the
  // elements, and so the batches, of the element-by-element path.
  std::unique_ptr<Iterator> gathering_iterator(IndexOrder order) const {
    struct It final : Iterator {
      IndexOrder order;
      int64_t batch_size = 0;
      bool drop_remainder = false, done = false;
      std::vector<int64_t> indices;
      std::optional<Example> next() override {
        if (done) return std::nullopt;
        indices.clear();
        while (static_cast<int64_t>(indices.size()) < batch_size) {
          std::optional<int64_t> i = order.next();
          if (!i) {
            done = true;
            order = {};  // releases the source
            break;
          }
          indices.push_back(*i);
        }
        if (indices.empty()) return std::nullopt;
        if (static_cast<int64_t>(indices.size()) < batch_size && drop_remainder)
          return std::nullopt;
        return source->get_batch(indices);
      }
      std::shared_ptr<const DatasetNode> source;
    };
    auto it = std::make_unique<It>();
    it->source = order.source;
    it->order = std::move(order);
    it->batch_size = batch_size_;
    it->drop_remainder = drop_remainder_;
    it->indices.reserve(static_cast<size_t>(std::min<int64_t>(batch_size_, 1 << 16)));
    return it;
  }

  Dataset input_;
  int64_t batch_size_;
  bool drop_remainder_, padded_;
  double pad_;
};

}  // namespace
}  // namespace detail

Dataset Dataset::batch(int64_t batch_size, bool drop_remainder) const {
  return detail::make_dataset<detail::BatchNode>(*this, batch_size, drop_remainder, false, 0.0);
}

Dataset Dataset::padded_batch(int64_t batch_size, double padding_value, bool drop_remainder) const {
  return detail::make_dataset<detail::BatchNode>(*this, batch_size, drop_remainder, true,
                                                 padding_value);
}

}  // namespace tessera::data
