// Masks and index-producing ops. Primitives: nonzero and one_hot (integer results,
// not differentiable). Composites: masked_fill is a where, boolean_mask and
// masked_select are nonzero + index_select, so their gradients are where's and
// index_select's (an index-add back into zeros).
#include <cstring>
#include <limits>

#include "../kernels/cpu/copy.h"
#include "index_common.h"
#include "samples.h"
#include "tessera/ops/creation.h"
#include "tessera/ops/elementwise.h"
#include "tessera/ops/index.h"
#include "tessera/ops/op.h"
#include "tessera/ops/shape.h"

namespace tessera {
namespace index_detail {
namespace {

// Calls fn(linear_position) for each nonzero element of x, in row-major order.
template <typename F>
void for_each_nonzero(const Tensor& x, F&& fn) {
  if (x.numel() == 0) return;
  cpu::Geometry<1> g = cpu::make_geometry<1>(x.shape(), {x.strides()});
  visit_dtype(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    int64_t pos = 0;
    cpu::for_each_run<1>(
        g, {static_cast<char*>(x.data_ptr())}, {static_cast<int64_t>(sizeof(T))}, 0, g.numel,
        [&](std::array<char*, 1> p, int64_t n, const std::array<int64_t, 1>& st) {
          for (int64_t i = 0; i < n; ++i, ++pos) {
            if (cpu::convert<bool>(*reinterpret_cast<const T*>(p[0] + i * st[0]))) {
              fn(pos);
            }
          }
        });
  });
}

// ------------------------------------------------------------------ nonzero

MetaList infer_nonzero(const OpCall& c) {
  int64_t count = 0;
  for_each_nonzero(c.in(0), [&](int64_t) { ++count; });
  return {{{count, c.in(0).dim()}, DType::Int64}};
}

void cpu_nonzero(const OpCall& c, std::span<Tensor> outs) {
  const Tensor& x = c.in(0);
  int64_t* out = outs[0].data<int64_t>();
  int64_t nd = x.dim();
  const Shape& shape = x.shape();
  int64_t row = 0, rows = outs[0].shape()[0];
  for_each_nonzero(x, [&](int64_t pos) {
    if (row >= rows) return;  // the input changed since inference; never write past the end
    for (int64_t d = nd - 1; d >= 0; --d) {
      out[row * nd + d] = pos % shape[d];
      pos /= shape[d];
    }
    ++row;
  });
}

constexpr OpDef kNonzero{"nonzero", infer_nonzero, cpu_nonzero, nullptr, nullptr, kSaveNothing};

// ------------------------------------------------------------------ one_hot

MetaList infer_one_hot(const OpCall& c) {
  const Tensor& indices = c.in(0);
  check_index_dtype(indices, "one_hot", "indices");
  int64_t classes = c.attrs.i("num_classes");
  check(classes >= 0, "one_hot", "num_classes must be non-negative, got ", classes);
  Shape shape = indices.shape();
  shape.push_back(classes);
  return {{shape, DType::Int64}};
}

void cpu_one_hot(const OpCall& c, std::span<Tensor> outs) {
  const Tensor& indices = c.in(0);
  int64_t classes = c.attrs.i("num_classes");
  for_each_index(indices, [&](int64_t v) {
    check(v >= 0 && v < classes, "one_hot", "index ", v, " is out of range for the class axis ",
          "of size ", classes, " (", index_range_text(classes, false), ")");
  });
  Tensor out = outs[0];
  if (out.numel() == 0) return;
  std::memset(out.data_ptr(), 0, out.numel() * sizeof(int64_t));
  int64_t* p = out.data<int64_t>();
  int64_t row = 0;
  for_each_index(indices, [&](int64_t v) { p[row++ * classes + v] = 1; });
}

// Indices of every integer dtype (swept), more classes than used, an empty batch.
std::vector<OpSample> one_hot_samples() {
  return {{{samples::values({2, 3}, 0, 2, 1)}, {{"num_classes", int64_t{5}}}},
          {{samples::values({4}, 0, 2, 2)}, {{"num_classes", int64_t{4}}}},
          {{samples::values({0}, 0, 2, 3)}, {{"num_classes", int64_t{3}}}}};
}

constexpr OpDef kOneHot = [] {
  OpDef def{"one_hot", infer_one_hot, cpu_one_hot, nullptr, nullptr, kSaveNothing};
  def.samples = one_hot_samples;
  return def;
}();

const OpRegistrar r1(kNonzero), r2(kOneHot);

void check_mask_dtype(const Tensor& mask, const char* op) {
  check(mask.dtype() == DType::Bool, op, "mask must be a bool tensor, got ",
        dtype_name(mask.dtype()));
}

}  // namespace
}  // namespace index_detail

using namespace index_detail;

Tensor nonzero(const Tensor& x) { return run_op1(kNonzero, {x}); }

Tensor one_hot(const Tensor& indices, int64_t num_classes) {
  check_defined(indices, "one_hot", "indices");
  check_index_dtype(indices, "one_hot", "indices");
  if (num_classes == -1) {
    check(indices.numel() > 0, "one_hot",
          "cannot infer num_classes from an empty tensor; pass num_classes");
    int64_t max = 0;
    for_each_index(indices, [&](int64_t v) { max = std::max(max, v); });
    check(max < std::numeric_limits<int64_t>::max(), "one_hot", "index ", max,
          " leaves no num_classes to infer");
    num_classes = max + 1;
  }
  return run_op1(kOneHot, {indices}, {{"num_classes", num_classes}});
}

static void check_fill_mask(const Tensor& x, const Tensor& mask) {
  check_defined(x, "masked_fill", "x");
  check_defined(mask, "masked_fill", "mask");
  check_mask_dtype(mask, "masked_fill");
  bool fits = mask.dim() <= x.dim();
  for (int64_t i = 1; fits && i <= mask.dim(); ++i) {
    int64_t m = mask.shape()[mask.dim() - i], s = x.shape()[x.dim() - i];
    fits = m == s || m == 1;
  }
  check(fits, "masked_fill", "mask shape ", mask.shape(), " does not broadcast to the input shape ",
        x.shape());
}

Tensor masked_fill(const Tensor& x, const Tensor& mask, const Scalar& value) {
  check_fill_mask(x, mask);
  return where(mask, scalar_tensor(value, x.dtype()), x);
}

Tensor masked_fill(const Tensor& x, const Tensor& mask, const Tensor& value) {
  check_fill_mask(x, mask);
  check_defined(value, "masked_fill", "value");
  check(value.dim() == 0, "masked_fill", "value must be a 0-d tensor, got shape ", value.shape());
  return where(mask, value.to(x.dtype()), x);
}

Tensor boolean_mask(const Tensor& x, const Tensor& mask) {
  check_defined(x, "boolean_mask", "x");
  check_defined(mask, "boolean_mask", "mask");
  check_mask_dtype(mask, "boolean_mask");
  bool fits = mask.dim() <= x.dim();
  for (int64_t d = 0; fits && d < mask.dim(); ++d) fits = mask.shape()[d] == x.shape()[d];
  check(fits, "boolean_mask", "mask shape ", mask.shape(),
        " does not match the leading dimensions of the input shape ", x.shape());
  Tensor positions = reshape(nonzero(reshape(mask.detach(), {-1})), {-1});
  Shape rows{mask.numel()};
  for (int64_t d = mask.dim(); d < x.dim(); ++d) rows.push_back(x.shape()[d]);
  return index_select(reshape(x, rows), 0, positions);
}

Tensor masked_select(const Tensor& x, const Tensor& mask) {
  check_defined(x, "masked_select", "x");
  check_defined(mask, "masked_select", "mask");
  check_mask_dtype(mask, "masked_select");
  Shape shape = broadcast_shapes(x.shape(), mask.shape(), "masked_select");
  return boolean_mask(expand(x, shape), expand(mask.detach(), shape));
}

}  // namespace tessera
