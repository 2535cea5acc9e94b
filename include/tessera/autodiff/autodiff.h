// Reverse-mode autodiff: the graph of nodes recorded by eager ops, the engine
// that walks it, and the grad-mode switch.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "tessera/ops/op.h"

namespace tessera {

// Whether ops record autodiff nodes (thread-local; on by default).
bool grad_enabled();
void set_grad_enabled(bool enabled);

// Sets grad mode for a scope, like torch.set_grad_enabled().
class GradModeGuard {
 public:
  explicit GradModeGuard(bool enabled) : previous_(grad_enabled()) { set_grad_enabled(enabled); }
  ~GradModeGuard() { set_grad_enabled(previous_); }
  GradModeGuard(const GradModeGuard&) = delete;
  GradModeGuard& operator=(const GradModeGuard&) = delete;

 private:
  bool previous_;
};

// Disables recording in a scope, like torch.no_grad().
class NoGradGuard : public GradModeGuard {
 public:
  NoGradGuard() : GradModeGuard(false) {}
};

// Gradients of `outputs` with respect to `inputs`, without touching any .grad.
// `grad_outputs` defaults to ones for scalar outputs. With create_graph the result
// is itself differentiable (gradients of gradients). An input the outputs do not
// depend on gets an undefined tensor, or an error unless allow_unused.
TensorList grad(const TensorList& outputs, const TensorList& inputs,
                const TensorList& grad_outputs = {}, bool retain_graph = false,
                bool create_graph = false, bool allow_unused = false);

// Accumulates gradients of `outputs` into the .grad of every leaf that requires grad.
// With create_graph, a leaf's .grad keeps the graph that made it, which refers back to the
// leaf: call zero_grad() when done with it, or the two keep each other alive (as in PyTorch).
void backward(const TensorList& outputs, const TensorList& grad_outputs = {},
              bool retain_graph = false, bool create_graph = false);

namespace autodiff {

class Node;

struct Edge {
  std::shared_ptr<Node> node;
  int input_nr = 0;  // which output of the producing op (= input slot of the node)
  bool valid() const { return node != nullptr; }
};

class Node : public std::enable_shared_from_this<Node> {
 public:
  virtual ~Node() = default;
  // Given the gradient of each output, returns the gradient of each input edge.
  virtual TensorList apply(TensorList&& grad_outputs, bool create_graph) = 0;
  virtual std::string name() const = 0;
  // Drops saved tensors after a backward that does not retain the graph.
  virtual void release() {}
  std::vector<Edge> next_edges;
  std::vector<TensorMeta> output_metas;
  // Run after apply() during backward() (not grad()): on a leaf's accumulator, they say
  // that the leaf's .grad is complete for this pass (see on_gradient_accumulated).
  std::vector<std::function<void()>> post_hooks;
};

// Records the op call `def(inputs) -> outputs` for backward when any input requires grad.
void record(const OpDef& def, std::span<const Tensor> inputs, std::span<Tensor> outputs,
            const Attrs& attrs);
// The edge through which a gradient reaches `t` (its grad_fn, or its leaf accumulator).
Edge gradient_edge(const Tensor& t);

// Calls `hook` each time backward() has finished adding into the .grad of `leaf` (a tensor
// that requires grad and has no grad_fn), as PyTorch's register_post_accumulate_grad_hook:
// data-parallel training starts exchanging a gradient there, while backward goes on. The
// hook lives on the returned accumulator: keep it to keep the hook (the leaf holds it only
// weakly), clear its post_hooks to remove it.
std::shared_ptr<Node> on_gradient_accumulated(const Tensor& leaf, std::function<void()> hook);

}  // namespace autodiff
}  // namespace tessera
