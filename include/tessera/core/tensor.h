// Tensor: a typed, strided view of reference-counted storage, plus the autodiff
// metadata (requires_grad, the node that produced it, its .grad).
#pragma once
#include <cstdint>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "tessera/core/dims.h"
#include "tessera/core/dtype.h"
#include "tessera/core/scalar.h"
#include "tessera/core/storage.h"

namespace tessera {

namespace autodiff {
class Node;
}

class Tensor;

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  Dims shape;
  Dims strides;        // in elements
  int64_t offset = 0;  // in elements
  DType dtype = DType::Float32;

  // Autodiff metadata.
  bool requires_grad = false;
  std::shared_ptr<autodiff::Node> grad_fn;  // null for leaves
  int output_nr = 0;                        // which output of grad_fn this is
  std::shared_ptr<TensorImpl> grad;
  std::weak_ptr<autodiff::Node> grad_accumulator;  // leaves only, made on demand
  bool is_view = false;                            // shares storage with another tensor
  // Which graph value this tensor stands for while a graph is traced (trace serial << 32 |
  // value id; -1 otherwise). detach() keeps it, so detached copies trace as the original.
  int64_t trace_key = -1;
};

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  // Allocates an uninitialized contiguous tensor.
  static Tensor empty(const Shape& shape, DType dtype = DType::Float32);
  // A tensor with shape and dtype but no storage: what graph tracing computes with.
  static Tensor symbolic(const Shape& shape, DType dtype);
  bool is_symbolic() const { return impl_->storage == nullptr; }

  bool defined() const { return impl_ != nullptr; }
  TensorImpl* impl() const { return impl_.get(); }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }
  bool same(const Tensor& other) const { return impl_ == other.impl_; }

  DType dtype() const { return impl_->dtype; }
  const Shape& shape() const { return impl_->shape; }
  const Dims& strides() const { return impl_->strides; }
  int64_t offset() const { return impl_->offset; }
  int64_t dim() const { return static_cast<int64_t>(impl_->shape.size()); }
  int64_t size(int64_t axis) const;
  int64_t numel() const { return shape_numel(impl_->shape); }
  size_t element_size() const { return dtype_size(impl_->dtype); }
  bool is_contiguous() const;
  const std::shared_ptr<Storage>& storage() const { return impl_->storage; }

  // Raw data of the first element (offset applied).
  void* data_ptr() const {
    if (impl_->storage == nullptr) [[unlikely]]
      symbolic_data_error();
    return static_cast<char*>(impl_->storage->data()) + impl_->offset * element_size();
  }
  template <typename T>
  T* data() const {
    check(dtype_of<T>() == dtype(), "data", "tensor has dtype ", dtype_name(dtype()),
          ", asked for ", dtype_name(dtype_of<T>()));
    return static_cast<T*>(data_ptr());
  }
  // The single value of a one-element tensor, converted to T.
  template <typename T>
  T item() const;
  // Copies all elements in logical (row-major) order, converted to T.
  template <typename T>
  std::vector<T> to_vector() const;

  // --- autodiff ---
  bool requires_grad() const { return impl_->requires_grad; }
  Tensor& set_requires_grad(bool value = true);
  Tensor grad() const { return Tensor(impl_->grad); }
  void set_grad(const Tensor& g) { impl_->grad = g.impl_; }
  void zero_grad() { impl_->grad.reset(); }
  bool is_leaf() const { return impl_->grad_fn == nullptr; }
  const std::shared_ptr<autodiff::Node>& grad_fn() const { return impl_->grad_fn; }
  // Backpropagates from this tensor (a scalar, or with `grad_output` of its shape).
  void backward(const Tensor& grad_output = Tensor(), bool retain_graph = false,
                bool create_graph = false) const;
  // A tensor sharing storage that autodiff does not track.
  Tensor detach() const;

  // --- views (share storage) ---
  Tensor reshape(const Shape& shape) const;  // a view when strides allow, else a copy
  Tensor view(const Shape& shape) const;     // always a view; error when strides forbid
  Tensor flatten(int64_t start_axis = 0, int64_t end_axis = -1) const;
  Tensor transpose(int64_t a, int64_t b) const;
  Tensor t() const;  // transpose of a 2-d tensor
  Tensor permute(const Dims& order) const;
  Tensor slice(int64_t axis, int64_t start, int64_t stop, int64_t step = 1) const;
  Tensor narrow(int64_t axis, int64_t start, int64_t length) const;
  Tensor select(int64_t axis, int64_t index) const;
  Tensor expand(const Shape& shape) const;
  Tensor squeeze() const;
  Tensor squeeze(int64_t axis) const;
  Tensor unsqueeze(int64_t axis) const;
  Tensor diagonal(int64_t offset = 0, int64_t axis1 = 0, int64_t axis2 = 1) const;

  // --- copies ---
  Tensor contiguous() const;
  Tensor clone() const;
  Tensor to(DType dtype) const;

  // --- in-place (no autodiff through leaves that require grad) ---
  Tensor& fill_(const Scalar& value);
  Tensor& copy_(const Tensor& src);  // broadcasts and casts src into this
  Tensor& add_(const Tensor& other, const Scalar& alpha = 1);
  Tensor& mul_(const Scalar& factor);
  Tensor& zero_() { return fill_(0); }

  std::string to_string() const;

 private:
  [[noreturn]] static void symbolic_data_error();
  std::shared_ptr<TensorImpl> impl_;
};

std::ostream& operator<<(std::ostream& os, const Tensor& t);

// Makes a tensor that views `base`'s storage with new geometry (no autodiff).
Tensor make_view(const Tensor& base, const Shape& shape, const Dims& strides, int64_t offset);

// Printing options, like numpy.set_printoptions.
struct PrintOptions {
  int precision = 4;
  int64_t threshold = 1000;  // summarize tensors with more elements than this
  int64_t edgeitems = 3;     // items shown at each end of a summarized dimension
};
void set_print_options(const PrintOptions& options);
const PrintOptions& print_options();

}  // namespace tessera
