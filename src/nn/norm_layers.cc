#include "tessera/nn/norm_layers.h"

#include "tessera/autodiff/autodiff.h"
#include "tessera/core/error.h"
#include "tessera/ops/creation.h"
#include "tessera/ops/elementwise.h"
#include "tessera/ops/state.h"

namespace tessera::nn {

BatchNorm::BatchNorm(const char* type, int64_t c, int rank_min, int rank_max, BatchNormOptions o)
    : Module(type), rank_min_(rank_min), rank_max_(rank_max), o_(o) {
  if (o.affine) {
    weight = register_parameter("weight", ones({c}));
    bias = register_parameter("bias", zeros({c}));
  }
  if (o.track_running_stats) {
    running_mean = register_buffer("running_mean", zeros({c}));
    running_var = register_buffer("running_var", ones({c}));
    num_batches_tracked = register_buffer("num_batches_tracked", zeros({}, DType::Int64));
  }
}

Tensor BatchNorm::forward(const Tensor& x) {
  check(x.dim() >= rank_min_ && x.dim() <= rank_max_, type_name(), "expected a ", rank_min_,
        rank_min_ == rank_max_ ? "" : " or " + std::to_string(rank_max_), "-d input, got shape ",
        x.shape());
  // Batch statistics in training, or always when no running statistics are kept.
  bool use_batch_stats = is_training() || !running_mean.defined();
  if (is_training() && num_batches_tracked.defined()) {
    NoGradGuard no_grad;
    assign(num_batches_tracked, add(num_batches_tracked, ones({}, DType::Int64)));
  }
  return batch_norm(x, running_mean, running_var, weight, bias, use_batch_stats, o_.momentum,
                    o_.eps);
}

LayerNorm::LayerNorm(Shape shape, double eps, bool affine)
    : Module("LayerNorm"), shape_(shape), eps_(eps) {
  if (affine) {
    weight = register_parameter("weight", ones(shape));
    bias = register_parameter("bias", zeros(shape));
  }
}

Tensor LayerNorm::forward(const Tensor& x) { return layer_norm(x, shape_, weight, bias, eps_); }

GroupNorm::GroupNorm(int64_t groups, int64_t channels, double eps, bool affine)
    : Module("GroupNorm"), groups_(groups), eps_(eps) {
  check(groups >= 1 && channels % groups == 0, "GroupNorm", "num_groups = ", groups,
        " must divide num_channels = ", channels);
  if (affine) {
    weight = register_parameter("weight", ones({channels}));
    bias = register_parameter("bias", zeros({channels}));
  }
}

Tensor GroupNorm::forward(const Tensor& x) { return group_norm(x, groups_, weight, bias, eps_); }

InstanceNorm::InstanceNorm(int64_t c, double eps, bool affine) : Module("InstanceNorm"), eps_(eps) {
  if (affine) {
    weight = register_parameter("weight", ones({c}));
    bias = register_parameter("bias", zeros({c}));
  }
}

Tensor InstanceNorm::forward(const Tensor& x) { return instance_norm(x, weight, bias, eps_); }

}  // namespace tessera::nn
