// libFuzzer target for the saved-model loader: any bytes must load, or fail with a
// tessera::Error; a loaded model must run on a small input or fail the same way.
// Build and run: bash scripts/fuzz.sh [seconds]
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <variant>

#include "tessera/graph/control_flow.h"
#include "tessera/graph/saved_model.h"

namespace {
// Whether every while_loop (at any depth) stops within a few iterations: a loop without a
// cap may legitimately run forever, which is not a loader bug.
bool loops_are_bounded(const tessera::graph::Graph& g) {
  for (const tessera::graph::Node& node : g.nodes) {
    if (std::string_view(node.op()) == "while_loop") {
      const int64_t* m = nullptr;
      for (const auto& [name, value] : node.attrs.items()) {
        if (std::string_view(name) == "maximum_iterations") m = std::get_if<int64_t>(&value);
      }
      if (m == nullptr || *m < 0 || *m > 64) return false;
    }
    for (const auto& [name, value] : node.attrs.items()) {
      const auto* sub = std::get_if<tessera::SubgraphAttr>(&value);
      if (sub && *sub && !loops_are_bounded((*sub)->graph)) return false;
    }
  }
  return true;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tessera;
  try {
    graph::SavedModel model = graph::SavedModel::from_bytes({data, size});
    if (!loops_are_bounded(model.graph(model.signature_names()[0]))) return 0;
    // Run the first signature with every unknown size 2 (bounded, so that a hostile
    // shape attribute cannot make the run itself the slow part).
    const graph::Graph& g = model.graph(model.signature_names()[0]);
    TensorList inputs;
    int64_t elements = 0;
    for (int id : g.inputs) {
      Dims shape = g.values[id].shape;
      for (int64_t& d : shape) d = d == graph::kUnknownDim ? 2 : d;
      elements += shape_numel(shape);
      if (elements > (1 << 20)) return 0;
      inputs.push_back(Tensor::empty(shape, g.values[id].dtype).zero_());
    }
    graph::PlanStats stats = model.executor(model.signature_names()[0]).stats([&] {
      std::vector<Dims> shapes;
      for (const Tensor& t : inputs) shapes.push_back(t.shape());
      return shapes;
    }());
    if (stats.naive_bytes > (int64_t{256} << 20)) return 0;
    model.run(model.signature_names()[0], inputs);
  } catch (const Error&) {
  }
  return 0;
}
