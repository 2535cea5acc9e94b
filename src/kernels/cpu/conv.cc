#include "conv.h"

#include "conv_depthwise.h"
#include "conv_first_layer.h"
#include "conv_onednn.h"

#include <algorithm>
#include <type_traits>

#include "gemm.h"
#include "simd.h"
#include "tessera/core/parallel.h"

namespace tessera::cpu {

bool ConvGeometry::pointwise() const {
  for (int d = 0; d < 3; ++d) {
    if (kernel[d] != 1 || stride[d] != 1 || pad[d] != 0 || out[d] != in[d]) return false;
  }
  return true;
}

namespace {

// Ceiling of a / b for b > 0 and any sign of a.
int64_t ceil_div(int64_t a, int64_t b) { return a >= 0 ? (a + b - 1) / b : -((-a) / b); }

// Outputs [lo, hi) of a row whose input position o * stride + offset lies in [0, size).
void valid_range(int64_t offset, int64_t stride, int64_t size, int64_t outputs, int64_t* lo,
                 int64_t* hi) {
  *lo = std::clamp<int64_t>(ceil_div(-offset, stride), 0, outputs);
  *hi = std::clamp<int64_t>(ceil_div(size - offset, stride), *lo, outputs);
}

// C = A * B (+ C when accumulate) with gemm's conventions (see gemm.h).
template <typename T>
void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, const T* a, int64_t lda,
          const T* b, int64_t ldb, T* c, int64_t ldc, bool accumulate) {
  if constexpr (std::is_same_v<T, float>) {
    gemm_f32(trans_a, trans_b, m, n, k, a, lda, b, ldb, c, ldc, accumulate);
  } else {
    if (m == 0 || n == 0) return;
    if (!accumulate) {
      gemm_ref<T>(trans_a, trans_b, m, n, k, a, lda, b, ldb, c, ldc);
      return;
    }
    std::vector<T> tmp(m * n);
    gemm_ref<T>(trans_a, trans_b, m, n, k, a, lda, b, ldb, tmp.data(), n);
    for (int64_t i = 0; i < m; ++i) {
      for (int64_t j = 0; j < n; ++j) c[i * ldc + j] += tmp[i * n + j];
    }
  }
}

// The im2col matrix of `channels` channels has one row per (channel, kernel offset) and
// one column per output position. Without kAdd this fills the matrix from x (im2col);
// with kAdd it adds the matrix back into x (col2im, the adjoint).
template <bool kAdd, typename T>
void im2col_impl(const ConvGeometry& g, int64_t channels, T* x, T* col) {
  const int64_t D = g.in[0], H = g.in[1], W = g.in[2];
  const int64_t OD = g.out[0], OH = g.out[1], OW = g.out[2], P = g.out_plane();
  const int64_t sd = g.stride[0], sh = g.stride[1], sw = g.stride[2];
  T* row = col;
  for (int64_t c = 0; c < channels; ++c) {
    T* xc = x + c * D * H * W;
    for (int64_t kd = 0; kd < g.kernel[0]; ++kd) {
      const int64_t off_d = kd * g.dilation[0] - g.pad[0];
      for (int64_t kh = 0; kh < g.kernel[1]; ++kh) {
        const int64_t off_h = kh * g.dilation[1] - g.pad[1];
        for (int64_t kw = 0; kw < g.kernel[2]; ++kw, row += P) {
          const int64_t off_w = kw * g.dilation[2] - g.pad[2];
          int64_t lo, hi;
          valid_range(off_w, sw, W, OW, &lo, &hi);
          for (int64_t od = 0; od < OD; ++od) {
            const int64_t id = od * sd + off_d;
            for (int64_t oh = 0; oh < OH; ++oh) {
              const int64_t ih = oh * sh + off_h;
              T* run = row + (od * OH + oh) * OW;
              const bool inside = id >= 0 && id < D && ih >= 0 && ih < H;
              if constexpr (kAdd) {
                if (!inside) continue;
                T* xr = xc + (id * H + ih) * W;
                if (sw == 1) {
                  for (int64_t ow = lo; ow < hi; ++ow) xr[ow + off_w] += run[ow];
                } else {
                  for (int64_t ow = lo; ow < hi; ++ow) xr[ow * sw + off_w] += run[ow];
                }
              } else {
                if (!inside) {
                  std::fill(run, run + OW, T(0));
                  continue;
                }
                const T* xr = xc + (id * H + ih) * W;
                std::fill(run, run + lo, T(0));
                if (sw == 1) {
                  for (int64_t ow = lo; ow < hi; ++ow) run[ow] = xr[ow + off_w];
                } else {
                  for (int64_t ow = lo; ow < hi; ++ow) run[ow] = xr[ow * sw + off_w];
                }
                std::fill(run + hi, run + OW, T(0));
              }
            }
          }
        }
      }
    }
  }
}

// col[channels * kernel_volume, out_plane] from x[channels, in].
template <typename T>
void im2col(const ConvGeometry& g, int64_t channels, const T* x, T* col) {
  im2col_impl<false>(g, channels, const_cast<T*>(x), col);
}

// x[channels, in] += the scatter of col (the adjoint of im2col).
template <typename T>
void col2im(const ConvGeometry& g, int64_t channels, const T* col, T* x) {
  im2col_impl<true>(g, channels, x, const_cast<T*>(col));
}

}  // namespace

template <typename T>
void conv_forward(const ConvGeometry& g, const T* x, const T* w, const T* b, T* y, bool relu) {
  if constexpr (std::is_same_v<T, float>) {
    if (first_layer_fits(g)) return first_layer_forward(g, x, w, b, y, relu);
    if (depthwise3x3_fits(g)) return depthwise3x3_forward(g, x, w, b, y, relu);
    if (onednn_conv_forward(g, x, w, b, y)) {
      // In place while y is still in cache. oneDNN's eltwise post-op measured slower than
      // this second pass: 128x1->32 28x28 forward 0.93 -> 3.1 ms (gemm-based kernel) and
      // 500x32->64 14x14 5.9 -> 11.2 ms (Winograd), 2 threads.
      if (relu) {
        const int64_t n = g.batch * g.out_channels * g.out_plane();
        parallel_for(0, n, kParallelGrain, [&](int64_t lo, int64_t hi) {
          simd().unary_f32(FastUnary::Relu, y + lo, y + lo, hi - lo);
        });
      }
      return;
    }
  }
  const int64_t G = g.groups, Cg = g.in_channels / G, Og = g.out_channels / G;
  const int64_t K = Cg * g.kernel_volume(), P = g.out_plane(), S = g.in_plane();
  const bool direct = g.pointwise();
  // One task per (sample, group); a single task leaves the threads to the gemm.
  parallel_for(0, g.batch * G, 1, [&](int64_t lo, int64_t hi) {
    std::vector<T> col(direct ? 0 : K * P);
    for (int64_t task = lo; task < hi; ++task) {
      const int64_t n = task / G, grp = task % G;
      const T* xg = x + (n * g.in_channels + grp * Cg) * S;
      T* yg = y + (n * g.out_channels + grp * Og) * P;
      const T* src = xg;
      if (!direct) {
        im2col(g, Cg, xg, col.data());
        src = col.data();
      }
      gemm<T>(false, false, Og, P, K, w + grp * Og * K, K, src, P, yg, P, false);
      if (b != nullptr) {
        for (int64_t o = 0; o < Og; ++o) {
          const T bias = b[grp * Og + o];
          T* r = yg + o * P;
          for (int64_t p = 0; p < P; ++p) r[p] += bias;
        }
      }
      if (relu) {
        for (int64_t i = 0; i < Og * P; ++i) yg[i] = yg[i] > T(0) ? yg[i] : T(0);  // as relu()
      }
    }
  });
}

template <typename T>
void conv_backward_data(const ConvGeometry& g, const T* gy, const T* w, T* gx) {
  if constexpr (std::is_same_v<T, float>) {
    if (depthwise3x3_fits(g)) return depthwise3x3_backward_data(g, gy, w, gx);
    if (onednn_conv_backward_data(g, gy, w, gx)) return;
  }
  const int64_t G = g.groups, Cg = g.in_channels / G, Og = g.out_channels / G;
  const int64_t K = Cg * g.kernel_volume(), P = g.out_plane(), S = g.in_plane();
  const bool direct = g.pointwise();
  parallel_for(0, g.batch * G, 1, [&](int64_t lo, int64_t hi) {
    std::vector<T> col(direct ? 0 : K * P);
    for (int64_t task = lo; task < hi; ++task) {
      const int64_t n = task / G, grp = task % G;
      T* gxg = gx + (n * g.in_channels + grp * Cg) * S;
      const T* gyg = gy + (n * g.out_channels + grp * Og) * P;
      const T* wg = w + grp * Og * K;
      if (direct) {
        gemm<T>(true, false, K, P, Og, wg, K, gyg, P, gxg, P, false);
      } else {
        gemm<T>(true, false, K, P, Og, wg, K, gyg, P, col.data(), P, false);
        std::fill(gxg, gxg + Cg * S, T(0));
        col2im(g, Cg, col.data(), gxg);
      }
    }
  });
}

template <typename T>
void conv_backward_weight(const ConvGeometry& g, const T* x, const T* gy, T* gw) {
  if constexpr (std::is_same_v<T, float>) {
    if (first_layer_fits(g)) return first_layer_weight_grad(g, x, gy, nullptr, gw, nullptr);
    if (depthwise3x3_fits(g)) return depthwise3x3_backward_weight(g, x, gy, gw);
    if (onednn_conv_backward_weight(g, x, gy, gw)) return;
  }
  const int64_t G = g.groups, Cg = g.in_channels / G, Og = g.out_channels / G;
  const int64_t K = Cg * g.kernel_volume(), P = g.out_plane(), S = g.in_plane();
  const int64_t wsize = g.out_channels * K;
  const bool direct = g.pointwise();
  // The batch splits into a fixed number of chunks (independent of the thread count),
  // each summed into its own buffer; the buffers are then added in order.
  constexpr int64_t kChunks = 8;
  const int64_t chunks = std::min<int64_t>(g.batch, kChunks);
  std::fill(gw, gw + wsize, T(0));
  if (chunks == 0) return;
  std::vector<T> partial(chunks > 1 ? chunks * wsize : 0);
  parallel_for(0, chunks, 1, [&](int64_t lo, int64_t hi) {
    std::vector<T> col(direct ? 0 : K * P);
    for (int64_t chunk = lo; chunk < hi; ++chunk) {
      T* acc = chunks > 1 ? partial.data() + chunk * wsize : gw;
      std::fill(acc, acc + wsize, T(0));
      const int64_t n0 = g.batch * chunk / chunks, n1 = g.batch * (chunk + 1) / chunks;
      for (int64_t n = n0; n < n1; ++n) {
        for (int64_t grp = 0; grp < G; ++grp) {
          const T* xg = x + (n * g.in_channels + grp * Cg) * S;
          const T* gyg = gy + (n * g.out_channels + grp * Og) * P;
          const T* src = xg;
          if (!direct) {
            im2col(g, Cg, xg, col.data());
            src = col.data();
          }
          gemm<T>(false, true, Og, K, P, gyg, P, src, P, acc + grp * Og * K, K, true);
        }
      }
    }
  });
  if (chunks > 1) {
    for (int64_t chunk = 0; chunk < chunks; ++chunk) {
      const T* p = partial.data() + chunk * wsize;
      for (int64_t i = 0; i < wsize; ++i) gw[i] += p[i];
    }
  }
}

template <typename T>
void separable_apply(const Taps& rows, const Taps& cols, int64_t planes, int64_t H, int64_t W,
                     const T* x, T* y) {
  const int64_t OH = rows.outputs(), OW = cols.outputs();
  const std::vector<T> rw(rows.weight.begin(), rows.weight.end());
  const std::vector<T> cw(cols.weight.begin(), cols.weight.end());
  const int64_t work = std::max<int64_t>(1, OH * OW * 4);
  parallel_for(0, planes, std::max<int64_t>(1, kParallelGrain / work), [&](int64_t lo, int64_t hi) {
    std::vector<T> acc(OW);
    for (int64_t p = lo; p < hi; ++p) {
      const T* xp = x + p * H * W;
      T* yp = y + p * OH * OW;
      for (int64_t oh = 0; oh < OH; ++oh) {
        std::fill(acc.begin(), acc.end(), T(0));
        for (int64_t r = rows.offset[oh]; r < rows.offset[oh + 1]; ++r) {
          const T* xr = xp + rows.index[r] * W;
          const T a = rw[r];
          for (int64_t ow = 0; ow < OW; ++ow) {
            T s = 0;
            for (int64_t c = cols.offset[ow]; c < cols.offset[ow + 1]; ++c) {
              s += cw[c] * xr[cols.index[c]];
            }
            acc[ow] += a * s;
          }
        }
        std::copy(acc.begin(), acc.end(), yp + oh * OW);
      }
    }
  });
}

template <typename T>
void separable_apply_adjoint(const Taps& rows, const Taps& cols, int64_t planes, int64_t H,
                             int64_t W, const T* gy, T* gx) {
  const int64_t OH = rows.outputs(), OW = cols.outputs();
  const std::vector<T> rw(rows.weight.begin(), rows.weight.end());
  const std::vector<T> cw(cols.weight.begin(), cols.weight.end());
  const int64_t work = std::max<int64_t>(1, OH * OW * 4);
  parallel_for(0, planes, std::max<int64_t>(1, kParallelGrain / work), [&](int64_t lo, int64_t hi) {
    for (int64_t p = lo; p < hi; ++p) {
      T* gp = gx + p * H * W;
      const T* yp = gy + p * OH * OW;
      std::fill(gp, gp + H * W, T(0));
      for (int64_t oh = 0; oh < OH; ++oh) {
        for (int64_t r = rows.offset[oh]; r < rows.offset[oh + 1]; ++r) {
          T* gr = gp + rows.index[r] * W;
          const T a = rw[r];
          for (int64_t ow = 0; ow < OW; ++ow) {
            const T v = a * yp[oh * OW + ow];
            for (int64_t c = cols.offset[ow]; c < cols.offset[ow + 1]; ++c) {
              gr[cols.index[c]] += cw[c] * v;
            }
          }
        }
      }
    }
  });
}

#define TESSERA_INSTANTIATE(T)                                                                    \
  template void conv_forward<T>(const ConvGeometry&, const T*, const T*, const T*, T*, bool);     \
  template void conv_backward_data<T>(const ConvGeometry&, const T*, const T*, T*);               \
  template void conv_backward_weight<T>(const ConvGeometry&, const T*, const T*, T*);             \
  template void separable_apply<T>(const Taps&, const Taps&, int64_t, int64_t, int64_t, const T*, \
                                   T*);                                                           \
  template void separable_apply_adjoint<T>(const Taps&, const Taps&, int64_t, int64_t, int64_t,   \
                                           const T*, T*);
TESSERA_INSTANTIATE(float)
TESSERA_INSTANTIATE(double)
#undef TESSERA_INSTANTIATE

}  // namespace tessera::cpu
