// Convolution layers over NCL / NCHW / NCDHW inputs. Weights and biases start from
// U(-1/sqrt(fan_in), 1/sqrt(fan_in)) as in PyTorch (fan_in = in_channels / groups *
// kernel area; for transposed convolutions PyTorch's fan of the [in, out / groups, k]
// weight, i.e. out_channels / groups * kernel area).
#pragma once
#include <string>

#include "tessera/nn/module.h"
#include "tessera/ops/nn.h"

namespace tessera::nn {

struct ConvOptions {
  SpatialArg stride = 1;
  ConvPadding padding = 0;  // numbers, "same" or "valid"
  SpatialArg dilation = 1;
  int64_t groups = 1;
  bool bias = true;
  // As Keras' activation argument: "" or "linear" for none, "relu" for relu fused into
  // the convolution (one pass over the output instead of two).
  std::string activation;
};

// Conv1d, Conv2d and Conv3d share this: `rank` spatial dimensions.
class ConvNd : public Module {
 public:
  ConvNd(int rank, int64_t in_channels, int64_t out_channels, const SpatialArg& kernel_size,
         const ConvOptions& options, const char* type_name);
  Tensor forward(const Tensor& input) override;
  // Whether conv2d_relu_max_pool2d computes this layer then MaxPool2d(2): a 2-d convolution
  // of stride 1, padding 1 (or "same" for 3x3), dilation 1 and one group, with relu.
  bool fuses_with_max_pool_2x2() const;
  Tensor weight, bias;

 private:
  int rank_;
  ConvOptions options_;
  FusedActivation activation_;
};

class Conv1d : public ConvNd {
 public:
  Conv1d(int64_t in, int64_t out, const SpatialArg& kernel, const ConvOptions& o = {})
      : ConvNd(1, in, out, kernel, o, "Conv1d") {}
};
class Conv2d : public ConvNd {
 public:
  Conv2d(int64_t in, int64_t out, const SpatialArg& kernel, const ConvOptions& o = {})
      : ConvNd(2, in, out, kernel, o, "Conv2d") {}
};
class Conv3d : public ConvNd {
 public:
  Conv3d(int64_t in, int64_t out, const SpatialArg& kernel, const ConvOptions& o = {})
      : ConvNd(3, in, out, kernel, o, "Conv3d") {}
};

// One filter per input channel (times depth_multiplier), as Keras' DepthwiseConv2D.
class DepthwiseConv2d : public ConvNd {
 public:
  DepthwiseConv2d(int64_t channels, const SpatialArg& kernel, int64_t depth_multiplier = 1,
                  ConvOptions o = {});
};

// A depthwise convolution then a 1x1 pointwise one, as Keras' SeparableConv2D (the bias,
// when asked for, is on the pointwise convolution only).
class SeparableConv2d : public Module {
 public:
  SeparableConv2d(int64_t in, int64_t out, const SpatialArg& kernel, ConvOptions o = {},
                  int64_t depth_multiplier = 1);
  Tensor forward(const Tensor& input) override;
  std::shared_ptr<DepthwiseConv2d> depthwise;
  std::shared_ptr<Conv2d> pointwise;
};

struct ConvTransposeOptions {
  SpatialArg stride = 1;
  SpatialArg padding = 0;
  SpatialArg output_padding = 0;
  int64_t groups = 1;
  SpatialArg dilation = 1;
  bool bias = true;
};

class ConvTransposeNd : public Module {
 public:
  ConvTransposeNd(int rank, int64_t in_channels, int64_t out_channels,
                  const SpatialArg& kernel_size, const ConvTransposeOptions& options,
                  const char* type_name);
  Tensor forward(const Tensor& input) override;
  Tensor weight, bias;

 private:
  int rank_;
  ConvTransposeOptions options_;
};

class ConvTranspose1d : public ConvTransposeNd {
 public:
  ConvTranspose1d(int64_t in, int64_t out, const SpatialArg& kernel,
                  const ConvTransposeOptions& o = {})
      : ConvTransposeNd(1, in, out, kernel, o, "ConvTranspose1d") {}
};
class ConvTranspose2d : public ConvTransposeNd {
 public:
  ConvTranspose2d(int64_t in, int64_t out, const SpatialArg& kernel,
                  const ConvTransposeOptions& o = {})
      : ConvTransposeNd(2, in, out, kernel, o, "ConvTranspose2d") {}
};

}  // namespace tessera::nn
