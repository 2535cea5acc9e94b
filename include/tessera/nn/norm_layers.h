// Normalization layers. As in PyTorch: affine weights start at 1 and biases at 0;
// BatchNorm keeps running statistics (momentum 0.1) and a num_batches_tracked counter;
// InstanceNorm has no affine parameters unless asked.
#pragma once
#include <functional>

#include "tessera/nn/module.h"
#include "tessera/ops/nn.h"

namespace tessera::nn {

struct BatchNormOptions {
  double eps = 1e-5;
  double momentum = 0.1;
  bool affine = true;
  bool track_running_stats = true;
};

// BatchNorm1d takes [N, C] or [N, C, L]; BatchNorm2d takes [N, C, H, W].
class BatchNorm : public Module {
 public:
  BatchNorm(const char* type_name, int64_t num_features, int input_rank_min, int input_rank_max,
            BatchNormOptions options);
  Tensor forward(const Tensor& input) override;
  Tensor weight, bias, running_mean, running_var, num_batches_tracked;
  // Set by data-parallel training with synchronized batch norm: a differentiable sum over
  // the ranks. Training then normalizes with the statistics of the global batch.
  std::function<Tensor(const Tensor&)> cross_replica_sum;

 private:
  Tensor synced_forward(const Tensor& input);
  int rank_min_, rank_max_;
  BatchNormOptions o_;
};

class BatchNorm1d : public BatchNorm {
 public:
  explicit BatchNorm1d(int64_t num_features, BatchNormOptions o = {})
      : BatchNorm("BatchNorm1d", num_features, 2, 3, o) {}
};
class BatchNorm2d : public BatchNorm {
 public:
  explicit BatchNorm2d(int64_t num_features, BatchNormOptions o = {})
      : BatchNorm("BatchNorm2d", num_features, 4, 4, o) {}
};

class LayerNorm : public Module {
 public:
  explicit LayerNorm(Shape normalized_shape, double eps = 1e-5, bool elementwise_affine = true);
  Tensor forward(const Tensor& input) override;
  Tensor weight, bias;

 private:
  Shape shape_;
  double eps_;
};

class GroupNorm : public Module {
 public:
  GroupNorm(int64_t num_groups, int64_t num_channels, double eps = 1e-5, bool affine = true);
  Tensor forward(const Tensor& input) override;
  Tensor weight, bias;

 private:
  int64_t groups_;
  double eps_;
};

// Per-sample, per-channel normalization over the spatial axes of [N, C, ...].
class InstanceNorm : public Module {
 public:
  explicit InstanceNorm(int64_t num_features, double eps = 1e-5, bool affine = false);
  Tensor forward(const Tensor& input) override;
  Tensor weight, bias;

 private:
  double eps_;
};

}  // namespace tessera::nn
