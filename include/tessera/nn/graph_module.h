// A graph as a module: an imported ONNX model or a saved model's signature, run op by op
// through the eager ops (graph::replay), so that autodiff, optimizers and Model::fit train
// its variables like any layer's parameters. The variables are the graph's own tensors:
// after training, the graph (saved, exported or converted to a lite model) holds the new
// weights.
#pragma once
#include <memory>

#include "tessera/graph/graph.h"
#include "tessera/nn/module.h"

namespace tessera::nn {

class GraphModule : public Module {
 public:
  // Floating-point variables of `graph` become parameters (named after the variables, with
  // '.' written '_'). A graph without variables (an import without --trainable) has
  // nothing to train: an error. Graphs that write variables (training steps) are refused.
  explicit GraphModule(std::shared_ptr<graph::Graph> graph);

  // The graph's first output for its one input.
  Tensor forward(const Tensor& input) override;
  // Every output, for graphs with several inputs or outputs.
  TensorList call(const TensorList& inputs);

  const std::shared_ptr<graph::Graph>& graph() const { return graph_; }

 private:
  std::shared_ptr<graph::Graph> graph_;
};

}  // namespace tessera::nn
