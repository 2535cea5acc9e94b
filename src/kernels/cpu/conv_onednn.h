// float32 convolution through oneDNN: forward, gradient to the input and gradient to
// the weight, on plain NCHW/OIHW (or NCDHW) arrays. oneDNN picks its own blocked
// layouts; inputs and outputs are reordered to and from them.
#pragma once
#include "conv.h"

namespace tessera::cpu {

// Each returns false when oneDNN has no implementation for the geometry (the caller
// then uses the im2col path).
bool onednn_conv_forward(const ConvGeometry& g, const float* x, const float* w, const float* b,
                         float* y);
bool onednn_conv_backward_data(const ConvGeometry& g, const float* gy, const float* w, float* gx);
bool onednn_conv_backward_weight(const ConvGeometry& g, const float* x, const float* gy, float* gw);

}  // namespace tessera::cpu
