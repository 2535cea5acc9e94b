#include "conv_depthwise.h"

#include <algorithm>
#include <vector>

#include "conv_first_layer.h"
#include "simd.h"
#include "tessera/core/parallel.h"

namespace tessera::cpu {
bool depthwise3x3_fits(const ConvGeometry& g) {
  // 2-d only: a conv3d of depth 1 may still pad (or stride over) its depth.
  const bool flat = g.in[0] == 1 && g.kernel[0] == 1 && g.pad[0] == 0 && g.out[0] == 1;
  return flat && g.groups > 1 && g.groups == g.in_channels && g.out_channels == g.in_channels &&
         g.kernel[1] == 3 && g.kernel[2] == 3 && g.stride[1] == 1 && g.stride[2] == 1 &&
         g.dilation[1] == 1 && g.dilation[2] == 1 && g.pad[1] == 1 && g.pad[2] == 1 &&
         g.out[1] == g.in[1] && g.out[2] == g.in[2];
}

void depthwise3x3_forward(const ConvGeometry& g, const float* x, const float* w, const float* b,
                          float* y, bool relu) {
  const int64_t C = g.in_channels, H = g.in[1], W = g.in[2];
  const auto plane = simd().conv3x3_plane_f32;
  parallel_for(0, g.batch * C, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t p = lo; p < hi; ++p)
      plane(x + p * H * W, H, W, w + p % C * 9, b ? b[p % C] : 0.0f, relu, y + p * H * W);
  });
}

void depthwise3x3_backward_data(const ConvGeometry& g, const float* gy, const float* w, float* gx) {
  const int64_t C = g.in_channels, H = g.in[1], W = g.in[2];
  std::vector<float> turned(static_cast<size_t>(C * 9));
  for (int64_t c = 0; c < C; ++c)
    for (int t = 0; t < 9; ++t) turned[c * 9 + t] = w[c * 9 + 8 - t];
  const auto plane = simd().conv3x3_plane_f32;
  parallel_for(0, g.batch * C, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t p = lo; p < hi; ++p)
      plane(gy + p * H * W, H, W, turned.data() + p % C * 9, 0.0f, false, gx + p * H * W);
  });
}

void depthwise3x3_backward_weight(const ConvGeometry& g, const float* x, const float* gy,
                                  float* gw) {
  const int64_t N = g.batch, C = g.in_channels, H = g.in[1], W = g.in[2];
  const auto grad = simd().conv3x3_c1_weight_grad_f32;
  const PaddedPlanes xpad(N * C, H, W, x);
  // A task per channel, its samples in order: the sums do not depend on the split.
  parallel_for(0, C, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t c = lo; c < hi; ++c) {
      float sum[9] = {}, one[9];
      for (int64_t n = 0; n < N; ++n) {
        const int64_t p = n * C + c;
        grad(xpad.data + p * (H + 2) * (W + 2), gy + p * H * W, nullptr, 1, 1, H, W, 0, 1, one,
             nullptr);
        for (int t = 0; t < 9; ++t) sum[t] += one[t];
      }
      std::copy(sum, sum + 9, gw + c * 9);
    }
  });
}

}  // namespace tessera::cpu
