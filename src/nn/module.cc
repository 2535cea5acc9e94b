#include "tessera/nn/module.h"

#include <iomanip>
#include <map>
#include <sstream>

#include "tessera/autodiff/autodiff.h"
#include "tessera/core/error.h"
#include "tessera/ops/creation.h"

namespace tessera::nn {
namespace {

void check_name(const std::string& owner, const std::string& name) {
  check(!name.empty() && name.find('.') == std::string::npos, owner, "invalid name '", name,
        "': names are non-empty and contain no '.'");
}

// Rows collected by summary(): one per leaf module call.
struct SummaryTrace {
  std::map<const Module*, std::string> names;
  struct Row {
    std::string name, type;
    Shape output;
    int64_t params;
  };
  std::vector<Row> rows;
};
thread_local SummaryTrace* active_trace = nullptr;

std::string shape_text(const Shape& s) {
  std::string out = "[-1";  // the batch dimension, as Keras prints None
  for (size_t i = 1; i < s.size(); ++i) out += ", " + std::to_string(s[i]);
  return out + "]";
}

}  // namespace

Tensor Module::forward(const Tensor&) {
  fail(type_name_, "this module has no one-tensor forward; call its own forward overload");
}

Tensor Module::operator()(const Tensor& input) {
  Tensor out = forward(input);
  if (active_trace && out.defined()) {
    bool has_own_params = !parameters_.empty();
    if (children_.empty() || has_own_params) {
      auto it = active_trace->names.find(this);
      std::string name = it == active_trace->names.end() ? "" : it->second;
      active_trace->rows.push_back({name, type_name_, out.shape(), num_parameters()});
    }
  }
  return out;
}

Tensor Module::register_parameter(const std::string& name, Tensor value, bool requires_grad) {
  check_name(type_name_, name);
  for (auto& [n, t] : parameters_) check(n != name, type_name_, "parameter '", name, "' exists");
  if (value.defined()) value.set_requires_grad(requires_grad);
  parameters_.emplace_back(name, value);
  return value;
}

Tensor Module::register_buffer(const std::string& name, Tensor value) {
  check_name(type_name_, name);
  for (auto& [n, t] : buffers_) check(n != name, type_name_, "buffer '", name, "' exists");
  buffers_.emplace_back(name, value);
  return value;
}

void Module::add_child(const std::string& name, ModulePtr module) {
  check_name(type_name_, name);
  check(module != nullptr, type_name_, "submodule '", name, "' is null");
  for (auto& [n, m] : children_) check(n != name, type_name_, "submodule '", name, "' exists");
  // A module inside its own subtree would make every walk of the tree endless.
  std::vector<const Module*> pending{module.get()};
  while (!pending.empty()) {
    const Module* m = pending.back();
    pending.pop_back();
    check(m != this, type_name_, "submodule '", name, "' contains this module (a cycle)");
    for (auto& [n, child] : m->children_) pending.push_back(child.get());
  }
  children_.emplace_back(name, std::move(module));
}

void Module::collect(const std::string& prefix, bool recurse, bool buffers,
                     NamedTensors& out) const {
  for (auto& [name, t] : buffers ? buffers_ : parameters_)
    if (t.defined()) out.emplace_back(prefix + name, t);
  if (!recurse) return;
  for (auto& [name, child] : children_) child->collect(prefix + name + ".", true, buffers, out);
}

NamedTensors Module::named_parameters(bool recurse) const {
  NamedTensors out;
  collect("", recurse, false, out);
  return out;
}

NamedTensors Module::named_buffers(bool recurse) const {
  NamedTensors out;
  collect("", recurse, true, out);
  return out;
}

std::vector<Tensor> Module::parameters(bool recurse) const {
  std::vector<Tensor> out;
  for (auto& [name, t] : named_parameters(recurse)) out.push_back(t);
  return out;
}

std::vector<std::pair<std::string, ModulePtr>> Module::named_modules() {
  std::vector<std::pair<std::string, ModulePtr>> out{{"", shared_from_this()}};
  for (auto& [name, child] : children_)
    for (auto& [sub, m] : child->named_modules())
      out.emplace_back(sub.empty() ? name : name + "." + sub, m);
  return out;
}

int64_t Module::num_parameters(bool trainable_only) const {
  int64_t n = 0;
  for (auto& [name, t] : named_parameters())
    if (!trainable_only || t.requires_grad()) n += t.numel();
  return n;
}

void Module::train(bool on) {
  training_ = on;
  for (auto& [name, child] : children_) child->train(on);
}

void Module::freeze() {
  for (auto& t : parameters()) t.set_requires_grad(false);
}

void Module::unfreeze() {
  for (auto& t : parameters()) t.set_requires_grad(true);
}

void Module::zero_grad() {
  for (auto& t : parameters()) t.zero_grad();
}

NamedTensors Module::state_dict() const {
  NamedTensors out = named_parameters();
  collect("", true, true, out);
  return out;
}

void Module::load_state_dict(const NamedTensors& state, bool strict) {
  const std::string op = "load_state_dict";
  NamedTensors own = state_dict();
  std::map<std::string, Tensor> given;
  for (auto& [name, t] : state) {
    check(t.defined(), op, "entry '", name, "' is an undefined tensor");
    check(given.emplace(name, t).second, op, "entry '", name, "' appears twice");
  }
  // Validate everything first so that a bad entry leaves the module unchanged.
  std::vector<std::pair<Tensor, Tensor>> copies;
  for (auto& [name, target] : own) {
    auto it = given.find(name);
    if (it == given.end()) {
      check(!strict, op, "missing entry '", name, "' (", type_name_, ")");
      continue;
    }
    check(it->second.shape() == target.shape(), op, "entry '", name, "' has shape ",
          it->second.shape(), ", expected ", target.shape());
    copies.emplace_back(target, it->second);
    given.erase(it);
  }
  if (strict && !given.empty()) fail(op, "unexpected entry '", given.begin()->first, "'");
  NoGradGuard no_grad;
  for (auto& [target, source] : copies) target.copy_(source);
}

EvalModeScope::EvalModeScope(Module& root) {
  std::vector<Module*> pending{&root};
  while (!pending.empty()) {
    Module* m = pending.back();
    pending.pop_back();
    saved_.emplace_back(m, m->training_);
    m->training_ = false;
    for (auto& [name, child] : m->children_) pending.push_back(child.get());
  }
}

EvalModeScope::~EvalModeScope() {
  for (auto& [module, training] : saved_) module->training_ = training;
}

std::string Module::summary(const Shape& input_shape, DType dtype) {
  SummaryTrace trace;
  for (auto& [name, m] : named_modules()) trace.names[m.get()] = name.empty() ? "(root)" : name;
  {
    EvalModeScope eval_mode(*this);
    NoGradGuard no_grad;
    active_trace = &trace;
    try {
      (*this)(zeros(input_shape, dtype));
    } catch (...) {
      active_trace = nullptr;
      throw;
    }
    active_trace = nullptr;
  }

  std::ostringstream os;
  size_t name_width = 20;
  for (auto& r : trace.rows) name_width = std::max(name_width, r.name.size() + r.type.size() + 4);
  auto line = [&](char c) { os << std::string(name_width + 40, c) << "\n"; };
  os << "Model: " << type_name_ << "\n";
  line('=');
  os << std::left << std::setw(name_width) << "Layer (type)" << std::setw(26) << "Output Shape"
     << "Param #\n";
  line('=');
  for (auto& r : trace.rows) {
    os << std::setw(name_width) << (r.name + " (" + r.type + ")") << std::setw(26)
       << shape_text(r.output) << r.params << "\n";
  }
  line('=');
  int64_t total = num_parameters(), trainable = num_parameters(true);
  os << "Total params: " << total << "\n"
     << "Trainable params: " << trainable << "\n"
     << "Non-trainable params: " << total - trainable << "\n";
  line('_');
  return os.str();
}

}  // namespace tessera::nn
