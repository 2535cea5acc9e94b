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
  return rebuild_replacing(
      g, [](const Node& node) { return node.op() == kConvReluPool; },
      [&](Graph& out, const Node& node, std::vector<int> ins, std::vector<int>& new_id) {
        int m = add_conv_relu_pool(out, g, node, std::move(ins));
        map_outputs(g, node, out, m, new_id);
        return m;
      });
}

}  // namespace tessera::graph
