// Optimizers with PyTorch's update rules and defaults (LAMB follows You et al. 2019).
// Parameters are grouped; each group has its own options (lr and the optimizer's
// hyper-parameters by name), filled from the optimizer's defaults where not given.
// step() updates every parameter that has a .grad, in place and without recording
// gradients; frozen parameters (requires_grad false) and those without a gradient are
// skipped. Parameters must be contiguous float32 or float64 tensors.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "tessera/core/tensor.h"
#include "tessera/nn/module.h"

namespace tessera::nn {

using Options = std::map<std::string, double>;

struct ParamGroup {
  std::vector<Tensor> params;
  Options options;  // e.g. {{"lr", 1e-4}}; missing entries take the optimizer's defaults
};

class Optimizer {
 public:
  Optimizer(std::string name, std::vector<ParamGroup> groups, Options defaults);
  virtual ~Optimizer() = default;
  void step();
  void zero_grad();
  // The same update written with ops and assign(), for training steps traced into a graph
  // (tessera::function around the forward pass, grad() and this call): `grads` holds one
  // gradient per parameter in param_groups() order (undefined ones are skipped). SGD, Adam
  // and AdamW support it; the others raise an error naming themselves. Eager step() and
  // graph steps may be mixed: they share the state, step counts included.
  void step_with_ops(const std::vector<Tensor>& grads);

  std::vector<ParamGroup>& param_groups() { return groups_; }
  const std::vector<ParamGroup>& param_groups() const { return groups_; }
  void add_param_group(ParamGroup group);
  double lr(size_t group = 0) const;
  void set_lr(double lr);  // every group
  const std::string& name() const { return name_; }

  // The per-parameter state (moments, step counts) and each group's options, as named
  // tensors for checkpoints: "state.<param index>.<slot>" and "group.<g>.<option>".
  // load_state_dict validates every entry before changing anything.
  NamedTensors state_dict() const;
  void load_state_dict(const NamedTensors& state);

 protected:
  // Per-parameter state: named slots shaped like the parameter, and a step count.
  struct State {
    std::map<std::string, Tensor> slots;
    int64_t step = 0;
  };
  // Updates one parameter from its gradient (both contiguous, same dtype).
  virtual void update(Tensor& param, const Tensor& grad, State& state, const Options& o) = 0;
  // The update as ops ending in assign() calls; `step` is the state's step count as a float64
  // scalar tensor, already advanced for this update.
  virtual void update_with_ops(const Tensor& param, const Tensor& grad, State& state,
                               const Tensor& step, const Options& o);
  // The slot tensor `name` of a state, created as zeros (or `fill`) on first use.
  static Tensor& slot(State& state, const std::string& name, const Tensor& like, double fill = 0);

 private:
  std::string name_;
  Options defaults_;
  std::vector<ParamGroup> groups_;
  std::vector<std::vector<State>> states_;  // [group][param]
};

class SGD : public Optimizer {
 public:
  // lr, momentum 0, dampening 0, weight_decay 0, nesterov 0 (1 to enable)
  explicit SGD(std::vector<ParamGroup> groups, Options defaults = {});
  SGD(const std::vector<Tensor>& params, double lr, double momentum = 0, double weight_decay = 0,
      bool nesterov = false);

 protected:
  void update(Tensor& p, const Tensor& g, State& s, const Options& o) override;
  void update_with_ops(const Tensor& p, const Tensor& g, State& s, const Tensor& step,
                       const Options& o) override;
};

class Adam : public Optimizer {
 public:
  // lr 1e-3, beta1 0.9, beta2 0.999, eps 1e-8, weight_decay 0, amsgrad 0
  explicit Adam(std::vector<ParamGroup> groups, Options defaults = {});
  explicit Adam(const std::vector<Tensor>& params, double lr = 1e-3, Options extra = {});

 protected:
  Adam(const char* name, std::vector<ParamGroup> groups, Options defaults);
  void update(Tensor& p, const Tensor& g, State& s, const Options& o) override;
  void update_with_ops(const Tensor& p, const Tensor& g, State& s, const Tensor& step,
                       const Options& o) override;
};

// Adam with decoupled weight decay (default 1e-2): p -= lr * wd * p before the Adam step.
class AdamW : public Adam {
 public:
  explicit AdamW(std::vector<ParamGroup> groups, Options defaults = {});
  explicit AdamW(const std::vector<Tensor>& params, double lr = 1e-3, Options extra = {});
};

class RMSprop : public Optimizer {
 public:
  // lr 1e-2, alpha 0.99, eps 1e-8, weight_decay 0, momentum 0, centered 0
  explicit RMSprop(std::vector<ParamGroup> groups, Options defaults = {});

 protected:
  void update(Tensor& p, const Tensor& g, State& s, const Options& o) override;
};

class Adagrad : public Optimizer {
 public:
  // lr 1e-2, lr_decay 0, weight_decay 0, initial_accumulator_value 0, eps 1e-10
  explicit Adagrad(std::vector<ParamGroup> groups, Options defaults = {});

 protected:
  void update(Tensor& p, const Tensor& g, State& s, const Options& o) override;
};

class Adadelta : public Optimizer {
 public:
  // lr 1.0, rho 0.9, eps 1e-6, weight_decay 0
  explicit Adadelta(std::vector<ParamGroup> groups, Options defaults = {});

 protected:
  void update(Tensor& p, const Tensor& g, State& s, const Options& o) override;
};

class Adamax : public Optimizer {
 public:
  // lr 2e-3, beta1 0.9, beta2 0.999, eps 1e-8, weight_decay 0
  explicit Adamax(std::vector<ParamGroup> groups, Options defaults = {});

 protected:
  void update(Tensor& p, const Tensor& g, State& s, const Options& o) override;
};

// Layer-wise adaptive moments: the Adam direction plus weight decay, scaled per parameter
// tensor by the trust ratio ||p|| / ||direction|| (1 when either norm is 0).
class LAMB : public Optimizer {
 public:
  // lr 1e-3, beta1 0.9, beta2 0.999, eps 1e-6, weight_decay 0
  explicit LAMB(std::vector<ParamGroup> groups, Options defaults = {});

 protected:
  void update(Tensor& p, const Tensor& g, State& s, const Options& o) override;
};

// One group holding every given parameter.
std::vector<ParamGroup> single_group(const std::vector<Tensor>& params, Options options = {});

// Scales all gradients so their global norm (the norm of the per-tensor norms) is at most
// max_norm; returns the norm before clipping. norm_type may be infinity.
double clip_grad_norm(const std::vector<Tensor>& params, double max_norm, double norm_type = 2.0);
// Clamps every gradient element into [-clip_value, clip_value].
void clip_grad_value(const std::vector<Tensor>& params, double clip_value);

}  // namespace tessera::nn
