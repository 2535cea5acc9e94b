// Training-only fused ops split back into the ops they fuse, for graphs that leave
// Tessera's executor (the lite converter, the ONNX exporter).
#include "rewrite.h"
#include "tessera/graph/passes.h"

namespace tessera::graph {

namespace {

constexpr std::string_view kConvReluPool = "conv2d_relu_max_pool2d_2x2";

// conv2d_relu_max_pool2d_2x2(x, w[, b]) -> (pooled, taps) as conv2d_relu (stride 1,
// padding 1) then max_pool2d_2x2, appended to `out` on the mapped inputs; returns the
// pooling node.
int add_conv_relu_pool(Graph& out, const Graph& g, const Node& node, std::vector<int> inputs) {
  const Dims& x = g.values[node.inputs[0]].shape;
  const Value& pooled = g.values[node.outputs[0]];
  const Dims y{x[0], pooled.shape[1], x[2], x[3]};
  const std::vector<int64_t> ones{1, 1};
  Attrs attrs{{"stride", ones},
              {"padding", ones},
              {"padding_hi", ones},
              {"dilation", ones},
              {"output_padding", std::vector<int64_t>{0, 0}},
              {"groups", int64_t{1}}};
  int conv = out.add_node(*find_op("conv2d_relu"), std::move(attrs), std::move(inputs),
                          {{y, DType::Float32}});
  return out.add_node(*find_op("max_pool2d_2x2"), {}, {out.nodes[conv].outputs[0]},
                      {{pooled.shape, DType::Float32}, {pooled.shape, DType::UInt8}});
}

}  // namespace

Graph split_training_fusions(const Graph& g) {
  bool any = false;
  for (const Node& node : g.nodes) any = any || node.op() == kConvReluPool;
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
    if (node.op() == kConvReluPool) {
      new_node[n] = add_conv_relu_pool(out, g, node, std::move(ins));
      map_outputs(g, node, out, new_node[n], new_id);
    } else {
      new_node[n] = copy_node(g, node, std::move(ins), out, new_id);
    }
  }
  for (int id : g.outputs) out.outputs.push_back(source(id));
  for (int n : g.effects) out.effects.push_back(new_node[n]);
  out.validate();
  return out;
}

}  // namespace tessera::graph
