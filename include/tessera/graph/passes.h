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
// x+0, x-0, x*1, x/1 (when broadcasting changes nothing), casts to the same dtype,
// reshapes to the same shape, and chains of permutes or reshapes collapsed into one.
Graph simplify_algebra(const Graph& g);

// The default pipeline tessera::function runs: the passes above until nothing changes.
Graph optimize(Graph g);

}  // namespace tessera::graph
