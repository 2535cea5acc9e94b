// Ops computed in a lighter form when one of their outputs is never read.
#include "rewrite.h"
#include "tessera/graph/passes.h"

namespace tessera::graph {

namespace {

// An op, the output it can skip, and the op that computes the rest.
struct LighterForm {
  std::string_view op;
  int skipped_output;
  const char* lighter;
};

// max_pool2d_2x2 keeps each window's winning tap for its gradient only.
constexpr LighterForm kLighterForms[] = {{"max_pool2d_2x2", 1, "max_pool2d_2x2_values"}};

}  // namespace

Graph drop_unread_outputs(const Graph& g) {
  std::vector<bool> read(g.values.size(), false);
  for (const Node& node : g.nodes) {
    for (int id : node.inputs) read[id] = true;
  }
  for (int id : g.outputs) read[id] = true;
  Graph out = g;
  bool changed = false;
  for (Node& node : out.nodes) {
    for (const LighterForm& form : kLighterForms) {
      if (node.op() != form.op || read[node.outputs[form.skipped_output]]) continue;
      node.def = find_op(form.lighter);
      node.outputs.erase(node.outputs.begin() + form.skipped_output);
      changed = true;
    }
  }
  // Compacting drops the skipped values, which no node produces any more.
  return changed ? replace_and_compact(out, no_replacements(out)) : g;
}

}  // namespace tessera::graph
