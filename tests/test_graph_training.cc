// Training steps captured as graphs: forward, loss, gradients built as graph nodes by the
// eager gradient rules, and the optimizer update as assign() nodes. They must match eager
// training.
#include "tessera/graph/function.h"
#include "tessera/graph/passes.h"
#include "tessera/nn/nn.h"
#include "tessera/ops/state.h"
#include "test_models.h"
#include "test_util.h"

namespace tessera {
namespace {

using graph::kUnknownDim;
using graph::TensorSpec;
using testing::random_tensor;

TEST(Assign, EagerCopiesAndChecksTypes) {
  Tensor v = zeros({3});
  assign(v, full({3}, 2.0));
  EXPECT_EQ(v.to_vector<float>(), (std::vector<float>{2, 2, 2}));
  EXPECT_THROW(assign(v, zeros({4})), Error);
  EXPECT_THROW(assign(v, zeros({3}, DType::Float64)), Error);
}

TEST(Assign, GraphWritesTheVariableAndLaterReadsSeeTheNewValue) {
  Tensor counter = zeros({}, DType::Float32);
  counter.set_requires_grad();  // a variable
  Function f = function([&](const TensorList& in) {
    Tensor before = mul(counter, 1.0);
    assign(counter, add(counter, in[0]));
    return TensorList{before, mul(counter, 10.0)};  // reads after the assign
  });
  Tensor one = full({}, 1.0);
  for (int i = 0; i < 3; ++i) {
    TensorList out = f({one});
    EXPECT_EQ(out[0].item<float>(), static_cast<float>(i));
    EXPECT_EQ(out[1].item<float>(), static_cast<float>(10 * (i + 1)));
  }
  EXPECT_EQ(counter.item<float>(), 3.0f);
  const graph::Graph& g = f.graph_for({one});
  EXPECT_EQ(g.effects.size(), 1u);
}

TEST(Assign, DeadCodeEliminationKeepsWritesNoOutputNeeds) {
  Tensor state = zeros({2});
  Function f = function([&](const TensorList& in) {
    assign(state, add(state, in[0]));
    return TensorList{neg(in[0])};
  });
  Tensor x = full({2}, 3.0);
  f({x});
  f({x});
  EXPECT_EQ(state.to_vector<float>(), (std::vector<float>{6, 6}));
  // The captured tensor it writes is a variable, not a copied constant.
  const graph::Graph& g = f.graph_for({x});
  int variables = 0;
  for (const auto& v : g.values) variables += v.kind == graph::ValueKind::variable;
  EXPECT_EQ(variables, 1);
}

struct Setup {
  nn::ModulePtr net;
  std::shared_ptr<nn::Optimizer> opt;
};

nn::ModulePtr make_net(bool cnn) { return testing::make_small_net(cnn); }

std::shared_ptr<nn::Optimizer> make_opt(const std::string& kind, const nn::ModulePtr& net) {
  if (kind == "adam") return std::make_shared<nn::Adam>(net->parameters(), 1e-2);
  if (kind == "adamw") return std::make_shared<nn::AdamW>(net->parameters(), 1e-2);
  return std::make_shared<nn::SGD>(net->parameters(), 0.05, /*momentum=*/0.9,
                                   /*weight_decay=*/1e-3, /*nesterov=*/true);
}

// Batch i of a fixed random data set.
std::pair<Tensor, Tensor> batch(int i, int64_t n) {
  Tensor x = random_tensor({n, 1, 16, 16}, DType::Float32, -1, 1, 100 + i);
  Generator gen(200 + i);
  Tensor y = randint(0, 10, {n}, DType::Int64, &gen);
  return {x, y};
}

Tensor loss_of(nn::Module& net, const Tensor& x, const Tensor& y) {
  return nn::cross_entropy(net.forward(x), y);
}

void expect_params_close(const nn::Module& a, const nn::Module& b, double rtol) {
  auto pa = a.parameters(), pb = b.parameters();
  ASSERT_EQ(pa.size(), pb.size());
  for (size_t i = 0; i < pa.size(); ++i) {
    std::vector<float> x = pa[i].to_vector<float>(), y = pb[i].to_vector<float>();
    for (size_t k = 0; k < x.size(); ++k) {
      ASSERT_NEAR(y[k], x[k], 1e-7 + rtol * std::fabs(x[k])) << "parameter " << i << " at " << k;
    }
  }
}

void check_training_matches_eager(bool cnn, const std::string& optimizer) {
  manual_seed(5);
  auto eager_net = make_net(cnn);
  manual_seed(5);
  auto graph_net = make_net(cnn);
  auto eager_opt = make_opt(optimizer, eager_net), graph_opt = make_opt(optimizer, graph_net);
  std::vector<Tensor> params = graph_net->parameters();
  Function step = function(
      [&](const TensorList& in) {
        Tensor loss = loss_of(*graph_net, in[0], in[1]);
        graph_opt->step_with_ops(grad({loss}, params));
        return TensorList{loss};
      },
      {.name = "train_step",
       .signature = {TensorSpec{{kUnknownDim, 1, 16, 16}},
                     TensorSpec{{kUnknownDim}, DType::Int64}}});
  for (int i = 0; i < 20; ++i) {
    auto [x, y] = batch(i, i % 2 ? 8 : 5);  // two batch sizes, one trace
    eager_opt->zero_grad();
    Tensor eager_loss = loss_of(*eager_net, x, y);
    eager_loss.backward();
    eager_opt->step();
    Tensor graph_loss = step({x, y})[0];
    EXPECT_NEAR(graph_loss.item<float>(), eager_loss.item<float>(),
                1e-6 * std::fabs(eager_loss.item<float>()) + 1e-7)
        << "step " << i;
  }
  EXPECT_EQ(step.trace_count(), 1);
  // The graph runs the eager kernels, but its plans choose some by timing (a convolution's
  // layout and algorithm, a product's threads), which may sum in another order: after 20
  // Adam steps the weights agree to float rounding, not bit for bit.
  expect_params_close(*eager_net, *graph_net, 1e-5);
  // The captured step is one graph holding the backward and the updates.
  const graph::Graph& g = step.graph_for({batch(0, 2).first, batch(0, 2).second});
  EXPECT_EQ(g.effects.size() > 0, true);
  // The CNN's first Conv2d + relu + MaxPool2d(2) is traced as the fused op (Sequential).
  bool fused = false;
  for (const graph::Node& n : g.nodes) fused |= std::string(n.op()) == "conv2d_relu_max_pool2d_2x2";
  EXPECT_EQ(fused, cnn);
}

TEST(TrainingGraph, MlpWithAdamMatchesEagerOver20Steps) {
  check_training_matches_eager(false, "adam");
}
TEST(TrainingGraph, MlpWithAdamWMatchesEagerOver20Steps) {
  check_training_matches_eager(false, "adamw");
}
TEST(TrainingGraph, CnnWithAdamMatchesEagerOver20Steps) {
  check_training_matches_eager(true, "adam");
}
TEST(TrainingGraph, CnnWithNesterovSgdMatchesEagerOver20Steps) {
  check_training_matches_eager(true, "sgd");
}

TEST(TrainingGraph, DropoutInACapturedStepDrawsLikeEager) {
  // Each step reseeds before the eager and before the graph step, so both draw the same
  // masks: the weights must then follow the same path.
  auto make = [] {
    manual_seed(5);
    auto net = std::make_shared<nn::Sequential>();
    net->add(std::make_shared<nn::Flatten>())
        .add(std::make_shared<nn::Linear>(256, 32))
        .add(std::make_shared<nn::ReLU>())
        .add(std::make_shared<nn::Dropout>(0.3))
        .add(std::make_shared<nn::Linear>(32, 10));
    return net;
  };
  auto eager_net = make(), graph_net = make();
  nn::Adam eager_opt(eager_net->parameters(), 1e-2), graph_opt(graph_net->parameters(), 1e-2);
  std::vector<Tensor> params = graph_net->parameters();
  Function step(
      [&](const TensorList& in) {
        Tensor loss = loss_of(*graph_net, in[0], in[1]);
        graph_opt.step_with_ops(grad({loss}, params));
        return TensorList{loss};
      },
      {.signature = {TensorSpec{{kUnknownDim, 1, 16, 16}},
                     TensorSpec{{kUnknownDim}, DType::Int64}}});
  std::vector<float> losses;
  for (int i = 0; i < 8; ++i) {
    auto [x, y] = batch(i, 6);
    manual_seed(1000 + i);
    eager_opt.zero_grad();
    Tensor eager_loss = loss_of(*eager_net, x, y);
    eager_loss.backward();
    eager_opt.step();
    manual_seed(1000 + i);
    Tensor graph_loss = step({x, y})[0];
    EXPECT_NEAR(graph_loss.item<float>(), eager_loss.item<float>(),
                1e-5 * std::fabs(eager_loss.item<float>()))
        << "step " << i;
    losses.push_back(graph_loss.item<float>());
  }
  expect_params_close(*eager_net, *graph_net, 1e-5);
  // Without reseeding, the graph's masks change from call to call.
  auto [x, y] = batch(0, 6);
  NoGradGuard no_grad;
  graph_net->train();
  Function forward([&](const TensorList& in) { return TensorList{graph_net->forward(in[0])}; });
  EXPECT_NE(forward({x})[0].to_vector<float>(), forward({x})[0].to_vector<float>());
}

TEST(TrainingGraph, EagerAndGraphStepsShareTheOptimizerState) {
  manual_seed(9);
  auto a = make_net(false);
  manual_seed(9);
  auto b = make_net(false);
  nn::Adam opt_a(a->parameters(), 1e-2), opt_b(b->parameters(), 1e-2);
  std::vector<Tensor> params = b->parameters();
  Function step = function([&](const TensorList& in) {
    Tensor loss = loss_of(*b, in[0], in[1]);
    opt_b.step_with_ops(grad({loss}, params));
    return TensorList{loss};
  });
  for (int i = 0; i < 6; ++i) {
    auto [x, y] = batch(i, 4);
    opt_a.zero_grad();
    loss_of(*a, x, y).backward();
    opt_a.step();
    if (i % 2) {  // alternate: graph, eager, graph ...
      opt_b.zero_grad();
      loss_of(*b, x, y).backward();
      opt_b.step();
    } else {
      step({x, y});
    }
  }
  expect_params_close(*a, *b, 1e-6);
}

TEST(TrainingGraph, UnsupportedOptimizerSaysSo) {
  auto net = make_net(false);
  nn::RMSprop opt(nn::single_group(net->parameters()), {{"lr", 1e-3}});
  std::vector<Tensor> params = net->parameters();
  auto [x, y] = batch(0, 2);
  try {
    graph::trace(
        [&](const TensorList& in) {
          Tensor loss = loss_of(*net, in[0], in[1]);
          opt.step_with_ops(grad({loss}, params));
          return TensorList{loss};
        },
        {TensorSpec{{2, 1, 16, 16}}, TensorSpec{{2}, DType::Int64}});
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("RMSprop"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace tessera
