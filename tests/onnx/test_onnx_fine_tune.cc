// Fine-tuning an imported model: an ONNX model with trainable initializers runs as an
// nn::GraphModule, trains with an optimizer, and then converts to a full-integer int8
// lite model whose outputs follow the fine-tuned float model's. (tests/onnx/
// pytorch_models.py does the same with PyTorch's ResNet-18 through the command line.)
#include <gtest/gtest.h>

#include <cstdio>

#include "tessera/convert/lite_converter.h"
#include "tessera/graph/executor.h"
#include "tessera/graph/function.h"
#include "tessera/graph/passes.h"
#include "tessera/io/onnx.h"
#include "tessera/lite/lite.h"
#include "tessera/nn/nn.h"
#include "test_models.h"
#include "test_util.h"

namespace tessera {
namespace {

namespace tonnx = tessera::onnx;
using graph::TensorSpec;

// The small CNN of the training tests as ONNX bytes, written by Tessera's exporter.
std::string small_cnn_onnx() {
  manual_seed(21);
  nn::ModulePtr net = testing::make_small_net(true);
  net->eval();
  Function f = function([&](const TensorList& in) { return TensorList{net->forward(in[0])}; },
                        {.signature = {TensorSpec{{-1, 1, 16, 16}, DType::Float32, "image"}},
                         .variables = net->named_parameters()});
  return tonnx::to_bytes(f.graph_for({zeros({2, 1, 16, 16})}));
}

// Logits of a lite model for each image of `images` [N, 1, 16, 16].
Tensor run_lite(const std::vector<uint8_t>& bytes, const Tensor& images) {
  std::unique_ptr<lite::Model> model;
  lite::Result r = lite::Model::from_buffer(bytes.data(), bytes.size(), model);
  EXPECT_TRUE(r.ok()) << r.message;
  lite::Interpreter interpreter(*model);
  r = interpreter.allocate();
  EXPECT_TRUE(r.ok()) << r.message;
  const int64_t n = images.shape()[0];
  Tensor out = zeros({n, 10});
  Tensor dense = images.contiguous();
  for (int64_t i = 0; i < n; ++i) {
    r = interpreter.set_input(0, dense.data<float>() + i * 256, 256 * sizeof(float));
    EXPECT_TRUE(r.ok()) << r.message;
    r = interpreter.invoke();
    EXPECT_TRUE(r.ok()) << r.message;
    const auto* logits = static_cast<const float*>(interpreter.output_data(0));
    std::copy(logits, logits + 10, out.data<float>() + i * 10);
  }
  return out;
}

TEST(OnnxFineTune, ImportedModelTrainsThenConvertsToInt8) {
  std::string bytes = small_cnn_onnx();
  tonnx::ImportedModel imported = tonnx::load_bytes(
      {reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()}, {.trainable = true});
  auto g = std::make_shared<graph::Graph>(std::move(imported.graph));
  auto module = std::make_shared<nn::GraphModule>(g);
  ASSERT_EQ(module->parameters().size(), 6u);  // two convolutions and two dense layers
  Tensor before = module->parameters()[0].clone();

  // Learn labels that follow the images (the brightest quadrant), on 64 images.
  Tensor images = testing::random_tensor({64, 1, 16, 16}, DType::Float32, 0, 1, 4);
  Tensor quadrants = reshape(images, {64, 2, 8, 2, 8}).permute({0, 1, 3, 2, 4});
  Tensor labels = argmax(sum(reshape(quadrants, {64, 4, 64}), {2}), 1, false);
  nn::Adam optimizer(module->parameters(), 1e-2);
  auto loss_now = [&] {
    NoGradGuard no_grad;
    return nn::cross_entropy(module->forward(images), labels).item<float>();
  };
  float first = loss_now();
  for (int step = 0; step < 60; ++step) {
    optimizer.zero_grad();
    Tensor loss = nn::cross_entropy(module->forward(images), labels);
    loss.backward();
    optimizer.step();
  }
  float last = loss_now();
  EXPECT_LT(last, 0.5f * first) << "the imported model trains (loss " << first << " -> " << last
                                << ")";
  EXPECT_GT(amax(abs(sub(module->parameters()[0], before))).item<float>(), 0.0f);

  // The graph holds the trained weights: its executor agrees with the module.
  graph::Executor executor(g);
  Tensor float_logits = executor.run({images})[0];
  {
    NoGradGuard no_grad;
    testing::expect_close(float_logits, module->forward(images), 1e-5, 1e-5, "graph vs module");
  }

  convert::LiteOptions options;
  options.quantization = convert::Quantization::int8;
  for (int64_t i = 0; i < 64; i += 16) options.calibration.push_back({images.slice(0, i, i + 16)});
  convert::LiteModel lite = convert::to_lite(graph::optimize_for_inference(*g), options);
  EXPECT_GT(lite.int8_operators, 0);
  Tensor int8_logits = run_lite(lite.bytes, images);
  double scale = amax(abs(float_logits)).item<float>();
  double error = amax(abs(sub(int8_logits, float_logits))).item<float>() / scale;
  EXPECT_LT(error, 0.05) << "int8 logits relative to the fine-tuned float model";
  Tensor agree = eq(argmax(int8_logits, 1, false), argmax(float_logits, 1, false));
  int64_t agreeing = sum(agree.to(DType::Int64)).item<int64_t>();
  EXPECT_GE(agreeing, 58) << "top-1 agreement of 64";
  std::printf("fine-tuned loss %.3f -> %.3f; int8 vs float logits: %.3g relative, top-1 %lld/64\n",
              first, last, error, static_cast<long long>(agreeing));
}

}  // namespace
}  // namespace tessera

namespace tessera {
namespace {

// Passes fuse ops that have no gradient rule (linear, fused_elementwise); a GraphModule
// runs them as their single ops, so its gradients are the eager module's.
TEST(GraphModule, FusedGraphsHaveTheEagerGradients) {
  manual_seed(8);
  auto net = std::make_shared<nn::Sequential>();
  net->add(std::make_shared<nn::Linear>(6, 8))
      .add(std::make_shared<nn::ReLU>())
      .add(std::make_shared<nn::LayerNorm>(Shape{8}))
      .add(std::make_shared<nn::Linear>(8, 3));
  Function f = function([&](const TensorList& in) { return TensorList{net->forward(in[0])}; },
                        {.signature = {TensorSpec{{-1, 6}, DType::Float32, "x"}},
                         .variables = net->named_parameters()});
  graph::Graph fused = graph::fuse_elementwise(
      graph::fuse_activations(graph::optimize(f.graph_for({zeros({2, 6})}))));
  bool has_linear = false, has_program = false;
  for (const graph::Node& n : fused.nodes) {
    has_linear = has_linear || std::string(n.op()) == "linear";
    has_program = has_program || std::string(n.op()) == "fused_elementwise";
  }
  ASSERT_TRUE(has_linear && has_program) << fused.to_string();
  nn::GraphModule module(std::make_shared<graph::Graph>(fused));
  Tensor x = testing::random_tensor({5, 6}, DType::Float32, -1, 1, 3);
  Tensor target = testing::random_tensor({5, 3}, DType::Float32, -1, 1, 4);
  // The module's parameters are the network's own tensors (the graph captured them).
  net->zero_grad();
  nn::mse_loss(net->forward(x), target).backward();
  std::vector<Tensor> eager;
  for (const Tensor& p : net->parameters()) eager.push_back(p.grad().clone());
  net->zero_grad();
  nn::mse_loss(module.forward(x), target).backward();
  std::vector<Tensor> params = net->parameters();
  for (size_t i = 0; i < params.size(); ++i) {
    ASSERT_TRUE(params[i].grad().defined()) << "parameter " << i;
    testing::expect_close(params[i].grad(), eager[i], 1e-5, 1e-6, "gradient " + std::to_string(i));
  }
}

}  // namespace
}  // namespace tessera
