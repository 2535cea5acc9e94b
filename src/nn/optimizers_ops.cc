// Optimizer updates written with ops and assign(), for training steps captured as graphs.
// Each follows its eager loop in optimizers.cc operation by operation, in the parameter's
// dtype, so that a graph step gives the same numbers as step().
#include "tessera/nn/optim.h"
#include "tessera/ops/creation.h"
#include "tessera/ops/elementwise.h"
#include "tessera/ops/state.h"

namespace tessera::nn {

namespace {
// A 0-d tensor of the parameter's dtype, as the eager loops convert their constants.
Tensor as(const Tensor& p, double v) { return scalar_tensor(v, p.dtype()); }
}  // namespace

void SGD::update_with_ops(const Tensor& p, const Tensor& g, State& s, const Tensor& step,
                          const Options& o) {
  double momentum = o.at("momentum"), dampening = o.at("dampening"), wd = o.at("weight_decay");
  bool nesterov = o.at("nesterov") != 0;
  Tensor d = g;
  if (wd != 0) d = add(d, mul(as(p, wd), p));
  if (momentum != 0) {
    Tensor& buf = slot(s, "momentum_buffer", p);
    // The first step (step == 1) starts the buffer at d, as step() does.
    Tensor later = add(mul(as(p, momentum), buf), mul(as(p, 1 - dampening), d));
    Tensor updated = where(eq(step, scalar_tensor(1.0, DType::Float64)), d, later);
    assign(buf, updated);
    d = nesterov ? add(d, mul(as(p, momentum), updated)) : updated;
  }
  assign(p, sub(p, mul(as(p, o.at("lr")), d)));
}

void Adam::update_with_ops(const Tensor& p, const Tensor& g, State& s, const Tensor& step,
                           const Options& o) {
  double b1 = o.at("beta1"), b2 = o.at("beta2"), eps = o.at("eps"), wd = o.at("weight_decay");
  double lr = o.at("lr");
  bool decoupled = o.count("decoupled") && o.at("decoupled") != 0;
  check(o.at("amsgrad") == 0, name(), "amsgrad cannot be captured in a graph yet");
  Tensor& m = slot(s, "exp_avg", p);
  Tensor& v = slot(s, "exp_avg_sq", p);
  // Bias corrections in float64 from the step count, then converted, as the loop does.
  Tensor one = scalar_tensor(1.0, DType::Float64);
  Tensor bc1 = sub(one, pow(scalar_tensor(b1, DType::Float64), step));
  Tensor bc2_sqrt = sqrt(sub(one, pow(scalar_tensor(b2, DType::Float64), step)));
  Tensor neg_step = cast(neg(div(scalar_tensor(lr, DType::Float64), bc1)), p.dtype());
  Tensor bc2 = cast(bc2_sqrt, p.dtype());
  Tensor param = p, d = g;
  if (decoupled) {
    param = mul(param, as(p, 1 - lr * wd));
  } else if (wd != 0) {
    d = add(d, mul(as(p, wd), param));
  }
  Tensor m_new = add(m, mul(sub(d, m), as(p, 1 - b1)));
  Tensor v_new = add(mul(v, as(p, b2)), mul(mul(d, d), as(p, 1 - b2)));
  Tensor denom = add(div(sqrt(v_new), bc2), as(p, eps));
  assign(m, m_new);
  assign(v, v_new);
  assign(p, add(param, mul(neg_step, div(m_new, denom))));
}

}  // namespace tessera::nn
