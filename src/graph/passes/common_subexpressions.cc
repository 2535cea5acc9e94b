// Common-subexpression elimination: the second of two identical computations reuses the
// first. Ops here are pure (random draws cannot be traced), so equal calls give equal values.
#include <cstring>
#include <map>

#include "rewrite.h"
#include "tessera/graph/passes.h"

namespace tessera::graph {

// Constants up to this size are compared byte by byte to merge duplicates.
static constexpr int64_t kMaxMergedConstantBytes = 4096;

static bool same_constant(const Value& a, const Value& b) {
  if (a.dtype != b.dtype || a.shape != b.shape) return false;
  Tensor x = a.data.contiguous(), y = b.data.contiguous();
  return std::memcmp(x.data_ptr(), y.data_ptr(), x.numel() * x.element_size()) == 0;
}

Graph eliminate_common_subexpressions(const Graph& g) {
  std::vector<int> replacement = no_replacements(g);
  auto resolve = [&](int id) { return replacement[id]; };  // chains are one step here
  std::vector<int> constants;
  for (size_t id = 0; id < g.values.size(); ++id) {
    const Value& v = g.values[id];
    if (v.kind != ValueKind::constant ||
        v.data.numel() * static_cast<int64_t>(v.data.element_size()) > kMaxMergedConstantBytes) {
      continue;
    }
    for (int earlier : constants) {
      if (same_constant(g.values[earlier], v)) {
        replacement[id] = earlier;
        break;
      }
    }
    if (replacement[id] == static_cast<int>(id)) constants.push_back(static_cast<int>(id));
  }
  // Candidates by (op, resolved inputs); attributes compared on a hit.
  std::map<std::pair<const OpDef*, std::vector<int>>, std::vector<int>> seen;
  for (size_t n = 0; n < g.nodes.size(); ++n) {
    const Node& node = g.nodes[n];
    if (node.def->stateful() || node.def->draws_random) continue;  // two draws differ
    std::vector<int> ins;
    for (int id : node.inputs) ins.push_back(resolve(id));
    auto& same_key = seen[{node.def, ins}];
    int match = -1;
    for (int m : same_key) {
      if (same_attrs(g.nodes[m].attrs, node.attrs)) {
        match = m;
        break;
      }
    }
    if (match < 0) {
      same_key.push_back(static_cast<int>(n));
      continue;
    }
    for (size_t i = 0; i < node.outputs.size(); ++i) {
      replacement[node.outputs[i]] = g.nodes[match].outputs[i];
    }
  }
  return replace_and_compact(g, replacement);
}

}  // namespace tessera::graph
