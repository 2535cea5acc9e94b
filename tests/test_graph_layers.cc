// Graph and eager results agree for the layers of the training stack: each layer (in eval
// mode) is traced with an unknown batch size, optimized, saved, reloaded and run at two
// batch sizes, and compared with its eager forward.
#include "layer_cases.h"
#include "tessera/graph/function.h"
#include "tessera/graph/saved_model.h"
#include "tessera/nn/nn.h"

namespace tessera {
namespace {

using testing::expect_close;
using testing::layer_input;
using testing::LayerCase;

TEST(GraphLayers, EveryLayerMatchesEagerAfterSaveAndLoad) {
  for (const LayerCase& c : testing::layer_cases()) {
    SCOPED_TRACE(c.name);
    manual_seed(3);
    nn::ModulePtr layer = c.make();
    Function f = testing::layer_function(layer, c);
    auto make_input = [&](int64_t batch) { return layer_input(c, batch); };
    Tensor probe = make_input(2);
    std::shared_ptr<graph::Graph> g;
    try {
      g = std::make_shared<graph::Graph>(f.graph_for({probe}));
    } catch (const Error& e) {
      ADD_FAILURE() << "tracing failed: " << e.what();
      continue;
    }
    std::string bytes = graph::serialize_model({{"serve", g}});
    graph::SavedModel loaded = graph::SavedModel::from_bytes(
        {reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()});
    for (int64_t batch : {1, 3}) {
      Tensor x = make_input(batch);
      Tensor expected;
      {
        NoGradGuard no_grad;
        expected = layer->forward(x);
      }
      Tensor from_graph = f({x})[0], from_file = loaded.run({x})[0];
      expect_close(from_graph, expected, 1e-5, 1e-5, c.name + " graph");
      EXPECT_EQ(from_file.to_vector<float>(), from_graph.to_vector<float>()) << "reloaded";
    }
  }
}

}  // namespace
}  // namespace tessera
