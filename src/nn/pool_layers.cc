#include "tessera/nn/pool_layers.h"

#include "tessera/core/error.h"
#include "tessera/ops/reduce.h"

namespace tessera::nn {
namespace {

Axes spatial_axes(const Tensor& x, const char* type) {
  check(x.dim() >= 3, type, "expected [N, C, ...] input, got shape ", x.shape());
  Axes axes;
  for (int64_t i = 2; i < x.dim(); ++i) axes.push_back(i);
  return axes;
}

}  // namespace

Tensor PoolNd::forward(const Tensor& x) {
  const auto& o = o_;
  if (max_) {
    return rank_ == 1 ? max_pool1d(x, kernel_, o.stride, o.padding, o.dilation, o.ceil_mode)
                      : max_pool2d(x, kernel_, o.stride, o.padding, o.dilation, o.ceil_mode);
  }
  return rank_ == 1 ? avg_pool1d(x, kernel_, o.stride, o.padding, o.ceil_mode, o.count_include_pad)
                    : avg_pool2d(x, kernel_, o.stride, o.padding, o.ceil_mode, o.count_include_pad);
}

Tensor GlobalAvgPool::forward(const Tensor& x) {
  return mean(x, spatial_axes(x, "GlobalAvgPool"), keepdim_);
}

Tensor GlobalMaxPool::forward(const Tensor& x) {
  return amax(x, spatial_axes(x, "GlobalMaxPool"), keepdim_);
}

}  // namespace tessera::nn
