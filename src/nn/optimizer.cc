// The optimizer base: parameter groups, options, per-parameter state and its
// checkpoint form, and gradient clipping.
#include <algorithm>
#include <cmath>
#include <limits>

#include "tessera/autodiff/autodiff.h"
#include "tessera/core/error.h"
#include "tessera/nn/optim.h"
#include "tessera/ops/creation.h"
#include "tessera/ops/elementwise.h"
#include "tessera/ops/reduce.h"
#include "tessera/ops/state.h"

namespace tessera::nn {
namespace {

void check_param(const std::string& op, const Tensor& p) {
  check(p.defined(), op, "a parameter is undefined");
  check(p.dtype() == DType::Float32 || p.dtype() == DType::Float64, op,
        "parameters must be float32 or float64, got ", dtype_name(p.dtype()));
  check(p.is_contiguous(), op, "parameters must be contiguous (shape ", p.shape(), ")");
}

// The ranges PyTorch enforces: rates, epsilons and decays non-negative, betas in [0, 1),
// and every value finite (a NaN rate would turn every weight into NaN on the next step).
void check_option(const std::string& op, const std::string& key, double value) {
  check(std::isfinite(value), op, "option '", key, "' must be finite, got ", value);
  if (key == "beta1" || key == "beta2") {
    check(value >= 0 && value < 1, op, "option '", key, "' must lie in [0, 1), got ", value);
  } else if (key == "rho") {
    check(value >= 0 && value <= 1, op, "option '", key, "' must lie in [0, 1], got ", value);
  } else if (key == "lr" || key == "eps" || key == "weight_decay" || key == "momentum" ||
             key == "lr_decay" || key == "initial_accumulator_value" || key == "dampening" ||
             key == "alpha") {
    check(value >= 0, op, "option '", key, "' must be non-negative, got ", value);
  }
}

}  // namespace

std::vector<ParamGroup> single_group(const std::vector<Tensor>& params, Options options) {
  return {ParamGroup{params, std::move(options)}};
}

Optimizer::Optimizer(std::string name, std::vector<ParamGroup> groups, Options defaults)
    : name_(std::move(name)), defaults_(std::move(defaults)) {
  for (auto& [key, value] : defaults_) check_option(name_, key, value);
  for (auto& g : groups) add_param_group(std::move(g));
}

void Optimizer::add_param_group(ParamGroup group) {
  for (auto& [key, value] : group.options) {
    check(defaults_.count(key), name_, "unknown option '", key, "'");
    check_option(name_, key, value);
  }
  for (auto& [key, value] : defaults_) group.options.emplace(key, value);
  for (size_t i = 0; i < group.params.size(); ++i) {
    const Tensor& p = group.params[i];
    check_param(name_, p);
    // One parameter in two places would be stepped twice per step (PyTorch refuses too).
    auto same = [&](const Tensor& q) { return q.impl() == p.impl(); };
    bool repeated = std::any_of(group.params.begin(), group.params.begin() + i, same);
    for (const ParamGroup& g : groups_) {
      repeated = repeated || std::any_of(g.params.begin(), g.params.end(), same);
    }
    check(!repeated, name_, "a parameter (shape ", p.shape(),
          ") appears more than once across the parameter groups");
  }
  states_.emplace_back(group.params.size());
  groups_.push_back(std::move(group));
}

double Optimizer::lr(size_t group) const {
  check(group < groups_.size(), name_, "no parameter group ", group);
  return groups_[group].options.at("lr");
}

void Optimizer::set_lr(double lr) {
  for (auto& g : groups_) g.options["lr"] = lr;
}

void Optimizer::zero_grad() {
  for (auto& g : groups_)
    for (auto& p : g.params) p.zero_grad();
}

void Optimizer::step() {
  NoGradGuard no_grad;
  for (size_t gi = 0; gi < groups_.size(); ++gi) {
    auto& group = groups_[gi];
    for (size_t pi = 0; pi < group.params.size(); ++pi) {
      Tensor& p = group.params[pi];
      Tensor grad = p.grad();
      if (!p.requires_grad() || !grad.defined()) continue;
      check(grad.shape() == p.shape(), name_, "gradient shape ", grad.shape(),
            " differs from parameter shape ", p.shape());
      grad = grad.to(p.dtype()).contiguous();
      State& state = states_[gi][pi];
      // A graph step counts in the "step" slot: continue from it.
      auto counted = state.slots.find("step");
      if (counted != state.slots.end()) state.step = counted->second.item<int64_t>();
      ++state.step;
      update(p, grad, state, group.options);
      if (counted != state.slots.end()) counted->second.fill_(static_cast<double>(state.step));
      p.storage()->bump_version();
    }
  }
}

void Optimizer::step_with_ops(const std::vector<Tensor>& grads) {
  size_t count = 0;
  for (const auto& group : groups_) count += group.params.size();
  check(grads.size() == count, name_, "step_with_ops got ", grads.size(), " gradients for ", count,
        " parameters");
  NoGradGuard no_grad;
  size_t k = 0;
  for (size_t gi = 0; gi < groups_.size(); ++gi) {
    auto& group = groups_[gi];
    for (size_t pi = 0; pi < group.params.size(); ++pi, ++k) {
      const Tensor& p = group.params[pi];
      const Tensor& grad = grads[k];
      if (!p.requires_grad() || !grad.defined()) continue;
      check(grad.shape() == p.shape() && grad.dtype() == p.dtype(), name_, "gradient ",
            dtype_name(grad.dtype()), grad.shape(), " does not match parameter ",
            dtype_name(p.dtype()), p.shape());
      State& state = states_[gi][pi];
      auto it = state.slots.find("step");
      if (it == state.slots.end()) {
        it = state.slots.emplace("step", full({}, static_cast<double>(state.step), DType::Float64))
                 .first;
      }
      Tensor step = assign(it->second, add(it->second, 1.0));
      update_with_ops(p, grad, state, step, group.options);
    }
  }
}

void Optimizer::update_with_ops(const Tensor&, const Tensor&, State&, const Tensor&,
                                const Options&) {
  fail(name_,
       "this optimizer cannot be captured in a graph yet (SGD, Adam and AdamW can); "
       "use step() in eager mode");
}

Tensor& Optimizer::slot(State& state, const std::string& name, const Tensor& like, double fill) {
  auto it = state.slots.find(name);
  if (it == state.slots.end()) it = state.slots.emplace(name, full_like(like, fill)).first;
  return it->second;
}

NamedTensors Optimizer::state_dict() const {
  NamedTensors out;
  size_t index = 0;
  for (size_t gi = 0; gi < groups_.size(); ++gi) {
    for (auto& [key, value] : groups_[gi].options)
      out.emplace_back("group." + std::to_string(gi) + "." + key,
                       scalar_tensor(value, DType::Float64));
    for (auto& state : states_[gi]) {
      std::string prefix = "state." + std::to_string(index++) + ".";
      if (state.step == 0) continue;
      out.emplace_back(prefix + "step", scalar_tensor(state.step, DType::Int64));
      // Copies: the live slots keep changing with every step.
      for (auto& [name, t] : state.slots) out.emplace_back(prefix + name, t.clone());
    }
  }
  return out;
}

void Optimizer::load_state_dict(const NamedTensors& entries) {
  const std::string op = name_ + ".load_state_dict";
  // Flat views of the parameters, then validate every entry before changing anything.
  std::vector<std::pair<size_t, size_t>> where;  // flat index -> (group, param)
  for (size_t gi = 0; gi < groups_.size(); ++gi)
    for (size_t pi = 0; pi < groups_[gi].params.size(); ++pi) where.emplace_back(gi, pi);
  auto new_states = states_;
  for (auto& group_states : new_states)
    for (auto& s : group_states) s = State{};
  auto new_groups = groups_;
  for (auto& [name, t] : entries) {
    auto dot1 = name.find('.'), dot2 = name.find('.', dot1 + 1);
    check(dot1 != std::string::npos && dot2 != std::string::npos, op, "bad entry name '", name,
          "'");
    std::string kind = name.substr(0, dot1), key = name.substr(dot2 + 1);
    size_t index = 0;
    const std::string digits = name.substr(dot1 + 1, dot2 - dot1 - 1);
    // (stoul alone takes "-1" and wraps it)
    check(
        !digits.empty() && digits.size() < 10 &&
            std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; }),
        op, "bad entry name '", name, "'");
    index = std::stoul(digits);
    check(t.defined() && (t.numel() == 1 || kind == "state"), op, "entry '", name,
          "' is not a scalar");
    if (kind == "group") {
      check(index < new_groups.size(), op, "entry '", name, "' names group ", index, " of ",
            new_groups.size());
      check(defaults_.count(key), op, "entry '", name, "' names unknown option '", key, "'");
      const double value = t.to(DType::Float64).item<double>();
      check_option(op, key, value);
      new_groups[index].options[key] = value;
    } else if (kind == "state") {
      check(index < where.size(), op, "entry '", name, "' names parameter ", index, " of ",
            where.size());
      auto [gi, pi] = where[index];
      State& s = new_states[gi][pi];
      if (key == "step") {
        check(t.dim() == 0, op, "entry '", name, "' must be a scalar");
        s.step = t.to(DType::Int64).item<int64_t>();
        check(s.step >= 0, op, "entry '", name, "' is a negative step count");
      } else {
        const Tensor& p = groups_[gi].params[pi];
        check(t.shape() == p.shape(), op, "entry '", name, "' has shape ", t.shape(), ", expected ",
              p.shape());
        s.slots[key] = t.to(p.dtype()).clone();
      }
    } else {
      fail(op, "bad entry name '", name, "'");
    }
  }
  for (auto& group_states : new_states)
    for (auto& s : group_states)
      check(s.step > 0 || s.slots.empty(), op, "a parameter has state but no step count");
  states_ = std::move(new_states);
  groups_ = std::move(new_groups);
}

double clip_grad_norm(const std::vector<Tensor>& params, double max_norm, double norm_type) {
  NoGradGuard no_grad;
  std::vector<Tensor> grads;
  for (auto& p : params)
    if (p.grad().defined()) grads.push_back(p.grad());
  if (grads.empty()) return 0.0;
  bool inf = std::isinf(norm_type);
  double total = 0;
  for (auto& g : grads) {
    double n = norm(g.to(DType::Float64), norm_type).item<double>();
    total = inf ? std::max(total, n) : total + std::pow(n, norm_type);
  }
  if (!inf) total = std::pow(total, 1.0 / norm_type);
  double coef = max_norm / (total + 1e-6);
  if (coef < 1)
    for (auto& g : grads) g.mul_(coef);
  return total;
}

void clip_grad_value(const std::vector<Tensor>& params, double clip) {
  NoGradGuard no_grad;
  for (auto& p : params) {
    Tensor g = p.grad();
    if (g.defined()) g.copy_(clamp(g, -clip, clip));
  }
}

}  // namespace tessera::nn
