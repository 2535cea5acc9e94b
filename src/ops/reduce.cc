// Reductions and scans. Primitives with kernels: sum, prod, amax, amin, argmax,
// argmin, cumsum, cumprod; mean, var, std, logsumexp, norm, all, any and
// count_nonzero are written with them. A reduction sees the input as rows of
// [kept, reduced] (or [reduced, kept] when the reduced axes lead), and sums over
// fixed blocks in a fixed order so any thread count gives the same bits.
#include "tessera/ops/reduce.h"

#include <cmath>
#include <limits>

#include "../kernels/cpu/copy.h"
#include "../kernels/cpu/simd.h"
#include "../kernels/cpu/wrapping.h"
#include "samples.h"
#include "tessera/core/parallel.h"
#include "tessera/ops/creation.h"
#include "tessera/ops/elementwise.h"
#include "tessera/ops/op.h"
#include "tessera/ops/shape.h"

namespace tessera {
namespace {

struct ReducePlan {
  std::vector<bool> reduced;  // per input axis
  Shape out_shape;            // with keepdim applied
  Shape keep_shape;           // reduced axes kept as size 1
  int64_t count = 1;          // elements reduced into each output
};

ReducePlan plan_reduce(const Tensor& x, const Axes& axes, bool keepdim, const char* op) {
  ReducePlan p;
  int64_t nd = x.dim();
  p.reduced.assign(nd, axes.empty());
  for (int64_t a : axes) {
    int64_t ax = normalize_axis(a, nd, op);
    if (nd == 0) continue;  // a 0-d tensor takes axis 0 or -1, as in PyTorch: nothing to mark
    check(!p.reduced[ax] || axes.empty(), op, "axis ", a, " appears twice");
    p.reduced[ax] = true;
  }
  for (int64_t d = 0; d < nd; ++d) {
    if (p.reduced[d]) {
      p.count *= x.shape()[d];
      p.keep_shape.push_back(1);
      if (keepdim) p.out_shape.push_back(1);
    } else {
      p.keep_shape.push_back(x.shape()[d]);
      p.out_shape.push_back(x.shape()[d]);
    }
  }
  return p;
}

Axes axes_attr(const Attrs& a) { return a.ints("axes"); }
bool keepdim_attr(const Attrs& a) { return a.b("keepdim"); }

// Lays x out as a contiguous [outer, inner] matrix with the reduced axes inner.
Tensor as_rows(const Tensor& x, const ReducePlan& p, int64_t* outer, int64_t* inner) {
  Dims order;
  for (size_t d = 0; d < p.reduced.size(); ++d) {
    if (!p.reduced[d]) order.push_back(static_cast<int64_t>(d));
  }
  for (size_t d = 0; d < p.reduced.size(); ++d) {
    if (p.reduced[d]) order.push_back(static_cast<int64_t>(d));
  }
  *inner = p.count;
  *outer = p.count == 0 ? shape_numel(p.keep_shape) : x.numel() / p.count;
  Tensor t = x.detach().permute(order);
  if (!t.is_contiguous()) {
    Tensor c = Tensor::empty(t.shape(), t.dtype());
    cpu::copy_into(t, c);
    t = c;
  }
  return t;
}

// True when the reduced axes are exactly the leading ones of a contiguous tensor.
bool leading_reduction(const Tensor& x, const ReducePlan& p) {
  if (!x.is_contiguous()) return false;
  size_t k = 0;
  while (k < p.reduced.size() && p.reduced[k]) ++k;
  for (size_t d = k; d < p.reduced.size(); ++d) {
    if (p.reduced[d]) return false;
  }
  return k > 0 && k < p.reduced.size();
}

enum class Reduction { kSum, kProd, kMax, kMin };

template <typename T>
using Acc = std::conditional_t<std::is_floating_point_v<typename ComputeType<T>::type>, double,
                               std::conditional_t<std::is_same_v<T, bool>, int64_t, int64_t>>;

template <Reduction R, typename A>
A identity() {
  if constexpr (R == Reduction::kSum) return A(0);
  if constexpr (R == Reduction::kProd) return A(1);
  if constexpr (R == Reduction::kMax) {
    return std::numeric_limits<A>::has_infinity ? -std::numeric_limits<A>::infinity()
                                                : std::numeric_limits<A>::lowest();
  }
  if constexpr (R == Reduction::kMin) {
    return std::numeric_limits<A>::has_infinity ? std::numeric_limits<A>::infinity()
                                                : std::numeric_limits<A>::max();
  }
}

template <Reduction R, typename A>
A combine(A a, A b) {
  if constexpr (R == Reduction::kSum) return cpu::wrapping_add(a, b);
  if constexpr (R == Reduction::kProd) return cpu::wrapping_mul(a, b);
  if constexpr (R == Reduction::kMax) return (a != a || a > b) ? a : b;  // NaN wins
  if constexpr (R == Reduction::kMin) return (a != a || a < b) ? a : b;
}

constexpr int64_t kBlock = 4096;

// Reduces n contiguous values. Sums go block by block so the order never varies.
template <Reduction R, typename T>
Acc<T> reduce_run(const T* p, int64_t n) {
  using A = Acc<T>;
  if constexpr (R == Reduction::kSum && std::is_same_v<T, float>) {
    return cpu::simd().sum_f32(p, n);
  }
  A acc = identity<R, A>();
  for (int64_t i = 0; i < n; ++i)
    acc = combine<R, A>(acc, static_cast<A>(static_cast<typename ComputeType<T>::type>(p[i])));
  return acc;
}

template <Reduction R, typename T, typename Out>
void reduce_kernel(const Tensor& x, const ReducePlan& plan, const Tensor& out) {
  using A = Acc<T>;
  Out* y = static_cast<Out*>(out.data_ptr());
  if (leading_reduction(x, plan)) {
    // Column reduction: out[j] = reduce_i x[i, j], rows walked in order for every j.
    int64_t cols = out.numel(), rows = plan.count;
    const T* px = static_cast<const T*>(x.data_ptr());
    parallel_for(0, cols, std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(rows, 1)),
                 [&](int64_t lo, int64_t hi) {
                   std::vector<A> acc(hi - lo, identity<R, A>());
                   if constexpr (R == Reduction::kSum && std::is_same_v<T, float> &&
                                 std::is_same_v<A, double>) {
                     cpu::simd().add_rows_to_f64(px + lo, rows, cols, hi - lo, acc.data());
                     for (int64_t j = lo; j < hi; ++j) y[j] = cpu::convert<Out>(acc[j - lo]);
                     return;
                   }
                   for (int64_t i = 0; i < rows; ++i) {
                     const T* row = px + i * cols;
                     for (int64_t j = lo; j < hi; ++j) {
                       acc[j - lo] = combine<R, A>(
                           acc[j - lo],
                           static_cast<A>(static_cast<typename ComputeType<T>::type>(row[j])));
                     }
                   }
                   for (int64_t j = lo; j < hi; ++j) y[j - 0] = cpu::convert<Out>(acc[j - lo]);
                 });
    return;
  }
  int64_t outer, inner;
  Tensor rows = as_rows(x, plan, &outer, &inner);
  const T* px = static_cast<const T*>(rows.data_ptr());
  if (outer == 1) {
    // One output: blocks in parallel, partials combined in order.
    int64_t nblocks = (inner + kBlock - 1) / kBlock;
    std::vector<A> partial(nblocks);
    parallel_for(0, nblocks, 8, [&](int64_t lo, int64_t hi) {
      for (int64_t b = lo; b < hi; ++b) {
        partial[b] = reduce_run<R>(px + b * kBlock, std::min(kBlock, inner - b * kBlock));
      }
    });
    A acc = identity<R, A>();
    for (A v : partial) acc = combine<R, A>(acc, v);
    y[0] = cpu::convert<Out>(acc);
    return;
  }
  parallel_for(0, outer, std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(inner, 1)),
               [&](int64_t lo, int64_t hi) {
                 for (int64_t o = lo; o < hi; ++o) {
                   const T* row = px + o * inner;
                   A acc = identity<R, A>();
                   for (int64_t b = 0; b < inner; b += kBlock) {
                     acc = combine<R, A>(acc, reduce_run<R>(row + b, std::min(kBlock, inner - b)));
                   }
                   y[o] = cpu::convert<Out>(acc);
                 }
               });
}

DType sum_dtype(DType t) { return is_floating(t) ? t : DType::Int64; }

template <Reduction R>
MetaList infer_reduce(const OpCall& c) {
  static constexpr const char* names[] = {"sum", "prod", "amax", "amin"};
  const char* op = names[static_cast<int>(R)];
  ReducePlan p = plan_reduce(c.in(0), axes_attr(c.attrs), keepdim_attr(c.attrs), op);
  if constexpr (R == Reduction::kMax || R == Reduction::kMin) {
    check(p.count > 0, op, "reduction over an empty dimension has no identity (input shape ",
          c.in(0).shape(), ")");
    return {{p.out_shape, c.in(0).dtype()}};
  }
  return {{p.out_shape, sum_dtype(c.in(0).dtype())}};
}

template <Reduction R>
void cpu_reduce(const OpCall& c, std::span<Tensor> outs) {
  const Tensor& x = c.in(0);
  ReducePlan p = plan_reduce(x, axes_attr(c.attrs), keepdim_attr(c.attrs), "reduce");
  const Tensor& out = outs[0];
  if (out.numel() == 0) return;
  visit_dtype(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if constexpr (R == Reduction::kMax || R == Reduction::kMin) {
      reduce_kernel<R, T, T>(x, p, out);
    } else if constexpr (std::is_floating_point_v<typename ComputeType<T>::type>) {
      reduce_kernel<R, T, T>(x, p, out);
    } else {
      reduce_kernel<R, T, int64_t>(x, p, out);
    }
  });
}

// Broadcasts a reduced gradient (or value) back over the input's shape.
Tensor expand_back(const Tensor& g, const Shape& in_shape, const Attrs& attrs) {
  Tensor kept = g;
  if (!keepdim_attr(attrs)) {
    Shape s;
    std::vector<bool> red(in_shape.size(), axes_attr(attrs).empty());
    for (int64_t a : axes_attr(attrs)) {
      int64_t ax = normalize_axis(a, in_shape.size(), "reduce");
      if (!in_shape.empty()) red[ax] = true;  // (a 0-d input has no axis to mark)
    }
    for (size_t d = 0; d < in_shape.size(); ++d) s.push_back(red[d] ? 1 : in_shape[d]);
    kept = reshape(g, s);
  }
  return expand(kept, in_shape);
}

TensorList grad_sum(const GradCall& g) { return {expand_back(g.gout(), g.in_shape(0), g.attrs)}; }

TensorList grad_prod(const GradCall& g) {
  const Tensor& x = g.in(0);
  Tensor gx = expand_back(g.gout(), x.shape(), g.attrs);
  Attrs keep = g.attrs;
  keep.set("keepdim", true);
  Tensor is_zero = eq(x, wrap_scalar(0, x));
  Tensor zeros_per = expand(sum(is_zero, axes_attr(g.attrs), true), x.shape());
  Tensor nonzero_prod =
      expand(prod(where(is_zero, ones_like(x), x), axes_attr(g.attrs), true), x.shape());
  Tensor zero = zeros({}, x.dtype());
  Tensor no_zero_case = where(eq(zeros_per, wrap_scalar(0, zeros_per)),
                              div(nonzero_prod, where(is_zero, ones_like(x), x)), zero);
  Tensor one_zero_case = where(eq(zeros_per, wrap_scalar(1, zeros_per)), nonzero_prod, zero);
  return {mul(gx, where(is_zero, one_zero_case, no_zero_case))};
}

TensorList grad_extreme(const GradCall& g) {
  const Tensor& x = g.in(0);
  Tensor out = expand_back(g.out(), x.shape(), g.attrs);
  Tensor mask = cast(eq(x, out), g.gout().dtype());
  Tensor count = expand(sum(mask, axes_attr(g.attrs), true), x.shape());
  return {div(mul(expand_back(g.gout(), x.shape(), g.attrs), mask), count)};
}

// Over every axis, one, several and negative ones, keeping them or not, on shapes with
// size-1 and empty dimensions; kEmptyOk: the reduction has an identity (sum, prod). Products
// take values in [0.25, 0.75) (0 or 1 as integers), so that integer products never wrap.
template <bool kEmptyOk, bool kProduct>
std::vector<OpSample> reduce_samples() {
  const double lo = kProduct ? 0.25 : -2, hi = kProduct ? 0.75 : 2;
  std::vector<OpSample> out;
  uint64_t seed = 1;
  auto add = [&](const Shape& s, const std::vector<int64_t>& axes, bool keep) {
    // Rounding grows with the number of terms summed or multiplied.
    out.push_back(
        {{samples::values(s, lo, hi, seed++)}, {{"axes", axes}, {"keepdim", keep}}, ~0u, 8});
  };
  add({2, 37}, {}, false);
  add({2, 37}, {1}, true);
  add({3, 1, 5}, {0, 2}, false);
  add({3, 4, 5}, {-1}, false);
  add({}, {}, false);
  add({4, 0, 3}, {2}, true);
  if (kEmptyOk) add({4, 0, 3}, {1}, false);
  return out;
}

template <Reduction R>
constexpr OpDef reduce_def(const char* name, TensorList (*grad)(const GradCall&), uint8_t saves) {
  OpDef def{name, infer_reduce<R>, cpu_reduce<R>, nullptr, grad, saves};
  def.samples = reduce_samples < R == Reduction::kSum || R == Reduction::kProd,
  R == Reduction::kProd > ;
  return def;
}

constexpr OpDef kSum = reduce_def<Reduction::kSum>("sum", grad_sum, kSaveNothing);
constexpr OpDef kProd = reduce_def<Reduction::kProd>("prod", grad_prod, kSaveInputs);
constexpr OpDef kAmax =
    reduce_def<Reduction::kMax>("amax", grad_extreme, kSaveInputs | kSaveOutputs);
constexpr OpDef kAmin =
    reduce_def<Reduction::kMin>("amin", grad_extreme, kSaveInputs | kSaveOutputs);
const OpRegistrar r1(kSum), r2(kProd), r3(kAmax), r4(kAmin);

Attrs reduce_attrs(const Axes& axes, bool keepdim) {
  return {{"axes", axes}, {"keepdim", keepdim}};
}

// ------------------------------------------------------------------ arg reductions

template <bool kMax>
MetaList infer_arg(const OpCall& c) {
  const char* op = kMax ? "argmax" : "argmin";
  const Tensor& x = c.in(0);
  int64_t axis = c.attrs.i("axis");
  check(x.dtype() != DType::Bool, op, "not defined for bool tensors");
  ReducePlan p = plan_reduce(x, {axis}, keepdim_attr(c.attrs), op);
  check(p.count > 0, op, "reduction over an empty dimension has no identity (input shape ",
        x.shape(), ")");
  return {{p.out_shape, DType::Int64}};
}

template <bool kMax>
void cpu_arg(const OpCall& c, std::span<Tensor> outs) {
  const Tensor& x = c.in(0);
  ReducePlan p = plan_reduce(x, {c.attrs.i("axis")}, false, "arg");
  int64_t outer, inner;
  Tensor rows = as_rows(x, p, &outer, &inner);
  int64_t* y = outs[0].data<int64_t>();
  visit_dtype(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    using C = typename ComputeType<T>::type;
    const T* px = static_cast<const T*>(rows.data_ptr());
    parallel_for(0, outer, 64, [&](int64_t lo, int64_t hi) {
      for (int64_t o = lo; o < hi; ++o) {
        const T* row = px + o * inner;
        int64_t best = 0;
        C bv = static_cast<C>(row[0]);
        for (int64_t i = 1; i < inner && bv == bv; ++i) {  // first NaN wins, like PyTorch
          C v = static_cast<C>(row[i]);
          if (v != v || (kMax ? v > bv : v < bv)) best = i, bv = v;
        }
        y[o] = best;
      }
    });
  });
}

// One axis (negative too), keeping it or not.
std::vector<OpSample> arg_samples() {
  return {{{samples::values({2, 37}, -2, 2, 1)}, {{"axis", int64_t{1}}, {"keepdim", false}}},
          {{samples::values({3, 1, 5}, -2, 2, 2)}, {{"axis", int64_t{-1}}, {"keepdim", true}}},
          {{samples::values({3, 4, 5}, -2, 2, 3)}, {{"axis", int64_t{0}}, {"keepdim", false}}},
          {{samples::values({4, 0, 3}, -2, 2, 4)}, {{"axis", int64_t{2}}, {"keepdim", false}}}};
}

template <bool kMax>
constexpr OpDef arg_def(const char* name) {
  OpDef def{name, infer_arg<kMax>, cpu_arg<kMax>};
  def.samples = arg_samples;
  return def;
}
constexpr OpDef kArgmax = arg_def<true>("argmax");
constexpr OpDef kArgmin = arg_def<false>("argmin");
const OpRegistrar r5(kArgmax), r6(kArgmin);

// ------------------------------------------------------------------ scans

template <bool kProdScan>
MetaList infer_scan(const OpCall& c) {
  const Tensor& x = c.in(0);
  normalize_axis(c.attrs.i("axis"), x.dim(), kProdScan ? "cumprod" : "cumsum");
  return {{x.shape(), sum_dtype(x.dtype())}};
}

template <bool kProdScan>
void cpu_scan(const OpCall& c, std::span<Tensor> outs) {
  const Tensor& x = c.in(0);
  const Tensor& out = outs[0];
  if (out.numel() == 0) return;
  int64_t axis = normalize_axis(c.attrs.i("axis"), x.dim(), "scan");
  // Move the axis last, scan rows, then write back through the inverse permutation.
  Dims order;
  for (int64_t d = 0; d < x.dim(); ++d) {
    if (d != axis) order.push_back(d);
  }
  if (x.dim() > 0) order.push_back(axis);
  Tensor xt = Tensor::empty(x.detach().permute(order).shape(), out.dtype());
  cpu::copy_into(x.detach().permute(order), xt);
  int64_t n = x.dim() > 0 ? x.shape()[axis] : 1;
  int64_t rows = xt.numel() / std::max<int64_t>(n, 1);
  visit_dtype(out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    using A = Acc<T>;
    T* p = static_cast<T*>(xt.data_ptr());
    parallel_for(0, rows, 64, [&](int64_t lo, int64_t hi) {
      for (int64_t r = lo; r < hi; ++r) {
        A acc = kProdScan ? A(1) : A(0);
        for (int64_t i = 0; i < n; ++i) {
          A v = static_cast<A>(static_cast<typename ComputeType<T>::type>(p[r * n + i]));
          acc = kProdScan ? cpu::wrapping_mul(acc, v) : cpu::wrapping_add(acc, v);
          p[r * n + i] = cpu::convert<T>(acc);
        }
      }
    });
  });
  Dims inverse(order.size(), 0);
  for (size_t i = 0; i < order.size(); ++i) inverse[order[i]] = static_cast<int64_t>(i);
  cpu::copy_into(xt.permute(inverse), out);
}

TensorList grad_cumsum(const GradCall& g) {
  int64_t axis = g.attrs.i("axis");
  return {flip(cumsum(flip(g.gout(), {axis}), axis), {axis})};
}

// With zeros in x, out_k / x_i is 0 / 0: walk the axis backwards with the division-free
// recurrence S_k = g_k + x_{k+1} S_{k+1}, dx_k = out_{k-1} S_k (out_{-1} = 1). One step per
// position, but only taken when a zero is present.
Tensor cumprod_grad_with_zeros(const Tensor& x, const Tensor& out, const Tensor& gout,
                               int64_t axis) {
  const int64_t n = x.size(axis);
  std::vector<Tensor> dx(static_cast<size_t>(n));
  Tensor s;
  for (int64_t k = n - 1; k >= 0; --k) {
    Tensor gk = gout.select(axis, k);
    s = k == n - 1 ? gk : add(gk, mul(x.select(axis, k + 1), s));
    dx[static_cast<size_t>(k)] = k == 0 ? s : mul(out.select(axis, k - 1), s);
  }
  return stack(dx, axis);
}

TensorList grad_cumprod(const GradCall& g) {
  const Tensor& x = g.in(0);
  int64_t axis = g.attrs.i("axis");
  if (x.dim() > 0) {
    axis = axis < 0 ? axis + x.dim() : axis;
    if (x.size(axis) > 0 && any(eq(x, wrap_scalar(0, x))).item<bool>())
      return {cumprod_grad_with_zeros(x, g.out(), g.gout(), axis)};
  }
  // d out_k / d x_i = out_k / x_i for k >= i.
  Tensor rev = flip(cumsum(flip(mul(g.gout(), g.out()), {axis}), axis), {axis});
  return {div(rev, x)};
}

// Along each kind of axis: the last (contiguous), the first, a negative one, size 1, empty.
std::vector<OpSample> scan_samples() {
  return samples::along_axis(
      {{{2, 37}, 1}, {{3, 4, 5}, 0}, {{3, 4, 5}, -2}, {{3, 1, 5}, 1}, {{4, 0, 3}, 1}, {{7}, 0}},
      0.5, 1.5, 8);
}

template <bool kProd>
constexpr OpDef scan_def(const char* name, TensorList (*grad)(const GradCall&), uint8_t saves) {
  OpDef def{name, infer_scan<kProd>, cpu_scan<kProd>, nullptr, grad, saves};
  def.samples = scan_samples;
  return def;
}
constexpr OpDef kCumsum = scan_def<false>("cumsum", grad_cumsum, kSaveNothing);
constexpr OpDef kCumprod = scan_def<true>("cumprod", grad_cumprod, kSaveInputs | kSaveOutputs);
const OpRegistrar r7(kCumsum), r8(kCumprod);

}  // namespace

Tensor sum(const Tensor& x, const Axes& axes, bool keepdim) {
  return run_op1(kSum, {x}, reduce_attrs(axes, keepdim));
}
Tensor prod(const Tensor& x, const Axes& axes, bool keepdim) {
  return run_op1(kProd, {x}, reduce_attrs(axes, keepdim));
}
Tensor amax(const Tensor& x, const Axes& axes, bool keepdim) {
  return run_op1(kAmax, {x}, reduce_attrs(axes, keepdim));
}
Tensor amin(const Tensor& x, const Axes& axes, bool keepdim) {
  return run_op1(kAmin, {x}, reduce_attrs(axes, keepdim));
}

// ---------------------------------------------------------------- reduced_count
// How many elements a reduction over `axes` combines, less `correction` (at least 0), as a
// 0-d tensor: mean and var divide by it. Eager calls use a number; traced graphs with an
// unknown batch size use this op, which reads the count from the input's shape at run time.
namespace {
MetaList infer_reduced_count(const OpCall& c) {
  plan_reduce(c.in(0), axes_attr(c.attrs), false, "reduced_count");
  return {{Shape{}, c.attrs.get<DType>("dtype")}};
}
void cpu_reduced_count(const OpCall& c, std::span<Tensor> out) {
  ReducePlan p = plan_reduce(c.in(0), axes_attr(c.attrs), false, "reduced_count");
  out[0].fill_(static_cast<double>(std::max<int64_t>(p.count - c.attrs.i("correction"), 0)));
}
TensorList grad_reduced_count(const GradCall&) { return {Tensor()}; }  // shape only
constexpr OpDef kReducedCount{"reduced_count", infer_reduced_count, cpu_reduced_count,
                              nullptr,         grad_reduced_count,  kSaveNothing};
const OpRegistrar r9(kReducedCount);
}  // namespace

namespace {
// The count as a 0-d tensor of `dtype`: an op while tracing where a reduced size is
// unknown (a mean over the batch), a constant where only other sizes are (over an image).
Tensor reduced_count(const Tensor& x, const Axes& axes, int64_t correction, DType dtype,
                     const ReducePlan& p) {
  Shape reduced_sizes;
  for (size_t d = 0; d < p.reduced.size(); ++d) {
    if (p.reduced[d]) reduced_sizes.push_back(x.shape()[d]);
  }
  if (OpTracer* t = active_tracer(); t && t->has_unknown_dim(reduced_sizes)) {
    return run_op1(kReducedCount, {x},
                   {{"axes", axes}, {"correction", correction}, {"dtype", dtype}});
  }
  return scalar_tensor(static_cast<double>(std::max<int64_t>(p.count - correction, 0)), dtype);
}
}  // namespace

Tensor reduction_size(const Tensor& x, const Axes& axes, int64_t correction, DType dtype) {
  return reduced_count(x, axes, correction, dtype, plan_reduce(x, axes, false, "reduction_size"));
}

Tensor mean(const Tensor& x, const Axes& axes, bool keepdim) {
  ReducePlan p = plan_reduce(x, axes, keepdim, "mean");
  Tensor xf = is_floating(x.dtype()) ? x : x.to(DType::Float32);
  return div(sum(xf, axes, keepdim), reduced_count(xf, axes, 0, xf.dtype(), p));
}

Tensor argmax(const Tensor& x, int64_t axis, bool keepdim) {
  return run_op1(kArgmax, {x}, {{"axis", axis}, {"keepdim", keepdim}});
}
Tensor argmax(const Tensor& x) { return argmax(reshape(x, {-1}), 0, false); }
Tensor argmin(const Tensor& x, int64_t axis, bool keepdim) {
  return run_op1(kArgmin, {x}, {{"axis", axis}, {"keepdim", keepdim}});
}
Tensor argmin(const Tensor& x) { return argmin(reshape(x, {-1}), 0, false); }

Tensor var(const Tensor& x, const Axes& axes, int64_t correction, bool keepdim) {
  ReducePlan p = plan_reduce(x, axes, keepdim, "var");
  Tensor xf = is_floating(x.dtype()) ? x : x.to(DType::Float32);
  Tensor centered = sub(xf, mean(xf, axes, true));
  return div(sum(square(centered), axes, keepdim),
             reduced_count(xf, axes, correction, xf.dtype(), p));
}

Tensor stddev(const Tensor& x, const Axes& axes, int64_t correction, bool keepdim) {
  return sqrt(var(x, axes, correction, keepdim));
}

Tensor logsumexp(const Tensor& x, const Axes& axes, bool keepdim) {
  Tensor xf = is_floating(x.dtype()) ? x : x.to(DType::Float32);
  // Shift by the (constant) maximum for stability; infinite maxima shift by 0.
  Tensor m = amax(xf, axes, true).detach();
  m = where(isfinite(m), m, zeros_like(m));
  Tensor s = log(sum(exp(sub(xf, m)), axes, true));
  Tensor out = add(s, m);
  return keepdim ? out : reshape(out, plan_reduce(x, axes, false, "logsumexp").out_shape);
}

Tensor norm(const Tensor& x, double ord, const Axes& axes, bool keepdim) {
  Tensor xf = is_floating(x.dtype()) ? x : x.to(DType::Float32);
  if (ord == 1.0) return sum(abs(xf), axes, keepdim);
  if (ord == 2.0 || ord == 0.0) return sqrt(sum(square(xf), axes, keepdim));
  if (std::isinf(ord) && ord > 0) return amax(abs(xf), axes, keepdim);
  if (std::isinf(ord) && ord < 0) return amin(abs(xf), axes, keepdim);
  return pow(sum(pow(abs(xf), ord), axes, keepdim), 1.0 / ord);
}

Tensor all(const Tensor& x, const Axes& axes, bool keepdim) {
  Tensor b = x.dtype() == DType::Bool ? x : ne(x, wrap_scalar(0, x));
  if (b.numel() == 0 || plan_reduce(b, axes, keepdim, "all").count == 0) {
    return ones(plan_reduce(b, axes, keepdim, "all").out_shape, DType::Bool);
  }
  return amin(b, axes, keepdim);
}

Tensor any(const Tensor& x, const Axes& axes, bool keepdim) {
  Tensor b = x.dtype() == DType::Bool ? x : ne(x, wrap_scalar(0, x));
  if (b.numel() == 0 || plan_reduce(b, axes, keepdim, "any").count == 0) {
    return zeros(plan_reduce(b, axes, keepdim, "any").out_shape, DType::Bool);
  }
  return amax(b, axes, keepdim);
}

Tensor count_nonzero(const Tensor& x, const Axes& axes, bool keepdim) {
  return sum(ne(x, wrap_scalar(0, x)), axes, keepdim);
}

Tensor cumsum(const Tensor& x, int64_t axis) { return run_op1(kCumsum, {x}, {{"axis", axis}}); }
Tensor cumprod(const Tensor& x, int64_t axis) { return run_op1(kCumprod, {x}, {{"axis", axis}}); }

Tensor sum_to(const Tensor& x, const Shape& shape) {
  check_defined(x, "sum_to", "input");
  if (x.shape() == shape) return x;
  const bool fits = shape.size() <= x.shape().size() && [&] {
    for (size_t d = 0; d < shape.size(); ++d) {
      const int64_t have = x.shape()[x.shape().size() - shape.size() + d];
      if (shape[d] != have && shape[d] != 1) return false;
    }
    return true;
  }();
  if (!fits) fail("sum_to", "shape ", x.shape(), " does not reduce to ", shape, " by summing");
  size_t lead = x.shape().size() - shape.size();
  Axes axes;
  for (size_t d = 0; d < x.shape().size(); ++d) {
    if (d < lead || (shape[d - lead] == 1 && x.shape()[d] != 1)) axes.push_back(d);
  }
  Tensor s = axes.empty() ? x : sum(x, axes, true);
  return reshape(s, shape);
}

}  // namespace tessera
