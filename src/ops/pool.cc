// Pooling over the trailing 1 or 2 dimensions of NCL / NCHW inputs.
// - max_pool{1,2}d and adaptive_max_pool{1,2}d return values and int64 indices (flat
//   within each input plane). Their gradient is max_pool_backward, a scatter-add of the
//   output gradient at the indices; the gradient of that is max_pool_gather, a gather at
//   the same indices, and the other way round, so every order of derivative is an op.
// - avg_pool{1,2}d and adaptive_avg_pool{1,2}d are linear and separable: each spatial
//   dimension is a 1-d map ("taps") and the kernels apply rows and columns to every
//   plane (src/kernels/cpu/conv.h). Each has an adjoint "_backward" op; the two are
//   each other's gradient.
#include <bit>
#include <cmath>
#include <string>
#include <vector>

#include "../kernels/cpu/conv.h"
#include "../kernels/cpu/copy.h"
#include "../kernels/cpu/simd.h"
#include "conv_pool_parts.h"
#include "run_float.h"
#include "samples.h"
#include "tessera/core/parallel.h"
#include "tessera/ops/nn.h"
#include "tessera/ops/op.h"

namespace tessera {
namespace {

enum class Pool { kMax, kAvg, kAdaptiveMax, kAdaptiveAvg };

template <Pool P, int D>
constexpr const char* pool_name() {
  constexpr const char* names[4][2] = {{"max_pool1d", "max_pool2d"},
                                       {"avg_pool1d", "avg_pool2d"},
                                       {"adaptive_max_pool1d", "adaptive_max_pool2d"},
                                       {"adaptive_avg_pool1d", "adaptive_avg_pool2d"}};
  return names[static_cast<int>(P)][D - 1];
}

template <Pool P, int D>
constexpr const char* backward_name() {
  constexpr const char* names[4][2] = {
      {"", ""},
      {"avg_pool1d_backward", "avg_pool2d_backward"},
      {"", ""},
      {"adaptive_avg_pool1d_backward", "adaptive_avg_pool2d_backward"}};
  return names[static_cast<int>(P)][D - 1];
}

constexpr bool is_adaptive(Pool p) { return p == Pool::kAdaptiveMax || p == Pool::kAdaptiveAvg; }

// Samples for the registry walk. Spatial sizes grow by one per dimension.
template <int D>
Tensor sample_input(int64_t n, int64_t c, int64_t spatial, uint64_t seed) {
  Shape shape{n, c};
  for (int d = 0; d < D; ++d) shape.push_back(spatial + d);
  return samples::values(shape, -2, 2, seed);
}

template <int D>
Attrs sample_window(int64_t k, int64_t s, int64_t p, int64_t dilation, bool ceil_mode) {
  return {{"kernel_size", std::vector<int64_t>(D, k)},
          {"stride", std::vector<int64_t>(D, s)},
          {"padding", std::vector<int64_t>(D, p)},
          {"dilation", std::vector<int64_t>(D, dilation)},
          {"ceil_mode", ceil_mode}};
}

// Windows: small (gradients are checked), strided and padded, ceil mode over odd sizes,
// dilated (max) or counting the padding (average); adaptive: fewer and more outputs than
// inputs.
template <Pool P, int D>
std::vector<OpSample> pool_samples() {
  auto x = sample_input<D>;
  if constexpr (is_adaptive(P)) {
    auto size = [](int64_t v) { return Attrs{{"output_size", std::vector<int64_t>(D, v)}}; };
    return {{{x(1, 2, 5, 1)}, size(2)}, {{x(2, 3, 9, 2)}, size(4)}, {{x(2, 1, 3, 3)}, size(5)}};
  } else {
    Attrs last = sample_window<D>(2, 1, 0, 2, false);  // dilated
    if constexpr (P == Pool::kAvg) {
      last = sample_window<D>(3, 2, 1, 1, false);
      last.set("count_include_pad", true);
    }
    return {{{x(1, 2, 5, 1)}, sample_window<D>(2, 1, 0, 1, false)},
            {{x(2, 3, 9, 2)}, sample_window<D>(3, 2, 1, 1, false)},
            {{x(2, 3, 9, 3)}, sample_window<D>(2, 2, 0, 1, true)},
            {{x(0, 3, 6, 4)}, sample_window<D>(2, 2, 0, 1, false)},
            {{x(2, 2, 8, 5)}, last}};
  }
}

// The 2x2 stride-2 pools: even and odd sizes, an empty batch.
std::vector<OpSample> pool_2x2_samples() {
  return {{{samples::values({2, 3, 8, 6}, -2, 2, 1)}},
          {{samples::values({1, 2, 5, 7}, -2, 2, 2)}},
          {{samples::values({0, 2, 4, 4}, -2, 2, 3)}}};
}

std::string list(const std::vector<int64_t>& v) { return to_string(Dims(v)); }

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// The 1-d windows of one spatial dimension of size L with `out` outputs.
cpu::Taps window_taps(Pool kind, int64_t L, int64_t out, int64_t k, int64_t s, int64_t p,
                      int64_t dilation, bool count_include_pad) {
  cpu::Taps t;
  for (int64_t o = 0; o < out; ++o) {
    if (is_adaptive(kind)) {
      int64_t start = o * L / out, end = ceil_div((o + 1) * L, out);
      for (int64_t i = start; i < end; ++i) t.add(i, 1.0 / static_cast<double>(end - start));
    } else if (kind == Pool::kMax) {
      for (int64_t j = 0; j < k; ++j) {
        int64_t pos = o * s - p + j * dilation;
        if (pos >= 0 && pos < L) t.add(pos, 1.0);
      }
    } else {
      int64_t start = o * s - p, end = std::min(start + k, L + p);
      int64_t lo = std::max<int64_t>(start, 0), hi = std::min(end, L);
      double divisor = static_cast<double>(count_include_pad ? end - start : hi - lo);
      for (int64_t i = lo; i < hi; ++i) t.add(i, 1.0 / divisor);
    }
    t.end_output();
  }
  return t;
}

struct PoolPlan {
  Shape out_shape;
  int64_t planes = 0, H = 1, W = 1;  // input planes; H = 1 for 1-d pooling
  cpu::Taps rows, cols;              // over H and W
  // For max pooling, the regular windows along W: output o reads o * stride - pad +
  // j * dilation for j < kernel (clipped to the input at the borders).
  bool regular = false;
  int64_t kernel_w = 1, stride_w = 1, pad_w = 0, dilation_w = 1;
};

// Validates the input shape and attributes of pool <P, D>; returns the output shape and,
// when `build`, the taps.
template <Pool P, int D>
PoolPlan plan_pool(const Shape& x, const Attrs& a, bool build) {
  const char* op = pool_name<P, D>();
  check(x.size() == D + 2, op, "expects a ", D + 2, "-d input [N, C, ", D == 1 ? "L" : "H, W",
        "], got shape ", x);
  for (int d = 0; d < D; ++d) {
    check(x[2 + d] >= 1, op, "expects non-empty spatial dimensions, got input ", x);
  }
  PoolPlan plan;
  plan.out_shape = {x[0], x[1]};
  plan.planes = x[0] * x[1];
  plan.H = D == 2 ? x[2] : 1;
  plan.W = x[D + 1];
  cpu::Taps taps[2];
  using detail::kMaxExtent;  // (bounds sizes and window attributes: see conv_pool_parts.h)
  for (int d = 0; d < D; ++d) {
    check(x[2 + d] <= kMaxExtent, op, "spatial sizes above 2^31 are not supported (input ", x, ")");
  }
  if constexpr (is_adaptive(P)) {
    const std::vector<int64_t>& size = a.ints("output_size");
    if (size.size() != D) fail(op, "output_size needs ", D, " values, got ", list(size));
    for (int d = 0; d < D; ++d) {
      if (size[d] < 1) fail(op, "output_size must be positive, got ", list(size));
      if (size[d] > kMaxExtent) fail(op, "output_size must be at most 2^31, got ", list(size));
      plan.out_shape.push_back(size[d]);
      if (build) taps[d] = window_taps(P, x[2 + d], size[d], 0, 1, 0, 1, true);
    }
  } else {
    const std::vector<int64_t>&k = a.ints("kernel_size"), &s = a.ints("stride"),
          &p = a.ints("padding"), &dil = a.ints("dilation");
    check(k.size() == D && s.size() == D && p.size() == D && dil.size() == D, op,
          "kernel_size, stride, padding and dilation need ", D, " values each");
    bool ceil_mode = a.b("ceil_mode");
    bool include_pad = a.has("count_include_pad") && a.b("count_include_pad");
    for (int d = 0; d < D; ++d) {
      if (k[d] < 1) fail(op, "kernel_size must be positive, got ", list(k));
      if (s[d] < 1) fail(op, "stride must be positive, got ", list(s));
      if (dil[d] < 1) fail(op, "dilation must be positive, got ", list(dil));
      if (k[d] > kMaxExtent || s[d] > kMaxExtent || dil[d] > kMaxExtent) {
        fail(op, "kernel_size ", list(k), ", stride ", list(s), " and dilation ", list(dil),
             " must be at most 2^31");
      }
      if (p[d] < 0 || p[d] > k[d] / 2) {
        fail(op, "padding ", list(p), " must be non-negative and at most half the kernel size ",
             list(k));
      }
      int64_t L = x[2 + d], eff = dil[d] * (k[d] - 1) + 1, padded = L + 2 * p[d];
      if (padded < eff) {
        std::string dilated =
            dil[d] > 1 ? " (dilated to " + std::to_string(eff) + ")" : std::string();
        fail(op, "kernel size ", k[d], dilated, " is bigger than the padded input size ", padded,
             " in spatial dimension ", d, " (input ", x, ", padding ", list(p), ")");
      }
      int64_t num = padded - eff;
      int64_t out = (ceil_mode ? ceil_div(num, s[d]) : num / s[d]) + 1;
      // The last window must start inside the input or the leading padding.
      if (ceil_mode && (out - 1) * s[d] >= L + p[d]) --out;
      plan.out_shape.push_back(out);
      // Max windows are built even for inference: with dilation a window can fall
      // entirely into the padding, which has no maximum.
      if (build || P == Pool::kMax) {
        taps[d] = window_taps(P, L, out, k[d], s[d], p[d], dil[d], include_pad);
        for (int64_t o = 0; o < out; ++o) {
          if (taps[d].offset[o + 1] <= taps[d].offset[o]) {  // (messages built only on failure)
            fail(op, "window ", o, " of spatial dimension ", d,
                 " lies entirely in the padding (input ", x, ", kernel_size ", list(k),
                 ", padding ", list(p), ", dilation ", list(dil), ")");
          }
        }
      }
    }
  }
  if constexpr (P == Pool::kMax) {
    const std::vector<int64_t>&k = a.ints("kernel_size"), &s = a.ints("stride"),
          &p = a.ints("padding"), &dil = a.ints("dilation");
    plan.regular = true;
    plan.kernel_w = k[D - 1];
    plan.stride_w = s[D - 1];
    plan.pad_w = p[D - 1];
    plan.dilation_w = dil[D - 1];
  }
  if (build) {
    if (D == 1) {
      plan.rows.add(0, 1.0);
      plan.rows.end_output();
      plan.cols = std::move(taps[0]);
    } else {
      plan.rows = std::move(taps[0]);
      plan.cols = std::move(taps[1]);
    }
  }
  return plan;
}

using detail::contiguous_as;
using detail::run_float;

template <typename T>
const T* cptr(const Tensor& t) {
  return static_cast<const T*>(t.data_ptr());
}
template <typename T>
T* mptr(const Tensor& t) {
  return static_cast<T*>(t.data_ptr());
}

// ------------------------------------------------------------------ max pooling

// take ? a : b computed with masks: on random data a branch mispredicts half the time,
// and compilers turn the plain conditional into one.
template <typename C>
inline C pick(bool take, C a, C b) {
  using U =
      std::conditional_t<sizeof(C) == 8, uint64_t,
                         std::conditional_t<sizeof(C) == 4, uint32_t,
                                            std::conditional_t<sizeof(C) == 2, uint16_t, uint8_t>>>;
  const U mask = static_cast<U>(U(0) - static_cast<U>(take));
  return std::bit_cast<C>(
      static_cast<U>((std::bit_cast<U>(a) & mask) | (std::bit_cast<U>(b) & ~mask)));
}

// The taps of a max pooling, as flat positions within a plane.
struct MaxWindows {
  std::vector<int64_t> row_off, row_pos, col_off, col_pos;
  int64_t OH = 0, OW = 0, in_plane = 0;
  // Interior outputs [in_lo, in_hi) along W of regular windows read only positions
  // inside the input: ow * stride - pad + j * dilation for j < kernel.
  int64_t in_lo = 0, in_hi = 0, kw = 1, sw = 1, pw = 0, dw = 1;
};

MaxWindows max_windows(const PoolPlan& plan) {
  MaxWindows m;
  m.OH = plan.rows.outputs();
  m.OW = plan.cols.outputs();
  m.in_plane = plan.H * plan.W;
  m.row_off = plan.rows.offset;
  m.col_off = plan.cols.offset;
  m.col_pos = plan.cols.index;
  for (int64_t i : plan.rows.index) m.row_pos.push_back(i * plan.W);
  m.in_lo = m.in_hi = m.OW;
  if (plan.regular) {
    m.kw = plan.kernel_w, m.sw = plan.stride_w, m.pw = plan.pad_w, m.dw = plan.dilation_w;
    m.in_lo = std::min(ceil_div(m.pw, m.sw), m.OW);
    int64_t last = plan.W - 1 - (m.kw - 1) * m.dw + m.pw;  // the largest ow * stride allowed
    m.in_hi = last < 0 ? m.in_lo : std::clamp<int64_t>(last / m.sw + 1, m.in_lo, m.OW);
  }
  return m;
}

// Max pooling of one plane. Taps are visited in row-major order for every output, so ties
// keep the first position and a NaN wins (the last NaN, like PyTorch). The interior of
// each output row goes taps-outermost over the whole row; the borders one output at a time.
template <typename T, typename C>
void max_plane(const MaxWindows& w, const T* xp, T* yp, int64_t* ip, C* m, int64_t* mi) {
  const int64_t *ro = w.row_off.data(), *rp = w.row_pos.data();
  const int64_t *co = w.col_off.data(), *cp = w.col_pos.data();
  const int64_t OW = w.OW, lo = w.in_lo, hi = w.in_hi, sw = w.sw;
  for (int64_t oh = 0; oh < w.OH; ++oh) {
    if (lo < hi) {
      for (int64_t ow = lo; ow < hi; ++ow) {
        mi[ow] = rp[ro[oh]] + ow * sw - w.pw;
        m[ow] = static_cast<C>(xp[mi[ow]]);
      }
      for (int64_t r = ro[oh]; r < ro[oh + 1]; ++r) {
        for (int64_t j = 0; j < w.kw; ++j) {
          const int64_t base = rp[r] - w.pw + j * w.dw;
          for (int64_t ow = lo; ow < hi; ++ow) {
            const int64_t pos = base + ow * sw;
            const C v = static_cast<C>(xp[pos]);
            const bool take = (v > m[ow]) | (v != v);
            m[ow] = pick(take, v, m[ow]);
            mi[ow] = pick(take, pos, mi[ow]);
          }
        }
      }
      for (int64_t ow = lo; ow < hi; ++ow) {
        ip[oh * OW + ow] = mi[ow];
        yp[oh * OW + ow] = xp[mi[ow]];
      }
    }
    for (int64_t ow = 0; ow < OW; ++ow) {
      if (ow == lo) ow = hi;
      if (ow >= OW) break;
      int64_t best = rp[ro[oh]] + cp[co[ow]];
      C bv = static_cast<C>(xp[best]);
      for (int64_t r = ro[oh]; r < ro[oh + 1]; ++r) {
        for (int64_t c = co[ow]; c < co[ow + 1]; ++c) {
          const int64_t pos = rp[r] + cp[c];
          const C v = static_cast<C>(xp[pos]);
          const bool take = (v > bv) | (v != v);
          best = pick(take, pos, best);
          bv = pick(take, v, bv);
        }
      }
      ip[oh * OW + ow] = best;
      yp[oh * OW + ow] = xp[best];
    }
  }
}

// Max over each window (rows x cols taps) of every plane; windows are never empty
// (checked by the plan).
template <typename T>
void window_max(const PoolPlan& plan, const T* x, T* y, int64_t* idx) {
  using C = typename ComputeType<T>::type;
  const MaxWindows w = max_windows(plan);
  const int64_t out_plane = w.OH * w.OW;
  int64_t work = std::max<int64_t>(1, static_cast<int64_t>(w.row_pos.size() * w.col_pos.size()));
  parallel_for(0, plan.planes, std::max<int64_t>(1, kParallelGrain / work),
               [&](int64_t lo, int64_t hi) {
                 std::vector<C> m(w.OW);
                 std::vector<int64_t> mi(w.OW);
                 for (int64_t p = lo; p < hi; ++p) {
                   max_plane<T, C>(w, x + p * w.in_plane, y + p * out_plane, idx + p * out_plane,
                                   m.data(), mi.data());
                 }
               });
}

template <Pool P, int D>
MetaList infer_max(const OpCall& c) {
  const Tensor& x = c.in(0);
  check(x.dtype() != DType::Bool, pool_name<P, D>(), "not defined for bool tensors");
  PoolPlan plan = plan_pool<P, D>(x.shape(), c.attrs, false);
  return {{plan.out_shape, x.dtype()}, {plan.out_shape, DType::Int64}};
}

// The common 2x2 window with stride 2, no padding and every window inside the input
// (floor mode, or even sizes) takes the SIMD row kernel.
bool is_plain_2x2(const Attrs& a, const Shape& x, const Shape& out) {
  auto all = [](const std::vector<int64_t>& v, int64_t value) {
    return v.size() == 2 && v[0] == value && v[1] == value;
  };
  return all(a.ints("kernel_size"), 2) && all(a.ints("stride"), 2) && all(a.ints("padding"), 0) &&
         all(a.ints("dilation"), 1) && out[2] * 2 <= x[2] && out[3] * 2 <= x[3] &&
         x[2] * x[3] < (int64_t{1} << 31);  // the kernel counts positions in 32 bits
}

void max_pool_2x2(const Tensor& x, Tensor& y, Tensor& idx) {
  const Shape& s = x.shape();
  const int64_t planes = s[0] * s[1], H = s[2], W = s[3], OH = y.shape()[2], OW = y.shape()[3];
  const float* px = cptr<float>(x);
  float* py = mptr<float>(y);
  int64_t* pi = mptr<int64_t>(idx);
  const auto kernel = cpu::simd().max_pool_2x2_row_f32;
  parallel_for(
      0, planes * OH, std::max<int64_t>(1, kParallelGrain / (4 * OW)), [&](int64_t lo, int64_t hi) {
        for (int64_t row = lo; row < hi; ++row) {
          int64_t p = row / OH, oh = row % OH;
          kernel(px + p * H * W + 2 * oh * W, W, py + row * OW, pi + row * OW, OW, 2 * oh * W);
        }
      });
}

template <Pool P, int D>
void cpu_max(const OpCall& c, std::span<Tensor> outs) {
  if (outs[0].numel() == 0) return;
  if constexpr (D == 2 && !is_adaptive(P)) {
    if (c.in(0).dtype() == DType::Float32 &&
        is_plain_2x2(c.attrs, c.in(0).shape(), outs[0].shape())) {
      max_pool_2x2(contiguous_as(c.in(0), DType::Float32), outs[0], outs[1]);
      return;
    }
  }
  PoolPlan plan = plan_pool<P, D>(c.in(0).shape(), c.attrs, true);
  Tensor x = contiguous_as(c.in(0), c.in(0).dtype());
  visit_dtype(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if constexpr (!std::is_same_v<T, bool>) {
      window_max<T>(plan, cptr<T>(x), mptr<T>(outs[0]), mptr<int64_t>(outs[1]));
    }
  });
}

// Scatter-adds g [N, C, *out] into zeros of input_shape [N, C, *in] at the indices.
MetaList infer_max_backward(const OpCall& c) {
  const char* op = "max_pool_backward";
  const Tensor &g = c.in(0), &idx = c.in(1);
  Shape in(c.attrs.ints("input_shape"));
  check(is_floating(g.dtype()), op, "expects a floating-point gradient, got ",
        dtype_name(g.dtype()));
  check(idx.dtype() == DType::Int64 && idx.shape() == g.shape(), op, "indices (",
        dtype_name(idx.dtype()), " ", idx.shape(), ") must be int64 of the gradient's shape ",
        g.shape());
  check(g.dim() >= 2 && in.size() == static_cast<size_t>(g.dim()) && in[0] == g.shape()[0] &&
            in[1] == g.shape()[1],
        op, "gradient ", g.shape(), " does not match the input shape ", in);
  return {{in, g.dtype()}};
}

void cpu_max_backward(const OpCall& c, std::span<Tensor> outs) {
  const Tensor& out = outs[0];
  if (out.numel() == 0) return;
  int64_t planes = out.shape()[0] * out.shape()[1];
  int64_t in_plane = out.numel() / planes, out_plane = c.in(0).numel() / planes;
  run_float(c.inputs, out, [&](auto tag, const std::vector<Tensor>& in, const Tensor& o) {
    using T = decltype(tag);
    const T* g = cptr<T>(in[0]);
    const int64_t* idx = cptr<int64_t>(in[1]);
    T* gx = mptr<T>(o);
    parallel_for(0, planes, std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(in_plane, 1)),
                 [&](int64_t lo, int64_t hi) {
                   for (int64_t p = lo; p < hi; ++p) {
                     T* gp = gx + p * in_plane;
                     std::fill(gp, gp + in_plane, T(0));
                     for (int64_t j = 0; j < out_plane; ++j) {
                       int64_t i = idx[p * out_plane + j];
                       if (i >= 0 && i < in_plane) gp[i] += g[p * out_plane + j];
                     }
                   }
                 });
  });
}

// Gathers src [N, C, *in] at the indices [N, C, *out] of each plane.
MetaList infer_max_gather(const OpCall& c) {
  const char* op = "max_pool_gather";
  const Tensor &src = c.in(0), &idx = c.in(1);
  check(is_floating(src.dtype()), op, "expects a floating-point source, got ",
        dtype_name(src.dtype()));
  check(idx.dtype() == DType::Int64 && idx.dim() == src.dim() && src.dim() >= 2 &&
            idx.shape()[0] == src.shape()[0] && idx.shape()[1] == src.shape()[1],
        op, "indices (", dtype_name(idx.dtype()), " ", idx.shape(),
        ") must be int64 with the source's batch and channels ", src.shape());
  return {{idx.shape(), src.dtype()}};
}

void cpu_max_gather(const OpCall& c, std::span<Tensor> outs) {
  const Tensor& out = outs[0];
  if (out.numel() == 0) return;
  int64_t planes = out.shape()[0] * out.shape()[1];
  int64_t in_plane = c.in(0).numel() / planes, out_plane = out.numel() / planes;
  run_float(c.inputs, out, [&](auto tag, const std::vector<Tensor>& in, const Tensor& o) {
    using T = decltype(tag);
    const T* src = cptr<T>(in[0]);
    const int64_t* idx = cptr<int64_t>(in[1]);
    T* y = mptr<T>(o);
    parallel_for(0, planes * out_plane, kParallelGrain, [&](int64_t lo, int64_t hi) {
      for (int64_t j = lo; j < hi; ++j) {
        int64_t i = idx[j];
        y[j] = i >= 0 && i < in_plane ? src[(j / out_plane) * in_plane + i] : T(0);
      }
    });
  });
}

TensorList grad_max_backward(const GradCall& g);
TensorList grad_max_gather(const GradCall& g);
constexpr OpDef kMaxBackward{"max_pool_backward", infer_max_backward, cpu_max_backward, nullptr,
                             grad_max_backward,   kSaveInputs};
constexpr OpDef kMaxGather{"max_pool_gather", infer_max_gather, cpu_max_gather,
                           nullptr,           grad_max_gather,  kSaveInputs};

Tensor scatter_at(const Tensor& g, const Tensor& idx, const Shape& input_shape) {
  return run_op1(kMaxBackward, {g, idx}, {{"input_shape", input_shape.vec()}});
}

// A scatter (gradient, indices -> input-shaped gradient) and its gather are each other's
// gradient; both pairs below (int64 indices, uint8 2x2 taps) share these rules.
TensorList grad_of_scatter(const GradCall& g, const OpDef& gather) {
  TensorList out(2);
  if (g.needs(0)) out[0] = run_op1(gather, {g.gout(), g.in(1)});
  return out;
}

TensorList grad_of_gather(const GradCall& g, const OpDef& scatter) {
  TensorList out(2);
  if (g.needs(0)) {
    out[0] = run_op1(scatter, {g.gout(), g.in(1)}, {{"input_shape", g.in_shape(0).vec()}});
  }
  return out;
}

TensorList grad_max_backward(const GradCall& g) { return grad_of_scatter(g, kMaxGather); }
TensorList grad_max_gather(const GradCall& g) { return grad_of_gather(g, kMaxBackward); }

template <Pool P, int D>
TensorList grad_max(const GradCall& g) {
  return {scatter_at(g.gout(0), g.out(1).detach(), g.in_shape(0))};
}

template <Pool P, int D>
constexpr OpDef kMaxPool = [] {
  OpDef def{pool_name<P, D>(), infer_max<P, D>, cpu_max<P, D>,
            nullptr,           grad_max<P, D>,  kSaveOutputs};
  def.samples = pool_samples<P, D>;
  return def;
}();

// ------------------------------------------------------------------ 2x2 max pooling
// max_pool2d without indices, float32, 2x2 windows of stride 2 inside the input (the usual
// CNN downsampling) keeps only each window's winning tap (uint8 0..3) for its gradient: an
// eighth of the int64 index traffic, and the backward writes each window whole instead of
// zero-filling the gradient and scattering into it. The three ops mirror max_pool2d,
// max_pool_backward and max_pool_gather, each the gradient of the next.

constexpr const char* kPool2x2 = "max_pool2d_2x2";
constexpr int64_t kMaxRow = 64;  // outputs decoded at a time by the backward

MetaList infer_pool_2x2(const OpCall& c) {
  const Tensor& x = c.in(0);
  check(x.dim() == 4 && x.dtype() == DType::Float32, kPool2x2, "expects a 4-d float32 input, got ",
        dtype_name(x.dtype()), " ", x.shape());
  Shape out{x.shape()[0], x.shape()[1], x.shape()[2] / 2, x.shape()[3] / 2};
  return {{out, DType::Float32}, {out, DType::UInt8}};
}

void cpu_pool_2x2(const OpCall& c, std::span<Tensor> outs) {
  if (outs[0].numel() == 0) return;
  Tensor x = contiguous_as(c.in(0), DType::Float32);
  const Shape& s = x.shape();
  detail::max_pool_2x2_taps(cptr<float>(x), s[0] * s[1], s[2], s[3], mptr<float>(outs[0]),
                            mptr<uint8_t>(outs[1]));
}

// gx [N, C, H, W] from g [N, C, H/2, W/2]: each window gets g at its winning tap, zeros
// elsewhere (a trailing odd row or column included).
MetaList infer_pool_2x2_backward(const OpCall& c) {
  const char* op = "max_pool2d_2x2_backward";
  const Tensor &g = c.in(0), &taps = c.in(1);
  Shape in(c.attrs.ints("input_shape"));
  check(g.dtype() == DType::Float32 && taps.dtype() == DType::UInt8 && taps.shape() == g.shape(),
        op, "expects a float32 gradient and uint8 taps of one shape, got ", dtype_name(g.dtype()),
        " ", g.shape(), " and ", dtype_name(taps.dtype()), " ", taps.shape());
  check(in.size() == 4 && g.dim() == 4 && in[0] == g.shape()[0] && in[1] == g.shape()[1] &&
            in[2] / 2 == g.shape()[2] && in[3] / 2 == g.shape()[3],
        op, "gradient ", g.shape(), " does not match the input shape ", in);
  return {{in, DType::Float32}};
}

void cpu_pool_2x2_backward(const OpCall& c, std::span<Tensor> outs) {
  const Tensor& out = outs[0];
  if (out.numel() == 0) return;
  Tensor g = contiguous_as(c.in(0), DType::Float32), taps = c.in(1).contiguous();
  const Shape& s = out.shape();
  detail::max_pool_2x2_scatter_into(cptr<float>(g), cptr<uint8_t>(taps), s[0] * s[1], s[2], s[3],
                                    mptr<float>(out));
}

// y [N, C, H/2, W/2] = src [N, C, H, W] at each window's winning tap.
MetaList infer_pool_2x2_gather(const OpCall& c) {
  const char* op = "max_pool2d_2x2_gather";
  const Tensor &src = c.in(0), &taps = c.in(1);
  check(src.dtype() == DType::Float32 && src.dim() == 4 && taps.dtype() == DType::UInt8 &&
            taps.dim() == 4 && taps.shape()[0] == src.shape()[0] &&
            taps.shape()[1] == src.shape()[1] && taps.shape()[2] == src.shape()[2] / 2 &&
            taps.shape()[3] == src.shape()[3] / 2,
        op, "expects a float32 source and uint8 taps of half its size, got ",
        dtype_name(src.dtype()), " ", src.shape(), " and ", dtype_name(taps.dtype()), " ",
        taps.shape());
  return {{taps.shape(), DType::Float32}};
}

void cpu_pool_2x2_gather(const OpCall& c, std::span<Tensor> outs) {
  const Tensor& out = outs[0];
  if (out.numel() == 0) return;
  Tensor src = contiguous_as(c.in(0), DType::Float32), taps = c.in(1).contiguous();
  const int64_t H = src.shape()[2], W = src.shape()[3], OH = H / 2, OW = W / 2;
  const float* ps = cptr<float>(src);
  const uint8_t* pt = cptr<uint8_t>(taps);
  float* y = mptr<float>(out);
  parallel_for(0, out.numel(), kParallelGrain, [&](int64_t lo, int64_t hi) {
    for (int64_t j = lo; j < hi; ++j) {
      const int64_t p = j / (OH * OW), oh = j / OW % OH, ow = j % OW, t = pt[j] & 3;
      y[j] = ps[(p * H + 2 * oh + t / 2) * W + 2 * ow + t % 2];
    }
  });
}

TensorList grad_pool_2x2(const GradCall& g);
TensorList grad_pool_2x2_backward(const GradCall& g);
TensorList grad_pool_2x2_gather(const GradCall& g);
constexpr const char* kPool2x2Values = "max_pool2d_2x2_values";
constexpr OpDef kPool2x2Op = [] {
  OpDef def{kPool2x2, infer_pool_2x2, cpu_pool_2x2, nullptr, grad_pool_2x2, kSaveOutputs};
  // The taps (output 1) serve the gradient only.
  def.droppable_output = 1;
  def.samples = pool_2x2_samples;
  def.without_droppable_output = kPool2x2Values;
  return def;
}();
constexpr OpDef kPool2x2Backward{"max_pool2d_2x2_backward", infer_pool_2x2_backward,
                                 cpu_pool_2x2_backward,     nullptr,
                                 grad_pool_2x2_backward,    kSaveInputs};
constexpr OpDef kPool2x2Gather{"max_pool2d_2x2_gather", infer_pool_2x2_gather,
                               cpu_pool_2x2_gather,     nullptr,
                               grad_pool_2x2_gather,    kSaveInputs};

Tensor scatter_2x2(const Tensor& g, const Tensor& taps, const Shape& input_shape) {
  return run_op1(kPool2x2Backward, {g, taps}, {{"input_shape", input_shape.vec()}});
}

TensorList grad_pool_2x2(const GradCall& g) {
  return {scatter_2x2(g.gout(0), g.out(1).detach(), g.in_shape(0))};
}

TensorList grad_pool_2x2_backward(const GradCall& g) { return grad_of_scatter(g, kPool2x2Gather); }
TensorList grad_pool_2x2_gather(const GradCall& g) { return grad_of_gather(g, kPool2x2Backward); }

const OpRegistrar r_pool_2x2(kPool2x2Op), r_pool_2x2_backward(kPool2x2Backward),
    r_pool_2x2_gather(kPool2x2Gather);

// max_pool2d_2x2 without the taps, for graphs that never read them (inference; the pass
// drop_unread_outputs makes it). Not differentiable. It may write over its own input:
// output element k reads inputs at k or after (4k for even sizes), so rows taken in order
// by one thread never overwrite an input still to be read, and the graph executor lets it
// shrink its input's buffer in place (executor.cc).

MetaList infer_pool_2x2_values(const OpCall& c) { return {infer_pool_2x2(c)[0]}; }

void cpu_pool_2x2_values(const OpCall& c, std::span<Tensor> outs) {
  if (outs[0].numel() == 0) return;
  Tensor x = contiguous_as(c.in(0), DType::Float32);
  const Shape& s = x.shape();
  const int64_t H = s[2], W = s[3], OH = H / 2, OW = W / 2, rows = s[0] * s[1] * OH;
  const float* px = cptr<float>(x);
  float* py = mptr<float>(outs[0]);
  const bool in_place = py < px + x.numel() && px < py + outs[0].numel();
  const auto kernel = cpu::simd().max_pool_2x2_taps_row_f32;
  parallel_for(0, rows, in_place ? rows : std::max<int64_t>(1, kParallelGrain / (4 * OW)),
               [&](int64_t lo, int64_t hi) {
                 uint8_t taps[kMaxRow];  // written and dropped; no allocation per call
                 for (int64_t row = lo; row < hi; ++row) {
                   const float* in = px + (row / OH * H + 2 * (row % OH)) * W;
                   for (int64_t o = 0; o < OW; o += kMaxRow) {
                     kernel(in + 2 * o, W, py + row * OW + o, taps, std::min(kMaxRow, OW - o));
                   }
                 }
               });
}

TensorList decompose_pool_2x2_values(std::span<const Tensor> inputs, const Attrs&) {
  check(inputs.size() == 1, kPool2x2Values, "needs one input");
  return {max_pool2d(inputs[0], 2, 2)};
}

constexpr OpDef kPool2x2ValuesOp = [] {
  OpDef def{kPool2x2Values, infer_pool_2x2_values, cpu_pool_2x2_values};
  def.in_place = InPlace::head_of_input;
  def.decompose = decompose_pool_2x2_values;
  def.samples = pool_2x2_samples;
  return def;
}();
const OpRegistrar r_pool_2x2_values(kPool2x2ValuesOp);

// ------------------------------------------------------------------ average pooling

template <Pool P, int D>
MetaList infer_avg(const OpCall& c) {
  const Tensor& x = c.in(0);
  check(is_floating(x.dtype()), pool_name<P, D>(), "expects a floating-point input, got ",
        dtype_name(x.dtype()));
  return {{plan_pool<P, D>(x.shape(), c.attrs, false).out_shape, x.dtype()}};
}

template <Pool P, int D>
void cpu_avg(const OpCall& c, std::span<Tensor> outs) {
  if (outs[0].numel() == 0) return;
  PoolPlan plan = plan_pool<P, D>(c.in(0).shape(), c.attrs, true);
  run_float(c.inputs, outs[0], [&](auto tag, const std::vector<Tensor>& in, const Tensor& o) {
    using T = decltype(tag);
    cpu::separable_apply<T>(plan.rows, plan.cols, plan.planes, plan.H, plan.W, cptr<T>(in[0]),
                            mptr<T>(o));
  });
}

template <Pool P, int D>
MetaList infer_avg_backward(const OpCall& c) {
  const Tensor& g = c.in(0);
  Shape in(c.attrs.ints("input_shape"));
  check(is_floating(g.dtype()), backward_name<P, D>(), "expects a floating-point gradient, got ",
        dtype_name(g.dtype()));
  Shape expected = plan_pool<P, D>(in, c.attrs, false).out_shape;
  check(g.shape() == expected, backward_name<P, D>(), "gradient has shape ", g.shape(),
        ", expected ", expected, " for input ", in);
  return {{in, g.dtype()}};
}

template <Pool P, int D>
void cpu_avg_backward(const OpCall& c, std::span<Tensor> outs) {
  if (outs[0].numel() == 0) return;
  PoolPlan plan = plan_pool<P, D>(outs[0].shape(), c.attrs, true);
  run_float(c.inputs, outs[0], [&](auto tag, const std::vector<Tensor>& in, const Tensor& o) {
    using T = decltype(tag);
    cpu::separable_apply_adjoint<T>(plan.rows, plan.cols, plan.planes, plan.H, plan.W,
                                    cptr<T>(in[0]), mptr<T>(o));
  });
}

template <Pool P, int D>
TensorList grad_avg(const GradCall& g);
template <Pool P, int D>
TensorList grad_avg_backward(const GradCall& g);

template <Pool P, int D>
constexpr OpDef kAvgPool = [] {
  OpDef def{pool_name<P, D>(), infer_avg<P, D>, cpu_avg<P, D>,
            nullptr,           grad_avg<P, D>,  kSaveNothing};
  def.samples = pool_samples<P, D>;
  return def;
}();
template <Pool P, int D>
constexpr OpDef kAvgPoolBackward{backward_name<P, D>(),   infer_avg_backward<P, D>,
                                 cpu_avg_backward<P, D>,  nullptr,
                                 grad_avg_backward<P, D>, kSaveNothing};

template <Pool P, int D>
TensorList grad_avg(const GradCall& g) {
  return {run_adjoint(kAvgPoolBackward<P, D>, g)};
}

template <Pool P, int D>
TensorList grad_avg_backward(const GradCall& g) {
  return {run_op1(kAvgPool<P, D>, {g.gout()}, g.attrs)};
}

const OpRegistrar r1(kMaxBackward), r2(kMaxGather), r3(kMaxPool<Pool::kMax, 1>),
    r4(kMaxPool<Pool::kMax, 2>), r5(kMaxPool<Pool::kAdaptiveMax, 1>),
    r6(kMaxPool<Pool::kAdaptiveMax, 2>), r7(kAvgPool<Pool::kAvg, 1>), r8(kAvgPool<Pool::kAvg, 2>),
    r9(kAvgPool<Pool::kAdaptiveAvg, 1>), r10(kAvgPool<Pool::kAdaptiveAvg, 2>),
    r11(kAvgPoolBackward<Pool::kAvg, 1>), r12(kAvgPoolBackward<Pool::kAvg, 2>),
    r13(kAvgPoolBackward<Pool::kAdaptiveAvg, 1>), r14(kAvgPoolBackward<Pool::kAdaptiveAvg, 2>);

// ------------------------------------------------------------------ public helpers

// D values from a user argument of 1 or D values (or `fallback` when empty).
std::vector<int64_t> spread(const char* op, const char* what, const SpatialArg& arg, int D,
                            const SpatialArg* fallback = nullptr) {
  const std::vector<int64_t>& v =
      arg.values.empty() && fallback != nullptr ? fallback->values : arg.values;
  check(v.size() == 1 || static_cast<int>(v.size()) == D, op, what, " needs 1 or ", D,
        " values, got ", v.size());
  return v.size() == 1 ? std::vector<int64_t>(D, v[0]) : v;
}

template <Pool P, int D>
std::pair<Tensor, Tensor> max_pool(const Tensor& x, const Attrs& attrs) {
  check_defined(x, pool_name<P, D>(), "input");
  TensorList out = run_op(kMaxPool<P, D>, {x}, attrs);
  return {out[0], out[1]};
}

template <int D>
Attrs window_attrs(const char* op, const SpatialArg& kernel, const SpatialArg& stride,
                   const SpatialArg& padding, const SpatialArg& dilation, bool ceil_mode) {
  return {{"kernel_size", spread(op, "kernel_size", kernel, D)},
          {"stride", spread(op, "stride", stride, D, &kernel)},
          {"padding", spread(op, "padding", padding, D)},
          {"dilation", spread(op, "dilation", dilation, D)},
          {"ceil_mode", ceil_mode}};
}

template <int D>
std::pair<Tensor, Tensor> max_pool_public(const Tensor& x, const SpatialArg& kernel,
                                          const SpatialArg& stride, const SpatialArg& padding,
                                          const SpatialArg& dilation, bool ceil_mode) {
  const char* op = pool_name<Pool::kMax, D>();
  return max_pool<Pool::kMax, D>(x,
                                 window_attrs<D>(op, kernel, stride, padding, dilation, ceil_mode));
}

template <int D>
Tensor avg_pool_public(const Tensor& x, const SpatialArg& kernel, const SpatialArg& stride,
                       const SpatialArg& padding, bool ceil_mode, bool count_include_pad) {
  const char* op = pool_name<Pool::kAvg, D>();
  check_defined(x, op, "input");
  Attrs a = window_attrs<D>(op, kernel, stride, padding, 1, ceil_mode);
  a.set("count_include_pad", count_include_pad);
  return run_op1(kAvgPool<Pool::kAvg, D>, {x}, a);
}

template <int D>
std::pair<Tensor, Tensor> adaptive_max_public(const Tensor& x, const SpatialArg& size) {
  const char* op = pool_name<Pool::kAdaptiveMax, D>();
  return max_pool<Pool::kAdaptiveMax, D>(x, {{"output_size", spread(op, "output_size", size, D)}});
}

template <int D>
Tensor adaptive_avg_public(const Tensor& x, const SpatialArg& size) {
  const char* op = pool_name<Pool::kAdaptiveAvg, D>();
  check_defined(x, op, "input");
  return run_op1(kAvgPool<Pool::kAdaptiveAvg, D>, {x},
                 {{"output_size", spread(op, "output_size", size, D)}});
}

}  // namespace

Tensor max_pool1d(const Tensor& input, const SpatialArg& kernel_size, const SpatialArg& stride,
                  const SpatialArg& padding, const SpatialArg& dilation, bool ceil_mode) {
  return max_pool_public<1>(input, kernel_size, stride, padding, dilation, ceil_mode).first;
}
Tensor max_pool2d(const Tensor& input, const SpatialArg& kernel_size, const SpatialArg& stride,
                  const SpatialArg& padding, const SpatialArg& dilation, bool ceil_mode) {
  const char* op = pool_name<Pool::kMax, 2>();
  check_defined(input, op, "input");
  Attrs a = window_attrs<2>(op, kernel_size, stride, padding, dilation, ceil_mode);
  const Shape& s = input.shape();
  // Windows inside the input: floor mode, or ceil mode on even sizes; an input smaller than
  // a window takes the general path, which reports it.
  if (input.dtype() == DType::Float32 && input.dim() == 4 && s[2] >= 2 && s[3] >= 2 &&
      (!ceil_mode || s[2] % 2 + s[3] % 2 == 0)) {
    auto all = [&](const char* name, int64_t v) {
      const std::vector<int64_t>& x = a.ints(name);
      return x[0] == v && x[1] == v;
    };
    if (all("kernel_size", 2) && all("stride", 2) && all("padding", 0) && all("dilation", 1)) {
      return run_op(kPool2x2Op, {input})[0];
    }
  }
  return max_pool<Pool::kMax, 2>(input, a).first;
}
std::pair<Tensor, Tensor> max_pool1d_with_indices(const Tensor& input,
                                                  const SpatialArg& kernel_size,
                                                  const SpatialArg& stride,
                                                  const SpatialArg& padding,
                                                  const SpatialArg& dilation, bool ceil_mode) {
  return max_pool_public<1>(input, kernel_size, stride, padding, dilation, ceil_mode);
}
std::pair<Tensor, Tensor> max_pool2d_with_indices(const Tensor& input,
                                                  const SpatialArg& kernel_size,
                                                  const SpatialArg& stride,
                                                  const SpatialArg& padding,
                                                  const SpatialArg& dilation, bool ceil_mode) {
  return max_pool_public<2>(input, kernel_size, stride, padding, dilation, ceil_mode);
}

Tensor avg_pool1d(const Tensor& input, const SpatialArg& kernel_size, const SpatialArg& stride,
                  const SpatialArg& padding, bool ceil_mode, bool count_include_pad) {
  return avg_pool_public<1>(input, kernel_size, stride, padding, ceil_mode, count_include_pad);
}
Tensor avg_pool2d(const Tensor& input, const SpatialArg& kernel_size, const SpatialArg& stride,
                  const SpatialArg& padding, bool ceil_mode, bool count_include_pad) {
  return avg_pool_public<2>(input, kernel_size, stride, padding, ceil_mode, count_include_pad);
}

Tensor adaptive_avg_pool1d(const Tensor& input, const SpatialArg& output_size) {
  return adaptive_avg_public<1>(input, output_size);
}
Tensor adaptive_avg_pool2d(const Tensor& input, const SpatialArg& output_size) {
  return adaptive_avg_public<2>(input, output_size);
}
Tensor adaptive_max_pool1d(const Tensor& input, const SpatialArg& output_size) {
  return adaptive_max_public<1>(input, output_size).first;
}
Tensor adaptive_max_pool2d(const Tensor& input, const SpatialArg& output_size) {
  return adaptive_max_public<2>(input, output_size).first;
}
std::pair<Tensor, Tensor> adaptive_max_pool1d_with_indices(const Tensor& input,
                                                           const SpatialArg& output_size) {
  return adaptive_max_public<1>(input, output_size);
}
std::pair<Tensor, Tensor> adaptive_max_pool2d_with_indices(const Tensor& input,
                                                           const SpatialArg& output_size) {
  return adaptive_max_public<2>(input, output_size);
}

namespace detail {
void max_pool_2x2_taps(const float* x, int64_t planes, int64_t H, int64_t W, float* y,
                       uint8_t* taps) {
  const int64_t OH = H / 2, OW = W / 2;
  const auto kernel = cpu::simd().max_pool_2x2_taps_row_f32;
  parallel_for(0, planes * OH, std::max<int64_t>(1, kParallelGrain / (4 * OW)),
               [&](int64_t lo, int64_t hi) {
                 for (int64_t row = lo; row < hi; ++row) {
                   int64_t p = row / OH, oh = row % OH;
                   kernel(x + (p * H + 2 * oh) * W, W, y + row * OW, taps + row * OW, OW);
                 }
               });
}

void max_pool_2x2_scatter_into(const float* g, const uint8_t* taps, int64_t planes, int64_t H,
                               int64_t W, float* gx) {
  const int64_t OH = H / 2, OW = W / 2;
  parallel_for(0, planes, std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(H * W, 1)),
               [&](int64_t lo, int64_t hi) {
                 for (int64_t p = lo; p < hi; ++p) {
                   // Zero the plane, then store each window's value at its tap: a memset
                   // and a quarter of the stores beat writing all four taps (measured).
                   float* plane = gx + p * H * W;
                   std::fill(plane, plane + H * W, 0.0f);
                   const float* gr = g + p * OH * OW;
                   const uint8_t* tr = taps + p * OH * OW;
                   for (int64_t oh = 0; oh < OH; ++oh) {
                     // Window (oh, ow) starts at 2 * (oh * W + ow); tap t adds (t / 2) * W +
                     // t % 2. Offsets first, then the stores: a uint8 load may alias the
                     // floats stored, which serialized the fused loop (backward of 128x32x28x28:
                     // 2.5 ms fused, 0.41 ms split, 2 threads). Taps past 3 (a hostile graph's)
                     // keep their low bits, inside the window.
                     int64_t offset[kMaxRow];
                     for (int64_t ow0 = 0; ow0 < OW; ow0 += kMaxRow) {
                       const int64_t n = std::min<int64_t>(kMaxRow, OW - ow0);
                       for (int64_t k = 0; k < n; ++k) {
                         const int64_t t = tr[oh * OW + ow0 + k] & 3;
                         offset[k] = 2 * (oh * W + ow0 + k) + (t >> 1) * W + (t & 1);
                       }
                       for (int64_t k = 0; k < n; ++k) plane[offset[k]] = gr[oh * OW + ow0 + k];
                     }
                   }
                 }
               });
}

Tensor max_pool2d_2x2_scatter(const Tensor& g, const Tensor& taps, const Shape& input_shape) {
  return scatter_2x2(g, taps, input_shape);
}
}  // namespace detail

}  // namespace tessera
