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

// oneDNN's 16-channel blocked layout of [N, C, H, W]: [N][ceil(C / 16)][H][W][16], channels
// past C zero. Fused ops that read and write it themselves skip the reorders of a
// convolution's output and output gradient (conv2d_relu_max_pool2d, src/ops/conv_pool.cc).
// Whether oneDNN's kernels for g (forward with or without bias, data gradient, weight
// gradient chunks) all use it for the output (gradient); only then do the two below run.
bool onednn_blocked16_fits(const ConvGeometry& g, bool bias);
// The forward convolution, its output y16 left in the blocked layout.
bool onednn_conv_forward_to_blocked16(const ConvGeometry& g, const float* x, const float* w,
                                      const float* b, float* y16);
// gx (plain; skipped when null) and gw from the output gradient gy16 in the blocked layout.
bool onednn_conv_backward_from_blocked16(const ConvGeometry& g, const float* x, const float* w,
                                         const float* gy16, float* gx, float* gw);
// Reorders an [N, C, H, W] array (float32, or uint8 when u8) between the plain and the
// blocked layout.
void onednn_blocked16_reorder(const int64_t dims[4], bool u8, const void* from, void* to,
                              bool to_blocked);

}  // namespace tessera::cpu
