#include "tessera/nn/norm_layers.h"

#include "tessera/autodiff/autodiff.h"
#include "tessera/core/error.h"
#include "tessera/ops/creation.h"
#include "tessera/ops/elementwise.h"
#include "tessera/ops/reduce.h"
#include "tessera/ops/shape.h"
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
  if (is_training() && cross_replica_sum) return synced_forward(x);
  return batch_norm(x, running_mean, running_var, weight, bias, use_batch_stats, o_.momentum,
                    o_.eps);
}

// Batch norm over the global batch of data-parallel training: per-channel sums and sums of
// squares (in float64, so E[x^2] - E[x]^2 keeps its digits) and the sample count are summed
// over ranks, then every rank normalizes its part with the global mean and variance.
Tensor BatchNorm::synced_forward(const Tensor& x) {
  const int64_t channels = x.size(1);
  Axes axes{0};
  for (int64_t a = 2; a < x.dim(); ++a) axes.push_back(a);
  Shape per_channel(static_cast<size_t>(x.dim()), 1);
  per_channel[1] = channels;
  Tensor wide = x.to(DType::Float64);
  Tensor local = concat(
      {sum(wide, axes), sum(square(wide), axes),
       full({1}, static_cast<double>(x.numel() / std::max<int64_t>(channels, 1)), DType::Float64)},
      0);
  Tensor total = cross_replica_sum(local);
  double count = total.narrow(0, 2 * channels, 1).item<double>();
  check(count > 0, type_name(), "the global batch is empty");
  Tensor mean = total.narrow(0, 0, channels) / count;
  Tensor var = total.narrow(0, channels, channels) / count - square(mean);
  if (running_mean.defined()) {
    NoGradGuard no_grad;
    double m = o_.momentum, unbias = count > 1 ? count / (count - 1) : 1.0;
    assign(running_mean, running_mean * (1 - m) + mean.to(running_mean.dtype()) * m);
    assign(running_var, running_var * (1 - m) + (var * unbias).to(running_var.dtype()) * m);
  }
  Tensor scale = rsqrt(var + o_.eps).to(x.dtype()).reshape(per_channel);
  Tensor y = (x - mean.to(x.dtype()).reshape(per_channel)) * scale;
  if (weight.defined()) y = y * weight.reshape(per_channel) + bias.reshape(per_channel);
  return y;
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
