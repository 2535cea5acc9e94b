// The op definition: name + attributes + shape/dtype inference + CPU kernel +
// gradient rule, in one place. Eager execution runs it now (run_op); graph mode
// (later) records the same definition; autodiff calls its gradient rule.
#pragma once
#include <initializer_list>
#include <memory>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "tessera/core/tensor.h"

namespace tessera {

using TensorList = std::vector<Tensor>;

namespace graph {
struct Subgraph;  // a cond branch or loop body (tessera/graph/control_flow.h)
}
using SubgraphAttr = std::shared_ptr<const graph::Subgraph>;

using AttrValue =
    std::variant<int64_t, double, bool, std::vector<int64_t>, std::string, DType, SubgraphAttr>;

// Named op attributes (axes, strides, slopes...). Small: a linear search is fastest.
class Attrs {
 public:
  Attrs() = default;
  Attrs(std::initializer_list<std::pair<const char*, AttrValue>> items) : items_(items) {}
  void set(const char* name, AttrValue value);
  bool has(const char* name) const;
  template <typename T>
  const T& get(const char* name) const {
    const AttrValue& v = find(name);
    const T* p = std::get_if<T>(&v);
    check(p != nullptr, "", "attribute '", name, "' has another type");
    return *p;
  }
  int64_t i(const char* name) const { return get<int64_t>(name); }
  double f(const char* name) const { return get<double>(name); }
  bool b(const char* name) const { return get<bool>(name); }
  const std::vector<int64_t>& ints(const char* name) const {
    return get<std::vector<int64_t>>(name);
  }
  const std::vector<std::pair<const char*, AttrValue>>& items() const { return items_; }

 private:
  const AttrValue& find(const char* name) const;
  std::vector<std::pair<const char*, AttrValue>> items_;
};

// What inference produces for each output.
struct TensorMeta {
  Shape shape;
  DType dtype;
};
using MetaList = std::vector<TensorMeta>;

struct OpCall {
  std::span<const Tensor> inputs;
  const Attrs& attrs;
  // Checked: graphs loaded from files may give an op fewer inputs than it takes.
  const Tensor& in(size_t i) const {
    if (i >= inputs.size()) [[unlikely]]
      missing_input(i);
    return inputs[i];
  }
  [[noreturn]] void missing_input(size_t i) const;
};

// What a gradient rule sees. Inputs and outputs are available when the op saves them.
struct GradCall {
  std::span<const Tensor> inputs;
  std::span<const Tensor> outputs;
  std::span<const Tensor> grad_outputs;  // one per output, zeros where none flowed
  std::span<const TensorMeta> input_metas;
  const Attrs& attrs;
  std::span<const bool> needs_input_grad;
  const Tensor& in(size_t i) const { return inputs[i]; }
  const Tensor& out(size_t i = 0) const { return outputs[i]; }
  const Tensor& gout(size_t i = 0) const { return grad_outputs[i]; }
  const Shape& in_shape(size_t i) const { return input_metas[i].shape; }
  bool needs(size_t i) const { return needs_input_grad[i]; }
};

enum SaveFlags : uint8_t { kSaveNothing = 0, kSaveInputs = 1, kSaveOutputs = 2 };

struct OpDef {
  const char* name;
  // Validates inputs (throwing Error naming the op) and returns output metadata.
  MetaList (*infer)(const OpCall&);
  // Fills preallocated contiguous outputs on the CPU.
  void (*cpu)(const OpCall&, std::span<Tensor> outputs) = nullptr;
  // View ops instead return outputs that share the input's storage.
  Tensor (*view)(const OpCall&) = nullptr;
  // Gradient rule written in ops, so that it is itself differentiable. Returns one tensor
  // per input (undefined where not needed); null means the op is not differentiable.
  TensorList (*grad)(const GradCall&) = nullptr;
  uint8_t saves = kSaveInputs;
  // Bit i set: the op writes input i in place (assign, optimizer updates). Graph passes
  // never fold, merge or drop such ops, and tracing keeps what they write as variables.
  uint32_t writes = 0;
  // The op draws from the default random generator: each run gives new values, so graph
  // passes never fold or merge it, and plans never run it ahead of time.
  bool draws_random = false;
  bool stateful() const { return writes != 0; }
  bool writes_input(size_t i) const { return i < 32 && ((writes >> i) & 1u) != 0; }
};

// Runs an op eagerly: infer, allocate, compute, and record for autodiff when needed.
TensorList run_op(const OpDef& def, std::span<const Tensor> inputs, const Attrs& attrs = {});
inline TensorList run_op(const OpDef& def, std::initializer_list<Tensor> inputs,
                         const Attrs& attrs = {}) {
  return run_op(def, std::span<const Tensor>(inputs.begin(), inputs.size()), attrs);
}
// Single-output form.
Tensor run_op1(const OpDef& def, std::span<const Tensor> inputs, const Attrs& attrs = {});
inline Tensor run_op1(const OpDef& def, std::initializer_list<Tensor> inputs,
                      const Attrs& attrs = {}) {
  return run_op1(def, std::span<const Tensor>(inputs.begin(), inputs.size()), attrs);
}

// The gradient of a linear op whose backward is another op (pad, slice, pooling...): runs
// `adjoint` on the output gradient with the same attributes plus "input_shape".
Tensor run_adjoint(const OpDef& adjoint, const GradCall& g);

// All registered op definitions by name (graph mode and saved models look ops up here).
const OpDef* find_op(const std::string& name);
std::vector<const OpDef*> all_ops();
struct OpRegistrar {
  explicit OpRegistrar(const OpDef& def);
};

// Graph tracing (tessera::function) installs a tracer for the duration of a trace: while
// one is active on this thread, run_op records the call on symbolic tensors instead of
// computing it. The graph library implements it; ops only see this interface.
class OpTracer {
 public:
  virtual ~OpTracer() = default;
  virtual TensorList record(const OpDef& def, std::span<const Tensor> inputs,
                            const Attrs& attrs) = 0;
  // Whether a shape holds a dimension unknown until the graph runs (such as the batch).
  virtual bool has_unknown_dim(const Shape& shape) const = 0;
};
OpTracer* active_tracer();
// Installs `tracer` on this thread for the scope's lifetime.
class TracerScope {
 public:
  explicit TracerScope(OpTracer* tracer);
  ~TracerScope();
  TracerScope(const TracerScope&) = delete;
  TracerScope& operator=(const TracerScope&) = delete;

 private:
  OpTracer* previous_;
};

// Checks that a tensor argument is defined; names the op and the argument.
void check_defined(const Tensor& t, const char* op, const char* arg);

}  // namespace tessera
