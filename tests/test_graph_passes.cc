// Each graph pass on its own: what the graph looks like before and after, and that the
// result computes the same values.
#include <map>

#include "tessera/graph/executor.h"
#include "tessera/graph/passes.h"
#include "tessera/graph/trace.h"
#include "test_models.h"
#include "test_util.h"

namespace tessera {
namespace {

using graph::Graph;
using graph::kUnknownDim;
using graph::TensorSpec;
using testing::expect_close;
using testing::random_tensor;

std::map<std::string, int> op_counts(const Graph& g) {
  std::map<std::string, int> counts;
  for (const auto& n : g.nodes) counts[n.op()]++;
  return counts;
}

// Runs both graphs on the same random inputs and compares every output.
void expect_same_results(const Graph& before, const Graph& after, const std::vector<Dims>& shapes) {
  TensorList inputs;
  for (size_t i = 0; i < shapes.size(); ++i) {
    inputs.push_back(random_tensor(shapes[i], DType::Float32, -1, 1, 11 + i));
  }
  graph::Executor a(std::make_shared<Graph>(before)), b(std::make_shared<Graph>(after));
  TensorList x = a.run(inputs), y = b.run(inputs);
  ASSERT_EQ(x.size(), y.size());
  for (size_t i = 0; i < x.size(); ++i) expect_close(y[i], x[i], 1e-6, 1e-6);
}

TEST(DeadCode, DropsUnusedNodesAndWeights) {
  Tensor unused_weight = random_tensor({3}, DType::Float32);
  Graph g = graph::trace(
      [&](const TensorList& in) {
        Tensor dead = exp(mul(in[0], unused_weight));  // computed, never returned
        (void)dead;
        return TensorList{neg(in[0])};
      },
      {TensorSpec{{3}}});
  EXPECT_EQ(g.nodes.size(), 3u);
  Graph out = graph::eliminate_dead_code(g);
  EXPECT_EQ(op_counts(out), (std::map<std::string, int>{{"neg", 1}}));
  EXPECT_EQ(out.parameter_count(), 0);
  expect_same_results(g, out, {{3}});
}

TEST(DeadCode, KeepsInputsEvenWhenUnused) {
  Graph g = graph::trace([](const TensorList& in) { return TensorList{neg(in[1])}; },
                         {TensorSpec{{2}}, TensorSpec{{2}}});
  Graph out = graph::eliminate_dead_code(g);
  EXPECT_EQ(out.inputs.size(), 2u);
  expect_same_results(g, out, {{2}, {2}});
}

TEST(CommonSubexpressions, MergesEqualCallsButNotDifferentAttributes) {
  Graph g = graph::trace(
      [](const TensorList& in) {
        Tensor a = sum(exp(in[0]), {1}), b = sum(exp(in[0]), {1});
        Tensor c = sum(exp(in[0]), {0});  // same op and input, other attribute
        return TensorList{add(a, b), c};
      },
      {TensorSpec{{kUnknownDim, 4}}});
  EXPECT_EQ(op_counts(g)["exp"], 3);
  Graph out = graph::eliminate_common_subexpressions(g);
  EXPECT_EQ(op_counts(out)["exp"], 1);
  EXPECT_EQ(op_counts(out)["sum"], 2);
  expect_same_results(g, out, {{5, 4}});
}

TEST(CommonSubexpressions, MergesEqualSmallConstants) {
  Graph g = graph::trace(
      [](const TensorList& in) {
        return TensorList{add(mul(in[0], full({}, 3.0)), mul(in[1], full({}, 3.0)))};
      },
      {TensorSpec{{2}}, TensorSpec{{2}}});
  Graph out = graph::eliminate_common_subexpressions(g);
  int constants = 0;
  for (const auto& v : out.values) constants += v.kind == graph::ValueKind::constant;
  EXPECT_EQ(constants, 1);
  expect_same_results(g, out, {{2}, {2}});
}

TEST(ConstantFolding, ComputesConstantSubgraphsButNotVariables) {
  Tensor c = random_tensor({3}, DType::Float32);
  Tensor v = random_tensor({3}, DType::Float32).set_requires_grad();
  Graph g = graph::trace(
      [&](const TensorList& in) {
        Tensor folded = exp(mul(c, c));  // constants only
        Tensor kept = exp(v);            // a variable: may change
        return TensorList{add(add(in[0], folded), kept)};
      },
      {TensorSpec{{3}}});
  EXPECT_EQ(op_counts(g)["exp"], 2);
  Graph out = graph::fold_constants(g);
  EXPECT_EQ(op_counts(out), (std::map<std::string, int>{{"add", 2}, {"exp", 1}}));
  expect_same_results(g, out, {{3}});
}

TEST(ConstantFolding, LeavesShapesWithUnknownDimsAndLargeResultsAlone) {
  Graph g =
      graph::trace([](const TensorList& in) { return TensorList{add(in[0], ones_like(in[0]))}; },
                   {TensorSpec{{kUnknownDim, 2}}});
  EXPECT_EQ(op_counts(g)["fill"], 1);  // the shape depends on the batch: a node, not data
  EXPECT_EQ(op_counts(graph::fold_constants(g))["fill"], 1);
  Tensor big = random_tensor({64}, DType::Float32);
  Graph h = graph::trace([&](const TensorList& in) { return TensorList{add(in[0], exp(big))}; },
                         {TensorSpec{{64}}});
  EXPECT_EQ(op_counts(graph::fold_constants(h, 16))["exp"], 1);  // 256 bytes > 16
  EXPECT_EQ(op_counts(graph::fold_constants(h))["exp"], 0);
}

TEST(AlgebraicSimplification, RemovesIdentities) {
  Graph g = graph::trace(
      [](const TensorList& in) {
        Tensor x = in[0];
        Tensor y = div(mul(add(sub(x, zeros({})), zeros({4})), ones({})), ones({4}));
        return TensorList{exp(mul(ones({}), y.to(DType::Float32)))};
      },
      {TensorSpec{{kUnknownDim, 4}}});
  Graph out = graph::simplify_algebra(g);
  EXPECT_EQ(op_counts(out), (std::map<std::string, int>{{"exp", 1}}));
  expect_same_results(g, out, {{3, 4}});
}

TEST(AlgebraicSimplification, KeepsOpsThatBroadcastOrPromote) {
  Graph g = graph::trace(
      [](const TensorList& in) {
        // Adding zeros of a larger shape broadcasts: not an identity.
        return TensorList{add(in[0], zeros({2, 3})), mul(in[0], ones({}, DType::Float64))};
      },
      {TensorSpec{{3}}});
  Graph out = graph::simplify_algebra(g);
  EXPECT_EQ(op_counts(out), (std::map<std::string, int>{{"add", 1}, {"mul", 1}}));
}

TEST(AlgebraicSimplification, CollapsesPermuteAndReshapeChains) {
  Graph g = graph::trace(
      [](const TensorList& in) {
        Tensor t = in[0].permute({1, 0, 2}).permute({1, 0, 2});  // identity
        Tensor u = in[0].permute({2, 0, 1}).permute({2, 0, 1});  // one permute
        Tensor r = in[0].reshape({6, 4}).reshape({4, 6}).reshape({24});
        return TensorList{add(t, 1.0), u.contiguous(), r};
      },
      {TensorSpec{{2, 3, 4}}});
  Graph out = graph::simplify_algebra(g);
  auto counts = op_counts(out);
  EXPECT_EQ(counts["permute"], 1);
  EXPECT_EQ(counts["reshape"], 1);
  expect_same_results(g, out, {{2, 3, 4}});
}

TEST(UnreadOutputs, PoolingWithoutItsTapsWhenNothingReadsThem) {
  Graph g =
      graph::trace([](const TensorList& in) { return TensorList{relu(max_pool2d(in[0], 2))}; },
                   {TensorSpec{{kUnknownDim, 2, 6, 8}}});
  EXPECT_EQ(op_counts(g)["max_pool2d_2x2"], 1);
  Graph out = graph::drop_unread_outputs(g);
  EXPECT_EQ(op_counts(out),
            (std::map<std::string, int>{{"max_pool2d_2x2_values", 1}, {"relu", 1}}));
  EXPECT_EQ(out.values.size(), g.values.size() - 1);  // the taps are gone
  expect_same_results(g, out, {{3, 2, 6, 8}});
  // Taps that the gradient reads stay.
  Tensor w = random_tensor({1, 2, 1, 1}, DType::Float32).set_requires_grad();
  Graph training = graph::trace(
      [&](const TensorList& in) {
        Tensor y = max_pool2d(mul(in[0], w), 2);
        return TensorList{grad({sum(mul(y, y))}, {w})[0]};
      },
      {TensorSpec{{2, 2, 6, 8}}});
  EXPECT_EQ(op_counts(graph::drop_unread_outputs(training))["max_pool2d_2x2"], 1);
}

TEST(Optimize, PipelineReachesAFixedPoint) {
  Tensor w = random_tensor({4, 4}, DType::Float32);
  Graph g = graph::trace(
      [&](const TensorList& in) {
        Tensor wt = w.t().t();                   // folds away
        Tensor a = matmul(in[0], mul(wt, 1.0));  // x * 1 after folding
        Tensor b = matmul(in[0], mul(wt, 1.0));  // same as a
        return TensorList{add(a, b)};
      },
      {TensorSpec{{kUnknownDim, 4}}});
  Graph out = graph::optimize(g);
  EXPECT_EQ(op_counts(out), (std::map<std::string, int>{{"add", 1}, {"matmul", 1}}));
  expect_same_results(g, out, {{3, 4}});
}

// A model traced in training mode with autodiff on holds the training-only fused layers
// (Sequential's conv2d_relu_max_pool2d); split_training_fusions, which the inference
// pipeline and the ONNX exporter run first, turns each back into conv2d_relu and
// max_pool2d_2x2 with the same results.
TEST(SplitTrainingFusions, FusedLayersBecomeTheirTwoOps) {
  manual_seed(6);
  nn::ModulePtr net = testing::make_small_net(true);
  Graph g = graph::trace([&](const TensorList& in) { return TensorList{net->forward(in[0])}; },
                         {TensorSpec{{kUnknownDim, 1, 16, 16}}});
  EXPECT_EQ(op_counts(g)["conv2d_relu_max_pool2d_2x2"], 2);
  Graph split = graph::split_training_fusions(g);
  std::map<std::string, int> ops = op_counts(split);
  EXPECT_EQ(ops["conv2d_relu_max_pool2d_2x2"], 0);
  EXPECT_EQ(ops["conv2d_relu"], 2);
  EXPECT_EQ(ops["max_pool2d_2x2"], 2);
  expect_same_results(g, split, {{3, 1, 16, 16}});
  Graph served = graph::optimize_for_inference(g);
  EXPECT_EQ(op_counts(served)["conv2d_relu_max_pool2d_2x2"], 0);
  expect_same_results(g, served, {{2, 1, 16, 16}});
  // Nothing to split: the same graph.
  EXPECT_EQ(graph::split_training_fusions(split).nodes.size(), split.nodes.size());
}

}  // namespace
}  // namespace tessera
