// Tensor basics: allocation, metadata queries, element access, in-place writes.
// The view and copy methods forward to the differentiable ops in ops/shape.
#include "tessera/core/tensor.h"

#include "../kernels/cpu/copy.h"
#include "tessera/autodiff/autodiff.h"
#include "tessera/ops/creation.h"
#include "tessera/ops/elementwise.h"
#include "tessera/ops/op.h"
#include "tessera/ops/shape.h"

namespace tessera {

Tensor Tensor::empty(const Shape& shape, DType dtype) {
  auto impl = std::make_shared<TensorImpl>();
  for (int64_t d : shape) check(d >= 0, "empty", "negative dimension in shape ", shape);
  impl->strides = contiguous_strides(shape);  // first: it checks that the size fits
  int64_t bytes = 0;
  check(
      !__builtin_mul_overflow(shape_numel(shape), static_cast<int64_t>(dtype_size(dtype)), &bytes),
      "empty", "shape ", shape, " has more bytes than memory can address");
  impl->storage = std::make_shared<Storage>(bytes);
  impl->shape = shape;
  impl->dtype = dtype;
  return Tensor(std::move(impl));
}

Tensor Tensor::symbolic(const Shape& shape, DType dtype) {
  auto impl = std::make_shared<TensorImpl>();
  impl->shape = shape;
  impl->strides = contiguous_strides(shape);
  impl->dtype = dtype;
  return Tensor(std::move(impl));
}

void Tensor::symbolic_data_error() {
  fail("",
       "this tensor is symbolic (it is being traced by tessera::function): its values do "
       "not exist until the graph runs, so it cannot be read, printed or converted to a "
       "number; use ops on it instead");
}

namespace {
// Views of user-given sizes (expand, tile) must stay countable: numel() must not overflow.
void check_countable(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) {
    if (__builtin_mul_overflow(n, d, &n))
      fail("view", "shape ", shape, " has more elements than a tensor can index");
  }
}
}  // namespace

Tensor make_view(const Tensor& base, const Shape& shape, const Dims& strides, int64_t offset) {
  check_countable(shape);  // views of user-given sizes (expand, tile) must stay countable
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = base.storage();
  impl->shape = shape;
  impl->strides = strides;
  impl->offset = offset;
  impl->dtype = base.dtype();
  impl->is_view = true;
  return Tensor(std::move(impl));
}

int64_t Tensor::size(int64_t axis) const {
  check_defined(*this, "size", "tensor");
  check(dim() > 0, "size", "a 0-d tensor has no axis ", axis);
  return impl_->shape[normalize_axis(axis, dim(), "size")];
}

bool Tensor::is_contiguous() const {
  int64_t expected = 1;
  for (size_t i = impl_->shape.size(); i-- > 0;) {
    if (impl_->shape[i] == 1) continue;
    if (impl_->strides[i] != expected) return false;
    expected *= impl_->shape[i];
  }
  return true;
}

template <typename T>
T Tensor::item() const {
  check_defined(*this, "item", "tensor");
  check(numel() == 1, "item", "only one-element tensors convert to a value; shape is ", shape());
  return visit_dtype(dtype(), [&](auto tag) {
    using S = decltype(tag);
    return cpu::convert<T>(*static_cast<const S*>(data_ptr()));
  });
}

template <typename T>
std::vector<T> Tensor::to_vector() const {
  check_defined(*this, "to_vector", "tensor");
  Tensor c = Tensor::empty(shape(), dtype_of<T>());
  cpu::copy_into(*this, c);
  const T* p = c.data<T>();
  return std::vector<T>(p, p + c.numel());
}

#define TESSERA_INSTANTIATE(T)        \
  template T Tensor::item<T>() const; \
  template std::vector<T> Tensor::to_vector<T>() const;
TESSERA_INSTANTIATE(bool)
TESSERA_INSTANTIATE(uint8_t)
TESSERA_INSTANTIATE(int8_t)
TESSERA_INSTANTIATE(int32_t)
TESSERA_INSTANTIATE(int64_t)
TESSERA_INSTANTIATE(float16)
TESSERA_INSTANTIATE(bfloat16)
TESSERA_INSTANTIATE(float)
TESSERA_INSTANTIATE(double)
#undef TESSERA_INSTANTIATE

Tensor& Tensor::set_requires_grad(bool value) {
  check_defined(*this, "requires_grad", "tensor");
  check(!value || is_floating(dtype()), "requires_grad",
        "only floating-point tensors can require gradients, got ", dtype_name(dtype()));
  check(is_leaf() || value, "requires_grad",
        "cannot turn off requires_grad of a non-leaf tensor; use detach()");
  impl_->requires_grad = value;
  return *this;
}

Tensor Tensor::detach() const {
  check_defined(*this, "detach", "tensor");
  Tensor out = make_view(*this, shape(), strides(), offset());
  out.impl()->is_view = impl_->is_view;
  out.impl()->trace_key = impl_->trace_key;
  return out;
}

Tensor Tensor::reshape(const Shape& s) const { return tessera::reshape(*this, s); }
Tensor Tensor::view(const Shape& s) const { return tessera::view(*this, s); }
Tensor Tensor::flatten(int64_t a, int64_t b) const { return tessera::flatten(*this, a, b); }
Tensor Tensor::transpose(int64_t a, int64_t b) const { return tessera::transpose(*this, a, b); }
Tensor Tensor::t() const {
  check(dim() == 2, "t", "expects a 2-d tensor, got shape ", shape());
  return tessera::transpose(*this, 0, 1);
}
Tensor Tensor::permute(const Dims& order) const { return tessera::permute(*this, order); }
Tensor Tensor::slice(int64_t axis, int64_t start, int64_t stop, int64_t step) const {
  return tessera::slice(*this, axis, start, stop, step);
}
Tensor Tensor::narrow(int64_t axis, int64_t start, int64_t length) const {
  return tessera::narrow(*this, axis, start, length);
}
Tensor Tensor::select(int64_t axis, int64_t index) const {
  return tessera::select(*this, axis, index);
}
Tensor Tensor::expand(const Shape& s) const { return tessera::expand(*this, s); }
Tensor Tensor::squeeze() const { return tessera::squeeze(*this); }
Tensor Tensor::squeeze(int64_t axis) const { return tessera::squeeze(*this, axis); }
Tensor Tensor::unsqueeze(int64_t axis) const { return tessera::unsqueeze(*this, axis); }
Tensor Tensor::diagonal(int64_t off, int64_t a1, int64_t a2) const {
  return tessera::diagonal(*this, off, a1, a2);
}
Tensor Tensor::contiguous() const { return tessera::contiguous(*this); }
Tensor Tensor::clone() const { return tessera::clone(*this); }
Tensor Tensor::to(DType t) const {
  check_defined(*this, "to", "tensor");
  return t == dtype() ? *this : cast(*this, t);
}

// In-place writes are invisible to autodiff, so they are refused where a gradient is tracked.
// A destination whose elements share memory (an expanded view) is refused always: its
// result would depend on the order of the writes, and threads would race on them.
static void check_inplace(const Tensor& self, const char* op, const Tensor* src = nullptr) {
  check_defined(self, op, "destination");
  for (int64_t d = 0; d < self.dim(); ++d) {
    check(self.strides()[d] != 0 || self.shape()[d] <= 1, op,
          "more than one element of the destination (shape ", self.shape(), ", strides ",
          self.strides(), ") refers to one memory location; write into a contiguous() copy");
  }
  if (!grad_enabled()) return;
  check(!self.requires_grad(), op,
        "in-place op on a tensor that requires grad would break its gradient; run it under "
        "NoGradGuard or use the out-of-place op");
  check(src == nullptr || !src->requires_grad(), op,
        "the source requires grad, but in-place ops are not recorded by autodiff; use the "
        "out-of-place op");
}

Tensor& Tensor::fill_(const Scalar& value) {
  check_inplace(*this, "fill_");
  Tensor v = scalar_tensor(value, dtype());
  cpu::copy_into(v, *this);
  storage()->bump_version();
  return *this;
}

Tensor& Tensor::copy_(const Tensor& src) {
  check_inplace(*this, "copy_", &src);
  check(broadcast_shapes(src.shape(), shape(), "copy_") == shape(), "copy_", "source shape ",
        src.shape(), " does not broadcast to destination shape ", shape());
  // A source overlapping the destination is copied out first.
  Tensor from = src.storage() == storage() ? src.clone() : src;
  cpu::copy_into(from, *this);
  storage()->bump_version();
  return *this;
}

Tensor& Tensor::add_(const Tensor& other, const Scalar& alpha) {
  check_inplace(*this, "add_", &other);
  Tensor sum = alpha.to_double() == 1.0 ? add(*this, other) : add(*this, mul(other, alpha));
  check(sum.shape() == shape(), "add_", "result shape ", sum.shape(),
        " differs from the destination shape ", shape());
  cpu::copy_into(sum, *this);
  storage()->bump_version();
  return *this;
}

Tensor& Tensor::mul_(const Scalar& factor) {
  check_inplace(*this, "mul_");
  cpu::copy_into(mul(*this, factor), *this);
  storage()->bump_version();
  return *this;
}

}  // namespace tessera
