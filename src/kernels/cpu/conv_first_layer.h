// First-layer convolutions: one input channel (a grayscale image), 3x3 kernel, stride 1,
// padding 1, float32. oneDNN runs these through im2col + gemm (a 9-deep product per
// pixel); Tessera's own kernels (simd_impl.inc) load each input row once for every output
// channel instead (bench/RESULTS.md has the measurement).
#pragma once
#include <cstdint>

#include "conv.h"

namespace tessera::cpu {

// `planes` H x W planes of x with a zero border of one on every side: [planes, H + 2,
// W + 2], in memory from Tessera's caching allocator (a fresh half-megabyte vector
// page-faulted every call).
struct PaddedPlanes {
  int64_t count;
  float* data;
  PaddedPlanes(int64_t planes, int64_t H, int64_t W, const float* x);
  ~PaddedPlanes();
  PaddedPlanes(const PaddedPlanes&) = delete;
  PaddedPlanes& operator=(const PaddedPlanes&) = delete;
};

bool first_layer_fits(const ConvGeometry& g);
// The geometry of such a convolution of x [batch, 1, H, W] to out_channels planes.
ConvGeometry first_layer_geometry(int64_t batch, int64_t out_channels, int64_t H, int64_t W);

// y = conv(x, w) + b, then max(y, 0) when relu is set; b may be null.
void first_layer_forward(const ConvGeometry& g, const float* x, const float* w, const float* b,
                         float* y, bool relu);

// gw = the weight gradient and gb (unless null) the bias gradient, summed over the batch in
// an order that does not depend on the thread count. With relu_out (the output of the conv
// with relu fused) they are the gradients through the relu, gy masked where relu_out <= 0.
void first_layer_weight_grad(const ConvGeometry& g, const float* x, const float* gy,
                             const float* relu_out, float* gw, float* gb);

// The same convolution with relu, then 2x2 max pooling of stride 2 (floor mode), without
// the full-size output: pooled [N, O, H/2, W/2] and the winning taps (0..3, row-major in
// the window), each equal to max_pool2d_2x2 of first_layer_forward's output.
void first_layer_relu_max_pool_forward(const ConvGeometry& g, const float* x, const float* w,
                                       const float* b, float* pooled, uint8_t* taps);

// gw and gb (unless null) for the pooled gradient gp of that fused forward, bit for bit
// first_layer_weight_grad of the scattered gradient with relu_out.
void first_layer_relu_max_pool_weight_grad(const ConvGeometry& g, const float* x, const float* gp,
                                           const float* pooled, const uint8_t* taps, float* gw,
                                           float* gb);

}  // namespace tessera::cpu
