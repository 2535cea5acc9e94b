// Dead-code elimination: keep what the outputs need.
#include "rewrite.h"
#include "tessera/graph/passes.h"

namespace tessera::graph {

Graph eliminate_dead_code(const Graph& g) { return replace_and_compact(g, no_replacements(g)); }

}  // namespace tessera::graph
