// The optimizer update loops, shared by the eager optimizers (src/nn/optimizers.cc) and the
// apply_adam / apply_sgd ops that captured training steps run, so both give the same bits.
#pragma once
#include <cstdint>

#include "tessera/core/tensor.h"

namespace tessera::cpu {

struct AdamStep {
  double lr, beta1, beta2, eps, weight_decay;
  bool decoupled, amsgrad;
  int64_t step;  // already advanced for this update (1 on the first)
};
// Updates p, m, v (and vmax with amsgrad) in place from g; contiguous float32 or float64.
void adam_update(const Tensor& p, const Tensor& m, const Tensor& v, const Tensor& vmax,
                 const Tensor& g, const AdamStep& s);

struct SgdStep {
  double lr, momentum, dampening, weight_decay;
  bool nesterov;
  bool first;  // the momentum buffer starts at the first gradient
};
// Updates p (and buf when momentum != 0) in place from g.
void sgd_update(const Tensor& p, const Tensor& buf, const Tensor& g, const SgdStep& s);

}  // namespace tessera::cpu
