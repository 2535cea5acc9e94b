// Module: the base of every layer and model. A module owns named parameters
// (trainable tensors), buffers (state such as running statistics) and named
// submodules, like torch.nn.Module. Layers are thin modules over the functional
// ops in tessera/ops, configured by an options struct.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "tessera/core/tensor.h"

namespace tessera::nn {

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

class Module;
using ModulePtr = std::shared_ptr<Module>;

class Module : public std::enable_shared_from_this<Module> {
 public:
  explicit Module(std::string type_name) : type_name_(std::move(type_name)) {}
  virtual ~Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  // The one-tensor forward that Sequential and the training loop call. Modules
  // with other signatures (attention, recurrent layers) add their own overloads.
  virtual Tensor forward(const Tensor& input);
  // Calls forward and records the output shape while summary() is tracing.
  Tensor operator()(const Tensor& input);

  const std::string& type_name() const { return type_name_; }

  // Registration: names are unique within a module and may not contain '.'.
  // Return the registered handle; layers keep a copy (it shares the tensor).
  Tensor register_parameter(const std::string& name, Tensor value, bool requires_grad = true);
  Tensor register_buffer(const std::string& name, Tensor value);
  template <class M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> module) {
    add_child(name, module);
    return module;
  }

  // Parameters and buffers of this module and (with recurse) its submodules, named by
  // their dotted path ("features.0.weight").
  std::vector<Tensor> parameters(bool recurse = true) const;
  NamedTensors named_parameters(bool recurse = true) const;
  NamedTensors named_buffers(bool recurse = true) const;
  const std::vector<std::pair<std::string, ModulePtr>>& named_children() const { return children_; }
  // Every module in the tree, this one first (named ""), depth first.
  std::vector<std::pair<std::string, ModulePtr>> named_modules();
  // Parameter counts: all, and those that require grad.
  int64_t num_parameters(bool trainable_only = false) const;

  // Train/eval mode, applied to the whole tree (dropout and batch norm read it).
  void train(bool on = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }

  // Freezing stops parameters from requiring grad; optimizers skip them.
  void freeze();
  void unfreeze();
  void zero_grad();

  // Parameters then buffers by dotted name. load_state_dict copies values into the
  // existing tensors (so optimizers keep their references); with strict, a missing,
  // unexpected or wrongly shaped entry is an error naming it, and nothing is changed.
  NamedTensors state_dict() const;
  void load_state_dict(const NamedTensors& state, bool strict = true);

  // A Keras-like table of the leaf layers met by one forward pass on zeros of
  // `input_shape` (run in eval mode without recording gradients): layer, output
  // shape, parameter count, then totals.
  std::string summary(const Shape& input_shape, DType dtype = DType::Float32);

 protected:
  void add_child(const std::string& name, ModulePtr module);

 private:
  friend class EvalModeScope;
  void collect(const std::string& prefix, bool recurse, bool buffers, NamedTensors& out) const;

  std::string type_name_;
  bool training_ = true;
  std::vector<std::pair<std::string, Tensor>> parameters_;
  std::vector<std::pair<std::string, Tensor>> buffers_;
  std::vector<std::pair<std::string, ModulePtr>> children_;
};

// Eval mode for a module tree while alive. On leaving (a return or an exception) every
// module gets back its own mode, including submodules the caller had set apart (a frozen
// batch norm left in eval inside a training model).
class EvalModeScope {
 public:
  explicit EvalModeScope(Module& root);
  ~EvalModeScope();
  EvalModeScope(const EvalModeScope&) = delete;
  EvalModeScope& operator=(const EvalModeScope&) = delete;

 private:
  std::vector<std::pair<Module*, bool>> saved_;
};

// A module made from any callable, so plain functions compose with layers.
class Lambda : public Module {
 public:
  explicit Lambda(std::function<Tensor(const Tensor&)> fn, std::string name = "Lambda")
      : Module(std::move(name)), fn_(std::move(fn)) {}
  Tensor forward(const Tensor& input) override { return fn_(input); }

 private:
  std::function<Tensor(const Tensor&)> fn_;
};

}  // namespace tessera::nn
