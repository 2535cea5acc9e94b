#include "tessera/nn/graph_module.h"

#include <set>

#include "tessera/graph/control_flow.h"
#include "tessera/graph/executor.h"

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

TensorList GraphModule::call(const TensorList& inputs) {
  graph::check_inputs(*graph_, inputs, "GraphModule");
  return graph::replay(*graph_, inputs);
}

Tensor GraphModule::forward(const Tensor& input) {
  check(graph_->inputs.size() == 1, "GraphModule", "forward takes one input; the graph has ",
        graph_->inputs.size(), " (use call)");
  return call({input})[0];
}

}  // namespace tessera::nn
