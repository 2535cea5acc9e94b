#include "tessera/nn/conv_layers.h"

#include <algorithm>

#include <cmath>
#include <tuple>

#include "tessera/core/error.h"
#include "tessera/nn/init.h"
#include "tessera/ops/creation.h"

namespace tessera::nn {
namespace {

// The kernel size per spatial dimension (one value repeats).
Shape kernel_dims(const SpatialArg& k, int rank, const char* type) {
  check(k.values.size() == 1 || static_cast<int>(k.values.size()) == rank, type,
        "kernel_size needs 1 or ", rank, " values, got ", k.values.size());
  Shape s;
  for (int i = 0; i < rank; ++i) s.push_back(k.values.size() == 1 ? k.values[0] : k.values[i]);
  return s;
}

// Registers weight [lead..., *kernel] and bias [bias_size] on `m`, both drawn from
// U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with fan_in = fan_channels * kernel area.
std::pair<Tensor, Tensor> register_conv_params(Module& m, Shape weight_shape,
                                               const SpatialArg& kernel, int rank,
                                               int64_t fan_channels, int64_t bias_size,
                                               bool has_bias) {
  int64_t area = 1;
  for (int64_t k : kernel_dims(kernel, rank, m.type_name().c_str())) {
    weight_shape.push_back(k);
    area *= k;
  }
  Tensor w =
      m.register_parameter("weight", init::fan_in_uniform(weight_shape, fan_channels * area));
  Tensor b = has_bias ? m.register_parameter("bias",
                                             init::fan_in_uniform({bias_size}, fan_channels * area))
                      : Tensor();
  return {w, b};
}

void check_groups(const char* type, int64_t g, int64_t in, int64_t out) {
  check(g >= 1 && in % g == 0 && out % g == 0, type, "groups = ", g,
        " must divide in_channels = ", in, " and out_channels = ", out);
}

}  // namespace

ConvNd::ConvNd(int rank, int64_t in, int64_t out, const SpatialArg& kernel,
               const ConvOptions& options, const char* type)
    : Module(type), rank_(rank), options_(options) {
  const int64_t g = options.groups;
  check_groups(type, g, in, out);
  const std::string& a = options.activation;
  check(a.empty() || a == "linear" || a == "relu", type, "activation must be \"\", \"linear\" or ",
        "\"relu\", got \"", a, "\"");
  activation_ = a == "relu" ? FusedActivation::relu : FusedActivation::none;
  std::tie(weight, bias) =
      register_conv_params(*this, {out, in / g}, kernel, rank, in / g, out, options.bias);
}

Tensor ConvNd::forward(const Tensor& x) {
  const auto& o = options_;
  if (rank_ == 1)
    return conv1d(x, weight, bias, o.stride, o.padding, o.dilation, o.groups, activation_);
  if (rank_ == 2)
    return conv2d(x, weight, bias, o.stride, o.padding, o.dilation, o.groups, activation_);
  return conv3d(x, weight, bias, o.stride, o.padding, o.dilation, o.groups, activation_);
}

bool ConvNd::fuses_with_max_pool_2x2() const {
  const auto& o = options_;
  auto all = [](const std::vector<int64_t>& v, int64_t x) {
    return std::all_of(v.begin(), v.end(), [&](int64_t e) { return e == x; });
  };
  const bool pad1 = o.padding.mode.empty() ? all(o.padding.values, 1)
                                           : o.padding.mode == "same" && weight.dim() == 4 &&
                                                 weight.shape()[2] == 3 && weight.shape()[3] == 3;
  return rank_ == 2 && activation_ == FusedActivation::relu && o.groups == 1 && pad1 &&
         all(o.stride.values, 1) && all(o.dilation.values, 1);
}

static ConvOptions depthwise_options(ConvOptions o, int64_t channels) {
  o.groups = channels;
  return o;
}

DepthwiseConv2d::DepthwiseConv2d(int64_t channels, const SpatialArg& kernel, int64_t multiplier,
                                 ConvOptions o)
    : ConvNd(2, channels, channels * multiplier, kernel, depthwise_options(o, channels),
             "DepthwiseConv2d") {}

SeparableConv2d::SeparableConv2d(int64_t in, int64_t out, const SpatialArg& kernel, ConvOptions o,
                                 int64_t multiplier)
    : Module("SeparableConv2d") {
  ConvOptions dw = o;
  dw.bias = false;
  dw.activation.clear();  // the activation follows the pointwise convolution, as in Keras
  depthwise =
      register_module("depthwise", std::make_shared<DepthwiseConv2d>(in, kernel, multiplier, dw));
  pointwise = register_module(
      "pointwise",
      std::make_shared<Conv2d>(in * multiplier, out, 1,
                               ConvOptions{.bias = o.bias, .activation = o.activation}));
}

Tensor SeparableConv2d::forward(const Tensor& x) { return (*pointwise)((*depthwise)(x)); }

ConvTransposeNd::ConvTransposeNd(int rank, int64_t in, int64_t out, const SpatialArg& kernel,
                                 const ConvTransposeOptions& options, const char* type)
    : Module(type), rank_(rank), options_(options) {
  const int64_t g = options.groups;
  check_groups(type, g, in, out);
  // PyTorch's fan for the [in, out / groups, *kernel] weight: out / groups * kernel area.
  std::tie(weight, bias) =
      register_conv_params(*this, {in, out / g}, kernel, rank, out / g, out, options.bias);
}

Tensor ConvTransposeNd::forward(const Tensor& x) {
  const auto& o = options_;
  if (rank_ == 1)
    return conv_transpose1d(x, weight, bias, o.stride, o.padding, o.output_padding, o.groups,
                            o.dilation);
  return conv_transpose2d(x, weight, bias, o.stride, o.padding, o.output_padding, o.groups,
                          o.dilation);
}

}  // namespace tessera::nn
