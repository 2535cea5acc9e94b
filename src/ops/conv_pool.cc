// A convolution (3x3, stride 1, padding 1) fused with its relu and 2x2 max pooling, for
// training: the full-size output is never stored in the caller's layout, nor is the
// pooling's full-size gradient before the convolution's backward reads it.
// - A first layer (one input channel, Tessera's own kernels): of the main job's CNN
//   training step (2 threads), the output written and read (conv 0.59 ms, pool 0.51 ms),
//   the pooled gradient scattered to full size (0.86 ms) and read back with the output for
//   the relu's mask (weight gradient 1.71 ms) were a third of the time outside the second
//   convolution. The fused forward pools rows while they are in L1; its weight gradient
//   rebuilds each row of the scattered, masked gradient in registers from the pooled side.
// - Other convolutions that oneDNN runs in its 16-channel blocked layout: the output stays
//   in that layout and is pooled there (no reorder of the full-size output, no separate relu
//   pass), and the gradient is scattered straight into that layout for oneDNN's backward
//   (no reorder of the full-size gradient); only the pooled tensors are reordered.
//
//   conv2d_relu_max_pool2d_2x2(x, w[, b])                      -> pooled, taps
//   conv2d_relu_max_pool2d_2x2_grad(x, pooled, taps, gp)          -> gw, gb  (first layer)
//   conv2d_relu_max_pool2d_2x2_backward(x, w, pooled, taps, gp)   -> gx, gw, gb
//
// Outputs, gx and gw equal those of max_pool2d(conv2d(x, w, b, padding 1, relu), 2) bit for
// bit (the same kernels get the same values in the same order); gb sums the pooled side in
// another order.
#include "../kernels/cpu/conv.h"
#include "../kernels/cpu/conv_first_layer.h"
#include "../kernels/cpu/conv_onednn.h"
#include "../kernels/cpu/simd.h"
#include "conv_pool_parts.h"
#include "run_float.h"
#include "tessera/autodiff/autodiff.h"
#include "tessera/core/parallel.h"
#include "tessera/ops/elementwise.h"
#include "tessera/ops/nn.h"
#include "tessera/ops/op.h"

namespace tessera {
namespace {

constexpr const char* kFused = "conv2d_relu_max_pool2d_2x2";
constexpr const char* kFusedGrad = "conv2d_relu_max_pool2d_2x2_grad";
constexpr const char* kFusedBackward = "conv2d_relu_max_pool2d_2x2_backward";

// Whether the op takes x [N, C, H, W] and w [O, C, 3, 3] (float32, one group, H, W >= 2).
bool fits(const Tensor& x, const Tensor& w) {
  const Shape &s = x.shape(), &k = w.shape();
  return x.dtype() == DType::Float32 && w.dtype() == DType::Float32 && x.dim() == 4 && s[2] >= 2 &&
         s[3] >= 2 && w.dim() == 4 && k[1] == s[1] && k[2] == 3 && k[3] == 3;
}

cpu::ConvGeometry geometry(const Shape& x, int64_t out_channels) {
  cpu::ConvGeometry g = cpu::first_layer_geometry(x[0], out_channels, x[2], x[3]);
  g.in_channels = x[1];
  return g;
}

const float* fptr(const Tensor& t) { return static_cast<const float*>(t.data_ptr()); }
float* mfptr(const Tensor& t) { return static_cast<float*>(t.data_ptr()); }

// [N, O, H, W] in oneDNN's 16-channel blocked layout, as a flat float32 (or uint8) tensor.
Tensor blocked16(const Shape& s, DType dtype = DType::Float32) {
  return Tensor::empty({s[0] * ((s[1] + 15) / 16) * s[2] * s[3] * 16}, dtype);
}

Shape pooled_shape(const Shape& x, int64_t out_channels) {
  return {x[0], out_channels, x[2] / 2, x[3] / 2};
}

MetaList infer_fused(const OpCall& c) {
  const Tensor &x = c.in(0), &w = c.in(1);
  check(fits(x, w), kFused, "expects a float32 input [N, C, H, W] with H, W >= 2 and weight ",
        "[O, C, 3, 3], got ", dtype_name(x.dtype()), " ", x.shape(), " and ", dtype_name(w.dtype()),
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

// The convolution with relu into the caller's layout, then max_pool2d_2x2's kernel: what
// the two ops compute, for convolutions oneDNN does not run in the blocked layout.
void conv_then_pool(const cpu::ConvGeometry& g, const float* x, const float* w, const float* b,
                    Tensor& pooled, Tensor& taps) {
  Tensor y = Tensor::empty({g.batch, g.out_channels, g.in[1], g.in[2]}, DType::Float32);
  cpu::conv_forward<float>(g, x, w, b, mfptr(y), true);
  detail::max_pool_2x2_taps(fptr(y), g.batch * g.out_channels, g.in[1], g.in[2], mfptr(pooled),
                            static_cast<uint8_t*>(taps.data_ptr()));
}

void cpu_fused(const OpCall& c, std::span<Tensor> outs) {
  if (outs[0].numel() == 0) return;
  Tensor x = detail::contiguous_as(c.in(0), DType::Float32);
  Tensor w = detail::contiguous_as(c.in(1), DType::Float32);
  Tensor b = c.inputs.size() > 2 ? detail::contiguous_as(c.in(2), DType::Float32) : Tensor();
  const float* bias = b.defined() ? fptr(b) : nullptr;
  const cpu::ConvGeometry g = geometry(x.shape(), w.shape()[0]);
  if (g.in_channels == 1) {
    cpu::first_layer_relu_max_pool_forward(g, fptr(x), fptr(w), bias, mfptr(outs[0]),
                                           static_cast<uint8_t*>(outs[1].data_ptr()));
    return;
  }
  if (!cpu::onednn_blocked16_fits(g, bias != nullptr)) {
    conv_then_pool(g, fptr(x), fptr(w), bias, outs[0], outs[1]);
    return;
  }
  const Shape ys{g.batch, g.out_channels, g.in[1], g.in[2]}, ps = outs[0].shape();
  Tensor y16 = blocked16(ys);
  if (!cpu::onednn_conv_forward_to_blocked16(g, fptr(x), fptr(w), bias, mfptr(y16))) {
    conv_then_pool(g, fptr(x), fptr(w), bias, outs[0], outs[1]);
    return;
  }
  Tensor p16 = blocked16(ps), taps16 = blocked16(ps, DType::UInt8);
  const auto pool = cpu::simd().relu_max_pool_2x2_blocked16_f32;
  const int64_t planes = g.batch * ((g.out_channels + 15) / 16);
  parallel_for(0, planes, 1, [&](int64_t lo, int64_t hi) {
    pool(fptr(y16), g.in[1], g.in[2], mfptr(p16), static_cast<uint8_t*>(taps16.data_ptr()), lo, hi);
  });
  const int64_t dims[4] = {ps[0], ps[1], ps[2], ps[3]};
  cpu::onednn_blocked16_reorder(dims, false, p16.data_ptr(), outs[0].data_ptr(), false);
  cpu::onednn_blocked16_reorder(dims, true, taps16.data_ptr(), outs[1].data_ptr(), false);
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

MetaList infer_fused_backward(const OpCall& c) {
  const Tensor &x = c.in(0), &w = c.in(1), &p = c.in(2), &taps = c.in(3), &gp = c.in(4);
  const bool ok = fits(x, w) && p.dim() == 4 &&
                  p.shape() == pooled_shape(x.shape(), w.shape()[0]) && taps.shape() == p.shape() &&
                  gp.shape() == p.shape() && p.dtype() == DType::Float32 &&
                  gp.dtype() == DType::Float32 && taps.dtype() == DType::UInt8;
  check(ok, kFusedBackward,
        "expects float32 x [N, C, H, W], w [O, C, 3, 3], pooled and gp [N, O, H/2, W/2] and "
        "uint8 taps of that shape, got ",
        x.shape(), ", ", w.shape(), ", ", p.shape(), ", ", taps.shape(), ", ", gp.shape());
  // gx only when asked for (attribute input_grad; a first layer on RGB images needs none).
  const bool input_grad = !c.attrs.has("input_grad") || c.attrs.i("input_grad") != 0;
  return {{input_grad ? x.shape() : Shape{0}, DType::Float32},
          {w.shape(), DType::Float32},
          {{w.shape()[0]}, DType::Float32}};
}

void cpu_fused_backward(const OpCall& c, std::span<Tensor> outs) {
  Tensor x = detail::contiguous_as(c.in(0), DType::Float32);
  Tensor w = detail::contiguous_as(c.in(1), DType::Float32);
  Tensor p = detail::contiguous_as(c.in(2), DType::Float32);
  Tensor taps = detail::contiguous_as(c.in(3), DType::UInt8);
  Tensor gp = detail::contiguous_as(c.in(4), DType::Float32);
  const cpu::ConvGeometry g = geometry(x.shape(), w.shape()[0]);
  const int64_t O = g.out_channels, PH = p.shape()[2], PW = p.shape()[3];
  // gb: the masked pooled gradient summed per channel over n, then the window, in double.
  const float *pv = fptr(p), *gv = fptr(gp);
  float* gb = mfptr(outs[2]);
  parallel_for(0, O, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t o = lo; o < hi; ++o) {
      double acc = 0;
      for (int64_t n = 0; n < g.batch; ++n) {
        const int64_t at = (n * O + o) * PH * PW;
        for (int64_t i = at; i < at + PH * PW; ++i) acc += pv[i] > 0.0f ? gv[i] : 0.0f;
      }
      gb[o] = static_cast<float>(acc);
    }
  });
  if (g.batch == 0 || outs[1].numel() == 0) {  // an empty batch contributes nothing
    std::fill(mfptr(outs[1]), mfptr(outs[1]) + outs[1].numel(), 0.0f);
    return;
  }
  float* gx = outs[0].numel() > 0 ? mfptr(outs[0]) : nullptr;
  const Shape ys{g.batch, O, g.in[1], g.in[2]};
  if (cpu::onednn_blocked16_fits(g, false)) {
    const int64_t dims[4] = {g.batch, O, PH, PW};
    Tensor gp16 = blocked16(p.shape()), p16 = blocked16(p.shape());
    Tensor taps16 = blocked16(p.shape(), DType::UInt8), gy16 = blocked16(ys);
    cpu::onednn_blocked16_reorder(dims, false, gp.data_ptr(), gp16.data_ptr(), true);
    cpu::onednn_blocked16_reorder(dims, false, p.data_ptr(), p16.data_ptr(), true);
    cpu::onednn_blocked16_reorder(dims, true, taps.data_ptr(), taps16.data_ptr(), true);
    const auto scatter = cpu::simd().relu_max_pool_2x2_backward_blocked16_f32;
    parallel_for(0, g.batch * ((O + 15) / 16), 1, [&](int64_t lo, int64_t hi) {
      scatter(fptr(gp16), fptr(p16), static_cast<const uint8_t*>(taps16.data_ptr()), g.in[1],
              g.in[2], mfptr(gy16), lo, hi);
    });
    if (cpu::onednn_conv_backward_from_blocked16(g, fptr(x), fptr(w), fptr(gy16), gx,
                                                 mfptr(outs[1]))) {
      return;
    }
  }
  // The two ops' gradient: relu's mask on the pooled side, then max_pool2d_2x2's scatter.
  Tensor masked = Tensor::empty(p.shape(), DType::Float32), gy = Tensor::empty(ys, DType::Float32);
  for (int64_t i = 0; i < p.numel(); ++i) mfptr(masked)[i] = pv[i] > 0.0f ? gv[i] : 0.0f;
  detail::max_pool_2x2_scatter_into(fptr(masked), static_cast<const uint8_t*>(taps.data_ptr()),
                                    g.batch * O, g.in[1], g.in[2], mfptr(gy));
  if (gx) cpu::conv_backward_data<float>(g, fptr(gy), fptr(w), gx);
  cpu::conv_backward_weight<float>(g, fptr(x), fptr(gy), mfptr(outs[1]));
}

constexpr OpDef kFusedBackwardOp{kFusedBackward, infer_fused_backward, cpu_fused_backward, nullptr,
                                 nullptr,        kSaveNothing};

TensorList grad_fused(const GradCall& g) {
  const Tensor &x = g.in(0), &w = g.in(1), &p = g.out(0), &gp = g.gout(0);
  const bool has_bias = g.input_metas.size() > 2;
  TensorList out(g.input_metas.size());
  if (!grad_enabled()) {  // the fused kernels (they have no gradient themselves)
    if (x.shape()[1] == 1 && !g.needs(0)) {
      TensorList r = run_op(kFusedGradOp, {x, p, g.out(1), gp});
      if (g.needs(1)) out[1] = r[0];
      if (has_bias && g.needs(2)) out[2] = r[1];
      return out;
    }
    TensorList r = run_op(kFusedBackwardOp, {x, w, p, g.out(1), gp},
                          {{"input_grad", static_cast<int64_t>(g.needs(0))}});
    for (size_t i = 0; i < out.size(); ++i) {
      if (g.needs(i)) out[i] = r[i];
    }
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

const OpRegistrar r_fused(kFusedOp), r_fused_grad(kFusedGradOp), r_fused_backward(kFusedBackwardOp);

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
