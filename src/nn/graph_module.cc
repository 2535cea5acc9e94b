#include "tessera/nn/graph_module.h"

#include <set>

#include "tessera/graph/executor.h"
#include "tessera/ops/elementwise.h"
#include "tessera/ops/fused.h"
#include "tessera/ops/linalg.h"

namespace tessera::nn {

GraphModule::GraphModule(std::shared_ptr<graph::Graph> graph)
    : Module("GraphModule"), graph_(std::move(graph)) {
  check(graph_ != nullptr, "GraphModule", "no graph");
  graph_->validate();
  check(graph_->effects.empty(), "GraphModule",
        "the graph writes variables (a training step); give it an inference graph");
  std::set<std::string> names;
  for (graph::Value& v : graph_->values) {
    if (v.kind != graph::ValueKind::variable || !is_floating(v.data.dtype())) continue;
    std::string name = v.name.empty() ? "variable" : v.name;
    for (char& ch : name) ch = ch == '.' ? '_' : ch;
    std::string unique = name;
    for (int k = 1; !names.insert(unique).second; ++k) unique = name + "_" + std::to_string(k);
    // The graph keeps the same tensor, now requiring grad: replay reads it.
    v.data = register_parameter(unique, v.data);
  }
  check(!names.empty(), "GraphModule",
        "the graph has no floating-point variables to train (import ONNX models with "
        "trainable initializers: ImportOptions::trainable, `tessera import --trainable`)");
}

namespace {

// A node through the eager ops. Fused ops (which passes make and which have no gradient
// rule) run as the single ops they stand for, so that autodiff reaches every variable.
TensorList run_node(const graph::Node& node, const TensorList& ins, const Attrs& attrs) {
  const std::string op = node.op();
  if (op == "fused_elementwise") return {run_program_as_ops(attrs.ints("program"), ins)};
  if (op == "linear") {
    check(ins.size() >= 2, "linear", "needs an input and a weight");
    Tensor y = matmul(ins[0], ins[1].t());
    if (ins.size() > 2) y = add(y, ins[2]);
    if (attrs.get<std::string>("activation") == "relu") y = relu(y);
    return {y};
  }
  return run_op(*node.def, ins, attrs);
}

}  // namespace

TensorList GraphModule::call(const TensorList& inputs) {
  const graph::Graph& g = *graph_;
  graph::check_inputs(g, inputs, "GraphModule");
  std::vector<Dims> shapes;
  for (const Tensor& t : inputs) shapes.push_back(t.shape());
  std::vector<int64_t> sizes = graph::bind_symbols(g, shapes);
  TensorList values(g.values.size());
  for (size_t i = 0; i < inputs.size(); ++i) values[static_cast<size_t>(g.inputs[i])] = inputs[i];
  for (size_t id = 0; id < g.values.size(); ++id) {
    const graph::Value& v = g.values[id];
    if (v.kind == graph::ValueKind::constant || v.kind == graph::ValueKind::variable)
      values[id] = v.data;
  }
  for (const graph::Node& node : g.nodes) {
    TensorList ins;
    for (int id : node.inputs) ins.push_back(values[static_cast<size_t>(id)]);
    TensorList outs = run_node(node, ins, graph::bind_attrs(node.attrs, sizes));
    for (size_t i = 0; i < outs.size() && i < node.outputs.size(); ++i)
      values[static_cast<size_t>(node.outputs[i])] = outs[i];
  }
  TensorList outputs;
  for (int id : g.outputs) outputs.push_back(values[static_cast<size_t>(id)]);
  return outputs;
}

Tensor GraphModule::forward(const Tensor& input) {
  check(graph_->inputs.size() == 1, "GraphModule", "forward takes one input; the graph has ",
        graph_->inputs.size(), " (use call)");
  return call({input})[0];
}

}  // namespace tessera::nn
