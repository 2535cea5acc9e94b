// Pooling layers over NCL / NCHW inputs (see tessera/ops/nn.h for the exact rules).
#pragma once
#include "tessera/nn/module.h"
#include "tessera/ops/nn.h"

namespace tessera::nn {

struct PoolOptions {
  SpatialArg stride = {};  // empty: the kernel size
  SpatialArg padding = 0;
  SpatialArg dilation = 1;  // max pooling only
  bool ceil_mode = false;
  bool count_include_pad = true;  // average pooling only
};

// kind: "max" or "avg"; rank: 1 or 2 spatial dimensions.
class PoolNd : public Module {
 public:
  PoolNd(const char* type_name, bool max, int rank, SpatialArg kernel, PoolOptions options)
      : Module(type_name), max_(max), rank_(rank), kernel_(std::move(kernel)), o_(options) {}
  Tensor forward(const Tensor& input) override;
  // 2-d max pooling over 2x2 windows of stride 2, no padding, floor mode.
  bool is_max_pool_2x2() const;

 private:
  bool max_;
  int rank_;
  SpatialArg kernel_;
  PoolOptions o_;
};

class MaxPool1d : public PoolNd {
 public:
  explicit MaxPool1d(SpatialArg kernel, PoolOptions o = {})
      : PoolNd("MaxPool1d", true, 1, std::move(kernel), o) {}
};
class MaxPool2d : public PoolNd {
 public:
  explicit MaxPool2d(SpatialArg kernel, PoolOptions o = {})
      : PoolNd("MaxPool2d", true, 2, std::move(kernel), o) {}
};
class AvgPool1d : public PoolNd {
 public:
  explicit AvgPool1d(SpatialArg kernel, PoolOptions o = {})
      : PoolNd("AvgPool1d", false, 1, std::move(kernel), o) {}
};
class AvgPool2d : public PoolNd {
 public:
  explicit AvgPool2d(SpatialArg kernel, PoolOptions o = {})
      : PoolNd("AvgPool2d", false, 2, std::move(kernel), o) {}
};

class AdaptiveAvgPool1d : public Module {
 public:
  explicit AdaptiveAvgPool1d(SpatialArg size) : Module("AdaptiveAvgPool1d"), size_(size) {}
  Tensor forward(const Tensor& x) override { return adaptive_avg_pool1d(x, size_); }

 private:
  SpatialArg size_;
};
class AdaptiveAvgPool2d : public Module {
 public:
  explicit AdaptiveAvgPool2d(SpatialArg size) : Module("AdaptiveAvgPool2d"), size_(size) {}
  Tensor forward(const Tensor& x) override { return adaptive_avg_pool2d(x, size_); }

 private:
  SpatialArg size_;
};

// Mean or max over every spatial axis of [N, C, ...]: [N, C], as Keras'
// GlobalAveragePooling2D / GlobalMaxPooling2D (keepdim keeps size-1 spatial axes).
class GlobalAvgPool : public Module {
 public:
  explicit GlobalAvgPool(bool keepdim = false) : Module("GlobalAvgPool"), keepdim_(keepdim) {}
  Tensor forward(const Tensor& input) override;

 private:
  bool keepdim_;
};
class GlobalMaxPool : public Module {
 public:
  explicit GlobalMaxPool(bool keepdim = false) : Module("GlobalMaxPool"), keepdim_(keepdim) {}
  Tensor forward(const Tensor& input) override;

 private:
  bool keepdim_;
};

}  // namespace tessera::nn
