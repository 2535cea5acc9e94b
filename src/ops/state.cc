// The assign op (see state.h).
#include "tessera/ops/state.h"

#include "../kernels/cpu/copy.h"
#include "tessera/autodiff/autodiff.h"
#include "tessera/ops/op.h"

namespace tessera {
namespace {

MetaList infer_assign(const OpCall& c) {
  const Tensor &var = c.in(0), &value = c.in(1);
  check(var.shape() == value.shape() && var.dtype() == value.dtype(), "assign",
        "the value must have the variable's shape and dtype: variable ", dtype_name(var.dtype()),
        var.shape(), ", value ", dtype_name(value.dtype()), value.shape());
  return {{var.shape(), var.dtype()}};
}

// Writes the variable, and the output (which later reads in the same graph use).
void cpu_assign(const OpCall& c, std::span<Tensor> out) {
  Tensor var = c.in(0);
  cpu::copy_into(c.in(1), var);
  var.storage()->bump_version();
  cpu::copy_into(c.in(1), out[0]);
}

constexpr OpDef kAssign{"assign", infer_assign, cpu_assign, nullptr, nullptr, kSaveNothing, 1u};
const OpRegistrar assign_registrar(kAssign);

}  // namespace

Tensor assign(const Tensor& variable, const Tensor& value) {
  check_defined(variable, "assign", "variable");
  check_defined(value, "assign", "value");
  if (active_tracer() != nullptr) return run_op1(kAssign, {variable, value});
  Tensor v = value;  // a value that shares the variable's storage is copied out first
  if (value.storage() == variable.storage()) v = value.clone();
  std::array<Tensor, 2> args{variable, v};
  Attrs none;
  infer_assign(OpCall{args, none});
  NoGradGuard no_grad;
  Tensor target = variable.detach();
  cpu::copy_into(v, target);
  variable.storage()->bump_version();
  return variable;
}

}  // namespace tessera
