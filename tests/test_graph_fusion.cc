// Inference passes: freezing, batch-norm folding and activation fusion, each checked for
// the graph it leaves and for the numbers it computes.
#include <cstring>
#include <map>

#include "tessera/graph/executor.h"
#include "tessera/graph/function.h"
#include "tessera/graph/passes.h"
#include "tessera/nn/nn.h"
#include "test_util.h"

namespace tessera {
namespace {

using graph::Graph;
using graph::TensorSpec;
using testing::expect_close;
using testing::random_tensor;

std::map<std::string, int> op_counts(const Graph& g) {
  std::map<std::string, int> counts;
  for (const auto& n : g.nodes) {
    if (!n.def->view) counts[n.op()]++;
  }
  return counts;
}

Graph trace_module(const nn::ModulePtr& m, Dims input) {
  m->eval();
  graph::NamedTensorList vars = m->named_parameters();
  for (auto& b : m->named_buffers()) vars.push_back(b);
  return graph::trace([&](const TensorList& in) { return TensorList{m->forward(in[0])}; },
                      {TensorSpec{input}}, {vars});
}

void expect_same_as_eager(const nn::ModulePtr& m, const Graph& g, Dims shape) {
  Tensor x = random_tensor(shape, DType::Float32, -1, 1, 4);
  graph::Executor ex(std::make_shared<Graph>(g));
  NoGradGuard no_grad;
  expect_close(ex.run({x})[0], m->forward(x), 1e-5, 1e-5);
}

// A batch norm with statistics and affine parameters far from the identity.
std::shared_ptr<nn::BatchNorm2d> trained_batch_norm(int64_t channels) {
  auto bn = std::make_shared<nn::BatchNorm2d>(channels);
  NoGradGuard no_grad;
  bn->running_mean.copy_(random_tensor({channels}, DType::Float32, -1, 1, 7));
  bn->running_var.copy_(random_tensor({channels}, DType::Float32, 0.5, 2, 8));
  bn->weight.copy_(random_tensor({channels}, DType::Float32, 0.5, 1.5, 9));
  bn->bias.copy_(random_tensor({channels}, DType::Float32, -1, 1, 10));
  return bn;
}

TEST(FoldBatchNorm, ConvBatchNormReluBecomesOneConvRelu) {
  for (bool bias : {true, false}) {
    auto net = std::make_shared<nn::Sequential>();
    net->add(std::make_shared<nn::Conv2d>(3, 6, 3, nn::ConvOptions{.padding = 1, .bias = bias}))
        .add(trained_batch_norm(6))
        .add(std::make_shared<nn::ReLU>());
    Graph g = trace_module(net, {-1, 3, 8, 8});
    EXPECT_GT(op_counts(g)["mul"], 0);
    Graph out = graph::optimize_for_inference(g);
    EXPECT_EQ(op_counts(out), (std::map<std::string, int>{{"conv2d_relu", 1}})) << out.to_string();
    for (const auto& v : out.values) EXPECT_NE(v.kind, graph::ValueKind::variable);
    expect_same_as_eager(net, out, {2, 3, 8, 8});
  }
}

TEST(FoldBatchNorm, StopsAtOperandsThatAreNotPerChannel) {
  auto net = std::make_shared<nn::Sequential>();
  Tensor field = random_tensor({6, 8, 8}, DType::Float32);  // varies over space: not foldable
  net->add(std::make_shared<nn::Conv2d>(3, 6, 3, nn::ConvOptions{.padding = 1}))
      .add([field](const Tensor& x) { return add(mul(x, 2.0), field); });
  Graph out = graph::optimize_for_inference(trace_module(net, {-1, 3, 8, 8}));
  // The scale by 2 folds into the convolution; the spatial field stays an add.
  EXPECT_EQ(op_counts(out), (std::map<std::string, int>{{"add", 1}, {"conv2d", 1}}));
  expect_same_as_eager(net, out, {1, 3, 8, 8});
}

TEST(FuseActivations, DenseLayersBecomeLinearOps) {
  auto net = std::make_shared<nn::Sequential>();
  net->add(std::make_shared<nn::Flatten>())
      .add(std::make_shared<nn::Linear>(12, 8))
      .add(std::make_shared<nn::ReLU>())
      .add(std::make_shared<nn::Linear>(8, 5, /*bias=*/false))
      .add(std::make_shared<nn::ReLU>())
      .add(std::make_shared<nn::Linear>(5, 3));
  Graph g = trace_module(net, {-1, 3, 4});
  Graph out = graph::fuse_activations(graph::freeze_variables(g));
  EXPECT_EQ(op_counts(out), (std::map<std::string, int>{{"linear", 3}}));
  int relus = 0;
  for (const auto& n : out.nodes) {
    if (n.attrs.has("activation") && n.attrs.get<std::string>("activation") == "relu") ++relus;
  }
  EXPECT_EQ(relus, 2);
  expect_same_as_eager(net, out, {4, 3, 4});
  // Without freezing, too: fusion needs no constants.
  expect_same_as_eager(net, graph::fuse_activations(g), {4, 3, 4});
  // And after the whole inference pipeline (the transposes folded into constants first).
  Graph inference = graph::optimize_for_inference(g);
  EXPECT_EQ(op_counts(inference), (std::map<std::string, int>{{"linear", 3}}));
  expect_same_as_eager(net, inference, {4, 3, 4});
}

TEST(FuseActivations, ConvFollowedByReluLayer) {
  auto net = std::make_shared<nn::Sequential>();
  net->add(std::make_shared<nn::Conv1d>(2, 4, 3)).add(std::make_shared<nn::ReLU>());
  Graph out = graph::fuse_activations(trace_module(net, {-1, 2, 10}));
  EXPECT_EQ(op_counts(out), (std::map<std::string, int>{{"conv1d_relu", 1}}));
  expect_same_as_eager(net, out, {3, 2, 10});
}

TEST(FuseActivations, LeavesValuesWithOtherReadersAlone) {
  // The matmul's result is also returned: fusing the add into it would lose that value.
  Tensor w = random_tensor({4, 3}, DType::Float32), b = random_tensor({4}, DType::Float32);
  Graph g = graph::trace(
      [&](const TensorList& in) {
        Tensor y = matmul(in[0], w.t());
        return TensorList{relu(add(y, b)), y};
      },
      {TensorSpec{{-1, 3}}});
  Graph out = graph::fuse_activations(g);
  EXPECT_EQ(op_counts(out)["linear"], 1);  // the matmul alone
  EXPECT_EQ(op_counts(out)["add"], 1);
  Tensor x = random_tensor({2, 3}, DType::Float32);
  graph::Executor ex(std::make_shared<Graph>(out));
  TensorList r = ex.run({x});
  expect_close(r[0], relu(add(matmul(x, w.t()), b)));
  expect_close(r[1], matmul(x, w.t()));
}

TEST(FuseElementwise, ChainsBecomeOneOpWithTheSameBits) {
  Tensor shift = full({}, 0.25);
  auto chain = [&](const TensorList& in) {
    Tensor x = in[0];
    Tensor y = tanh(exp(mul(relu(div(sub(x, shift), 0.5)), in[1])));  // one chain
    return TensorList{add(y, neg(square(x)))};
  };
  Graph g = graph::trace(chain, {TensorSpec{{-1, 300}}, TensorSpec{{-1, 300}}});
  Graph out = graph::fuse_elementwise(g);
  EXPECT_EQ(op_counts(out), (std::map<std::string, int>{{"fused_elementwise", 1}}))
      << out.to_string();
  for (int64_t batch : {1, 7}) {  // 7 x 300: several blocks, and a partial one
    Tensor a = random_tensor({batch, 300}, DType::Float32, -2, 2, batch);
    Tensor b = random_tensor({batch, 300}, DType::Float32, -2, 2, batch + 10);
    graph::Executor ex(std::make_shared<Graph>(out));
    Tensor fused = ex.run({a, b})[0], eager = chain({a, b})[0];
    EXPECT_EQ(fused.to_vector<float>(), eager.to_vector<float>()) << "batch " << batch;
  }
}

TEST(FuseElementwise, StopsAtSharedValuesAndBroadcastOperands) {
  Tensor per_column = random_tensor({4}, DType::Float32);
  auto fn = [&](const TensorList& in) {
    Tensor e = exp(in[0]);                // read twice: ends a chain
    Tensor b = add(relu(e), per_column);  // [4] against [?,4]: a broadcast, not fused
    return TensorList{mul(e, 2.0), neg(b)};
  };
  Graph g = graph::trace(fn, {TensorSpec{{-1, 4}}});
  Graph out = graph::fuse_elementwise(g);
  auto counts = op_counts(out);
  EXPECT_EQ(counts["exp"], 1);
  EXPECT_EQ(counts["add"], 1);
  Tensor x = random_tensor({3, 4}, DType::Float32);
  graph::Executor ex(std::make_shared<Graph>(out));
  TensorList r = ex.run({x});
  TensorList e = fn({x});
  EXPECT_EQ(r[0].to_vector<float>(), e[0].to_vector<float>());
  EXPECT_EQ(r[1].to_vector<float>(), e[1].to_vector<float>());
}

TEST(FuseElementwise, HostileProgramsAreRejected) {
  const OpDef* op = find_op("fused_elementwise");
  ASSERT_NE(op, nullptr);
  Tensor x = zeros({3});
  TensorList ins{x};
  const std::vector<std::pair<std::string, std::vector<int64_t>>> programs = {
      {"", {}},                      // no instruction
      {"neg", {5, -1}},              // a register not yet written
      {"add", {0, 9}},               // the same for the second operand
      {"neg", {0, 0}},               // a second operand for a unary op
      {"add", {0, -1}},              // a missing one for a binary op
      {"conv2d", {0, -1}},           // not a pointwise op
      {"no_such_op", {0, -1}},       // not an op at all
      {"neg  exp", {0, -1, 1, -1}},  // an empty name
      {"neg ", {0, -1}},             // a trailing space
      {"neg", {0}},                  // registers of the wrong count
  };
  for (const auto& [ops, registers] : programs) {
    Attrs attrs{{"ops", ops}, {"registers", registers}};
    EXPECT_THROW(op->infer(OpCall{ins, attrs}), Error) << ops;
  }
  Attrs old_form{{"program", std::vector<int64_t>{0, 0, 0, 0}}};  // version 1's attribute
  EXPECT_THROW(op->infer(OpCall{ins, old_form}), Error);
  Attrs good{{"ops", std::string("neg exp")}, {"registers", std::vector<int64_t>{0, -1, 1, -1}}};
  EXPECT_NO_THROW(op->infer(OpCall{ins, good}));
  // Shapes fusion never makes: a result that reads only a single value, and an input that
  // is neither the output's shape nor one value. Both would give the single ops another
  // shape than the fused op.
  Attrs neg_of_second{{"ops", std::string("neg")}, {"registers", std::vector<int64_t>{1, -1}}};
  TensorList x_and_one{zeros({2, 3}), zeros({1})};
  EXPECT_THROW(op->infer(OpCall{x_and_one, neg_of_second}), Error);
  TensorList row_and_matrix{zeros({3}), zeros({2, 3})};
  Attrs neg_of_first{{"ops", std::string("neg")}, {"registers", std::vector<int64_t>{0, -1}}};
  EXPECT_THROW(op->infer(OpCall{row_and_matrix, neg_of_first}), Error);
}

// Every op whose definition says it fuses (OpDef::pointwise), found by walking the
// registry: as a one-instruction program, on arrays and on single values, it gives the
// op's own eager bits; expanding the program gives back a node of that op.
TEST(FuseElementwise, EveryPointwiseOpFusesWithItsOwnBits) {
  const OpDef& fused = *find_op("fused_elementwise");
  Tensor a = random_tensor({3, 173}, DType::Float32, -2, 2, 1);
  Tensor b = random_tensor({3, 173}, DType::Float32, 0.5, 2, 2);
  Tensor one = random_tensor({1}, DType::Float32, 0.5, 2, 3);
  int walked = 0;
  for (const OpDef* def : all_ops()) {
    if (def->pointwise.arity == 0) continue;
    ++walked;
    const bool binary = def->pointwise.arity == 2;
    const std::vector<TensorList> cases =
        binary ? std::vector<TensorList>{{a, b}, {a, one}, {one, b}, {one, one}}
               : std::vector<TensorList>{{a}, {one}};
    for (const TensorList& ins : cases) {
      Attrs program{{"ops", std::string(def->name)},
                    {"registers", std::vector<int64_t>{0, binary ? 1 : -1}}};
      Tensor got = run_op1(fused, ins, program);
      Tensor want = run_op1(*def, ins);
      ASSERT_EQ(got.shape(), want.shape()) << def->name;
      std::vector<float> g = got.to_vector<float>(), w = want.to_vector<float>();
      EXPECT_EQ(std::memcmp(g.data(), w.data(), g.size() * sizeof(float)), 0) << def->name;
    }
    Graph one_node;
    graph::Value x{.kind = graph::ValueKind::input, .shape = {3, 173}};
    std::vector<int> ins{one_node.add_value(x)};
    if (binary) ins.push_back(one_node.add_value(x));
    one_node.inputs = ins;
    Attrs program{{"ops", std::string(def->name)},
                  {"registers", std::vector<int64_t>{0, binary ? 1 : -1}}};
    int n = one_node.add_node(fused, program, ins, {{{3, 173}, DType::Float32}});
    one_node.outputs = {one_node.nodes[n].outputs[0]};
    Graph expanded = graph::expand_elementwise_programs(one_node);
    ASSERT_EQ(expanded.nodes.size(), 1u);
    EXPECT_EQ(expanded.nodes[0].def, def);
  }
  // add sub mul div maximum minimum relu_backward neg abs exp tanh sigmoid relu sqrt
  // square silu at least.
  EXPECT_GE(walked, 16);
}

TEST(Freeze, KeepsVariablesTheGraphWrites) {
  Tensor counter = zeros({});
  Tensor w = random_tensor({3}, DType::Float32).set_requires_grad();
  Graph g = graph::trace(
      [&](const TensorList& in) {
        assign(counter, add(counter, 1.0));
        return TensorList{mul(in[0], w)};
      },
      {TensorSpec{{3}}});
  Graph out = graph::freeze_variables(g);
  int variables = 0, constants = 0;
  for (const auto& v : out.values) {
    variables += v.kind == graph::ValueKind::variable;
    constants += v.kind == graph::ValueKind::constant;
  }
  EXPECT_EQ(variables, 1);  // the counter
  EXPECT_GE(constants, 1);  // w, frozen
}

TEST(TrainingGraph, BatchNormRunningStatisticsUpdateInACapturedStep) {
  manual_seed(2);
  auto make = [] {
    auto net = std::make_shared<nn::Sequential>();
    net->add(std::make_shared<nn::Conv2d>(1, 4, 3)).add(std::make_shared<nn::BatchNorm2d>(4));
    return net;
  };
  manual_seed(2);
  auto eager = make();
  manual_seed(2);
  auto traced = make();
  eager->train();
  traced->train();
  nn::SGD opt_e(eager->parameters(), 0.1), opt_t(traced->parameters(), 0.1);
  std::vector<Tensor> params = traced->parameters();
  Function step = function(
      [&](const TensorList& in) {
        Tensor loss = mean(square(traced->forward(in[0])));
        opt_t.step_with_ops(grad({loss}, params));
        return TensorList{loss};
      },
      {.signature = {TensorSpec{{-1, 1, 6, 6}}}});
  for (int i = 0; i < 5; ++i) {
    Tensor x = random_tensor({3, 1, 6, 6}, DType::Float32, -1, 1, 30 + i);
    opt_e.zero_grad();
    mean(square(eager->forward(x))).backward();
    opt_e.step();
    step({x});
  }
  auto be = eager->named_buffers(), bt = traced->named_buffers();
  ASSERT_EQ(be.size(), bt.size());
  for (size_t i = 0; i < be.size(); ++i) {
    expect_close(bt[i].second.to(DType::Float64), be[i].second.to(DType::Float64), 1e-5, 1e-6,
                 be[i].first);
  }
}

}  // namespace
}  // namespace tessera
