// Fused elementwise programs expanded back into their instructions' ops, for lowerings
// that map single ops (the lite converter, the ONNX exporter): each instruction becomes a
// node of its op (OpDef::pointwise), so those lowerings need no table of program codes.
#include "rewrite.h"
#include "tessera/graph/passes.h"
#include "tessera/ops/fused.h"

namespace tessera::graph {

Graph expand_elementwise_programs(const Graph& g) {
  const OpDef* fused = &fused_elementwise_op();
  return rebuild_replacing(
      g, [&](const Node& node) { return node.def == fused; },
      [&](Graph& out, const Node& node, std::vector<int> ins, std::vector<int>& new_id) {
        // Registers are the inputs, then one per instruction. Inputs have the output's
        // shape or are one value, and the result reads one of the output's shape
        // (fused_elementwise checks both), so an instruction has the output's shape where
        // it reads such a register, and is one value otherwise.
        const ElementwiseProgram program = read_elementwise_program(node.attrs, ins.size());
        const Value& y = g.values[node.outputs[0]];
        std::vector<int> regs = ins;
        int m = -1;
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
          m = out.add_node(*program.ops[j], {}, std::move(reads), {{shape, y.dtype}});
          regs.push_back(out.nodes[m].outputs[0]);
        }
        check(out.values[static_cast<size_t>(regs.back())].shape == y.shape, "fused_elementwise",
              "the program's result reads no input of the output's shape");
        new_id[node.outputs[0]] = regs.back();
        out.values[regs.back()].name = y.name;
        return m;
      });
}

}  // namespace tessera::graph
