// apply_adam and apply_sgd: optimizer updates as stateful ops (see state.h).
#include <cmath>

#include "../kernels/cpu/optimizer_kernels.h"
#include "tessera/ops/op.h"
#include "tessera/ops/state.h"

namespace tessera {
namespace {

// Every tensor but `step` shaped and typed like the parameter (contiguous float), step a
// 0-d float64 count.
void check_update_operands(const OpCall& c, size_t step_index, const char* op) {
  const Tensor& p = c.in(0);
  check(p.dtype() == DType::Float32 || p.dtype() == DType::Float64, op,
        "parameters must be float32 or float64, got ", dtype_name(p.dtype()));
  for (size_t i = 1; i < c.inputs.size(); ++i) {
    const Tensor& t = c.in(i);
    if (i == step_index) {
      check(t.dim() == 0 && t.dtype() == DType::Float64, op,
            "step must be a 0-d float64 tensor, got ", dtype_name(t.dtype()), t.shape());
      continue;
    }
    check(t.shape() == p.shape() && t.dtype() == p.dtype(), op, "input ", i, " is ",
          dtype_name(t.dtype()), t.shape(), ", the parameter ", dtype_name(p.dtype()), p.shape());
  }
}

// The count in `step` as an integer (it holds whole numbers).
int64_t step_count(const Tensor& step, const char* op) {
  double s = step.item<double>();
  check(s >= 1 && s < 9.0e15 && s == std::floor(s), op, "step must be a whole number >= 1, got ",
        s);
  return static_cast<int64_t>(s);
}

// Kernels need contiguous operands: a strided input is copied (its own storage), and a
// strided parameter or state would not be written where it lives, so it is refused.
Tensor dense(const Tensor& t) { return t.is_contiguous() ? t : t.contiguous(); }
void check_writable(const OpCall& c, size_t count, const char* op) {
  for (size_t i = 0; i < count; ++i) {
    check(c.in(i).is_contiguous(), op, "input ", i, " is written in place and must be contiguous");
  }
}

// Inputs: param, exp_avg, exp_avg_sq, grad, step [, max_exp_avg_sq].
MetaList infer_apply_adam(const OpCall& c) {
  check(c.inputs.size() == 5 || c.inputs.size() == 6, "apply_adam", "takes 5 or 6 inputs, got ",
        c.inputs.size());
  check_update_operands(c, 4, "apply_adam");
  return {{c.in(0).shape(), c.in(0).dtype()}};
}
void cpu_apply_adam(const OpCall& c, std::span<Tensor> out) {
  bool ams = c.inputs.size() == 6;
  check_writable(c, 3, "apply_adam");
  if (ams) check(c.in(5).is_contiguous(), "apply_adam", "max_exp_avg_sq must be contiguous");
  const Attrs& a = c.attrs;
  cpu::adam_update(c.in(0), c.in(1), c.in(2), ams ? c.in(5) : Tensor(), dense(c.in(3)),
                   {a.f("lr"), a.f("beta1"), a.f("beta2"), a.f("eps"), a.f("weight_decay"),
                    a.b("decoupled"), ams, step_count(c.in(4), "apply_adam")});
  for (size_t i = 0; i < 3; ++i) c.in(i).storage()->bump_version();
  out[0].copy_(c.in(0));
}

// Inputs: param, grad, step [, momentum_buffer].
MetaList infer_apply_sgd(const OpCall& c) {
  check(c.inputs.size() == 3 || c.inputs.size() == 4, "apply_sgd", "takes 3 or 4 inputs, got ",
        c.inputs.size());
  check_update_operands(c, 2, "apply_sgd");
  check(c.attrs.f("momentum") == 0 || c.inputs.size() == 4, "apply_sgd",
        "momentum needs a momentum buffer");
  return {{c.in(0).shape(), c.in(0).dtype()}};
}
void cpu_apply_sgd(const OpCall& c, std::span<Tensor> out) {
  check_writable(c, 1, "apply_sgd");
  const Attrs& a = c.attrs;
  bool momentum = a.f("momentum") != 0;
  Tensor buf = momentum ? c.in(3) : Tensor();
  if (momentum) check(buf.is_contiguous(), "apply_sgd", "the momentum buffer must be contiguous");
  cpu::sgd_update(c.in(0), buf, dense(c.in(1)),
                  {a.f("lr"), a.f("momentum"), a.f("dampening"), a.f("weight_decay"),
                   a.b("nesterov"), step_count(c.in(2), "apply_sgd") == 1});
  c.in(0).storage()->bump_version();
  if (momentum) buf.storage()->bump_version();
  out[0].copy_(c.in(0));
}

// Adam writes the parameter, both moments and (amsgrad) the running maximum; SGD the
// parameter and the momentum buffer.
constexpr OpDef kApplyAdam{"apply_adam", infer_apply_adam, cpu_apply_adam, nullptr,
                           nullptr,      kSaveNothing,     0b100111u};
constexpr OpDef kApplySgd{"apply_sgd", infer_apply_sgd, cpu_apply_sgd, nullptr,
                          nullptr,     kSaveNothing,    0b1001u};
const OpRegistrar r1(kApplyAdam), r2(kApplySgd);

}  // namespace

Tensor apply_adam(const Tensor& param, const Tensor& exp_avg, const Tensor& exp_avg_sq,
                  const Tensor& grad, const Tensor& step, const AdamOptions& o,
                  const Tensor& max_exp_avg_sq) {
  Attrs attrs{{"lr", o.lr},
              {"beta1", o.beta1},
              {"beta2", o.beta2},
              {"eps", o.eps},
              {"weight_decay", o.weight_decay},
              {"decoupled", o.decoupled}};
  if (max_exp_avg_sq.defined()) {
    return run_op1(kApplyAdam, {param, exp_avg, exp_avg_sq, grad, step, max_exp_avg_sq}, attrs);
  }
  return run_op1(kApplyAdam, {param, exp_avg, exp_avg_sq, grad, step}, attrs);
}

Tensor apply_sgd(const Tensor& param, const Tensor& grad, const Tensor& step, const SgdOptions& o,
                 const Tensor& momentum_buffer) {
  Attrs attrs{{"lr", o.lr},
              {"momentum", o.momentum},
              {"dampening", o.dampening},
              {"weight_decay", o.weight_decay},
              {"nesterov", o.nesterov}};
  if (momentum_buffer.defined()) {
    return run_op1(kApplySgd, {param, grad, step, momentum_buffer}, attrs);
  }
  return run_op1(kApplySgd, {param, grad, step}, attrs);
}

}  // namespace tessera
