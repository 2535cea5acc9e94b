// Optimizer updates for captured training steps: each parameter's update is one stateful op
// (apply_adam, apply_sgd) running the loop that step() runs, so graph and eager steps give
// the same bits.
#include "tessera/nn/optim.h"
#include "tessera/ops/state.h"

namespace tessera::nn {

void SGD::update_with_ops(const Tensor& p, const Tensor& g, State& s, const Tensor& step,
                          const Options& o) {
  double momentum = o.at("momentum");
  Tensor buf = momentum != 0 ? slot(s, "momentum_buffer", p) : Tensor();
  apply_sgd(p, g, step,
            {o.at("lr"), momentum, o.at("dampening"), o.at("weight_decay"), o.at("nesterov") != 0},
            buf);
}

void Adam::update_with_ops(const Tensor& p, const Tensor& g, State& s, const Tensor& step,
                           const Options& o) {
  bool decoupled = o.count("decoupled") && o.at("decoupled") != 0, ams = o.at("amsgrad") != 0;
  apply_adam(
      p, slot(s, "exp_avg", p), slot(s, "exp_avg_sq", p), g, step,
      {o.at("lr"), o.at("beta1"), o.at("beta2"), o.at("eps"), o.at("weight_decay"), decoupled},
      ams ? slot(s, "max_exp_avg_sq", p) : Tensor());
}

}  // namespace tessera::nn
