// softmax and log_softmax (primitives with a fused, max-shifted kernel; their gradients
// are written with ops), and the normalization layers batch_norm, layer_norm,
// group_norm and instance_norm, composites of reductions and elementwise ops, so their
// gradients of every order come from those ops.
#include <cmath>
#include <limits>

#include "../kernels/cpu/copy.h"
#include "../kernels/cpu/simd.h"
#include "samples.h"
#include "tessera/autodiff/autodiff.h"
#include "tessera/core/parallel.h"
#include "tessera/ops/creation.h"
#include "tessera/ops/elementwise.h"
#include "tessera/ops/nn.h"
#include "tessera/ops/op.h"
#include "tessera/ops/reduce.h"
#include "tessera/ops/shape.h"
#include "tessera/ops/state.h"

namespace tessera {
namespace {

// ------------------------------------------------------------------ softmax

template <bool kLog>
constexpr const char* softmax_name() {
  return kLog ? "log_softmax" : "softmax";
}

template <bool kLog>
MetaList infer_softmax(const OpCall& c) {
  const Tensor& x = c.in(0);
  check(is_floating(x.dtype()), softmax_name<kLog>(), "expects a floating-point input, got ",
        dtype_name(x.dtype()));
  normalize_axis(c.attrs.i("axis"), x.dim(), softmax_name<kLog>());
  return {{x.shape(), x.dtype()}};
}

// Softmax of `n` values spaced `inner` apart, for `inner` adjacent such rows at once.
template <bool kLog, typename T>
void softmax_block(const T* x, T* y, int64_t n, int64_t inner, std::vector<double>& mx,
                   std::vector<double>& total) {
  using C = typename ComputeType<T>::type;
  mx.assign(inner, -std::numeric_limits<double>::infinity());
  total.assign(inner, 0.0);
  for (int64_t i = 0; i < n; ++i) {
    const T* row = x + i * inner;
    for (int64_t j = 0; j < inner; ++j) {
      double v = static_cast<C>(row[j]);
      // NaN propagates: once the maximum is NaN every output of the row is NaN.
      if (v > mx[j] || v != v) mx[j] = v != v || mx[j] != mx[j] ? NAN : v;
    }
  }
  for (int64_t i = 0; i < n; ++i) {
    const T* row = x + i * inner;
    for (int64_t j = 0; j < inner; ++j) {
      total[j] += std::exp(static_cast<double>(static_cast<C>(row[j])) - mx[j]);
    }
  }
  for (int64_t j = 0; j < inner; ++j) total[j] = kLog ? std::log(total[j]) : 1.0 / total[j];
  for (int64_t i = 0; i < n; ++i) {
    const T* row = x + i * inner;
    T* out = y + i * inner;
    for (int64_t j = 0; j < inner; ++j) {
      double shifted = static_cast<double>(static_cast<C>(row[j])) - mx[j];
      double v = kLog ? shifted - total[j] : std::exp(shifted) * total[j];
      out[j] = static_cast<T>(static_cast<C>(v));
    }
  }
}

// The float32 fast path for contiguous rows (softmax along the last axis): the shifted
// row goes through the SIMD exp and the SIMD sum (fixed order, so thread-independent).
template <bool kLog>
void softmax_rows_f32(const float* x, float* y, int64_t rows, int64_t n) {
  const cpu::SimdTable& simd = cpu::simd();
  parallel_for(0, rows, std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(n, 1)),
               [&](int64_t lo, int64_t hi) {
                 std::vector<float> shifted(n), e(n);
                 for (int64_t r = lo; r < hi; ++r) {
                   const float* xr = x + r * n;
                   float* yr = y + r * n;
                   float m = -std::numeric_limits<float>::infinity();
                   bool nan = false;
                   for (int64_t i = 0; i < n; ++i) {
                     m = xr[i] > m ? xr[i] : m;
                     nan |= xr[i] != xr[i];
                   }
                   if (nan) {
                     std::fill(yr, yr + n, std::numeric_limits<float>::quiet_NaN());
                     continue;
                   }
                   for (int64_t i = 0; i < n; ++i) shifted[i] = xr[i] - m;
                   float* out = kLog ? e.data() : yr;
                   simd.unary_f32(cpu::FastUnary::Exp, shifted.data(), out, n);
                   double total = simd.sum_f32(out, n);
                   if constexpr (kLog) {
                     float log_total = static_cast<float>(std::log(total));
                     for (int64_t i = 0; i < n; ++i) yr[i] = shifted[i] - log_total;
                   } else {
                     float inv = static_cast<float>(1.0 / total);
                     for (int64_t i = 0; i < n; ++i) yr[i] *= inv;
                   }
                 }
               });
}

template <bool kLog>
void cpu_softmax(const OpCall& c, std::span<Tensor> outs) {
  const Tensor& out = outs[0];
  if (out.numel() == 0) return;
  Tensor x = c.in(0);
  if (!x.is_contiguous()) {
    Tensor tmp = Tensor::empty(x.shape(), x.dtype());
    cpu::copy_into(x, tmp);
    x = tmp;
  }
  int64_t axis = x.dim() == 0 ? 0 : normalize_axis(c.attrs.i("axis"), x.dim(), "softmax");
  int64_t outer = 1, n = 1, inner = 1;
  for (int64_t d = 0; d < x.dim(); ++d) {
    if (d < axis) outer *= x.shape()[d];
    if (d == axis) n = x.shape()[d];
    if (d > axis) inner *= x.shape()[d];
  }
  if (x.dtype() == DType::Float32 && inner == 1) {
    softmax_rows_f32<kLog>(x.data<float>(), out.data<float>(), outer, n);
    return;
  }
  visit_dtype(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if constexpr (std::is_floating_point_v<typename ComputeType<T>::type>) {
      const T* px = static_cast<const T*>(x.data_ptr());
      T* py = static_cast<T*>(out.data_ptr());
      // Blocks of up to 256 adjacent columns of one outer index, in parallel.
      constexpr int64_t kCols = 256;
      int64_t col_blocks = (inner + kCols - 1) / kCols;
      int64_t grain =
          std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(n * std::min(inner, kCols), 1));
      parallel_for(0, outer * col_blocks, grain, [&](int64_t lo, int64_t hi) {
        std::vector<double> mx, total;
        for (int64_t b = lo; b < hi; ++b) {
          int64_t o = b / col_blocks, j0 = (b % col_blocks) * kCols;
          int64_t width = std::min(kCols, inner - j0);
          if (width == inner) {
            softmax_block<kLog>(px + o * n * inner, py + o * n * inner, n, inner, mx, total);
          } else {
            // A column block of a wider row: gather it, run, scatter back.
            std::vector<T> xs(n * width), ys(n * width);
            for (int64_t i = 0; i < n; ++i) {
              std::copy(px + (o * n + i) * inner + j0, px + (o * n + i) * inner + j0 + width,
                        xs.begin() + i * width);
            }
            softmax_block<kLog>(xs.data(), ys.data(), n, width, mx, total);
            for (int64_t i = 0; i < n; ++i) {
              std::copy(ys.begin() + i * width, ys.begin() + (i + 1) * width,
                        py + (o * n + i) * inner + j0);
            }
          }
        }
      });
    }
  });
}

TensorList grad_softmax(const GradCall& g) {
  // dx = y * (g - sum(g * y)) along the axis.
  int64_t axis = g.attrs.i("axis");
  const Tensor &y = g.out(), &gy = g.gout();
  if (y.dim() == 0) return {mul(gy, zeros_like(y))};
  return {mul(y, sub(gy, sum(mul(gy, y), {axis}, true)))};
}

TensorList grad_log_softmax(const GradCall& g) {
  // dx = g - exp(y) * sum(g) along the axis.
  int64_t axis = g.attrs.i("axis");
  const Tensor &y = g.out(), &gy = g.gout();
  if (y.dim() == 0) return {mul(gy, zeros_like(y))};
  return {sub(gy, mul(exp(y), sum(gy, {axis}, true)))};
}

// Along the last axis (the SIMD rows), an inner one, a negative one, size 1, 0-d, empty.
std::vector<OpSample> softmax_samples() {
  return samples::along_axis(
      {{{2, 37}, 1}, {{3, 4, 5}, 1}, {{3, 4, 5}, -3}, {{3, 1, 5}, 1}, {{}, 0}, {{4, 0, 3}, 2}}, -4,
      4);
}

template <bool kLog>
constexpr OpDef softmax_def(const char* name, TensorList (*grad)(const GradCall&)) {
  OpDef def{name, infer_softmax<kLog>, cpu_softmax<kLog>, nullptr, grad, kSaveOutputs};
  def.samples = softmax_samples;
  return def;
}
constexpr OpDef kSoftmax = softmax_def<false>("softmax", grad_softmax);
constexpr OpDef kLogSoftmax = softmax_def<true>("log_softmax", grad_log_softmax);
const OpRegistrar r1(kSoftmax), r2(kLogSoftmax);

// ------------------------------------------------------------------ normalization helpers

// Shape [1, C, 1, ...] for per-channel parameters of an [N, C, ...] input.
Shape channel_shape(const Tensor& x) {
  Shape s(x.dim(), 1);
  s[1] = x.shape()[1];
  return s;
}

void check_channel_param(const char* op, const Tensor& t, const char* what, const Tensor& x) {
  if (!t.defined()) return;
  check(t.dim() == 1 && t.shape()[0] == x.shape()[1], op, what, " must have shape [", x.shape()[1],
        "] (the channels of input ", x.shape(), "), got ", t.shape());
}

Tensor affine(const Tensor& y, const Tensor& weight, const Tensor& bias, const Shape& shape) {
  Tensor out = y;
  if (weight.defined()) out = mul(out, reshape(weight, shape));
  if (bias.defined()) out = add(out, reshape(bias, shape));
  return out;
}

void check_float_input(const char* op, const Tensor& x) {
  check_defined(x, op, "input");
  check(is_floating(x.dtype()), op, "expects a floating-point input, got ", dtype_name(x.dtype()));
}

}  // namespace

Tensor softmax(const Tensor& x, int64_t axis) {
  check_defined(x, "softmax", "input");
  return run_op1(kSoftmax, {x}, {{"axis", axis}});
}

Tensor log_softmax(const Tensor& x, int64_t axis) {
  check_defined(x, "log_softmax", "input");
  return run_op1(kLogSoftmax, {x}, {{"axis", axis}});
}

Tensor batch_norm(const Tensor& x, const Tensor& running_mean, const Tensor& running_var,
                  const Tensor& weight, const Tensor& bias, bool training, double momentum,
                  double eps) {
  const char* op = "batch_norm";
  check_float_input(op, x);
  check(x.dim() >= 2, op, "expects an input [N, C, ...] of at least 2 dimensions, got shape ",
        x.shape());
  check_channel_param(op, running_mean, "running_mean", x);
  check_channel_param(op, running_var, "running_var", x);
  check_channel_param(op, weight, "weight", x);
  check_channel_param(op, bias, "bias", x);
  Axes axes{0};
  for (int64_t d = 2; d < x.dim(); ++d) axes.push_back(d);
  Shape cshape = channel_shape(x);
  Tensor mu, variance;
  if (training) {
    int64_t count = x.numel() / std::max<int64_t>(x.shape()[1], 1);
    check(count > 1, op, "expects more than 1 value per channel when training, got input ",
          x.shape());
    mu = mean(x, axes, true);
    variance = var(x, axes, 0, true);
    if (running_mean.defined() || running_var.defined()) {
      NoGradGuard guard;
      Shape c{x.shape()[1]};
      // Written with assign (into the caller's tensors), so that a captured training step
      // updates the statistics on every run, not once when traced.
      if (running_mean.defined()) {
        Tensor m = reshape(mu.detach(), c).to(running_mean.dtype());
        assign(running_mean, add(mul(running_mean, 1.0 - momentum), mul(m, momentum)));
      }
      if (running_var.defined()) {
        DType dt = running_var.dtype();
        double unbias = static_cast<double>(count) / static_cast<double>(count - 1);
        // Traced, the count is the batch's at run time: the factor is computed in the graph.
        Tensor factor =
            active_tracer()
                ? mul(div(reduction_size(x, axes, 0, dt), reduction_size(x, axes, 1, dt)), momentum)
                : scalar_tensor(momentum * unbias, dt);
        Tensor v = reshape(variance.detach(), c).to(dt);
        assign(running_var, add(mul(running_var, 1.0 - momentum), mul(v, factor)));
      }
    }
  } else {
    check(running_mean.defined() && running_var.defined(), op,
          "running_mean and running_var are required in inference mode (training = false)");
    mu = reshape(running_mean, cshape).to(x.dtype());
    variance = reshape(running_var, cshape).to(x.dtype());
  }
  Tensor y = mul(sub(x, mu), rsqrt(add(variance, eps)));
  return affine(y, weight, bias, cshape);
}

Tensor layer_norm(const Tensor& x, const Shape& normalized_shape, const Tensor& weight,
                  const Tensor& bias, double eps) {
  const char* op = "layer_norm";
  check_float_input(op, x);
  int64_t k = static_cast<int64_t>(normalized_shape.size());
  bool matches = k >= 1 && k <= x.dim();
  for (int64_t i = 0; matches && i < k; ++i) {
    matches = x.shape()[x.dim() - k + i] == normalized_shape[i];
  }
  check(matches, op, "normalized_shape ", normalized_shape,
        " must be non-empty and match the trailing dimensions of input ", x.shape());
  for (const Tensor* t : {&weight, &bias}) {
    if (!t->defined()) continue;
    check(t->shape() == normalized_shape, op, t == &weight ? "weight" : "bias", " must have shape ",
          normalized_shape, ", got ", t->shape());
  }
  Axes axes;
  for (int64_t d = x.dim() - k; d < x.dim(); ++d) axes.push_back(d);
  Tensor mu = mean(x, axes, true);
  Tensor variance = var(x, axes, 0, true);
  Tensor y = mul(sub(x, mu), rsqrt(add(variance, eps)));
  return affine(y, weight, bias, normalized_shape);
}

Tensor group_norm(const Tensor& x, int64_t num_groups, const Tensor& weight, const Tensor& bias,
                  double eps) {
  const char* op = "group_norm";
  check_float_input(op, x);
  check(x.dim() >= 2, op, "expects an input [N, C, ...] of at least 2 dimensions, got shape ",
        x.shape());
  int64_t C = x.shape()[1];
  check(num_groups >= 1 && C % num_groups == 0, op, "num_groups ", num_groups,
        " must be positive and divide the ", C, " channels of input ", x.shape());
  check_channel_param(op, weight, "weight", x);
  check_channel_param(op, bias, "bias", x);
  int64_t per_group = C / num_groups;
  for (int64_t d = 2; d < x.dim(); ++d) per_group *= x.shape()[d];
  Tensor xg = reshape(x, {x.shape()[0], num_groups, per_group});
  Tensor mu = mean(xg, {2}, true);
  Tensor variance = var(xg, {2}, 0, true);
  Tensor y = reshape(mul(sub(xg, mu), rsqrt(add(variance, eps))), x.shape());
  return affine(y, weight, bias, channel_shape(x));
}

Tensor instance_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps) {
  const char* op = "instance_norm";
  check_float_input(op, x);
  check(x.dim() >= 3, op,
        "expects an input [N, C, ...] with at least one spatial dimension, got shape ", x.shape());
  check_channel_param(op, weight, "weight", x);
  check_channel_param(op, bias, "bias", x);
  Axes axes;
  for (int64_t d = 2; d < x.dim(); ++d) axes.push_back(d);
  Tensor mu = mean(x, axes, true);
  Tensor variance = var(x, axes, 0, true);
  Tensor y = mul(sub(x, mu), rsqrt(add(variance, eps)));
  return affine(y, weight, bias, channel_shape(x));
}

}  // namespace tessera
