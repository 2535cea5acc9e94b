// The pieces of the convolution and 2x2 max-pooling gradients that the fused first-layer
// op (conv_pool.cc) composes when it cannot take its one-pass gradient: double backward,
// or a gradient for the input.
#pragma once
#include "tessera/ops/op.h"

namespace tessera::detail {

// Spatial sizes, strides, dilations and paddings of convolutions and pooling are bounded by
// 2^31, so that their output-size arithmetic (products of two of them) cannot overflow.
inline constexpr int64_t kMaxExtent = int64_t{1} << 31;

// max_pool2d_2x2's kernels on arrays (pool.cc): x [planes, H, W] pooled to y and taps
// [planes, H/2, W/2]; and g [planes, H/2, W/2] scattered to its taps in gx [planes, H, W],
// zeros elsewhere.
void max_pool_2x2_taps(const float* x, int64_t planes, int64_t H, int64_t W, float* y,
                       uint8_t* taps);
void max_pool_2x2_scatter_into(const float* g, const uint8_t* taps, int64_t planes, int64_t H,
                               int64_t W, float* gx);

// max_pool2d_2x2's gradient: g [N, C, H/2, W/2] goes to each window's winning tap of
// `taps`, zeros elsewhere, in an input_shape tensor (pool.cc). Differentiable.
Tensor max_pool2d_2x2_scatter(const Tensor& g, const Tensor& taps, const Shape& input_shape);

// The gradients (gx, gw, gb) of conv2d(x, w, b) with stride 1 and padding 1 for the output
// gradient gy, each only where asked (conv.cc). Differentiable.
TensorList conv2d_pad1_grads(const Tensor& x, const Tensor& w, const Tensor& gy, bool need_x,
                             bool need_w, bool need_b);

}  // namespace tessera::detail
