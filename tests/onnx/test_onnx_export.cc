// ONNX export: every layer of the training stack, the main job's CNN and a graph of many
// ops are written as ONNX, read back by the importer and compared with eager results at
// batch sizes other than the traced one. With TESSERA_ONNX_EXPORT_DIR set, the models,
// inputs and expected outputs are also written there for check_export.py (onnx.checker
// and ONNX Runtime).
#include <cstdlib>
#include <filesystem>

#include "../../tools/reference_models.h"
#include "layer_cases.h"
#include "tessera/graph/executor.h"
#include "tessera/graph/function.h"
#include "tessera/graph/passes.h"
#include "tessera/graph/trace.h"
#include "tessera/io/npy.h"
#include "tessera/io/onnx.h"
#include "tessera/tessera.h"

namespace tessera {
namespace {

namespace tonnx = tessera::onnx;
using graph::TensorSpec;
using testing::expect_close;
using testing::LayerCase;
using testing::random_tensor;

tonnx::ImportedModel round_trip(const graph::Graph& g) {
  std::string bytes = tonnx::to_bytes(g);
  return tonnx::load_bytes({reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()});
}

// Where check_export.py finds the cases: "" when not asked for.
std::string export_dir() {
  const char* dir = std::getenv("TESSERA_ONNX_EXPORT_DIR");
  return dir == nullptr ? "" : dir;
}

std::string file_name(std::string name) {
  for (char& ch : name) {
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  }
  return name;
}

// Writes NAME.onnx, NAME.input_K.npy and NAME.expected_K.npy for check_export.py.
void write_case(const std::string& name, const graph::Graph& g, const TensorList& inputs,
                const TensorList& expected) {
  std::string dir = export_dir();
  if (dir.empty()) return;
  std::string base = dir + "/" + file_name(name);
  tonnx::save(g, base + ".onnx");
  for (size_t i = 0; i < inputs.size(); ++i) {
    io::write_npy(base + ".input_" + std::to_string(i) + ".npy", inputs[i]);
  }
  for (size_t i = 0; i < expected.size(); ++i) {
    io::write_npy(base + ".expected_" + std::to_string(i) + ".npy", expected[i]);
  }
}

TEST(OnnxExport, EveryLayerRoundTripsWithAnUnknownBatch) {
  for (const LayerCase& c : testing::layer_cases()) {
    SCOPED_TRACE(c.name);
    manual_seed(5);
    nn::ModulePtr layer = c.make();
    Function f = testing::layer_function(layer, c);
    const graph::Graph& g = f.graph_for({testing::layer_input(c, 2)});
    tonnx::ImportedModel back;
    try {
      back = round_trip(g);
    } catch (const Error& e) {
      ADD_FAILURE() << e.what();
      continue;
    }
    ASSERT_EQ(back.graph.inputs.size(), 1u);
    EXPECT_EQ(back.graph.values[static_cast<size_t>(back.graph.inputs[0])].shape[0],
              graph::kUnknownDim)
        << "the batch stays unknown";
    graph::Executor executor(std::make_shared<graph::Graph>(back.graph));
    for (int64_t batch : {1, 3}) {
      Tensor x = testing::layer_input(c, batch);
      Tensor expected;
      {
        NoGradGuard no_grad;
        expected = layer->forward(x);
      }
      expect_close(executor.run({x})[0], expected, 1e-5, 1e-5, c.name);
      if (batch == 3) write_case(c.name, g, {x}, {expected});
    }
  }
}

TEST(OnnxExport, MainJobCnnExportsAndImportsWithTheSameOutputs) {
  manual_seed(11);
  nn::ModulePtr net = tools::make_reference_cnn();
  net->eval();
  Function f = function([&](const TensorList& in) { return TensorList{net->forward(in[0])}; },
                        {.signature = {TensorSpec{{-1, 1, 28, 28}, DType::Float32, "image"}},
                         .variables = net->named_parameters()});
  graph::Graph g = graph::optimize_for_inference(f.graph_for({zeros({1, 1, 28, 28})}));
  std::string path = std::filesystem::temp_directory_path() / "tessera_main_cnn.onnx";
  tonnx::save(g, path);
  tonnx::ImportedModel back = tonnx::load(path);
  std::filesystem::remove(path);
  EXPECT_EQ(back.input_names, std::vector<std::string>{"image"});
  EXPECT_EQ(back.output_names, std::vector<std::string>{"output"});
  graph::Executor original(std::make_shared<graph::Graph>(g));
  graph::Executor imported(std::make_shared<graph::Graph>(back.graph));
  for (int64_t batch : {1, 5}) {
    Tensor x = random_tensor({batch, 1, 28, 28}, DType::Float32, 0, 1, batch);
    Tensor want = original.run({x})[0];
    expect_close(imported.run({x})[0], want, 1e-5, 1e-5, "main CNN");
    if (batch == 5) write_case("main_cnn", g, {x}, {want});
  }
}

// Traced in training mode, the CNN's first layer is the training-only fused op
// (conv2d_relu_max_pool2d_2x2); the exporter splits it into the two ops ONNX has.
TEST(OnnxExport, ACnnTracedInTrainingModeExports) {
  manual_seed(12);
  nn::ModulePtr net = tools::make_reference_cnn();
  graph::Graph g =
      graph::trace([&](const TensorList& in) { return TensorList{net->forward(in[0])}; },
                   {TensorSpec{{-1, 1, 28, 28}}});
  bool fused = false;
  for (const graph::Node& n : g.nodes) fused |= std::string(n.op()) == "conv2d_relu_max_pool2d_2x2";
  EXPECT_TRUE(fused);
  tonnx::ImportedModel back = round_trip(g);
  Tensor x = random_tensor({3, 1, 28, 28}, DType::Float32, 0, 1, 13);
  graph::Executor original(std::make_shared<graph::Graph>(g));
  graph::Executor imported(std::make_shared<graph::Graph>(back.graph));
  expect_close(imported.run({x})[0], original.run({x})[0], 1e-5, 1e-5, "CNN traced training");
}

// Elementwise, reduction, indexing and shape ops, several of which ONNX spells as chains.
TensorList many_ops(const TensorList& in) {
  const Tensor& x = in[0];
  Tensor pos = add(abs(x), 0.5);
  Tensor idx = argmax(x, 1, false);  // int64 [N]
  TensorList out = {
      sign(neg(x)), add(exp(x), log(pos)), mul(sqrt(pos), rsqrt(pos)), add(sin(x), cos(x)),
      add(erf(x), tanh(x)),
      add(add(floor(mul(x, 3.0)), ceil(mul(x, 3.0))), add(round(mul(x, 3.0)), trunc(mul(x, 3.0)))),
      add(add(expm1(x), log1p(pos)), log2(pos)),
      add(add(relu6(mul(x, 8.0)), gelu(x, true)), add(selu(x), softsign(x))),
      add(hard_sigmoid(mul(x, 4.0)), clamp(x, -0.5, 0.5)),
      add(mod(x, full({}, 0.3)), floor_div(x, full({}, 0.3))),
      add(maximum(x, sigmoid(x)), minimum(x, square(x))), pow(pos, x),
      where(logical_and(gt(x, full({}, -0.5)), lt(x, full({}, 0.5))), x, neg(x)),
      (logical_or(eq(x, x), ne(x, x))).to(DType::Float32),
      add(sum(x, {1}, true), prod(pos, {1}, true)), sub(amax(x, {1}), amin(x, {1})), cumsum(x, 1),
      log_softmax(x, 1), flip(x, {1}),
      mul(mod(idx, full({}, int64_t{4}, DType::Int64)),
          floor_div(idx, full({}, int64_t{-4}, DType::Int64))),
      one_hot(idx, 6), index_select(x, 1, from_vector(std::vector<int64_t>{5, 0, 2}, {3})),
      topk(x, 2, 1).values, pad(x, {1, 2}, "reflect"), reshape(x, {-1, 2, 3}),
      (isfinite(div(x, x))).to(DType::Float32),
      // bools: add and mul are logical or / and, and compare as 0 and 1
      add(gt(x, full({}, 0.0)), lt(x, full({}, 0.5))).to(DType::Float32),
      mul(gt(x, full({}, 0.0)), lt(x, full({}, 0.5))).to(DType::Float32),
      lt(gt(x, full({}, 0.0)), lt(x, full({}, 0.5))).to(DType::Float32),
      index_select(x, 1, full({}, int64_t{2}, DType::Int64)),  // a 0-d index keeps the axis
  };
  return out;
}

TEST(OnnxExport, ManyOpsRoundTrip) {
  Function f = function(many_ops, {.signature = {TensorSpec{{-1, 6}, DType::Float32, "x"}}});
  Tensor probe = random_tensor({2, 6}, DType::Float32, -1, 1, 7);
  const graph::Graph& g = f.graph_for({probe});
  tonnx::ImportedModel back = round_trip(g);
  graph::Executor executor(std::make_shared<graph::Graph>(back.graph));
  for (int64_t batch : {1, 4}) {
    Tensor x = random_tensor({batch, 6}, DType::Float32, -1, 1, batch);
    TensorList want = many_ops({x}), got = executor.run({x});
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < want.size(); ++i) {
      expect_close(got[i], want[i], 1e-5, 1e-5, "output " + std::to_string(i));
    }
    if (batch == 4) write_case("many_ops", g, {x}, want);
  }
}

TEST(OnnxExport, UnsupportedNodesAreAllListed) {
  Function f = function(
      [](const TensorList& in) {
        return TensorList{atan2(in[0], in[0]), diagonal(in[0])};
      },
      {.signature = {TensorSpec{{3, 3}, DType::Float32, "x"}}});
  const graph::Graph& g = f.graph_for({zeros({3, 3})});
  try {
    tonnx::to_bytes(g);
    FAIL() << "expected UnsupportedError";
  } catch (const tonnx::UnsupportedError& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("2 nodes cannot be written as ONNX"), std::string::npos) << m;
    EXPECT_NE(m.find("atan2"), std::string::npos) << m;
    EXPECT_NE(m.find("diagonal"), std::string::npos) << m;
  }
}

}  // namespace
}  // namespace tessera
