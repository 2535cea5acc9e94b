// Value replacement and compaction shared by the passes.
#include "rewrite.h"

#include <numeric>

namespace tessera::graph {

std::vector<int> no_replacements(const Graph& g) {
  std::vector<int> r(g.values.size());
  std::iota(r.begin(), r.end(), 0);
  return r;
}

bool same_attrs(const Attrs& a, const Attrs& b) {
  if (a.items().size() != b.items().size()) return false;
  for (const auto& [name, value] : a.items()) {
    if (!b.has(name)) return false;
    bool found = false;
    for (const auto& [other_name, other_value] : b.items()) {
      if (std::string_view(other_name) == name) found = other_value == value;
    }
    if (!found) return false;
  }
  return true;
}

int copy_node(const Graph& g, const Node& node, std::vector<int> inputs, Graph& out,
              std::vector<int>& new_id) {
  MetaList metas;
  for (int id : node.outputs) metas.push_back({g.values[id].shape, g.values[id].dtype});
  int m = out.add_node(*node.def, node.attrs, std::move(inputs), metas);
  map_outputs(g, node, out, m, new_id);
  return m;
}

void map_outputs(const Graph& g, const Node& node, Graph& out, int m, std::vector<int>& new_id) {
  for (size_t i = 0; i < node.outputs.size(); ++i) {
    new_id[node.outputs[i]] = out.nodes[m].outputs[i];
    out.values[out.nodes[m].outputs[i]].name = g.values[node.outputs[i]].name;
  }
}

Graph replace_and_compact(const Graph& g, const std::vector<int>& replacement) {
  const int nv = static_cast<int>(g.values.size());
  auto resolve = [&](int id) {
    for (int steps = 0; steps <= nv; ++steps) {
      int next = replacement[id];
      if (next < 0 || next == id) return id;
      id = next;
    }
    fail("graph", "cyclic value replacement in a pass");
  };
  // What the outputs need, walking nodes backwards.
  std::vector<bool> needed(nv, false), keep_node(g.nodes.size(), false);
  for (int id : g.outputs) needed[resolve(id)] = true;
  for (int n : g.effects) needed[g.nodes[n].outputs[0]] = true;
  for (int n = static_cast<int>(g.nodes.size()) - 1; n >= 0; --n) {
    const Node& node = g.nodes[n];
    bool used = false;
    for (int id : node.outputs) used = used || needed[id];
    if (!used) continue;
    keep_node[n] = true;
    for (int id : node.inputs) needed[resolve(id)] = true;
  }
  Graph out;
  out.symbols = g.symbols;
  out.tied = g.tied;
  std::vector<int> new_node(g.nodes.size(), -1);
  std::vector<int> new_id(nv, -1);
  for (int id : g.inputs) {
    new_id[id] = out.add_value(g.values[id]);
    out.inputs.push_back(new_id[id]);
  }
  auto source = [&](int id) {
    id = resolve(id);
    if (new_id[id] < 0) new_id[id] = out.add_value(g.values[id]);  // constants, variables
    return new_id[id];
  };
  for (size_t n = 0; n < g.nodes.size(); ++n) {
    if (!keep_node[n]) continue;
    const Node& node = g.nodes[n];
    std::vector<int> ins;
    for (int id : node.inputs) ins.push_back(source(id));
    new_node[n] = copy_node(g, node, std::move(ins), out, new_id);
  }
  for (int id : g.outputs) out.outputs.push_back(source(id));
  for (int n : g.effects) out.effects.push_back(new_node[n]);
  return out;
}

Graph rebuild_replacing(const Graph& g, const std::function<bool(const Node&)>& takes,
                        const NodeReplacement& replace) {
  bool any = false;
  for (const Node& node : g.nodes) any = any || takes(node);
  if (!any) return g;
  Graph out;
  out.symbols = g.symbols;
  out.tied = g.tied;
  std::vector<int> new_id(g.values.size(), -1), new_node(g.nodes.size(), -1);
  for (int id : g.inputs) {
    new_id[id] = out.add_value(g.values[id]);
    out.inputs.push_back(new_id[id]);
  }
  auto source = [&](int id) {
    if (new_id[id] < 0) new_id[id] = out.add_value(g.values[id]);  // constants, variables
    return new_id[id];
  };
  for (size_t n = 0; n < g.nodes.size(); ++n) {
    const Node& node = g.nodes[n];
    std::vector<int> ins;
    for (int id : node.inputs) ins.push_back(source(id));
    new_node[n] = takes(node) ? replace(out, node, std::move(ins), new_id)
                              : copy_node(g, node, std::move(ins), out, new_id);
  }
  for (int id : g.outputs) out.outputs.push_back(source(id));
  for (int n : g.effects) out.effects.push_back(new_node[n]);
  out.validate();
  return out;
}

}  // namespace tessera::graph
