// Depthwise 3x3 convolutions (one filter per channel: groups == channels), stride 1,
// padding 1, float32, on plain NCHW planes with Tessera's own kernels (simd_impl.inc):
// each plane is a one-filter convolution. oneDNN's depthwise kernels work in its blocked
// layout, and the reorders in and out of it cost more than the kernels (bench/RESULTS.md).
#pragma once
#include "conv.h"

namespace tessera::cpu {

bool depthwise3x3_fits(const ConvGeometry& g);

// y = conv(x, w) + b (b may be null), then max(y, 0) when relu is set.
void depthwise3x3_forward(const ConvGeometry& g, const float* x, const float* w, const float* b,
                          float* y, bool relu);
// gx from gy: the convolution of gy with each filter turned by 180 degrees.
void depthwise3x3_backward_data(const ConvGeometry& g, const float* gy, const float* w, float* gx);
// gw [C, 1, 3, 3], each channel's batch summed in order (whatever the thread count).
void depthwise3x3_backward_weight(const ConvGeometry& g, const float* x, const float* gy,
                                  float* gw);

}  // namespace tessera::cpu
