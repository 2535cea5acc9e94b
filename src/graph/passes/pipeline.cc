// The default pass pipeline.
#include "tessera/graph/passes.h"

namespace tessera::graph {

Graph optimize(Graph g) {
  // Each pass can expose work for another (a fold makes an x*1, a merge makes dead code);
  // a few rounds reach the fixed point on every graph we have seen.
  for (int round = 0; round < 4; ++round) {
    size_t nodes = g.nodes.size(), values = g.values.size();
    g = simplify_algebra(g);
    g = fold_constants(g);
    g = eliminate_common_subexpressions(g);
    g = eliminate_dead_code(g);
    g = drop_unread_outputs(g);
    if (g.nodes.size() == nodes && g.values.size() == values) break;
  }
  // Last: fused chains hide the single ops the passes above look for.
  g = fuse_elementwise(g);
  g.validate();
  return g;
}

}  // namespace tessera::graph
