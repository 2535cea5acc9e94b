// Graph and eager results agree for the layers of the training stack: each layer (in eval
// mode) is traced with an unknown batch size, optimized, saved, reloaded and run at two
// batch sizes, and compared with its eager forward.
#include <functional>

#include "tessera/graph/function.h"
#include "tessera/graph/saved_model.h"
#include "tessera/nn/nn.h"
#include "test_util.h"

namespace tessera {
namespace {

using graph::TensorSpec;
using testing::expect_close;
using testing::random_tensor;

struct LayerCase {
  std::string name;
  std::function<nn::ModulePtr()> make;
  Dims input;  // without the batch
  DType dtype = DType::Float32;
};

std::vector<LayerCase> cases() {
  using namespace nn;
  auto seq = [](std::initializer_list<ModulePtr> layers) {
    return std::make_shared<Sequential>(layers);
  };
  return {
      {"Linear", [] { return std::make_shared<Linear>(6, 4); }, {6}},
      {"Conv1d",
       [] { return std::make_shared<Conv1d>(3, 4, 3, ConvOptions{.padding = 1}); },
       {3, 9}},
      {"Conv2d+relu",
       [] {
         return std::make_shared<Conv2d>(2, 4, 3, ConvOptions{.stride = 2, .activation = "relu"});
       },
       {2, 9, 9}},
      {"Conv3d", [] { return std::make_shared<Conv3d>(2, 3, 2); }, {2, 4, 4, 4}},
      {"DepthwiseConv2d", [] { return std::make_shared<DepthwiseConv2d>(4, 3); }, {4, 7, 7}},
      {"SeparableConv2d", [] { return std::make_shared<SeparableConv2d>(3, 5, 3); }, {3, 8, 8}},
      {"ConvTranspose2d",
       [] { return std::make_shared<ConvTranspose2d>(3, 2, 3, ConvTransposeOptions{.stride = 2}); },
       {3, 5, 5}},
      {"MaxPool2d", [] { return std::make_shared<MaxPool2d>(2); }, {3, 8, 8}},
      {"MaxPool1d", [] { return std::make_shared<MaxPool1d>(3); }, {2, 9}},
      {"AvgPool2d", [] { return std::make_shared<AvgPool2d>(2); }, {3, 6, 6}},
      {"AdaptiveAvgPool2d", [] { return std::make_shared<AdaptiveAvgPool2d>(3); }, {2, 7, 7}},
      {"GlobalMaxPool", [] { return std::make_shared<GlobalMaxPool>(); }, {3, 5, 5}},
      {"BatchNorm2d", [] { return std::make_shared<BatchNorm2d>(3); }, {3, 4, 4}},
      {"LayerNorm", [] { return std::make_shared<LayerNorm>(Shape{8}); }, {5, 8}},
      {"GroupNorm", [] { return std::make_shared<GroupNorm>(2, 4); }, {4, 3, 3}},
      {"InstanceNorm", [] { return std::make_shared<InstanceNorm>(3, 1e-5, true); }, {3, 6}},
      {"Embedding", [] { return std::make_shared<Embedding>(10, 4, 0); }, {5}, DType::Int64},
      {"Upsample", [] { return std::make_shared<Upsample>(2.0, "bilinear"); }, {2, 4, 4}},
      {"ZeroPad2d", [] { return std::make_shared<ZeroPad2d>(1); }, {2, 3, 3}},
      {"activations",
       [seq] {
         return seq({std::make_shared<GELU>(), std::make_shared<SiLU>(), std::make_shared<ELU>(),
                     std::make_shared<HardSwish>(), std::make_shared<Softplus>(),
                     std::make_shared<LeakyReLU>(), std::make_shared<Tanh>(),
                     std::make_shared<Softmax>()});
       },
       {7}},
      {"LSTM bidirectional 2 layers",
       [] {
         return std::make_shared<LSTM>(
             4, 5, RNNOptions{.num_layers = 2, .batch_first = true, .bidirectional = true});
       },
       {6, 4}},
      {"GRU", [] { return std::make_shared<GRU>(3, 4, RNNOptions{.batch_first = true}); }, {5, 3}},
      {"MultiHeadAttention",
       [] { return std::make_shared<MultiHeadAttention>(8, 2, 0.0, true, true); },
       {5, 8}},
      {"TransformerEncoderLayer",
       [] {
         return std::make_shared<TransformerEncoderLayer>(
             8, 2, TransformerOptions{.dim_feedforward = 16, .dropout = 0.0, .batch_first = true});
       },
       {5, 8}},
  };
}

TEST(GraphLayers, EveryLayerMatchesEagerAfterSaveAndLoad) {
  for (const LayerCase& c : cases()) {
    SCOPED_TRACE(c.name);
    manual_seed(3);
    nn::ModulePtr layer = c.make();
    layer->eval();
    graph::NamedTensorList weights = layer->named_parameters();
    for (auto& b : layer->named_buffers()) weights.push_back(b);
    Dims spec_shape{-1};
    for (int64_t d : c.input) spec_shape.push_back(d);
    Function f =
        function([&](const TensorList& in) { return TensorList{layer->forward(in[0])}; },
                 {.signature = {TensorSpec{spec_shape, c.dtype, "x"}}, .variables = weights});
    auto make_input = [&](int64_t batch) {
      Dims shape{batch};
      for (int64_t d : c.input) shape.push_back(d);
      if (c.dtype == DType::Int64) {
        Generator gen(batch);
        return randint(0, 10, shape, DType::Int64, &gen);
      }
      return random_tensor(shape, DType::Float32, -1, 1, batch);
    };
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
