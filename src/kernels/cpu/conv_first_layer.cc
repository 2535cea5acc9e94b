#include "conv_first_layer.h"

#include <algorithm>
#include <vector>

#include "simd.h"
#include "tessera/core/allocator.h"
#include "tessera/core/parallel.h"

namespace tessera::cpu {
PaddedPlanes::PaddedPlanes(int64_t planes, int64_t H, int64_t W, const float* x)
    : count(planes * (H + 2) * (W + 2)),
      data(static_cast<float*>(allocate_host(count * sizeof(float)))) {
  const int64_t Wp = W + 2, plane = (H + 2) * Wp;
  parallel_for(0, planes, std::max<int64_t>(1, kParallelGrain / plane),
               [&](int64_t lo, int64_t hi) {
                 for (int64_t n = lo; n < hi; ++n) {
                   float* p = data + n * plane;
                   std::fill(p, p + Wp, 0.0f);
                   for (int64_t h = 0; h < H; ++h) {
                     float* row = p + (h + 1) * Wp;
                     row[0] = row[W + 1] = 0.0f;
                     std::copy(x + (n * H + h) * W, x + (n * H + h + 1) * W, row + 1);
                   }
                   std::fill(p + (H + 1) * Wp, p + plane, 0.0f);
                 }
               });
}

PaddedPlanes::~PaddedPlanes() { free_host(data, count * sizeof(float)); }

bool first_layer_fits(const ConvGeometry& g) {
  // 2-d only: a conv3d of depth 1 may still pad (or stride over) its depth.
  const bool flat = g.in[0] == 1 && g.kernel[0] == 1 && g.pad[0] == 0 && g.out[0] == 1;
  return flat && g.in_channels == 1 && g.groups == 1 && g.kernel[1] == 3 && g.kernel[2] == 3 &&
         g.stride[1] == 1 && g.stride[2] == 1 && g.dilation[1] == 1 && g.dilation[2] == 1 &&
         g.pad[1] == 1 && g.pad[2] == 1 && g.out[1] == g.in[1] && g.out[2] == g.in[2];
}

ConvGeometry first_layer_geometry(int64_t batch, int64_t out_channels, int64_t H, int64_t W) {
  ConvGeometry g;
  g.batch = batch;
  g.in_channels = 1;
  g.out_channels = out_channels;
  g.in[1] = g.out[1] = H;
  g.in[2] = g.out[2] = W;
  g.kernel[1] = g.kernel[2] = 3;
  g.pad[1] = g.pad[2] = 1;
  return g;
}

void first_layer_forward(const ConvGeometry& g, const float* x, const float* w, const float* b,
                         float* y, bool relu) {
  const int64_t N = g.batch, O = g.out_channels, H = g.in[1], W = g.in[2];
  const PaddedPlanes xpad(g.batch, g.in[1], g.in[2], x);
  const auto rows = simd().conv3x3_c1_rows_f32;
  // Tasks of output rows of one image; each computes those rows of all O channels.
  const int64_t grain = std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(O * W * 9, 1));
  parallel_for(0, N * H, grain, [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi;) {
      const int64_t n = r / H, h0 = r % H, h1 = std::min<int64_t>(H, h0 + (hi - r));
      rows(xpad.data + n * (H + 2) * (W + 2), H, W, w, b, O, relu, y + n * O * H * W, h0, h1);
      r += h1 - h0;
    }
  });
}

void first_layer_weight_grad(const ConvGeometry& g, const float* x, const float* gy,
                             const float* relu_out, float* gw, float* gb) {
  const int64_t N = g.batch, O = g.out_channels, H = g.in[1], W = g.in[2];
  const PaddedPlanes xpad(g.batch, g.in[1], g.in[2], x);
  const auto grad = simd().conv3x3_c1_weight_grad_f32;
  parallel_for(0, O, 1, [&](int64_t lo, int64_t hi) {
    grad(xpad.data, gy, relu_out, N, O, H, W, lo, hi, gw, gb);
  });
}

void first_layer_relu_max_pool_forward(const ConvGeometry& g, const float* x, const float* w,
                                       const float* b, float* pooled, uint8_t* taps) {
  const int64_t N = g.batch, O = g.out_channels, H = g.in[1], W = g.in[2];
  const int64_t PH = H / 2, PW = W / 2, Wp = W + 2;
  if (N * PH * PW == 0) return;
  const PaddedPlanes xpad(g.batch, g.in[1], g.in[2], x);
  const auto rows = simd().conv3x3_c1_rows_f32;
  const auto pool = simd().max_pool_2x2_taps_row_f32;
  // Tasks of pooled rows: each convolves the two input rows of one pooled row for all O
  // channels into a buffer that stays in L1 ([O, 2, W]: the convolution of a 2-row image
  // whose padded rows start there), then pools it.
  const int64_t grain = std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(O * 2 * W * 9, 1));
  parallel_for(0, N * PH, grain, [&](int64_t lo, int64_t hi) {
    std::vector<float> pair(static_cast<size_t>(O * 2 * W));
    for (int64_t r = lo; r < hi; ++r) {
      const int64_t n = r / PH, ph = r % PH;
      rows(xpad.data + (n * (H + 2) + 2 * ph) * Wp, 2, W, w, b, O, true, pair.data(), 0, 2);
      for (int64_t o = 0; o < O; ++o) {
        const int64_t at = ((n * O + o) * PH + ph) * PW;
        pool(pair.data() + o * 2 * W, W, pooled + at, taps + at, PW);
      }
    }
  });
}

void first_layer_relu_max_pool_weight_grad(const ConvGeometry& g, const float* x, const float* gp,
                                           const float* pooled, const uint8_t* taps, float* gw,
                                           float* gb) {
  const int64_t N = g.batch, O = g.out_channels, H = g.in[1], W = g.in[2];
  const PaddedPlanes xpad(g.batch, g.in[1], g.in[2], x);
  const auto grad = simd().conv3x3_c1_pooled_weight_grad_f32;
  parallel_for(0, O, 1, [&](int64_t lo, int64_t hi) {
    grad(xpad.data, gp, pooled, taps, N, O, H, W, lo, hi, gw, gb);
  });
}

}  // namespace tessera::cpu
