// What passes share: replacing values and rebuilding a compact graph.
#pragma once
#include <vector>

#include "tessera/graph/graph.h"

namespace tessera::graph {

// Value ids with each replaced by replacement[id] (followed to the end of a chain; -1 or
// the id itself means keep). Returns a graph holding only what the outputs need, with
// inputs first and values renumbered in node order.
Graph replace_and_compact(const Graph& g, const std::vector<int>& replacement);

// The identity replacement for `g`.
std::vector<int> no_replacements(const Graph& g);

// Whether two attribute sets hold the same names with equal values, in any order.
bool same_attrs(const Attrs& a, const Attrs& b);

}  // namespace tessera::graph
