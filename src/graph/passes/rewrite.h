// What passes share: replacing values and rebuilding a compact graph.
#pragma once
#include <functional>
#include <vector>

#include "tessera/graph/graph.h"

namespace tessera::graph {

// Value ids with each replaced by replacement[id] (followed to the end of a chain; -1 or
// the id itself means keep). Returns a graph holding only what the outputs need, with
// inputs first and values renumbered in node order.
Graph replace_and_compact(const Graph& g, const std::vector<int>& replacement);

// Appends g's `node` to `out` on `inputs` (ids in out), with the output shapes and dtypes
// it has in g, maps its outputs to the new ones in `new_id` and keeps their names.
int copy_node(const Graph& g, const Node& node, std::vector<int> inputs, Graph& out,
              std::vector<int>& new_id);
// Maps the outputs of g's `node` to those of out's node `m` and keeps their names.
void map_outputs(const Graph& g, const Node& node, Graph& out, int m, std::vector<int>& new_id);

// Rebuilds g node by node: each node `replace` takes is handed to it with its inputs
// already mapped into `out`; it adds what stands for the node, maps the node's outputs in
// `new_id` and returns the last node it added. Other nodes are copied. Returns g itself
// when `replace` takes no node.
using NodeReplacement = std::function<int(Graph& out, const Node& node, std::vector<int> inputs,
                                          std::vector<int>& new_id)>;
Graph rebuild_replacing(const Graph& g, const std::function<bool(const Node&)>& takes,
                        const NodeReplacement& replace);

// The identity replacement for `g`.
std::vector<int> no_replacements(const Graph& g);

// Whether two attribute sets hold the same names with equal values, in any order.
bool same_attrs(const Attrs& a, const Attrs& b);

}  // namespace tessera::graph
