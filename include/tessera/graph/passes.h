// Graph passes. Each takes a graph and returns an equivalent one; each is a small unit with
// its own before/after tests (tests/test_graph_passes.cc).
#pragma once
#include "tessera/graph/graph.h"

namespace tessera::graph {

// Drops nodes and weights that no output depends on, and renumbers values.
Graph eliminate_dead_code(const Graph& g);
// Merges nodes that apply the same op with the same attributes to the same inputs, and
// identical small constants.
Graph eliminate_common_subexpressions(const Graph& g);
// Computes nodes whose inputs are all constants (not variables) now, replacing them with
// their result; results above `max_bytes` are left to run time.
Graph fold_constants(const Graph& g, int64_t max_bytes = int64_t{64} << 20);
// Ops whose extra output no node or graph output reads run a lighter op without it
// (max_pool2d_2x2 without the taps its gradient needs, in inference graphs).
Graph drop_unread_outputs(const Graph& g);
// x+0, x-0, x*1, x/1 (when broadcasting changes nothing), casts to the same dtype,
// reshapes to the same shape, and chains of permutes or reshapes collapsed into one.
Graph simplify_algebra(const Graph& g);

// The default pipeline tessera::function runs: the passes above until nothing changes.
Graph optimize(Graph g);

// --- for inference (fusion.cc) ---
// Variables the graph does not write become constants holding their current values, so
// that folding can use them (a model exported for serving).
Graph freeze_variables(const Graph& g);
// A chain of per-channel add/sub/mul/div by constants after a convolution with constant
// weights (batch norm in inference, after freezing) folded into its weights and bias.
Graph fold_batch_norm(const Graph& g);
// conv -> relu becomes conv_relu; permute(w) -> matmul [-> add bias] [-> relu] becomes one
// `linear` op (bias and activation applied in the matmul's output pass).
Graph fuse_activations(const Graph& g);
// Chains of float32 elementwise ops (add, mul, relu, exp, ...; operands of the output's
// shape or single values) become one fused_elementwise op: one pass over memory.
Graph fuse_elementwise(const Graph& g);
// The reverse, for lowerings that map single ops (lite converter, ONNX exporter): each
// fused_elementwise node becomes one node per instruction, of that instruction's op
// (expand_programs.cc).
Graph expand_elementwise_programs(const Graph& g);
// Ops fused for training only (conv2d_relu_max_pool2d_2x2, which Sequential runs while
// training) split back into the ops they fuse, which the lite converter and the ONNX
// exporter know: a model traced in training mode still converts (split_fusions.cc).
Graph split_training_fusions(const Graph& g);
// split_training_fusions, freeze_variables, optimize, fold_batch_norm, fuse_activations,
// optimize, fuse_elementwise.
Graph optimize_for_inference(Graph g);

}  // namespace tessera::graph
