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

// Whether a graph plan may give an op's float32 output the buffer of an input whose last
// use it is (graph/executor.cc).
enum class InPlace : uint8_t {
  never,
  // Elementwise: element i of every input is read before element i of the output is
  // written, so the output may take the buffer of a same-shaped input.
  same_shape,
  // The output may take the head of a larger input's buffer (max_pool2d_2x2_values); the
  // kernel then runs on one thread, so plans only do this where it would anyway.
  head_of_input,
};

// The operands of a pointwise kernel: arrays of n values, or one value read for every i.
enum class PointwiseOperands : uint8_t { arrays, a_scalar, b_scalar };

// An op as one instruction of a fused elementwise program (fused_elementwise, which the
// fusion pass makes from chains of such ops): float32 in and out, no attributes, y[i] from
// element i of each input, with the bits of the op's own float32 kernel. `b` is null for
// unary ops.
struct Pointwise {
  int arity = 0;  // 0: the op cannot be fused
  void (*f32)(const float* a, const float* b, float* y, int64_t n,
              PointwiseOperands operands) = nullptr;
};

// Kernel choices a graph plan may time for one call, keeping the fastest: each choice is
// attributes set on the call (such as {"threads", 1}). Empty: nothing to choose. Given
// the call's outputs (allocated, shapes and dtypes known).
using KernelChoices = std::vector<Attrs> (*)(std::span<const Tensor> outputs);

// One call of an op for the test that walks the registry (tests/registry): inputs (float64
// values in the op's domain, or of a fixed dtype) and attributes. The walker casts the
// inputs marked in `swept` to every dtype the op's inference accepts and checks each call
// against the op at float64, against graph mode, a saved-model round trip, finite
// differences and, where the op is lowered, ONNX export and the lite converter.
struct OpSample {
  TensorList inputs;
  Attrs attrs;
  uint32_t swept = ~0u;  // bit i: input i takes each dtype in turn
  // Scales the tolerance against float64 (reductions: rounding grows with the count).
  double tolerance = 1;
};
using OpSamples = std::vector<OpSample> (*)();

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
  // Facts that the executor, the passes and the exporters read instead of keeping tables
  // of op names.
  InPlace in_place = InPlace::never;
  Pointwise pointwise = {};
  KernelChoices tunable = nullptr;
  // The op written in other ops, for ops that passes substitute (fused and lighter forms,
  // which have no gradient rule): replaying a graph through the eager ops runs this so
  // that autodiff reaches through them, and lowerings without a form of their own may use
  // it. Returns the op's outputs.
  TensorList (*decompose)(std::span<const Tensor> inputs, const Attrs& attrs) = nullptr;
  // An output that only the gradient needs, and the op that computes the others without
  // it (max_pool2d_2x2 without its tap indices): graphs that never read that output run
  // the lighter op (graph/passes/unread_outputs.cc).
  int droppable_output = -1;
  const char* without_droppable_output = nullptr;
  // Sample calls for the registry-walking test; null for ops not walked yet (listed in
  // tests/registry/ops_without_samples.txt, which may only shrink).
  OpSamples samples = nullptr;
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
