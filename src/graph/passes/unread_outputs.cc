// Ops computed in a lighter form when one of their outputs is never read
// (OpDef::droppable_output: max_pool2d_2x2 keeps each window's winning tap for its gradient
// only).
#include "rewrite.h"
#include "tessera/graph/passes.h"

namespace tessera::graph {

Graph drop_unread_outputs(const Graph& g) {
  std::vector<bool> read(g.values.size(), false);
  for (const Node& node : g.nodes) {
    for (int id : node.inputs) read[id] = true;
  }
  for (int id : g.outputs) read[id] = true;
  Graph out = g;
  bool changed = false;
  for (Node& node : out.nodes) {
    const int skipped = node.def->droppable_output;
    if (skipped < 0 || skipped >= static_cast<int>(node.outputs.size()) ||
        read[node.outputs[skipped]]) {
      continue;
    }
    const OpDef* lighter = find_op(node.def->without_droppable_output);
    check(lighter != nullptr, node.op(), "names a lighter form '",
          node.def->without_droppable_output, "' that is not registered");
    node.def = lighter;
    node.outputs.erase(node.outputs.begin() + skipped);
    changed = true;
  }
  // Compacting drops the skipped values, which no node produces any more.
  return changed ? replace_and_compact(out, no_replacements(out)) : g;
}

}  // namespace tessera::graph
