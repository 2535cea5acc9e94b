// Fused elementwise programs expanded back into their instructions' ops, for lowerings
// that map single ops (the lite converter, the ONNX exporter): each instruction becomes a
// node of its op (OpDef::pointwise), so those lowerings need no table of program codes.
#include "rewrite.h"
#include "tessera/graph/passes.h"
#include "tessera/ops/fused.h"

namespace tessera::graph {

Graph expand_elementwise_programs(const Graph& g) {
  const OpDef* fused = &fused_elementwise_op();
  bool any = false;
  for (const Node& node : g.nodes) any = any || node.def == fused;
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
    if (node.def != fused) {
      new_node[n] = copy_node(g, node, std::move(ins), out, new_id);
      continue;
    }
    // Registers are the inputs, then one per instruction. Inputs have the output's shape
    // or are one value, and the result reads one of the output's shape (fused_elementwise
    // checks both), so an instruction has the output's shape where it reads such a
    // register, and is one value otherwise.
    const ElementwiseProgram program = read_elementwise_program(node.attrs, ins.size());
    const Value& y = g.values[node.outputs[0]];
    std::vector<int> regs = ins;
    for (size_t j = 0; j < program.ops.size(); ++j) {
      std::vector<int> reads{regs[static_cast<size_t>(program.reads[j][0])]};
      if (program.ops[j]->pointwise.arity == 2) {
        reads.push_back(regs[static_cast<size_t>(program.reads[j][1])]);
      }
      Dims shape;
      for (int r : reads) {
        const Dims& s = out.values[static_cast<size_t>(r)].shape;
        if (s == y.shape) shape = y.shape;
        if (shape != y.shape && s.size() > shape.size()) shape = Dims(s.size(), 1);
      }
      int m = out.add_node(*program.ops[j], {}, std::move(reads), {{shape, y.dtype}});
      regs.push_back(out.nodes[m].outputs[0]);
      new_node[n] = m;
    }
    check(out.values[static_cast<size_t>(regs.back())].shape == y.shape, "fused_elementwise",
          "the program's result reads no input of the output's shape");
    new_id[node.outputs[0]] = regs.back();
    out.values[regs.back()].name = y.name;
  }
  for (int id : g.outputs) out.outputs.push_back(source(id));
  for (int n : g.effects) out.effects.push_back(new_node[n]);
  out.validate();
  return out;
}

}  // namespace tessera::graph
