// Control flow that graphs keep: cond and while_loop, as TensorFlow's tf.cond and
// tf.while_loop.
//
// Eagerly they are plain C++: the predicate is read and one branch runs, or the loop runs
// on the host, and autodiff records what ran. While tracing (tessera::function), each
// branch or body is traced into a subgraph that a `cond` or `while_loop` node holds, so
// the choice is made when the graph runs. Their gradient rules trace gradient subgraphs
// from the ops' own gradient rules, so graph autodiff reaches through them.
#pragma once
#include <memory>
#include <mutex>
#include <span>

#include "tessera/graph/executor.h"
#include "tessera/graph/trace.h"

namespace tessera {

// then_fn(operands) where `pred` (one element) is true, else else_fn(operands). In a graph
// both branches return the same number of tensors with equal dtypes and shapes. Branches
// may capture other tensors (weights); a graph passes those to the cond node as inputs.
TensorList cond(const Tensor& pred, const graph::GraphFn& then_fn, const graph::GraphFn& else_fn,
                const TensorList& operands);

// Repeats loop_vars = body_fn(loop_vars) while cond_fn(loop_vars)[0] is true, at most
// maximum_iterations times when that is >= 0; returns the final loop_vars. The body keeps
// each loop variable's dtype and shape. Gradients through a traced loop need
// maximum_iterations: the loop then keeps every iteration's variables (a buffer of that
// many rows) for the backward pass, which runs the body's gradient in reverse order.
TensorList while_loop(const graph::GraphFn& cond_fn, const graph::GraphFn& body_fn,
                      const TensorList& loop_vars, int64_t maximum_iterations = -1);

namespace graph {

// A cond branch or loop body, held by a node attribute: a graph, and the executor that
// runs an optimized copy of it (made on first use; thread-safe).
struct Subgraph {
  explicit Subgraph(Graph g);
  Graph graph;
  TensorList run(const TensorList& inputs) const;
  // Output dtypes and shapes for inputs of these dtypes and shapes; errors name `op`.
  MetaList infer(std::span<const Tensor> inputs, const char* op) const;

 private:
  mutable std::once_flag made_;
  mutable std::unique_ptr<Executor> executor_;
};

// Evaluates a graph op by op through run_op. Inside a trace this records the ops again
// (and autodiff sees them): gradient subgraphs are built this way. Fused ops (linear,
// fused_elementwise) run as the single ops they stand for, so autodiff reaches through
// them (nn::GraphModule trains optimized graphs this way).
TensorList replay(const Graph& g, const TensorList& inputs);

}  // namespace graph
}  // namespace tessera
