// Eager execution of op definitions, the op registry, and attribute lookup.
#include "tessera/ops/op.h"

#include <map>
#include <mutex>

#include "tessera/autodiff/autodiff.h"

namespace tessera {

void Attrs::set(const char* name, AttrValue value) {
  for (auto& [key, v] : items_) {
    if (std::string_view(key) == name) {
      v = std::move(value);
      return;
    }
  }
  items_.emplace_back(name, std::move(value));
}

bool Attrs::has(const char* name) const {
  for (const auto& item : items_) {
    if (std::string_view(item.first) == name) return true;
  }
  return false;
}

const AttrValue& Attrs::find(const char* name) const {
  for (const auto& item : items_) {
    if (std::string_view(item.first) == name) return item.second;
  }
  fail("", "missing attribute '", name, "'");
}

void OpCall::missing_input(size_t i) const {
  fail("", "the op reads input ", i, " but was given ", inputs.size(), " inputs");
}

void check_defined(const Tensor& t, const char* op, const char* arg) {
  if (!t.defined()) [[unlikely]]
    fail(op, "argument '", arg, "' is an undefined tensor");
}

static bool any_requires_grad(std::span<const Tensor> inputs) {
  for (const Tensor& t : inputs) {
    if (t.defined() && t.requires_grad()) return true;
  }
  return false;
}

// Computes `outputs` for `metas` (or the view) and records the call for autodiff.
static void execute(const OpDef& def, const OpCall& call, std::span<Tensor> outputs) {
  def.cpu(call, outputs);
  if (grad_enabled() && any_requires_grad(call.inputs)) {
    autodiff::record(def, call.inputs, outputs, call.attrs);
  }
}

static thread_local OpTracer* current_tracer = nullptr;
OpTracer* active_tracer() { return current_tracer; }
TracerScope::TracerScope(OpTracer* tracer) : previous_(current_tracer) { current_tracer = tracer; }
TracerScope::~TracerScope() { current_tracer = previous_; }

namespace {
// Errors raised without an op's name (shape helpers such as Dims' limit on dimensions)
// are given the name of the op that was running.
[[noreturn]] void rethrow_named(const OpDef& def, const Error& e) {
  if (!e.op().empty()) throw;  // (called inside a handler: rethrows the original)
  throw Error(def.name, e.what());
}
}  // namespace

TensorList run_op(const OpDef& def, std::span<const Tensor> inputs, const Attrs& attrs) try {
  for (const Tensor& t : inputs) check_defined(t, def.name, "input");
  if (current_tracer != nullptr) return current_tracer->record(def, inputs, attrs);
  OpCall call{inputs, attrs};
  TensorList outputs;
  if (def.view) {
    outputs.push_back(def.view(call));
    if (grad_enabled() && any_requires_grad(inputs)) {
      autodiff::record(def, inputs, outputs, attrs);
    }
    return outputs;
  }
  MetaList metas = def.infer(call);
  outputs.reserve(metas.size());
  for (const TensorMeta& m : metas) outputs.push_back(Tensor::empty(m.shape, m.dtype));
  execute(def, call, outputs);
  return outputs;
} catch (const Error& e) {
  rethrow_named(def, e);
}

Tensor run_op1(const OpDef& def, std::span<const Tensor> inputs, const Attrs& attrs) try {
  if (def.view || current_tracer != nullptr) return std::move(run_op(def, inputs, attrs)[0]);
  // The common single-output case, without a vector of outputs.
  for (const Tensor& t : inputs) check_defined(t, def.name, "input");
  OpCall call{inputs, attrs};
  MetaList metas = def.infer(call);
  if (metas.size() != 1) return std::move(run_op(def, inputs, attrs)[0]);
  Tensor out = Tensor::empty(metas[0].shape, metas[0].dtype);
  execute(def, call, std::span<Tensor>(&out, 1));
  return out;
} catch (const Error& e) {
  rethrow_named(def, e);
}

Tensor run_adjoint(const OpDef& adjoint, const GradCall& g) {
  Attrs a = g.attrs;
  a.set("input_shape", g.in_shape(0).vec());
  return run_op1(adjoint, {g.gout()}, a);
}

static std::map<std::string, const OpDef*>& registry() {
  static std::map<std::string, const OpDef*> ops;
  return ops;
}
static std::mutex& registry_mutex() {
  static std::mutex m;
  return m;
}

OpRegistrar::OpRegistrar(const OpDef& def) {
  std::lock_guard<std::mutex> lock(registry_mutex());
  registry()[def.name] = &def;
}

const OpDef* find_op(const std::string& name) {
  std::lock_guard<std::mutex> lock(registry_mutex());
  auto it = registry().find(name);
  return it == registry().end() ? nullptr : it->second;
}

std::vector<const OpDef*> all_ops() {
  std::lock_guard<std::mutex> lock(registry_mutex());
  std::vector<const OpDef*> out;
  for (const auto& [name, def] : registry()) out.push_back(def);
  return out;
}

}  // namespace tessera
