// Max and average pooling, float32 and int8 (NHWC).
#include <algorithm>
#include <limits>
#include <type_traits>

#include "kernel.h"

namespace tessera::lite {
namespace {

struct PoolGeometry {
  int N, H, W, C, KH, KW, OH, OW, sh, sw, pt, pl;
  bool exclude_padding, int8;
};

template <bool kMax>
TESSERA_LITE_COLD Result prepare_pool(OpContext& ctx, size_t* scratch_bytes) {
  if (Result r = expect_arity(ctx, 1, 1, 1); !r.ok()) return r;
  const bool int8 = ctx.in[0]->dtype == DType::int8;
  if (int8) {
    // Pooling keeps the quantization: input and output share scale and zero point.
    const TensorDesc &x = *ctx.in[0], &y = *ctx.out[0];
    if (!is_int8_per_tensor(x) || !is_int8_per_tensor(y) || x.scales != y.scales ||
        x.zero_points != y.zero_points) {
      return op_error(ctx,
                      "integer pooling needs int8 input and output with the same scale "
                      "and zero point");
    }
  } else if (Result r = expect_dtype(ctx, DType::float32); !r.ok()) {
    return r;
  }
  const schema::PoolOptions* o = ctx.op().options_as_PoolOptions();
  if (!o) return op_error(ctx, "needs PoolOptions");
  const TensorDesc& x = *ctx.in[0];
  if (x.rank() != 4) return op_error(ctx, "expects input [N,H,W,C], got " + shape_string(x.shape));
  auto bad = [](int v, int lo) { return v < lo || v > (1 << 16); };
  if (bad(o->filter_h(), 1) || bad(o->filter_w(), 1) || bad(o->stride_h(), 1) ||
      bad(o->stride_w(), 1) || bad(o->pad_top(), 0) || bad(o->pad_left(), 0) ||
      bad(o->pad_bottom(), 0) || bad(o->pad_right(), 0) || o->pad_top() >= o->filter_h() ||
      o->pad_left() >= o->filter_w() || o->pad_bottom() >= o->filter_h() ||
      o->pad_right() >= o->filter_w()) {
    return op_error(ctx, "needs filter and stride in [1, 65536] and padding below the filter");
  }
  PoolGeometry& g = ctx.params_as<PoolGeometry>();
  g = {x.dim(0), x.dim(1),      x.dim(2),      x.dim(3),     o->filter_h(), o->filter_w(),       0,
       0,        o->stride_h(), o->stride_w(), o->pad_top(), o->pad_left(), o->exclude_padding()};
  auto out = [](int in, int k, int s, int lo, int hi) {
    int64_t padded = int64_t{in} + lo + hi;
    return padded < k ? 0 : static_cast<int>((padded - k) / s + 1);
  };
  g.int8 = int8;
  g.OH = out(g.H, g.KH, g.sh, g.pt, o->pad_bottom());
  g.OW = out(g.W, g.KW, g.sw, g.pl, o->pad_right());
  *scratch_bytes = static_cast<size_t>(g.C) * 4;  // per-channel accumulators
  return expect_output_shape(ctx, 0, {g.N, g.OH, g.OW, g.C});
}

// Float (T = float, Acc = float) or int8 (T = int8_t, Acc = int32_t: sums are rounded
// back, the scale being shared).
// The input rows [h0, h1) and columns [w0, w1) that output pixel (oh, ow) reads.
struct Window {
  int h0, h1, w0, w1;
};
Window window_of(const PoolGeometry& g, int oh, int ow) {
  const int h0 = oh * g.sh - g.pt, w0 = ow * g.sw - g.pl;
  return {std::max(h0, 0), std::min(h0 + g.KH, g.H), std::max(w0, 0), std::min(w0 + g.KW, g.W)};
}

// Average pooling: float (T = float, Acc = float) or int8 (T = int8_t, Acc = int32_t: sums
// are rounded back, the scale being shared).
template <typename T, typename Acc>
void avg_pool(const PoolGeometry& g, const T* __restrict x, T* __restrict y, Acc* __restrict acc) {
  // Locals, not g's fields, in the loops: int8 pointers may alias anything, g included.
  const int C = g.C, H = g.H, W = g.W;
  for (int n = 0; n < g.N; ++n) {
    for (int oh = 0; oh < g.OH; ++oh) {
      for (int ow = 0; ow < g.OW; ++ow) {
        const Window win = window_of(g, oh, ow);
        T* out = y + ((int64_t{n} * g.OH + oh) * g.OW + ow) * C;
        for (int c = 0; c < C; ++c) acc[c] = Acc{0};
        for (int h = win.h0; h < win.h1; ++h) {
          for (int w = win.w0; w < win.w1; ++w) {
            const T* in = x + ((int64_t{n} * H + h) * W + w) * C;
            for (int c = 0; c < C; ++c) acc[c] += Acc{in[c]};
          }
        }
        const int cells = g.exclude_padding ? (win.h1 - win.h0) * (win.w1 - win.w0) : g.KH * g.KW;
        const float scale = cells > 0 ? 1.0f / static_cast<float>(cells) : 0.0f;
        for (int c = 0; c < C; ++c) {
          if constexpr (std::is_same_v<T, float>) {
            out[c] = acc[c] * scale;
          } else {
            out[c] = static_cast<T>(std::lrintf(static_cast<float>(acc[c]) * scale));
          }
        }
      }
    }
  }
}

// Max pooling straight into the output, 16 channels at a time with a fixed trip count (a
// loop over C of unknown length costs a vector prologue and epilogue per pixel and tap,
// more than the work itself at C = 32).
template <typename T>
void max_pool(const PoolGeometry& g, const T* __restrict x, T* __restrict y) {
  constexpr int L = 16;
  // Locals, not g's fields, in the loops: int8 pointers may alias anything, g included.
  const int C = g.C, H = g.H, W = g.W;
  for (int n = 0; n < g.N; ++n) {
    for (int oh = 0; oh < g.OH; ++oh) {
      for (int ow = 0; ow < g.OW; ++ow) {
        const auto [h0, h1, w0, w1] = window_of(g, oh, ow);
        T* __restrict out = y + ((int64_t{n} * g.OH + oh) * g.OW + ow) * C;
        if (h0 >= h1 || w0 >= w1) {  // a window of padding only
          std::fill(out, out + C, std::numeric_limits<T>::lowest());
          continue;
        }
        const T* first = x + ((int64_t{n} * H + h0) * W + w0) * C;
        int c = 0;
        for (; c + L <= C; c += L) {
          T m[L];
#pragma omp simd
          for (int l = 0; l < L; ++l) m[l] = first[c + l];
          for (int h = h0; h < h1; ++h) {
            for (int w = w0; w < w1; ++w) {
              const T* in = x + ((int64_t{n} * H + h) * W + w) * C + c;
#pragma omp simd
              for (int l = 0; l < L; ++l) m[l] = std::max(m[l], in[l]);
            }
          }
#pragma omp simd
          for (int l = 0; l < L; ++l) out[c + l] = m[l];
        }
        for (; c < C; ++c) {
          T m = first[c];
          for (int h = h0; h < h1; ++h) {
            for (int w = w0; w < w1; ++w)
              m = std::max(m, x[((int64_t{n} * H + h) * W + w) * C + c]);
          }
          out[c] = m;
        }
      }
    }
  }
}

}  // namespace

template <bool kMax>
void eval_pool(const OpContext& ctx) {
  const PoolGeometry& g = ctx.params_as<PoolGeometry>();
  if constexpr (kMax) {  // a maximum needs no wider type
    if (g.int8) return max_pool(g, ctx.input<int8_t>(0), ctx.output<int8_t>(0));
    return max_pool(g, ctx.input<float>(0), ctx.output<float>(0));
  } else {
    if (g.int8) {
      return avg_pool(g, ctx.input<int8_t>(0), ctx.output<int8_t>(0),
                      static_cast<int32_t*>(ctx.scratch));
    }
    avg_pool(g, ctx.input<float>(0), ctx.output<float>(0), static_cast<float*>(ctx.scratch));
  }
}

const Kernel kMaxPool2D{prepare_pool<true>, eval_pool<true>};
const Kernel kAveragePool2D{prepare_pool<false>, eval_pool<false>};

}  // namespace tessera::lite
