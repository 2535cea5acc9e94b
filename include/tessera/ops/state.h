// Writing to variables. In eager mode assign() is an in-place copy; traced into a graph it is
// a node that writes the variable when the graph runs (the optimizer update of a captured
// training step), and later reads of the variable in the same trace see the new value.
#pragma once
#include "tessera/core/tensor.h"

namespace tessera {

// Copies `value` (same shape and dtype) into `variable`; returns the new value. Not
// differentiable, and not recorded by autodiff.
Tensor assign(const Tensor& variable, const Tensor& value);

// One optimizer update as a single op that writes the parameter and its state in place, as
// TensorFlow's ResourceApplyAdam does: captured training steps run these, with the loops the
// eager optimizers use. `step` is the update's step count (1 on the first), a 0-d float64
// tensor. Each returns the updated parameter (later reads in a trace see it).
struct AdamOptions {
  double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0;
  bool decoupled = false;  // AdamW's decay
};
Tensor apply_adam(const Tensor& param, const Tensor& exp_avg, const Tensor& exp_avg_sq,
                  const Tensor& grad, const Tensor& step, const AdamOptions& options,
                  const Tensor& max_exp_avg_sq = {});  // given: amsgrad

struct SgdOptions {
  double lr = 1e-2, momentum = 0, dampening = 0, weight_decay = 0;
  bool nesterov = false;
};
// `momentum_buffer` is needed when momentum != 0; it starts at the gradient when step is 1.
Tensor apply_sgd(const Tensor& param, const Tensor& grad, const Tensor& step,
                 const SgdOptions& options, const Tensor& momentum_buffer = {});

}  // namespace tessera
