// A first convolution layer fused with its relu and 2x2 max pooling, for training: the
// full-size convolution output, its pooling and the pooling's full-size gradient are never
// written. Of the CNN of the main job's training step (2 threads) they were a third of the
// time outside the second convolution: the output written and read (conv 0.59 ms, pool
// 0.51 ms), the pooled gradient scattered to full size (0.86 ms), then read back with the
// output for the relu's mask (weight gradient 1.71 ms, twice the time of the same sums
// from one stream). The fused gradient rebuilds each row of the scattered, masked gradient
// in registers from the pooled side instead, a quarter of the bytes.
//
//   conv2d_relu_max_pool2d_2x2(x, w[, b])        -> pooled, taps
//   conv2d_relu_max_pool2d_2x2_grad(x, pooled, taps, gp) -> gw, gb
//
// Results equal max_pool2d(conv2d(x, w, b, padding 1, relu), 2) and its gradients bit for
// bit (the same kernels compute the same values in the same order).
#include "../kernels/cpu/conv_first_layer.h"
#include "conv_pool_parts.h"
#include "run_float.h"
#include "tessera/autodiff/autodiff.h"
#include "tessera/ops/elementwise.h"
#include "tessera/ops/nn.h"
#include "tessera/ops/op.h"

namespace tessera {
namespace {

constexpr const char* kFused = "conv2d_relu_max_pool2d_2x2";
constexpr const char* kFusedGrad = "conv2d_relu_max_pool2d_2x2_grad";

// Whether the fused kernels take x [N, 1, H, W] and w [O, 1, 3, 3] (float32, H, W >= 2).
bool fits(const Tensor& x, const Tensor& w) {
  const Shape &s = x.shape(), &k = w.shape();
  return x.dtype() == DType::Float32 && w.dtype() == DType::Float32 && x.dim() == 4 && s[1] == 1 &&
         s[2] >= 2 && s[3] >= 2 && w.dim() == 4 && k[1] == 1 && k[2] == 3 && k[3] == 3;
}

cpu::ConvGeometry geometry(const Shape& x, int64_t out_channels) {
  return cpu::first_layer_geometry(x[0], out_channels, x[2], x[3]);
}

Shape pooled_shape(const Shape& x, int64_t out_channels) {
  return {x[0], out_channels, x[2] / 2, x[3] / 2};
}

MetaList infer_fused(const OpCall& c) {
  const Tensor &x = c.in(0), &w = c.in(1);
  check(fits(x, w), kFused, "expects a float32 input [N, 1, H, W] with H, W >= 2 and weight ",
        "[O, 1, 3, 3], got ", dtype_name(x.dtype()), " ", x.shape(), " and ", dtype_name(w.dtype()),
        " ", w.shape());
  const int64_t O = w.shape()[0];
  if (c.inputs.size() > 2) {
    const Tensor& b = c.in(2);
    check(b.dtype() == DType::Float32 && b.dim() == 1 && b.shape()[0] == O, kFused,
          "bias must be float32 [", O, "], got ", dtype_name(b.dtype()), " ", b.shape());
  }
  Shape out = pooled_shape(x.shape(), O);
  return {{out, DType::Float32}, {out, DType::UInt8}};
}

void cpu_fused(const OpCall& c, std::span<Tensor> outs) {
  if (outs[0].numel() == 0) return;
  Tensor x = detail::contiguous_as(c.in(0), DType::Float32);
  Tensor w = detail::contiguous_as(c.in(1), DType::Float32);
  Tensor b = c.inputs.size() > 2 ? detail::contiguous_as(c.in(2), DType::Float32) : Tensor();
  cpu::first_layer_relu_max_pool_forward(
      geometry(x.shape(), w.shape()[0]), static_cast<const float*>(x.data_ptr()),
      static_cast<const float*>(w.data_ptr()),
      b.defined() ? static_cast<const float*>(b.data_ptr()) : nullptr,
      static_cast<float*>(outs[0].data_ptr()), static_cast<uint8_t*>(outs[1].data_ptr()));
}

MetaList infer_fused_grad(const OpCall& c) {
  const Tensor &x = c.in(0), &p = c.in(1), &taps = c.in(2), &gp = c.in(3);
  const bool ok = x.dim() == 4 && x.shape()[1] == 1 && p.dim() == 4 &&
                  p.shape() == pooled_shape(x.shape(), p.shape()[1]) && taps.shape() == p.shape() &&
                  gp.shape() == p.shape() && x.dtype() == DType::Float32 &&
                  p.dtype() == DType::Float32 && gp.dtype() == DType::Float32 &&
                  taps.dtype() == DType::UInt8;
  check(ok, kFusedGrad,
        "expects float32 x [N, 1, H, W], pooled and gp [N, O, H/2, W/2] and uint8 taps of that "
        "shape, got ",
        x.shape(), ", ", p.shape(), ", ", taps.shape(), ", ", gp.shape());
  const int64_t O = p.shape()[1];
  return {{{O, 1, 3, 3}, DType::Float32}, {{O}, DType::Float32}};
}

void cpu_fused_grad(const OpCall& c, std::span<Tensor> outs) {
  if (outs[0].numel() == 0) return;
  Tensor x = detail::contiguous_as(c.in(0), DType::Float32);
  Tensor p = detail::contiguous_as(c.in(1), DType::Float32);
  Tensor taps = detail::contiguous_as(c.in(2), DType::UInt8);
  Tensor gp = detail::contiguous_as(c.in(3), DType::Float32);
  cpu::first_layer_relu_max_pool_weight_grad(
      geometry(x.shape(), p.shape()[1]), static_cast<const float*>(x.data_ptr()),
      static_cast<const float*>(gp.data_ptr()), static_cast<const float*>(p.data_ptr()),
      static_cast<const uint8_t*>(taps.data_ptr()), static_cast<float*>(outs[0].data_ptr()),
      static_cast<float*>(outs[1].data_ptr()));
}

constexpr OpDef kFusedGradOp{kFusedGrad, infer_fused_grad, cpu_fused_grad,
                             nullptr,    nullptr,          kSaveNothing};

TensorList grad_fused(const GradCall& g) {
  const Tensor &x = g.in(0), &w = g.in(1), &p = g.out(0), &gp = g.gout(0);
  const bool has_bias = g.input_metas.size() > 2;
  TensorList out(g.input_metas.size());
  if (!g.needs(0) && !grad_enabled()) {  // the one-pass kernel (it has no gradient itself)
    TensorList r = run_op(kFusedGradOp, {x, p, g.out(1), gp});
    if (g.needs(1)) out[1] = r[0];
    if (has_bias && g.needs(2)) out[2] = r[1];
    return out;
  }
  // Differentiable: the pooled gradient through the relu's mask (the pooled value is the
  // relu output at the winning tap), scattered to the taps, then the convolution's rule.
  Tensor gy =
      detail::max_pool2d_2x2_scatter(relu_backward(gp, p), g.out(1).detach(),
                                     {x.shape()[0], w.shape()[0], x.shape()[2], x.shape()[3]});
  TensorList r =
      detail::conv2d_pad1_grads(x, w, gy, g.needs(0), g.needs(1), has_bias && g.needs(2));
  for (size_t i = 0; i < out.size(); ++i) out[i] = r[i];
  return out;
}

constexpr OpDef kFusedOp{kFused,  infer_fused, cpu_fused,
                         nullptr, grad_fused,  kSaveInputs | kSaveOutputs};

const OpRegistrar r_fused(kFusedOp), r_fused_grad(kFusedGradOp);

}  // namespace

Tensor conv2d_relu_max_pool2d(const Tensor& input, const Tensor& weight, const Tensor& bias) {
  check_defined(input, kFused, "input");
  check_defined(weight, kFused, "weight");
  if (!fits(input, weight)) {
    return max_pool2d(conv2d(input, weight, bias, 1, 1, 1, 1, FusedActivation::relu), 2);
  }
  if (bias.defined()) return run_op(kFusedOp, {input, weight, bias})[0];
  return run_op(kFusedOp, {input, weight})[0];
}

}  // namespace tessera
