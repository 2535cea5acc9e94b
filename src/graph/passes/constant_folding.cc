// Constant folding: a node whose inputs are all constants is computed once, now.
// Variables are never folded: their values change (training, load_state_dict).
#include "rewrite.h"
#include "tessera/autodiff/autodiff.h"
#include "tessera/graph/passes.h"

namespace tessera::graph {

static bool has_unknown_dims(const Attrs& attrs) {
  for (const auto& [name, value] : attrs.items()) {
    if (const auto* i = std::get_if<int64_t>(&value); i && is_dim_marker(*i)) return true;
    if (const auto* v = std::get_if<std::vector<int64_t>>(&value)) {
      for (int64_t x : *v) {
        if (is_dim_marker(x)) return true;
      }
    }
  }
  return false;
}

Graph fold_constants(const Graph& g, int64_t max_bytes) {
  Graph out = g;
  std::vector<int> replacement = no_replacements(g);
  NoGradGuard no_grad;
  for (const Node& node : g.nodes) {
    bool all_constant = !node.inputs.empty() && !node.def->stateful() && !node.def->draws_random &&
                        !has_unknown_dims(node.attrs);
    for (int id : node.inputs) {
      all_constant = all_constant && out.values[replacement[id]].kind == ValueKind::constant;
    }
    if (!all_constant) continue;
    TensorList ins;
    for (int id : node.inputs) ins.push_back(out.values[replacement[id]].data);
    OpCall call{ins, node.attrs};
    TensorList results;
    if (node.def->view) {
      results.push_back(node.def->view(call).clone());
    } else {
      MetaList metas = node.def->infer(call);
      int64_t bytes = 0;
      for (const TensorMeta& m : metas) bytes += shape_numel(m.shape) * dtype_size(m.dtype);
      if (bytes > max_bytes) continue;
      for (const TensorMeta& m : metas) results.push_back(Tensor::empty(m.shape, m.dtype));
      node.def->cpu(call, results);
    }
    for (size_t i = 0; i < results.size(); ++i) {
      const Value& old = g.values[node.outputs[i]];
      replacement.push_back(-1);
      replacement[node.outputs[i]] =
          out.add_value(Value{.kind = ValueKind::constant,
                              .dtype = old.dtype,
                              .shape = old.shape,
                              .data = results[i],
                              .name = str_cat("folded_", node.outputs[i])});
    }
  }
  return replace_and_compact(out, replacement);
}

}  // namespace tessera::graph
