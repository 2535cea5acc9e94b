// Convolution as three primitives per spatial rank D (1, 2, 3), each the gradient of
// the others, so gradients of any order stay within the family:
//   convDd(x, w[, b])                -> y    (cross-correlation, PyTorch's conv)
//   conv_transposeDd(y, w[, b])      -> x    (the adjoint of convDd in x)
//   convDd_weight_grad(x, gy)        -> gw   (the gradient of convDd in w)
// All three share the attributes stride, padding (leading), padding_hi (trailing, may be
// negative internally, which crops), dilation, groups and output_padding (transposed
// only). Kernels are im2col + gemm (src/kernels/cpu/conv.h); float16/bfloat16 compute
// in float32.
#include <string>

#include "../kernels/cpu/conv.h"
#include "../kernels/cpu/conv_first_layer.h"
#include "../kernels/cpu/copy.h"
#include "conv_pool_parts.h"
#include "run_float.h"
#include "samples.h"
#include "tessera/autodiff/autodiff.h"
#include "tessera/ops/elementwise.h"
#include "tessera/ops/nn.h"
#include "tessera/ops/op.h"
#include "tessera/ops/reduce.h"

namespace tessera {
namespace {

constexpr const char* kConvNames[] = {"conv1d", "conv2d", "conv3d"};
// The convolution with max(y, 0) fused into its output (Keras' activation="relu").
constexpr const char* kConvReluNames[] = {"conv1d_relu", "conv2d_relu", "conv3d_relu"};
constexpr const char* kTransposeNames[] = {"conv_transpose1d", "conv_transpose2d",
                                           "conv_transpose3d"};
constexpr const char* kWeightGradNames[] = {"conv1d_weight_grad", "conv2d_weight_grad",
                                            "conv3d_weight_grad"};
constexpr const char* kSpatialNames[] = {"L", "H, W", "D, H, W"};
constexpr const char* kKernelNames[] = {"kL", "kH, kW", "kD, kH, kW"};

struct ConvParams {
  int64_t stride[3] = {1, 1, 1};
  int64_t pad[3] = {0, 0, 0};
  int64_t pad_hi[3] = {0, 0, 0};
  int64_t dilation[3] = {1, 1, 1};
  int64_t output_padding[3] = {0, 0, 0};
  int64_t groups = 1;
  // Optional "algorithm" attribute: 0 picks by shape, 1 direct, 2 Winograd; and "layout":
  // 0 by channels, 1 plain, 2 blocked (graph plans set both after timing the choices).
  int algorithm = 0;
  int layout = 0;
};

std::vector<int64_t> prefix(const int64_t* v, int D) { return std::vector<int64_t>(v, v + D); }

std::string list(const int64_t* v, int D) { return to_string(Dims(v, v + D)); }

void read_into(const Attrs& a, const char* name, int D, int64_t* out) {
  const std::vector<int64_t>& v = a.ints(name);
  check(static_cast<int>(v.size()) == D, "", "attribute '", name, "' needs ", D, " values, got ",
        v.size());
  for (int d = 0; d < D; ++d) out[d] = v[d];
}

ConvParams read_params(const Attrs& a, int D) {
  ConvParams p;
  read_into(a, "stride", D, p.stride);
  read_into(a, "padding", D, p.pad);
  read_into(a, "padding_hi", D, p.pad_hi);
  read_into(a, "dilation", D, p.dilation);
  read_into(a, "output_padding", D, p.output_padding);
  p.groups = a.i("groups");
  if (a.has("algorithm")) {
    int64_t algo = a.i("algorithm");
    check(algo >= 0 && algo <= 2, "conv",
          "algorithm must be 0 (auto), 1 (direct) or 2 (Winograd), got ", algo);
    p.algorithm = static_cast<int>(algo);
  }
  if (a.has("layout")) {
    int64_t layout = a.i("layout");
    check(layout >= 0 && layout <= 2, "conv",
          "layout must be 0 (auto), 1 (plain) or 2 (blocked), got ", layout);
    p.layout = static_cast<int>(layout);
  }
  return p;
}

Attrs make_attrs(const ConvParams& p, int D) {
  return {{"stride", prefix(p.stride, D)},
          {"padding", prefix(p.pad, D)},
          {"padding_hi", prefix(p.pad_hi, D)},
          {"dilation", prefix(p.dilation, D)},
          {"output_padding", prefix(p.output_padding, D)},
          {"groups", p.groups}};
}

int64_t effective_kernel(int64_t k, int64_t dilation) { return dilation * (k - 1) + 1; }

using detail::kMaxExtent;

// Checks the attributes shared by every op of the family. (Messages are built only on
// failure: check() would format its arguments on every call of every convolution.)
void check_params(const char* op, const ConvParams& p, int D) {
  check(p.groups >= 1, op, "groups must be positive, got ", p.groups);
  for (int d = 0; d < D; ++d) {
    if (p.stride[d] < 1) fail(op, "stride must be positive, got ", list(p.stride, D));
    if (p.dilation[d] < 1) fail(op, "dilation must be positive, got ", list(p.dilation, D));
    if (p.pad[d] < 0) fail(op, "padding must be non-negative, got ", list(p.pad, D));
    for (int64_t v : {p.stride[d], p.dilation[d], p.pad[d], p.pad_hi[d], p.output_padding[d]}) {
      if (v > kMaxExtent || v < -kMaxExtent) {
        fail(op, "stride ", list(p.stride, D), ", dilation ", list(p.dilation, D), " and padding ",
             list(p.pad, D), " ", list(p.pad_hi, D), " ", list(p.output_padding, D),
             " must lie within 2^31");
      }
    }
  }
}

// Checks that the spatial sizes of x and the kernel lie within 2^31 (see kMaxExtent).
void check_extents(const char* op, const Shape& x, const int64_t* kernel, int D) {
  for (int d = 0; d < D; ++d) {
    if (x[2 + d] > kMaxExtent || kernel[d] > kMaxExtent) {
      fail(op, "spatial sizes above 2^31 are not supported (input ", x, ", kernel ",
           list(kernel, D), ")");
    }
  }
}

// Checks input and weight of convDd (transposed = false) or conv_transposeDd and returns
// the number of output channels.
int64_t check_operands(const char* op, const Tensor& x, const Tensor& w, const Tensor* bias,
                       const ConvParams& p, int D, bool transposed) {
  check(x.dim() == D + 2, op, "expects a ", D + 2, "-d input [N, C, ", kSpatialNames[D - 1],
        "], got shape ", x.shape());
  check(
      w.dim() == D + 2, op, "expects a ", D + 2, "-d weight [",
      transposed ? "in_channels, out_channels / groups, " : "out_channels, in_channels / groups, ",
      kKernelNames[D - 1], "], got shape ", w.shape());
  check(is_floating(x.dtype()), op, "expects a floating-point input, got ", dtype_name(x.dtype()));
  check(w.dtype() == x.dtype(), op, "input and weight must have the same dtype, got ",
        dtype_name(x.dtype()), " and ", dtype_name(w.dtype()));
  check_params(op, p, D);
  for (int d = 0; d < D; ++d) {
    check(w.shape()[2 + d] >= 1, op, "weight has an empty kernel dimension (weight ", w.shape(),
          ")");
  }
  check_extents(op, x.shape(), w.shape().data() + 2, D);
  int64_t out_channels;
  if (!transposed) {
    check(w.shape()[0] % p.groups == 0, op, "weight has ", w.shape()[0],
          " output channels, which groups ", p.groups, " does not divide (weight ", w.shape(), ")");
    check(x.shape()[1] == w.shape()[1] * p.groups, op, "input has ", x.shape()[1],
          " channels but weight expects ", w.shape()[1] * p.groups, " (input ", x.shape(),
          ", weight ", w.shape(), ", groups ", p.groups, ")");
    out_channels = w.shape()[0];
  } else {
    check(x.shape()[1] == w.shape()[0], op, "input has ", x.shape()[1],
          " channels but weight expects ", w.shape()[0], " (input ", x.shape(), ", weight ",
          w.shape(), ", groups ", p.groups, ")");
    check(w.shape()[0] % p.groups == 0, op, "weight has ", w.shape()[0],
          " input channels, which groups ", p.groups, " does not divide (weight ", w.shape(), ")");
    out_channels = w.shape()[1] * p.groups;
  }
  if (bias != nullptr) {
    check(bias->dim() == 1 && bias->shape()[0] == out_channels, op, "bias must have shape [",
          out_channels, "], got ", bias->shape());
    check(bias->dtype() == x.dtype(), op, "bias must have the input's dtype ",
          dtype_name(x.dtype()), ", got ", dtype_name(bias->dtype()));
  }
  return out_channels;
}

// Spatial output size of the forward convolution of x with kernel sizes from `kernel`.
int64_t conv_out_size(const char* op, const Shape& x, const Shape& w, const int64_t* kernel,
                      const ConvParams& p, int d, int D) {
  int64_t in = x[2 + d], k = kernel[d];
  int64_t eff = effective_kernel(k, p.dilation[d]);
  int64_t padded = in + p.pad[d] + p.pad_hi[d];
  if (padded < eff) {
    std::string dilated =
        p.dilation[d] > 1 ? " (dilated to " + std::to_string(eff) + ")" : std::string();
    fail(op, "kernel size ", k, dilated, " is bigger than the padded input size ", padded,
         " in spatial dimension ", d, " (input ", x, ", weight ", w, ", padding ", list(p.pad, D),
         ")");
  }
  return (padded - eff) / p.stride[d] + 1;
}

// Spatial output size of the transposed convolution.
int64_t transpose_out_size(const ConvParams& p, int64_t in, int64_t k, int d) {
  return (in - 1) * p.stride[d] - p.pad[d] - p.pad_hi[d] + effective_kernel(k, p.dilation[d]) +
         p.output_padding[d];
}

template <int D, bool Relu = false>
MetaList infer_conv(const OpCall& c) {
  const char* op = Relu ? kConvReluNames[D - 1] : kConvNames[D - 1];
  const Tensor &x = c.in(0), &w = c.in(1);
  ConvParams p = read_params(c.attrs, D);
  int64_t out_channels =
      check_operands(op, x, w, c.inputs.size() > 2 ? &c.in(2) : nullptr, p, D, false);
  Shape out{x.shape()[0], out_channels};
  const int64_t* kernel = w.shape().data() + 2;
  for (int d = 0; d < D; ++d)
    out.push_back(conv_out_size(op, x.shape(), w.shape(), kernel, p, d, D));
  return {{out, x.dtype()}};
}

template <int D>
MetaList infer_transpose(const OpCall& c) {
  const char* op = kTransposeNames[D - 1];
  const Tensor &x = c.in(0), &w = c.in(1);
  ConvParams p = read_params(c.attrs, D);
  int64_t out_channels =
      check_operands(op, x, w, c.inputs.size() > 2 ? &c.in(2) : nullptr, p, D, true);
  Shape out{x.shape()[0], out_channels};
  for (int d = 0; d < D; ++d) {
    check(x.shape()[2 + d] >= 1, op, "expects non-empty spatial dimensions, got input ", x.shape());
    int64_t size = transpose_out_size(p, x.shape()[2 + d], w.shape()[2 + d], d);
    if (size < 1) {
      fail(op, "output size would be ", size, " in spatial dimension ", d, " (input ", x.shape(),
           ", weight ", w.shape(), ", stride ", list(p.stride, D), ", padding ", list(p.pad, D),
           ")");
    }
    out.push_back(size);
  }
  return {{out, x.dtype()}};
}

template <int D>
MetaList infer_weight_grad(const OpCall& c) {
  const char* op = kWeightGradNames[D - 1];
  const Tensor &x = c.in(0), &gy = c.in(1);
  ConvParams p = read_params(c.attrs, D);
  int64_t kernel[3];
  read_into(c.attrs, "kernel_size", D, kernel);
  check(x.dim() == D + 2 && gy.dim() == D + 2, op, "expects ", D + 2,
        "-d input and output gradient, got ", x.shape(), " and ", gy.shape());
  check(is_floating(x.dtype()) && gy.dtype() == x.dtype(), op,
        "expects floating-point operands of one dtype, got ", dtype_name(x.dtype()), " and ",
        dtype_name(gy.dtype()));
  check_params(op, p, D);
  check(x.shape()[1] % p.groups == 0 && gy.shape()[1] % p.groups == 0, op, "groups ", p.groups,
        " must divide the channels of input ", x.shape(), " and output gradient ", gy.shape());
  Shape expected{x.shape()[0], gy.shape()[1]};
  check_extents(op, x.shape(), kernel, D);
  for (int d = 0; d < D; ++d) {
    if (kernel[d] < 1) fail(op, "kernel sizes must be positive, got ", list(kernel, D));
    expected.push_back(conv_out_size(op, x.shape(), gy.shape(), kernel, p, d, D));
  }
  check(gy.shape() == expected, op, "output gradient has shape ", gy.shape(), ", expected ",
        expected, " for input ", x.shape());
  Shape out{gy.shape()[1], x.shape()[1] / p.groups};
  for (int d = 0; d < D; ++d) out.push_back(kernel[d]);
  return {{out, x.dtype()}};
}

// The geometry of the forward convolution from x (its input) to y (its output).
template <int D>
cpu::ConvGeometry geometry(const Shape& x, const Shape& y, const Shape& w, const ConvParams& p) {
  cpu::ConvGeometry g;
  g.batch = x[0];
  g.in_channels = x[1];
  g.out_channels = y[1];
  g.groups = p.groups;
  for (int d = 0; d < D; ++d) {
    int j = 3 - D + d;
    g.in[j] = x[2 + d];
    g.out[j] = y[2 + d];
    g.kernel[j] = w[2 + d];
    g.stride[j] = p.stride[d];
    g.pad[j] = p.pad[d];
    g.dilation[j] = p.dilation[d];
  }
  g.algorithm = p.algorithm;
  g.layout = p.layout;
  return g;
}

using detail::contiguous_as;
using detail::run_float;

template <int D, bool Relu = false>
void cpu_conv(const OpCall& c, std::span<Tensor> outs) {
  const Tensor& out = outs[0];
  if (out.numel() == 0) return;
  ConvParams p = read_params(c.attrs, D);
  cpu::ConvGeometry g = geometry<D>(c.in(0).shape(), out.shape(), c.in(1).shape(), p);
  run_float(c.inputs, out, [&](auto tag, const std::vector<Tensor>& in, const Tensor& o) {
    using T = decltype(tag);
    const T* bias = in.size() > 2 ? static_cast<const T*>(in[2].data_ptr()) : nullptr;
    cpu::conv_forward<T>(g, static_cast<const T*>(in[0].data_ptr()),
                         static_cast<const T*>(in[1].data_ptr()), bias,
                         static_cast<T*>(o.data_ptr()), Relu);
  });
}

template <int D>
void cpu_transpose(const OpCall& c, std::span<Tensor> outs) {
  const Tensor& out = outs[0];
  if (out.numel() == 0) return;
  ConvParams p = read_params(c.attrs, D);
  // The forward convolution this is the adjoint of runs from `out` to the input.
  cpu::ConvGeometry g = geometry<D>(out.shape(), c.in(0).shape(), c.in(1).shape(), p);
  run_float(c.inputs, out, [&](auto tag, const std::vector<Tensor>& in, const Tensor& o) {
    using T = decltype(tag);
    T* y = static_cast<T*>(o.data_ptr());
    cpu::conv_backward_data<T>(g, static_cast<const T*>(in[0].data_ptr()),
                               static_cast<const T*>(in[1].data_ptr()), y);
    if (in.size() > 2) {
      const T* bias = static_cast<const T*>(in[2].data_ptr());
      int64_t channels = o.shape()[1], plane = g.in_plane();
      for (int64_t n = 0; n < g.batch; ++n) {
        for (int64_t ch = 0; ch < channels; ++ch) {
          T* r = y + (n * channels + ch) * plane;
          for (int64_t i = 0; i < plane; ++i) r[i] += bias[ch];
        }
      }
    }
  });
}

template <int D>
void cpu_weight_grad(const OpCall& c, std::span<Tensor> outs) {
  const Tensor& out = outs[0];
  if (out.numel() == 0) return;
  ConvParams p = read_params(c.attrs, D);
  cpu::ConvGeometry g = geometry<D>(c.in(0).shape(), c.in(1).shape(), out.shape(), p);
  run_float(c.inputs, out, [&](auto tag, const std::vector<Tensor>& in, const Tensor& o) {
    using T = decltype(tag);
    cpu::conv_backward_weight<T>(g, static_cast<const T*>(in[0].data_ptr()),
                                 static_cast<const T*>(in[1].data_ptr()),
                                 static_cast<T*>(o.data_ptr()));
  });
}

template <int D>
TensorList grad_conv(const GradCall& g);
template <int D>
TensorList grad_conv_relu(const GradCall& g);
template <int D>
TensorList grad_transpose(const GradCall& g);
template <int D>
TensorList grad_weight_grad(const GradCall& g);

// Graph plans time the algorithm (direct or Winograd: Winograd wins at large batches and
// loses at small ones, a 32->64 3x3 conv on 14x14: 55 us Winograd, 40 us direct at batch 1;
// conv_onednn.cc) and the layout (oneDNN's blocked kernels are faster, but their reorders in
// and out cost more than they save where the convolution is small or has few channels).
std::vector<Attrs> conv_algorithm_choices(std::span<const Tensor>) {
  std::vector<Attrs> choices;
  for (int64_t algorithm : {1, 2}) {
    for (int64_t layout : {1, 2}) choices.push_back({{"algorithm", algorithm}, {"layout", layout}});
  }
  return choices;
}

// Samples for the registry walk: the same stride, padding, dilation and groups in every
// spatial dimension; spatial sizes grow by one per dimension (so none is square).
template <int D>
Attrs sample_attrs(int64_t stride, int64_t pad, int64_t dilation, int64_t groups,
                   int64_t output_padding = 0) {
  ConvParams p;
  for (int d = 0; d < D; ++d) {
    p.stride[d] = stride;
    p.pad[d] = p.pad_hi[d] = pad;
    p.dilation[d] = dilation;
    p.output_padding[d] = output_padding;
  }
  p.groups = groups;
  return make_attrs(p, D);
}

template <int D>
Tensor sample_tensor(int64_t a, int64_t b, int64_t spatial, uint64_t seed) {
  Shape shape{a, b};
  for (int d = 0; d < D; ++d) shape.push_back(spatial + d);
  return samples::values(shape, -1, 1, seed);
}

Tensor sample_bias(int64_t n, uint64_t seed) { return samples::values({n}, -1, 1, seed); }

// A small one (gradients are checked), stride 2 without bias, depthwise and dilated, one
// input channel (the first layer's own kernels), an empty batch. Sums of products round
// with their count: tolerance x8.
template <int D>
std::vector<OpSample> conv_samples() {
  auto t = sample_tensor<D>;
  return {
      {{t(1, 2, 4, 1), t(3, 2, 3, 2), sample_bias(3, 3)}, sample_attrs<D>(1, 1, 1, 1), ~0u, 8},
      {{t(2, 3, 7, 4), t(4, 3, 3, 5)}, sample_attrs<D>(2, 0, 1, 1), ~0u, 8},
      {{t(2, 4, 8, 6), t(4, 1, 3, 7), sample_bias(4, 8)}, sample_attrs<D>(1, 2, 2, 4), ~0u, 8},
      {{t(2, 1, 12, 9), t(8, 1, 3, 10), sample_bias(8, 11)}, sample_attrs<D>(1, 1, 1, 1), ~0u, 8},
      {{t(0, 3, 6, 12), t(2, 3, 3, 13)}, sample_attrs<D>(1, 1, 1, 1), ~0u, 8}};
}

// Weights [in, out / groups, k...]: a small one with output padding, grouped, no bias.
template <int D>
std::vector<OpSample> transpose_samples() {
  auto t = sample_tensor<D>;
  return {
      {{t(1, 2, 3, 1), t(2, 3, 3, 2), sample_bias(3, 3)}, sample_attrs<D>(2, 1, 1, 1, 1), ~0u, 8},
      {{t(2, 4, 4, 4), t(4, 1, 3, 5)}, sample_attrs<D>(1, 0, 1, 4), ~0u, 8}};
}

constexpr OpDef tunable(OpDef def, OpSamples samples = nullptr) {
  def.tunable = conv_algorithm_choices;
  def.samples = samples;
  return def;
}

template <int D>
constexpr OpDef kConv = tunable({kConvNames[D - 1], infer_conv<D>, cpu_conv<D>, nullptr,
                                 grad_conv<D>, kSaveInputs},
                                conv_samples<D>);
template <int D>
constexpr OpDef kConvRelu = tunable({kConvReluNames[D - 1], infer_conv<D, true>, cpu_conv<D, true>,
                                     nullptr, grad_conv_relu<D>, kSaveInputs | kSaveOutputs},
                                    conv_samples<D>);
template <int D>
constexpr OpDef kTranspose = tunable({kTransposeNames[D - 1], infer_transpose<D>, cpu_transpose<D>,
                                      nullptr, grad_transpose<D>, kSaveInputs},
                                     transpose_samples<D>);
template <int D>
constexpr OpDef kWeightGrad = tunable({kWeightGradNames[D - 1], infer_weight_grad<D>,
                                       cpu_weight_grad<D>, nullptr, grad_weight_grad<D>,
                                       kSaveInputs});

// The bias gradient: the output gradient summed over space, then over the batch. Two
// sums over trailing axes read gy in place; one sum over axes {0, 2, ...} first copies it
// into rows (128x32x28x28: 0.59 ms against 0.15 ms, 2 threads).
Tensor bias_grad(const Tensor& gy) {
  Axes space;
  for (int64_t d = 2; d < gy.dim(); ++d) space.push_back(d);
  return sum(sum(gy, space), Axes{0});
}

// Attributes of a transposed convolution that maps O-sized inputs back to exactly `x`'s
// spatial size (the output_padding absorbs what the forward stride dropped).
template <int D>
Attrs transpose_attrs(ConvParams p, const Shape& x, const Shape& y, const Shape& w) {
  for (int d = 0; d < D; ++d) {
    p.output_padding[d] = 0;
    p.output_padding[d] = x[2 + d] - transpose_out_size(p, y[2 + d], w[2 + d], d);
  }
  return make_attrs(p, D);
}

// Attributes of a forward convolution from `x`'s spatial size to exactly `y`'s: the
// trailing padding absorbs the transposed convolution's output_padding (it may turn
// negative, which crops).
template <int D>
ConvParams forward_params(ConvParams p, const Shape& x, const Shape& y, const Shape& w) {
  for (int d = 0; d < D; ++d) {
    p.pad_hi[d] = (y[2 + d] - 1) * p.stride[d] + effective_kernel(w[2 + d], p.dilation[d]) -
                  x[2 + d] - p.pad[d];
    p.output_padding[d] = 0;
  }
  return p;
}

Attrs with_kernel(Attrs a, const Shape& w, int D) {
  a.set("kernel_size", std::vector<int64_t>(w.begin() + 2, w.begin() + 2 + D));
  return a;
}

// The weight and bias gradients of a first-layer conv2d_relu (see cpu::first_layer_fits)
// in one pass over the output gradient: the relu's mask is applied on the fly and neither
// the masked gradient nor the bias sum is materialized (three 4-byte-per-pixel passes
// fewer). Used by backward passes that build no graph, so it has no gradient of its own.
constexpr const char* kFirstLayerReluGradName = "conv2d_relu_first_layer_grad";

MetaList infer_first_layer_relu_grad(const OpCall& c) {
  const char* op = kFirstLayerReluGradName;
  const Tensor &x = c.in(0), &y = c.in(1), &gy = c.in(2);
  check(x.dim() == 4 && x.shape()[1] == 1 && y.dim() == 4 && gy.shape() == y.shape() &&
            y.shape()[0] == x.shape()[0] && y.shape()[2] == x.shape()[2] &&
            y.shape()[3] == x.shape()[3],
        op, "expects x [N, 1, H, W] and y, gy [N, O, H, W], got ", x.shape(), ", ", y.shape(), ", ",
        gy.shape());
  check(x.dtype() == DType::Float32 && y.dtype() == DType::Float32 && gy.dtype() == DType::Float32,
        op, "expects float32 operands");
  const int64_t O = y.shape()[1];
  return {{{O, 1, 3, 3}, DType::Float32}, {{O}, DType::Float32}};
}

void cpu_first_layer_relu_grad(const OpCall& c, std::span<Tensor> outs) {
  if (outs[0].numel() == 0) return;
  Tensor x = contiguous_as(c.in(0), DType::Float32), y = contiguous_as(c.in(1), DType::Float32),
         gy = contiguous_as(c.in(2), DType::Float32);
  cpu::first_layer_weight_grad(
      cpu::first_layer_geometry(x.shape()[0], y.shape()[1], x.shape()[2], x.shape()[3]),
      static_cast<const float*>(x.data_ptr()), static_cast<const float*>(gy.data_ptr()),
      static_cast<const float*>(y.data_ptr()), static_cast<float*>(outs[0].data_ptr()),
      static_cast<float*>(outs[1].data_ptr()));
}

constexpr OpDef kFirstLayerReluGrad{kFirstLayerReluGradName,
                                    infer_first_layer_relu_grad,
                                    cpu_first_layer_relu_grad,
                                    nullptr,
                                    nullptr,
                                    kSaveNothing};

// The gradients of convDd's inputs for the output gradient gy.
template <int D>
TensorList conv_input_grads(const GradCall& g, const Tensor& gy_in) {
  const Tensor &x = g.in(0), &w = g.in(1);
  ConvParams p = read_params(g.attrs, D);
  TensorList out(g.input_metas.size());
  // Both kernels want gy contiguous: a broadcast one (the gradient of a sum) is copied once
  // here instead of once by each (128x64x14x14: 0.2 ms per copy, 1 thread).
  const bool both = g.needs(0) && g.needs(1);
  const Tensor gy = both ? gy_in.contiguous() : gy_in;
  // ... and converted to oneDNN's blocked layout once for both.
  // (Not while tracing a graph: its tensors have no data yet.)
  const bool share = both && gy.dtype() == DType::Float32 && gy.storage() != nullptr;
  cpu::SharedConvInput shared(share ? gy.data_ptr() : nullptr,
                              share ? gy.numel() * sizeof(float) : 0);
  if (g.needs(0)) {
    out[0] =
        run_op1(kTranspose<D>, {gy, w}, transpose_attrs<D>(p, x.shape(), gy.shape(), w.shape()));
  }
  if (g.needs(1)) out[1] = run_op1(kWeightGrad<D>, {x, gy}, with_kernel(g.attrs, w.shape(), D));
  if (out.size() > 2 && g.needs(2)) out[2] = bias_grad(gy);
  return out;
}

template <int D>
TensorList grad_conv(const GradCall& g) {
  return conv_input_grads<D>(g, g.gout());
}

template <int D>
TensorList grad_conv_relu(const GradCall& g) {
  if constexpr (D == 2) {
    const Tensor &x = g.in(0), &y = g.out();
    // (first_layer_fits asks for output size = input size, so padding_hi is 1 too.)
    const bool first_layer = x.dtype() == DType::Float32 && g.gout().dtype() == DType::Float32 &&
                             cpu::first_layer_fits(geometry<2>(
                                 x.shape(), y.shape(), g.in(1).shape(), read_params(g.attrs, 2)));
    if (first_layer && !g.needs(0) && !grad_enabled()) {
      TensorList r = run_op(kFirstLayerReluGrad, {x, y, g.gout()});
      TensorList out(g.input_metas.size());
      if (g.needs(1)) out[1] = r[0];
      if (out.size() > 2 && g.needs(2)) out[2] = r[1];
      return out;
    }
  }
  return conv_input_grads<D>(g, relu_backward(g.gout(), g.out()));
}

template <int D>
TensorList grad_transpose(const GradCall& g) {
  // y = conv_transpose(t, w) is the adjoint of conv(., w): <G, y> = <conv(G, w), t>.
  const Tensor &t = g.in(0), &w = g.in(1), &gy = g.gout();
  ConvParams p = forward_params<D>(read_params(g.attrs, D), gy.shape(), t.shape(), w.shape());
  TensorList out(g.input_metas.size());
  if (g.needs(0)) out[0] = run_op1(kConv<D>, {gy, w}, make_attrs(p, D));
  if (g.needs(1))
    out[1] = run_op1(kWeightGrad<D>, {gy, t}, with_kernel(make_attrs(p, D), w.shape(), D));
  if (out.size() > 2 && g.needs(2)) out[2] = bias_grad(gy);
  return out;
}

template <int D>
TensorList grad_weight_grad(const GradCall& g) {
  // gw = weight_grad(x, gy) satisfies <H, gw> = <conv(x, H), gy> = <x, conv_transpose(gy, H)>.
  const Tensor &x = g.in(0), &gy = g.in(1), &h = g.gout();
  ConvParams p = read_params(g.attrs, D);
  TensorList out(2);
  if (g.needs(0)) {
    out[0] =
        run_op1(kTranspose<D>, {gy, h}, transpose_attrs<D>(p, x.shape(), gy.shape(), h.shape()));
  }
  if (g.needs(1)) out[1] = run_op1(kConv<D>, {x, h}, make_attrs(p, D));
  return out;
}

const OpRegistrar r1(kConv<1>), r2(kConv<2>), r3(kConv<3>), r4(kTranspose<1>), r5(kTranspose<2>),
    r6(kTranspose<3>), r7(kWeightGrad<1>), r8(kWeightGrad<2>), r9(kWeightGrad<3>),
    r10(kConvRelu<1>), r11(kConvRelu<2>), r12(kConvRelu<3>), r13(kFirstLayerReluGrad);

// Fills out[0..D) from a user argument of 1 or D values.
void spread(const char* op, const char* what, const std::vector<int64_t>& v, int D, int64_t* out) {
  check(v.size() == 1 || static_cast<int>(v.size()) == D, op, what, " needs 1 or ", D,
        " values, got ", v.size());
  for (int d = 0; d < D; ++d) out[d] = v.size() == 1 ? v[0] : v[d];
}

void check_weight_rank(const char* op, const Tensor& w, int D, bool transposed) {
  check(
      w.dim() == D + 2, op, "expects a ", D + 2, "-d weight [",
      transposed ? "in_channels, out_channels / groups, " : "out_channels, in_channels / groups, ",
      kKernelNames[D - 1], "], got shape ", w.shape());
}

template <int D>
Tensor conv_public(const Tensor& x, const Tensor& w, const Tensor& bias, const SpatialArg& stride,
                   const ConvPadding& padding, const SpatialArg& dilation, int64_t groups,
                   FusedActivation activation) {
  const bool relu = activation == FusedActivation::relu;
  const char* op = relu ? kConvReluNames[D - 1] : kConvNames[D - 1];
  check_defined(x, op, "input");
  check_defined(w, op, "weight");
  ConvParams p;
  p.groups = groups;
  spread(op, "stride", stride.values, D, p.stride);
  spread(op, "dilation", dilation.values, D, p.dilation);
  if (padding.mode.empty()) {
    spread(op, "padding", padding.values, D, p.pad);
    for (int d = 0; d < D; ++d) {
      if (p.pad[d] < 0) fail(op, "padding must be non-negative, got ", list(p.pad, D));
      p.pad_hi[d] = p.pad[d];
    }
  } else if (padding.mode == "same") {
    check_weight_rank(op, w, D, false);
    check_params(op, p, D);  // (bounded dilation and kernel: the product below fits)
    for (int d = 0; d < D; ++d) {
      check(w.shape()[2 + d] <= kMaxExtent, op, "spatial sizes above 2^31 are not supported ",
            "(weight ", w.shape(), ")");
      if (p.stride[d] != 1) {
        fail(op, "padding='same' is not supported for strided convolutions (stride ",
             list(p.stride, D), ")");
      }
      int64_t total = p.dilation[d] * (w.shape()[2 + d] - 1);
      p.pad[d] = total / 2;
      p.pad_hi[d] = total - p.pad[d];
    }
  } else {
    check(padding.mode == "valid", op, "padding must be numbers, \"same\" or \"valid\", got \"",
          padding.mode, "\"");
  }
  const OpDef& def = relu ? kConvRelu<D> : kConv<D>;
  if (bias.defined()) return run_op1(def, {x, w, bias}, make_attrs(p, D));
  return run_op1(def, {x, w}, make_attrs(p, D));
}

template <int D>
Tensor transpose_public(const Tensor& x, const Tensor& w, const Tensor& bias,
                        const SpatialArg& stride, const SpatialArg& padding,
                        const SpatialArg& output_padding, int64_t groups,
                        const SpatialArg& dilation) {
  const char* op = kTransposeNames[D - 1];
  check_defined(x, op, "input");
  check_defined(w, op, "weight");
  ConvParams p;
  p.groups = groups;
  spread(op, "stride", stride.values, D, p.stride);
  spread(op, "padding", padding.values, D, p.pad);
  spread(op, "output_padding", output_padding.values, D, p.output_padding);
  spread(op, "dilation", dilation.values, D, p.dilation);
  for (int d = 0; d < D; ++d) {
    if (p.pad[d] < 0) fail(op, "padding must be non-negative, got ", list(p.pad, D));
    p.pad_hi[d] = p.pad[d];
    int64_t o = p.output_padding[d];
    check(o >= 0 && (o < p.stride[d] || o < p.dilation[d]), op, "output_padding ", o,
          " must be non-negative and smaller than either stride ", p.stride[d], " or dilation ",
          p.dilation[d], " (spatial dimension ", d, ")");
  }
  if (bias.defined()) return run_op1(kTranspose<D>, {x, w, bias}, make_attrs(p, D));
  return run_op1(kTranspose<D>, {x, w}, make_attrs(p, D));
}

}  // namespace

Tensor conv1d(const Tensor& input, const Tensor& weight, const Tensor& bias,
              const SpatialArg& stride, const ConvPadding& padding, const SpatialArg& dilation,
              int64_t groups, FusedActivation activation) {
  return conv_public<1>(input, weight, bias, stride, padding, dilation, groups, activation);
}
Tensor conv2d(const Tensor& input, const Tensor& weight, const Tensor& bias,
              const SpatialArg& stride, const ConvPadding& padding, const SpatialArg& dilation,
              int64_t groups, FusedActivation activation) {
  return conv_public<2>(input, weight, bias, stride, padding, dilation, groups, activation);
}
Tensor conv3d(const Tensor& input, const Tensor& weight, const Tensor& bias,
              const SpatialArg& stride, const ConvPadding& padding, const SpatialArg& dilation,
              int64_t groups, FusedActivation activation) {
  return conv_public<3>(input, weight, bias, stride, padding, dilation, groups, activation);
}

Tensor conv_transpose1d(const Tensor& input, const Tensor& weight, const Tensor& bias,
                        const SpatialArg& stride, const SpatialArg& padding,
                        const SpatialArg& output_padding, int64_t groups,
                        const SpatialArg& dilation) {
  return transpose_public<1>(input, weight, bias, stride, padding, output_padding, groups,
                             dilation);
}
Tensor conv_transpose2d(const Tensor& input, const Tensor& weight, const Tensor& bias,
                        const SpatialArg& stride, const SpatialArg& padding,
                        const SpatialArg& output_padding, int64_t groups,
                        const SpatialArg& dilation) {
  return transpose_public<2>(input, weight, bias, stride, padding, output_padding, groups,
                             dilation);
}
Tensor conv_transpose3d(const Tensor& input, const Tensor& weight, const Tensor& bias,
                        const SpatialArg& stride, const SpatialArg& padding,
                        const SpatialArg& output_padding, int64_t groups,
                        const SpatialArg& dilation) {
  return transpose_public<3>(input, weight, bias, stride, padding, output_padding, groups,
                             dilation);
}

namespace detail {
TensorList conv2d_pad1_grads(const Tensor& x, const Tensor& w, const Tensor& gy, bool need_x,
                             bool need_w, bool need_b) {
  ConvParams p;
  p.pad[0] = p.pad[1] = p.pad_hi[0] = p.pad_hi[1] = 1;
  TensorList out(3);
  if (need_x) {
    out[0] =
        run_op1(kTranspose<2>, {gy, w}, transpose_attrs<2>(p, x.shape(), gy.shape(), w.shape()));
  }
  if (need_w)
    out[1] = run_op1(kWeightGrad<2>, {x, gy}, with_kernel(make_attrs(p, 2), w.shape(), 2));
  if (need_b) out[2] = bias_grad(gy);
  return out;
}
}  // namespace detail

}  // namespace tessera
