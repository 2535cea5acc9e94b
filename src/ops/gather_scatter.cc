// Gather and scatter along an axis, index_select, and the composites take and
// take_along_axis. Primitives: gather, scatter, scatter_add, index_select and their
// backward ops gather_backward (scatter-add into zeros) and index_select_backward
// (index-add into zeros), whose own gradients are gather and index_select, so every
// gradient here is differentiable again. Kernels walk rows along the axis; rows write
// disjoint outputs, so they run in parallel and scatters stay deterministic.
#include <cstring>

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

// Size of x along a normalized axis, a 0-d tensor counting as one element.
int64_t axis_size(const Shape& shape, int64_t axis) { return shape.empty() ? 1 : shape[axis]; }

// A contiguous copy of t (no autodiff), or t itself when already contiguous.
Tensor dense(const Tensor& t) {
  if (t.is_contiguous()) return t;
  Tensor c = Tensor::empty(t.shape(), t.dtype());
  cpu::copy_into(t, c);
  return c;
}

void zero_fill(const Tensor& out) {
  if (out.numel() > 0) std::memset(out.data_ptr(), 0, out.numel() * out.element_size());
}

template <typename T>
T add_values(T a, T b) {
  if constexpr (std::is_same_v<T, bool>) {
    return a || b;
  } else if constexpr (std::is_same_v<T, float16> || std::is_same_v<T, bfloat16>) {
    return T(static_cast<float>(a) + static_cast<float>(b));
  } else {
    return static_cast<T>(a + b);
  }
}

// ------------------------------------------------------------------ shape checks

// index has x's rank and fits inside `bound` (x, or src for scatter) outside the axis.
int64_t check_gather_shapes(const Tensor& x, const Tensor& index, int64_t axis_attr,
                            const char* op) {
  check_index_dtype(index, op);
  check(index.dim() == x.dim(), op, "index must have as many dimensions as the input: index ",
        "shape ", index.shape(), ", input shape ", x.shape());
  int64_t axis = normalize_axis(axis_attr, x.dim(), op);
  for (int64_t d = 0; d < x.dim(); ++d) {
    check(d == axis || index.shape()[d] <= x.shape()[d], op, "index shape ", index.shape(),
          " is larger than the input shape ", x.shape(), " in dimension ", d, " (only axis ", axis,
          " may be larger)");
  }
  return axis;
}

int64_t check_scatter_shapes(const Tensor& x, const Tensor& index, const Tensor& src,
                             int64_t axis_attr, const char* op) {
  int64_t axis = check_gather_shapes(x, index, axis_attr, op);
  check(src.dtype() == x.dtype(), op, "src has dtype ", dtype_name(src.dtype()),
        ", expected the input's dtype ", dtype_name(x.dtype()));
  check(src.dim() == x.dim(), op, "src must have as many dimensions as the input: src shape ",
        src.shape(), ", input shape ", x.shape());
  for (int64_t d = 0; d < x.dim(); ++d) {
    check(index.shape()[d] <= src.shape()[d], op, "index shape ", index.shape(),
          " is larger than the src shape ", src.shape(), " in dimension ", d);
  }
  return axis;
}

// ------------------------------------------------------------------ kernels

// out[row, j] = x[row, index[row, j]] over index's shape.
void gather_kernel(const Tensor& x, int64_t axis, const Tensor& index, const Tensor& out,
                   const char* op) {
  if (out.numel() == 0) return;
  check_index_range(index, axis_size(x.shape(), axis), axis, op, false);
  AxisRows<3> r =
      make_axis_rows<3>(index.shape(), axis, {out.strides(), x.strides(), index.strides()});
  visit_dtype(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    visit_index(index.dtype(), [&](auto itag) {
      using I = decltype(itag);
      T* po = static_cast<T*>(out.data_ptr());
      const T* px = static_cast<const T*>(x.data_ptr());
      const I* pi = static_cast<const I*>(index.data_ptr());
      const auto& s = r.axis_strides;
      parallel_rows<3>(r, [&](const std::array<int64_t, 3>& off, int64_t) {
        for (int64_t j = 0; j < r.length; ++j) {
          int64_t v = static_cast<int64_t>(pi[off[2] + j * s[2]]);
          po[off[0] + j * s[0]] = px[off[1] + v * s[1]];
        }
      });
    });
  });
}

// out[row, index[row, j]] = (or +=) src[row, j] over index's shape; out already holds the base.
template <bool kAdd>
void scatter_kernel(const Tensor& out, int64_t axis, const Tensor& index, const Tensor& src,
                    const char* op) {
  if (index.numel() == 0) return;
  check_index_range(index, axis_size(out.shape(), axis), axis, op, false);
  AxisRows<3> r =
      make_axis_rows<3>(index.shape(), axis, {out.strides(), src.strides(), index.strides()});
  visit_dtype(out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    visit_index(index.dtype(), [&](auto itag) {
      using I = decltype(itag);
      T* po = static_cast<T*>(out.data_ptr());
      const T* ps = static_cast<const T*>(src.data_ptr());
      const I* pi = static_cast<const I*>(index.data_ptr());
      const auto& s = r.axis_strides;
      parallel_rows<3>(r, [&](const std::array<int64_t, 3>& off, int64_t) {
        for (int64_t j = 0; j < r.length; ++j) {
          int64_t v = static_cast<int64_t>(pi[off[2] + j * s[2]]);
          T& dst = po[off[0] + v * s[0]];
          T value = ps[off[1] + j * s[1]];
          if constexpr (kAdd) {
            dst = add_values(dst, value);
          } else {
            dst = value;
          }
        }
      });
    });
  });
}

// Reads an int32/int64 index tensor into a vector.
std::vector<int64_t> read_indices(const Tensor& index) {
  std::vector<int64_t> out;
  out.reserve(index.numel());
  for_each_index(index, [&](int64_t v) { out.push_back(v); });
  return out;
}

// x viewed as [outer, n, inner] around the axis.
struct Split3 {
  int64_t outer = 1, n = 1, inner = 1;
};
Split3 split_at(const Shape& shape, int64_t axis) {
  Split3 s;
  for (int64_t d = 0; d < static_cast<int64_t>(shape.size()); ++d) {
    if (d < axis) s.outer *= shape[d];
    if (d == axis) s.n = shape[d];
    if (d > axis) s.inner *= shape[d];
  }
  return s;
}

// out[o, j, :] = x[o, index[j], :]
void index_select_kernel(const Tensor& x, int64_t axis, const Tensor& index, const Tensor& out) {
  if (out.numel() == 0) return;
  Split3 s = split_at(x.shape(), axis);
  check_index_range(index, s.n, axis, "index_select", false);
  std::vector<int64_t> idx = read_indices(index);
  Tensor xc = dense(x);
  const char* px = static_cast<const char*>(xc.data_ptr());
  char* po = static_cast<char*>(out.data_ptr());
  int64_t k = static_cast<int64_t>(idx.size());
  int64_t bytes = s.inner * static_cast<int64_t>(x.element_size());
  parallel_for(0, s.outer * k, std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(s.inner, 1)),
               [&](int64_t lo, int64_t hi) {
                 for (int64_t t = lo; t < hi; ++t) {
                   int64_t o = t / k, j = t % k;
                   std::memcpy(po + t * bytes, px + (o * s.n + idx[j]) * bytes, bytes);
                 }
               });
}

// out (zeros of x's shape)[o, index[j], :] += g[o, j, :]
void index_add_kernel(const Tensor& g, int64_t axis, const Tensor& index, const Tensor& out) {
  zero_fill(out);
  if (g.numel() == 0) return;
  Split3 s = split_at(out.shape(), axis);
  check_index_range(index, s.n, axis, "index_select_backward", false);
  std::vector<int64_t> idx = read_indices(index);
  Tensor gc = dense(g);
  int64_t k = static_cast<int64_t>(idx.size());
  visit_dtype(out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* pg = static_cast<const T*>(gc.data_ptr());
    T* po = static_cast<T*>(out.data_ptr());
    // Parallel over outer and inner positions; each walks the index in order.
    int64_t cols = s.outer * s.inner;
    parallel_for(0, cols, std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(k, 1)),
                 [&](int64_t lo, int64_t hi) {
                   for (int64_t c = lo; c < hi; ++c) {
                     int64_t o = c / s.inner, i = c % s.inner;
                     for (int64_t j = 0; j < k; ++j) {
                       T& dst = po[(o * s.n + idx[j]) * s.inner + i];
                       dst = add_values(dst, pg[(o * k + j) * s.inner + i]);
                     }
                   }
                 });
  });
}

// ------------------------------------------------------------------ op definitions

Attrs axis_attrs(int64_t axis) { return {{"axis", axis}}; }

// Samples for the registry walk: index tensors are int64 and not swept.
Tensor sample_index(const std::vector<int64_t>& values, const Shape& shape) {
  return from_vector(values, shape);
}

// Along the last and the first axis (index sizes below the input's in other axes), empty.
std::vector<OpSample> gather_samples() {
  return {{{samples::values({3, 5}, -2, 2, 1),
            sample_index({4, 0, 2, 2, 1, 3, 3, 0, 0, 4, 1, 1}, {3, 4})},
           axis_attrs(1),
           1u},
          {{samples::values({4, 3, 2}, -2, 2, 2), sample_index({3, 0, 1, 2, 2, 1}, {1, 3, 2})},
           axis_attrs(0),
           1u},
          {{samples::values({3, 5}, -2, 2, 3), sample_index({}, {3, 0})}, axis_attrs(-1), 1u}};
}

// Each row's indices distinct (scatter: which duplicate wins is unspecified), and with
// repeats for scatter_add, which sums them.
template <bool kAdd>
std::vector<OpSample> scatter_samples() {
  const std::vector<int64_t> index = kAdd
                                         ? std::vector<int64_t>{4, 0, 4, 1, 2, 2, 2, 3, 0, 0, 1, 1}
                                         : std::vector<int64_t>{4, 0, 2, 1, 2, 3, 0, 4, 1, 0, 3, 2};
  return {{{samples::values({3, 5}, -2, 2, 1), sample_index(index, {3, 4}),
            samples::values({3, 4}, -2, 2, 2)},
           axis_attrs(1),
           0b101u},
          {{samples::values({4, 2}, -2, 2, 3), sample_index({3, 0}, {1, 2}),
            samples::values({1, 2}, -2, 2, 4)},
           axis_attrs(0),
           0b101u}};
}

// Rows picked along each axis, repeated, none, from an empty input.
std::vector<OpSample> index_select_samples() {
  return {
      {{samples::values({5, 37}, -2, 2, 1), sample_index({4, 0, 2, 2}, {4})}, axis_attrs(0), 1u},
      {{samples::values({3, 4, 5}, -2, 2, 2), sample_index({1, 1, 0, 4, 3, 2}, {6})},
       axis_attrs(-1),
       1u},
      {{samples::values({3, 4}, -2, 2, 3), sample_index({}, {0})}, axis_attrs(1), 1u},
      {{samples::values({3, 0}, -2, 2, 4), sample_index({2, 0}, {2})}, axis_attrs(0), 1u}};
}

Attrs backward_attrs(int64_t axis, const Shape& shape) {
  return {{"axis", axis}, {"input_shape", shape.vec()}};
}

// gather(x, index)
MetaList infer_gather(const OpCall& c) {
  check_gather_shapes(c.in(0), c.in(1), c.attrs.i("axis"), "gather");
  return {{c.in(1).shape(), c.in(0).dtype()}};
}
void cpu_gather(const OpCall& c, std::span<Tensor> outs) {
  int64_t axis = normalize_axis(c.attrs.i("axis"), c.in(0).dim(), "gather");
  gather_kernel(c.in(0), axis, c.in(1), outs[0], "gather");
}
TensorList grad_gather(const GradCall& g) {
  if (!g.needs(0)) return {Tensor(), Tensor()};
  int64_t axis = normalize_axis(g.attrs.i("axis"), g.in_shape(0).size(), "gather");
  return {gather_backward(g.gout(), axis, g.in(1), g.in_shape(0)), Tensor()};
}
constexpr OpDef kGather = samples::with(
    {"gather", infer_gather, cpu_gather, nullptr, grad_gather, kSaveInputs}, gather_samples);

// gather_backward(grad, index): zeros of input_shape, grad added at the gathered positions.
MetaList infer_gather_backward(const OpCall& c) {
  const Tensor &grad = c.in(0), &index = c.in(1);
  Shape shape(c.attrs.ints("input_shape"));
  check_index_dtype(index, "gather_backward");
  check(grad.shape() == index.shape(), "gather_backward", "gradient shape ", grad.shape(),
        " differs from the index shape ", index.shape());
  check(index.dim() == static_cast<int64_t>(shape.size()), "gather_backward", "index shape ",
        index.shape(), " does not have the rank of the input shape ", shape);
  int64_t axis = normalize_axis(c.attrs.i("axis"), index.dim(), "gather_backward");
  for (int64_t d = 0; d < index.dim(); ++d) {
    check(d == axis || index.shape()[d] <= shape[d], "gather_backward", "index shape ",
          index.shape(), " is larger than the input shape ", shape, " in dimension ", d);
  }
  return {{shape, grad.dtype()}};
}
void cpu_gather_backward(const OpCall& c, std::span<Tensor> outs) {
  int64_t axis = normalize_axis(c.attrs.i("axis"), c.in(1).dim(), "gather_backward");
  zero_fill(outs[0]);
  scatter_kernel<true>(outs[0], axis, c.in(1), c.in(0), "gather_backward");
}
TensorList grad_gather_backward(const GradCall& g) {
  if (!g.needs(0)) return {Tensor(), Tensor()};
  return {gather(g.gout(), g.attrs.i("axis"), g.in(1)), Tensor()};
}
constexpr OpDef kGatherBackward{"gather_backward", infer_gather_backward, cpu_gather_backward,
                                nullptr,           grad_gather_backward,  kSaveInputs};

// scatter(x, index, src) and scatter_add(x, index, src); src has index's shape here (the
// public functions narrow a larger src first, so its gradient is padded by narrow's).
template <bool kAdd>
MetaList infer_scatter(const OpCall& c) {
  const char* op = kAdd ? "scatter_add" : "scatter";
  check_scatter_shapes(c.in(0), c.in(1), c.in(2), c.attrs.i("axis"), op);
  check(c.in(2).shape() == c.in(1).shape(), op, "src shape ", c.in(2).shape(),
        " must equal the index shape ", c.in(1).shape());
  return {{c.in(0).shape(), c.in(0).dtype()}};
}
template <bool kAdd>
void cpu_scatter(const OpCall& c, std::span<Tensor> outs) {
  const char* op = kAdd ? "scatter_add" : "scatter";
  int64_t axis = normalize_axis(c.attrs.i("axis"), c.in(0).dim(), op);
  // Validate before copying so that a bad index leaves nothing half-done.
  check_index_range(c.in(1), axis_size(c.in(0).shape(), axis), axis, op, false);
  cpu::copy_into(c.in(0), outs[0]);
  scatter_kernel<kAdd>(outs[0], axis, c.in(1), c.in(2), op);
}
template <bool kAdd>
TensorList grad_scatter(const GradCall& g) {
  int64_t axis = g.attrs.i("axis");
  const Tensor& index = g.in(1);
  TensorList out(3);
  if (g.needs(0)) {
    out[0] =
        kAdd ? g.gout() : scatter(g.gout(), axis, index, zeros(index.shape(), g.gout().dtype()));
  }
  if (g.needs(2)) out[2] = gather(g.gout(), axis, index);
  return out;
}
constexpr OpDef kScatter = samples::with({"scatter", infer_scatter<false>, cpu_scatter<false>,
                                          nullptr, grad_scatter<false>, kSaveInputs},
                                         scatter_samples<false>);
constexpr OpDef kScatterAdd = samples::with({"scatter_add", infer_scatter<true>, cpu_scatter<true>,
                                             nullptr, grad_scatter<true>, kSaveInputs},
                                            scatter_samples<true>);

// index_select(x, index)
int64_t check_index_select(const Tensor& x, const Tensor& index, int64_t axis_attr,
                           const char* op) {
  check(x.dim() > 0, op, "cannot index a 0-d tensor");
  check_index_dtype(index, op);
  check(index.dim() <= 1, op, "index must be 0-d or 1-d, got shape ", index.shape());
  return normalize_axis(axis_attr, x.dim(), op);
}
MetaList infer_index_select(const OpCall& c) {
  int64_t axis = check_index_select(c.in(0), c.in(1), c.attrs.i("axis"), "index_select");
  Shape shape = c.in(0).shape();
  shape[axis] = c.in(1).numel();
  return {{shape, c.in(0).dtype()}};
}
void cpu_index_select(const OpCall& c, std::span<Tensor> outs) {
  int64_t axis = normalize_axis(c.attrs.i("axis"), c.in(0).dim(), "index_select");
  index_select_kernel(c.in(0), axis, c.in(1), outs[0]);
}
TensorList grad_index_select(const GradCall& g);
constexpr OpDef kIndexSelect = samples::with(
    {"index_select", infer_index_select, cpu_index_select, nullptr, grad_index_select, kSaveInputs},
    index_select_samples);

// index_select_backward(grad, index): zeros of input_shape with grad's slices added at index.
MetaList infer_index_select_backward(const OpCall& c) {
  const Tensor &grad = c.in(0), &index = c.in(1);
  Shape shape(c.attrs.ints("input_shape"));
  int64_t axis = check_index_select(grad, index, c.attrs.i("axis"), "index_select_backward");
  Shape expected = shape;
  check(static_cast<int64_t>(shape.size()) == grad.dim(), "index_select_backward",
        "gradient shape ", grad.shape(), " does not have the rank of the input shape ", shape);
  expected[axis] = index.numel();
  check(grad.shape() == expected, "index_select_backward", "gradient shape ", grad.shape(),
        ", expected ", expected);
  return {{shape, grad.dtype()}};
}
void cpu_index_select_backward(const OpCall& c, std::span<Tensor> outs) {
  int64_t axis = normalize_axis(c.attrs.i("axis"), c.in(0).dim(), "index_select_backward");
  index_add_kernel(c.in(0), axis, c.in(1), outs[0]);
}
TensorList grad_index_select_backward(const GradCall& g) {
  if (!g.needs(0)) return {Tensor(), Tensor()};
  return {index_select(g.gout(), g.attrs.i("axis"), g.in(1)), Tensor()};
}
constexpr OpDef kIndexSelectBackward{"index_select_backward",    infer_index_select_backward,
                                     cpu_index_select_backward,  nullptr,
                                     grad_index_select_backward, kSaveInputs};

TensorList grad_index_select(const GradCall& g) {
  if (!g.needs(0)) return {Tensor(), Tensor()};
  int64_t axis = normalize_axis(g.attrs.i("axis"), g.in_shape(0).size(), "index_select");
  return {run_op1(kIndexSelectBackward, {g.gout(), g.in(1)}, backward_attrs(axis, g.in_shape(0))),
          Tensor()};
}

const OpRegistrar r1(kGather), r2(kGatherBackward), r3(kScatter), r4(kScatterAdd), r5(kIndexSelect),
    r6(kIndexSelectBackward);

// src narrowed to index's shape (a view whose gradient pads with zeros).
Tensor narrow_to(const Tensor& src, const Shape& shape) {
  Tensor out = src;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (out.shape()[d] != shape[d]) out = narrow(out, static_cast<int64_t>(d), 0, shape[d]);
  }
  return out;
}

}  // namespace

Tensor gather_backward(const Tensor& grad, int64_t axis, const Tensor& index,
                       const Shape& input_shape) {
  return run_op1(kGatherBackward, {grad, index}, backward_attrs(axis, input_shape));
}

}  // namespace index_detail

using namespace index_detail;

Tensor gather(const Tensor& x, int64_t axis, const Tensor& index) {
  return run_op1(kGather, {x, index}, axis_attrs(axis));
}

Tensor scatter(const Tensor& x, int64_t axis, const Tensor& index, const Tensor& src) {
  check_defined(x, "scatter", "x");
  check_defined(src, "scatter", "src");
  check_defined(index, "scatter", "index");
  check_scatter_shapes(x, index, src, axis, "scatter");
  return run_op1(kScatter, {x, index, narrow_to(src, index.shape())}, axis_attrs(axis));
}

Tensor scatter_add(const Tensor& x, int64_t axis, const Tensor& index, const Tensor& src) {
  check_defined(x, "scatter_add", "x");
  check_defined(src, "scatter_add", "src");
  check_defined(index, "scatter_add", "index");
  check_scatter_shapes(x, index, src, axis, "scatter_add");
  return run_op1(kScatterAdd, {x, index, narrow_to(src, index.shape())}, axis_attrs(axis));
}

Tensor index_select(const Tensor& x, int64_t axis, const Tensor& index) {
  return run_op1(kIndexSelect, {x, index}, axis_attrs(axis));
}

Tensor take(const Tensor& x, const Tensor& indices, int64_t axis) {
  check_defined(x, "take", "x");
  check_defined(indices, "take", "indices");
  check(x.dim() > 0, "take", "cannot index a 0-d tensor");
  check_index_dtype(indices, "take", "indices");
  int64_t ax = normalize_axis(axis, x.dim(), "take");
  int64_t n = x.shape()[ax];
  Shape shape;
  for (int64_t d = 0; d < ax; ++d) shape.push_back(x.shape()[d]);
  for (int64_t d : indices.shape()) shape.push_back(d);
  for (int64_t d = ax + 1; d < x.dim(); ++d) shape.push_back(x.shape()[d]);
  Tensor idx = indices.detach();
  // Traced indices cannot be looked at: wrap negatives unconditionally (index_select checks).
  if (idx.is_symbolic() || check_index_range(idx, n, ax, "take", true)) {
    idx = where(lt(idx, wrap_scalar(0, idx)), add(idx, wrap_scalar(n, idx)), idx);
  }
  return reshape(index_select(x, ax, reshape(idx, {-1})), shape);
}

Tensor take_along_axis(const Tensor& x, const Tensor& indices, int64_t axis) {
  const char* op = "take_along_axis";
  check_defined(x, op, "x");
  check_defined(indices, op, "indices");
  check_index_dtype(indices, op, "indices");
  check(indices.dim() == x.dim(), op,
        "indices must have as many dimensions as the input: ", "indices shape ", indices.shape(),
        ", input shape ", x.shape());
  int64_t ax = normalize_axis(axis, x.dim(), op);
  Shape xs = x.shape(), is = indices.shape();
  for (int64_t d = 0; d < x.dim(); ++d) {
    if (d == ax) continue;
    check(xs[d] == is[d] || xs[d] == 1 || is[d] == 1, op, "input shape ", x.shape(),
          " and indices shape ", indices.shape(), " do not broadcast in dimension ", d);
    int64_t b = xs[d] == 1 ? is[d] : xs[d];
    xs[d] = b;
    is[d] = b;
  }
  // Early, for an error naming this op; traced indices are checked by the gather kernel.
  if (!indices.is_symbolic()) check_index_range(indices, axis_size(x.shape(), ax), ax, op, false);
  return gather(expand(x, xs), ax, expand(indices, is));
}

}  // namespace tessera
