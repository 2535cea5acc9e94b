// Tracing: runs a C++ callable over symbolic tensors and records every op it calls into
// a Graph. Tensors the callable captures (weights, constants) become graph constants or
// variables; dimensions declared unknown (-1, such as the batch) stay unknown in the graph.
#pragma once
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "tessera/graph/graph.h"

namespace tessera::graph {

// One input of a signature: dtype and shape, with negative sizes for those that may change
// from call to call. Equal negative sizes are one size: every -1 is the batch (so images
// [-1,1,28,28] and labels [-1] must agree on it); use -2, -3 ... for independent sizes.
struct TensorSpec {
  Dims shape;
  DType dtype = DType::Float32;
  std::string name;
};

using GraphFn = std::function<TensorList(const TensorList&)>;
using NamedTensorList = std::vector<std::pair<std::string, Tensor>>;

struct TraceOptions {
  // Captured tensors to keep as named, updatable variables (a module's parameters and
  // buffers). Other captured tensors that require grad are variables named "var_N";
  // the rest are constants.
  NamedTensorList variables;
};

// Records fn(inputs) as a graph. Errors raised while tracing name the op, as in eager mode.
// Sizes of unknown dimensions must reach ops unchanged (reshape(x, {batch, -1}) works);
// an attribute computed from one (batch * 2) is reported as an error at trace time.
Graph trace(const GraphFn& fn, const std::vector<TensorSpec>& signature,
            const TraceOptions& options = {});

// A function body traced for a control-flow op (a cond branch, a while_loop body). Its
// graph takes one input per tensor of `like` (same dtype and shape), then one per tensor
// the body captured, in `captures` order; the caller passes those to the op. Inside an
// enclosing trace, sizes unknown there are unknown in the body too. Bodies may not write
// variables.
struct TracedBody {
  Graph graph;
  TensorList captures;
};
TracedBody trace_body(const GraphFn& fn, const TensorList& like);

}  // namespace tessera::graph
