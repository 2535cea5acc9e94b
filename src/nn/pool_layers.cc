#include "tessera/nn/pool_layers.h"

#include <algorithm>

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

bool PoolNd::is_max_pool_2x2() const {
  auto all = [](const std::vector<int64_t>& v, int64_t x) {
    return !v.empty() && std::all_of(v.begin(), v.end(), [&](int64_t e) { return e == x; });
  };
  const bool stride2 = o_.stride.values.empty() || all(o_.stride.values, 2);
  return max_ && rank_ == 2 && all(kernel_.values, 2) && stride2 && all(o_.padding.values, 0) &&
         all(o_.dilation.values, 1) && !o_.ceil_mode;
}

Tensor GlobalAvgPool::forward(const Tensor& x) {
  return mean(x, spatial_axes(x, "GlobalAvgPool"), keepdim_);
}

Tensor GlobalMaxPool::forward(const Tensor& x) {
  return amax(x, spatial_axes(x, "GlobalMaxPool"), keepdim_);
}

}  // namespace tessera::nn
