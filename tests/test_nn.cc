// Modules, initializers, losses (gradients), metrics, optimizers' extras, the Model
// training API with callbacks, and checkpoints. Numbers against PyTorch are in
// test_nn_golden.cc.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "../src/kernels/cpu/simd.h"
#include "tessera/data/dataset.h"
#include "tessera/nn/nn.h"
#include "tessera/nn/progress.h"
#include "tessera/tessera.h"
#include "test_util.h"

namespace tessera::nn {
namespace {

using testing::expect_close;
using testing::expect_error;
using testing::gradcheck;
namespace fs = std::filesystem;

fs::path temp_dir() {
  fs::path dir =
      fs::temp_directory_path() / ("tessera_nn_" + std::to_string(::getpid()) + "_" +
                                   ::testing::UnitTest::GetInstance()->current_test_info()->name());
  fs::create_directories(dir);
  return dir;
}

std::shared_ptr<Sequential> small_net() {
  auto net = std::make_shared<Sequential>();
  net->add(std::make_shared<Linear>(4, 8), "fc1")
      .add(std::make_shared<BatchNorm1d>(8), "bn")
      .add(std::make_shared<ReLU>(), "relu")
      .add(std::make_shared<Linear>(8, 3), "fc2");
  return net;
}

// ------------------------------------------------------------------ modules
TEST(Module, NamesParametersAndBuffers) {
  auto net = small_net();
  std::vector<std::string> names;
  for (auto& [n, t] : net->named_parameters()) names.push_back(n);
  EXPECT_EQ(names, (std::vector<std::string>{"fc1.weight", "fc1.bias", "bn.weight", "bn.bias",
                                             "fc2.weight", "fc2.bias"}));
  names.clear();
  for (auto& [n, t] : net->named_buffers()) names.push_back(n);
  EXPECT_EQ(names, (std::vector<std::string>{"bn.running_mean", "bn.running_var",
                                             "bn.num_batches_tracked"}));
  EXPECT_EQ(net->num_parameters(), 4 * 8 + 8 + 8 + 8 + 8 * 3 + 3);
  EXPECT_EQ(net->state_dict().size(), 9u);
  EXPECT_EQ(net->named_modules().size(), 5u);
  EXPECT_EQ((*net)[3]->type_name(), "Linear");
}

TEST(Module, TrainEvalReachesEveryLayer) {
  auto net = small_net();
  net->eval();
  for (auto& [n, m] : net->named_modules()) EXPECT_FALSE(m->is_training()) << n;
  net->train();
  for (auto& [n, m] : net->named_modules()) EXPECT_TRUE(m->is_training()) << n;
}

TEST(Module, StateDictRoundTripAndStrictErrors) {
  auto a = small_net(), b = small_net();
  b->load_state_dict(a->state_dict());
  for (size_t i = 0; i < a->state_dict().size(); ++i)
    expect_close(b->state_dict()[i].second, a->state_dict()[i].second, 0, 0);

  auto before = b->state_dict()[0].second.clone();
  NamedTensors missing = a->state_dict();
  missing.pop_back();
  expect_error([&] { b->load_state_dict(missing); }, "missing entry 'bn.num_batches_tracked'");
  NamedTensors extra = a->state_dict();
  extra.emplace_back("fc3.weight", zeros({1}));
  expect_error([&] { b->load_state_dict(extra); }, "unexpected entry 'fc3.weight'");
  NamedTensors wrong = a->state_dict();
  wrong[0].second = zeros({8, 5});
  wrong[1].second = zeros({8});  // valid, must not be applied when another entry is bad
  expect_error([&] { b->load_state_dict(wrong); },
               "entry 'fc1.weight' has shape [8,5], expected [8,4]");
  expect_close(b->state_dict()[0].second, before, 0, 0);
  expect_close(b->state_dict()[1].second, a->state_dict()[1].second, 0, 0);
  // Non-strict loading skips what is missing.
  b->load_state_dict(missing, false);
}

TEST(Module, FreezeStopsGradientsAndUpdates) {
  auto net = small_net();
  auto fc1 = std::dynamic_pointer_cast<Linear>((*net)[0]);
  fc1->freeze();
  EXPECT_EQ(net->num_parameters(true), net->num_parameters() - (4 * 8 + 8));
  Tensor before = fc1->weight.clone();
  SGD opt(net->parameters(), 0.1);
  Tensor loss = sum((*net)(randn({5, 4})));
  loss.backward();
  EXPECT_FALSE(fc1->weight.grad().defined());
  opt.step();
  expect_close(fc1->weight, before, 0, 0);
  fc1->unfreeze();
  EXPECT_TRUE(fc1->weight.requires_grad());
}

TEST(Module, SummaryListsLayersShapesAndTotals) {
  auto net = small_net();
  std::string s = net->summary({2, 4});
  EXPECT_NE(s.find("fc1 (Linear)"), std::string::npos) << s;
  EXPECT_NE(s.find("[-1, 8]"), std::string::npos) << s;
  EXPECT_NE(s.find("fc2 (Linear)"), std::string::npos) << s;
  EXPECT_NE(s.find("[-1, 3]"), std::string::npos) << s;
  EXPECT_NE(s.find("Total params: 83"), std::string::npos) << s;
  EXPECT_TRUE(net->is_training());  // summary restores the mode
  expect_error([&] { net->summary({2, 5}); }, "Linear");
}

TEST(Module, ContainersAndCallablesCompose) {
  auto body = std::make_shared<Sequential>();
  body->add(std::make_shared<Linear>(3, 3)).add([](const Tensor& x) { return tanh(x); });
  Residual block(body);
  Tensor x = randn({2, 3});
  expect_close(block(x), (*body)(x) + x, 1e-6, 1e-7);

  ModuleDict heads;
  heads.insert("a", std::make_shared<Linear>(3, 1)).insert("b", std::make_shared<Linear>(3, 2));
  EXPECT_TRUE(heads.contains("a"));
  EXPECT_EQ((*heads["b"])(x).shape(), Shape({2, 2}));
  expect_error([&] { heads["c"]; }, "no module named 'c'");
  ModuleList list{std::make_shared<ReLU>(), std::make_shared<Linear>(3, 4)};
  EXPECT_EQ(list.size(), 2u);
  EXPECT_EQ(list.named_parameters()[0].first, "1.weight");
  expect_error([&] { list.register_parameter("a.b", zeros({1})); }, "invalid name 'a.b'");
}

TEST(Module, LayerShapesAndErrors) {
  Tensor img = randn({2, 3, 8, 8});
  EXPECT_EQ(SeparableConv2d(3, 5, 3, {.padding = 1})(img).shape(), Shape({2, 5, 8, 8}));
  EXPECT_EQ(DepthwiseConv2d(3, 3, 2)(img).shape(), Shape({2, 6, 6, 6}));
  EXPECT_EQ(GlobalAvgPool()(img).shape(), Shape({2, 3}));
  expect_close(GlobalMaxPool()(img), amax(img, {2, 3}), 0, 0);
  EXPECT_EQ(Unflatten(1, {3, 64})(reshape(img, {2, 192})).shape(), Shape({2, 3, 64}));
  EXPECT_EQ(Reshape({6, 32})(img).shape(), Shape({2, 6, 32}));
  EXPECT_EQ(Upsample(std::vector<int64_t>{4, 4})(img).shape(), Shape({2, 3, 4, 4}));
  expect_error([] { Conv2d(3, 4, 3, {.groups = 2}); }, "groups = 2 must divide");
  expect_error([&] { Linear(5, 2)(img); }, "does not end in in_features = 5");
  expect_error([&] { BatchNorm2d(3)(randn({2, 3})); }, "expected a 4-d input");
}

TEST(Module, ConvActivationReluIsFused) {
  Tensor img = randn({2, 3, 8, 8});
  Conv2d fused(3, 4, 3, {.padding = 1, .activation = "relu"});
  Conv2d plain(3, 4, 3, {.padding = 1});
  plain.load_state_dict(fused.state_dict());
  expect_close(fused(img), relu(plain(img)), 1e-6, 1e-6, "Conv2d activation=relu");
  SeparableConv2d sep(3, 5, 3, {.padding = 1, .activation = "relu"});
  EXPECT_GE(amin(sep(img)).item<float>(), 0.0f);  // relu after the pointwise convolution
  EXPECT_LT(amin((*sep.depthwise)(img)).item<float>(), 0.0f);  // but not after depthwise
  expect_error([] { Conv2d(3, 4, 3, {.activation = "tanh"}); },
               "Conv2d: activation must be \"\", \"linear\" or \"relu\", got \"tanh\"");
}

// While training, Sequential runs each Conv2d (relu) followed by MaxPool2d(2) as one op
// (conv2d_relu_max_pool2d): outputs and gradients are those of the layers one by one, bit
// for bit but for the bias gradient of a convolution with several input channels, which
// sums the pooled side in another order.
TEST(Module, SequentialFusesAConvAndItsPooling) {
  manual_seed(3);
  const ConvOptions same_relu{.padding = "same", .activation = "relu"};
  auto conv1 = std::make_shared<Conv2d>(1, 16, 3, same_relu);
  auto conv2 = std::make_shared<Conv2d>(16, 20, 3, same_relu);
  auto pool1 = std::make_shared<MaxPool2d>(2), pool2 = std::make_shared<MaxPool2d>(2);
  auto dense = std::make_shared<Linear>(20 * 5 * 3, 3);
  Sequential net;
  net.add(conv1).add(pool1).add(conv2).add(pool2).add(std::make_shared<Flatten>()).add(dense);
  EXPECT_TRUE(conv1->fuses_with_max_pool_2x2() && conv2->fuses_with_max_pool_2x2());
  EXPECT_TRUE(pool1->is_max_pool_2x2());
  Tensor x = randn({3, 1, 22, 13});
  auto run = [&](bool layer_by_layer) {
    Tensor y =
        layer_by_layer ? (*dense)(flatten((*pool2)((*conv2)((*pool1)((*conv1)(x)))), 1)) : net(x);
    TensorList out{y};
    for (const Tensor& g : grad({sum(mul(y, y))}, net.parameters())) out.push_back(g);
    return out;
  };
  TensorList want = run(true), got = run(false);
  std::vector<std::string> names{"output"};
  for (const auto& [name, p] : net.named_parameters()) names.push_back(name);
  for (size_t i = 0; i < got.size(); ++i) {
    const bool approximate = names[i] == "2.bias";  // conv2's bias
    expect_close(got[i], want[i], approximate ? 1e-5 : 0, approximate ? 1e-6 : 0,
                 "fused layers, " + names[i]);
  }
  net.eval();
  expect_close(net(x), want[0], 0, 0, "evaluation (the two ops)");
  EXPECT_FALSE(
      Conv2d(1, 4, 3, {.stride = 2, .padding = 1, .activation = "relu"}).fuses_with_max_pool_2x2());
  EXPECT_FALSE(Conv2d(1, 4, 3, {.padding = 1}).fuses_with_max_pool_2x2());
  EXPECT_FALSE(MaxPool2d(2, {.stride = 1}).is_max_pool_2x2());
  EXPECT_FALSE(MaxPool2d(3).is_max_pool_2x2());
}

TEST(Module, DropoutOnlyInTraining) {
  Dropout drop(0.5);
  Tensor x = ones({1000});
  Tensor y = drop(x);
  double zeros_seen = sum(eq(y, zeros_like(y))).item<double>();
  EXPECT_GT(zeros_seen, 400);
  EXPECT_LT(zeros_seen, 600);
  // Survivors are scaled by 1 / (1 - p).
  expect_close(where(eq(y, zeros_like(y)), full_like(y, 2.0), y), full_like(y, 2.0), 0, 0);
  drop.eval();
  expect_close(drop(x), x, 0, 0);
}

// ------------------------------------------------------------------ initializers
TEST(Init, BoundsAndMoments) {
  Generator gen(3);
  Tensor w = empty({256, 128});
  init::xavier_uniform_(w, 1.0, &gen);
  double bound = std::sqrt(6.0 / (256 + 128));
  EXPECT_LE(amax(abs(w)).item<double>(), bound);
  EXPECT_NEAR(stddev(w).item<double>(), bound / std::sqrt(3.0), 0.01 * bound);
  init::kaiming_normal_(w, 0.0, "fan_in", "relu", &gen);
  EXPECT_NEAR(stddev(w).item<double>(), std::sqrt(2.0 / 128), 0.02 * std::sqrt(2.0 / 128));
  init::kaiming_uniform_(w, std::sqrt(5.0), "fan_in", "leaky_relu", &gen);
  EXPECT_LE(amax(abs(w)).item<double>(), 1.0 / std::sqrt(128.0));
  init::trunc_normal_(w, 0.0, 1.0, -0.5, 0.5, &gen);
  EXPECT_LE(amax(abs(w)).item<double>(), 0.5);
  init::lecun_normal_(w, &gen);
  EXPECT_NEAR(stddev(w).item<double>(), std::sqrt(1.0 / 128), 0.03 * std::sqrt(1.0 / 128));
  init::constant_(w, 0.25);
  EXPECT_EQ(amin(w).item<double>(), 0.25);
  auto [fi, fo] = init::fans(empty({8, 4, 3, 3}));
  EXPECT_EQ(fi, 36);
  EXPECT_EQ(fo, 72);
  EXPECT_NEAR(init::calculate_gain("leaky_relu", std::sqrt(5.0)), std::sqrt(1.0 / 3.0), 1e-12);
}

TEST(Init, OrthogonalIsOrthogonal) {
  for (Shape s : {Shape{6, 4}, Shape{4, 6}, Shape{3, 2, 2}}) {
    Tensor w = empty(s, DType::Float64);
    init::orthogonal_(w, 2.0);
    Tensor m = reshape(w, {s[0], -1});
    Tensor gram = m.size(0) >= m.size(1) ? matmul(m.t(), m) : matmul(m, m.t());
    expect_close(gram, eye(gram.size(0), -1, DType::Float64) * 4.0, 1e-10, 1e-10,
                 "gram of " + to_string(s));
  }
}

// ------------------------------------------------------------------ losses
TEST(Losses, GradientsMatchFiniteDifferences) {
  Tensor labels = tensor({0, 2, 1}, DType::Int64);
  Tensor probs = softmax(testing::random_tensor({3, 3}, DType::Float64, -1, 1, 4), 1);
  Tensor y01 = tensor({{1, 0, 1}, {0, 0, 1}, {1, 1, 0}}, DType::Float64);
  Tensor pm1 = tensor({1, -1, 1}, DType::Float64);
  auto x = [](uint64_t seed) {
    return testing::random_tensor({3, 3}, DType::Float64, -2, 2, seed);
  };
  using V = const std::vector<Tensor>&;
  CrossEntropyOptions smooth{.weight = tensor({0.5, 1.0, 2.0}, DType::Float64),
                             .label_smoothing = 0.2};
  gradcheck([&](V v) { return cross_entropy(v[0], labels, smooth); }, {x(1)});
  gradcheck([&](V v) { return cross_entropy(v[0], probs, {.label_smoothing = 0.1}); }, {x(2)});
  gradcheck([&](V v) { return binary_cross_entropy(sigmoid(v[0]), y01); }, {x(3)});
  gradcheck(
      [&](V v) {
        return binary_cross_entropy_with_logits(v[0], y01, Tensor(),
                                                tensor({1.0, 2.0, 3.0}, DType::Float64));
      },
      {x(4)});
  gradcheck([&](V v) { return huber_loss(v[0], v[1], 0.5); }, {x(5), x(6)});
  gradcheck([&](V v) { return smooth_l1_loss(v[0], v[1], 0.7, Reduction::Sum); }, {x(7), x(8)});
  gradcheck([&](V v) { return kl_div(log_softmax(v[0], 1), probs, Reduction::BatchMean); }, {x(9)});
  gradcheck([&](V v) { return cosine_embedding_loss(v[0], v[1], pm1, 0.1); }, {x(10), x(11)});
  gradcheck([&](V v) { return triplet_margin_loss(v[0], v[1], v[2], 1.0); }, {x(12), x(13), x(14)});
}

TEST(Losses, ErrorsNameTheProblem) {
  Tensor logits = randn({4, 3});
  expect_error(
      [&] {
        cross_entropy(logits, tensor({0, 1, 2}, DType::Int64));
      },
      "cross_entropy: target shape [3] does not match input shape [4,3]");
  expect_error(
      [&] {
        cross_entropy(logits, tensor({0, 1, 2, 3}, DType::Int64));
      },
      "target values must be in [0, 3)");
  expect_error(
      [&] {
        mse_loss(logits, randn({3, 4}));
      },
      "mse_loss: input shape [4,3] and target shape [3,4] differ");
  // Every target ignored: the mean is 0 / 0, NaN as in PyTorch.
  Tensor all_ignored = full({4}, -100, DType::Int64);
  EXPECT_TRUE(std::isnan(cross_entropy(logits, all_ignored).item<double>()));
}

// ------------------------------------------------------------------ metrics
// Data-parallel training sums metric states over ranks: the sum of two shards' states,
// loaded into a metric, gives the result of one metric that saw both shards.
TEST(Metrics, StatesOfShardsAddUpToTheWhole) {
  Tensor pred = tensor({{0.9, 0.1, 0.0}, {0.2, 0.3, 0.5}, {0.1, 0.8, 0.1}, {0.3, 0.3, 0.4}});
  Tensor target = tensor({0, 1, 1, 2}, DType::Int64);
  std::vector<std::function<MetricPtr()>> makers = {
      [] { return std::make_shared<Accuracy>(); },
      [] { return std::make_shared<TopKAccuracy>(2); },
      [] { return f1_score(3); },
      [] { return std::make_shared<ConfusionMatrix>(3); },
      [] { return std::make_shared<Mean>(); },
      [] { return std::make_shared<MeanSquaredError>(); }};
  for (auto& make : makers) {
    MetricPtr whole = make(), first = make(), second = make(), merged = make();
    bool regression = whole->name() == "mean" || whole->name() == "mse";
    Tensor p = regression ? pred.narrow(1, 0, 1).reshape({4}) : pred;
    Tensor t = regression ? tensor({0.5, 0.1, 0.2, 0.9}) : target;
    whole->update(p, t);
    first->update(p.narrow(0, 0, 1), t.narrow(0, 0, 1));
    second->update(p.narrow(0, 1, 3), t.narrow(0, 1, 3));
    std::vector<double> a = first->state(), b = second->state();
    ASSERT_EQ(a.size(), b.size()) << whole->name();
    for (size_t i = 0; i < a.size(); ++i) a[i] += b[i];
    merged->load_state(a);
    EXPECT_NEAR(merged->result(), whole->result(), 1e-12) << whole->name();
    EXPECT_THROW(merged->load_state({1.0}), Error) << whole->name();
  }
  RocAuc auc;  // keeps every score: no state that adds
  EXPECT_THROW(auc.state(), Error);
  Accuracy acc;
  EXPECT_THROW(acc.load_state({0.5, 2}), Error);  // counts must be whole numbers
}

TEST(Metrics, KnownValues) {
  Tensor pred = tensor({{0.9, 0.1, 0.0}, {0.2, 0.3, 0.5}, {0.1, 0.8, 0.1}, {0.3, 0.3, 0.4}});
  Tensor target = tensor({0, 1, 1, 2}, DType::Int64);
  Accuracy acc;
  acc.update(pred, target);
  EXPECT_DOUBLE_EQ(acc.result(), 0.75);
  acc.reset();
  EXPECT_DOUBLE_EQ(acc.result(), 0.0);
  TopKAccuracy top2(2);
  top2.update(pred, target);
  EXPECT_DOUBLE_EQ(top2.result(), 1.0);
  ConfusionMatrix cm(3);
  cm.update(pred, target);
  EXPECT_EQ(cm.count(1, 2), 1);
  EXPECT_EQ(cm.count(1, 1), 1);
  EXPECT_EQ(sum(cm.matrix()).item<int64_t>(), 4);
  // Per class (tp, fp, fn): 0 (1,0,0), 1 (1,0,1), 2 (1,1,0).
  auto p = precision(3), r = recall(3), f = f1_score(3), pm = precision(3, "micro");
  for (auto m : {p, r, f, pm}) m->update(pred, target);
  EXPECT_NEAR(p->result(), (1 + 1 + 0.5) / 3, 1e-12);
  EXPECT_NEAR(r->result(), (1 + 0.5 + 1) / 3, 1e-12);
  EXPECT_NEAR(f->result(), (1 + 2.0 / 3 + 2.0 / 3) / 3, 1e-12);
  EXPECT_NEAR(pm->result(), 0.75, 1e-12);
  BinaryAccuracy bin;
  bin.update(tensor({0.2, 0.7, 0.6}), tensor({0, 1, 0}));
  EXPECT_NEAR(bin.result(), 2.0 / 3, 1e-12);
  RocAuc auc;
  auc.update(tensor({0.1, 0.4, 0.35, 0.8}), tensor({0, 0, 1, 1}));
  EXPECT_NEAR(auc.result(), 0.75, 1e-12);  // sklearn's roc_auc_score on the same data
  // A positive tied with a negative counts half: pairs won 1 + 2 + 1.5 of 3 * 2.
  auc.update(tensor({0.4}), tensor({1}));
  EXPECT_NEAR(auc.result(), 4.5 / 6.0, 1e-12);
  Mean mean;
  mean.update(tensor({1, 2, 3}));
  mean.update(tensor({6}));
  EXPECT_DOUBLE_EQ(mean.result(), 3.0);
  MeanSquaredError mse;
  mse.update(tensor({1, 2}), tensor({0, 0}));
  EXPECT_DOUBLE_EQ(mse.result(), 2.5);
  expect_error([&] { acc.update(pred, tensor({0, 1}, DType::Int64)); }, "accuracy: expected");
}

// ------------------------------------------------------------------ optimizers
// Float32 Adam runs each ISA's own vectorized loop: all of them must give the bits of plain
// scalar float arithmetic in PyTorch's order (no fused multiply-adds), on a length with a
// masked tail, with and without amsgrad and decoupled weight decay.
TEST(Optimizers, AdamKernelOfEveryIsaGivesScalarBits) {
  const int64_t n = 1003;
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> u(-1, 1);
  std::vector<float> p0(n), m0(n), v0(n), x0(n), g(n);
  for (int64_t i = 0; i < n; ++i) {
    p0[i] = u(rng);
    m0[i] = 0.1f * u(rng);
    v0[i] = 0.01f * std::abs(u(rng));
    x0[i] = 0.01f * std::abs(u(rng));
    g[i] = u(rng);
  }
  for (const char* isa : {"generic", "avx2", "avx512"}) {
    const cpu::SimdTable* table = cpu::simd_for(isa);
    if (!table) {
      std::printf("AdamKernelOfEveryIsaGivesScalarBits: %s not available on this CPU\n", isa);
      continue;
    }
    for (bool amsgrad : {false, true}) {
      for (bool decoupled : {false, true}) {
        const cpu::AdamConstants<float> k{0.1f,  0.999f, 0.001f,   0.01f,     0.99999f,
                                          0.05f, 1e-8f,  -0.0011f, decoupled, amsgrad};
        std::vector<float> p = p0, m = m0, v = v0, x = x0;
        std::vector<float> rp = p0, rm = m0, rv = v0, rx = x0;
        // Two slices, as two threads would run them.
        table->adam_f32(p.data(), m.data(), v.data(), x.data(), g.data(), 0, 517, k);
        table->adam_f32(p.data(), m.data(), v.data(), x.data(), g.data(), 517, n, k);
        for (int64_t i = 0; i < n; ++i) {
          float d = g[i];
          if (decoupled) {
            rp[i] = rp[i] * k.decay;
          } else {
            float decay_term = k.wd * rp[i];
            d = d + decay_term;
          }
          float step_m = (d - rm[i]) * k.one_minus_b1;
          rm[i] = rm[i] + step_m;
          float old_v = rv[i] * k.b2, new_v = d * d * k.one_minus_b2;
          rv[i] = old_v + new_v;
          float second = rv[i];
          if (amsgrad) second = rx[i] = std::max(rx[i], rv[i]);
          float denom = std::sqrt(second) / k.bc2_sqrt;
          denom = denom + k.eps;
          float update = k.neg_step * (rm[i] / denom);
          rp[i] = rp[i] + update;
        }
        SCOPED_TRACE(std::string(isa) + (amsgrad ? " amsgrad" : "") +
                     (decoupled ? " decoupled" : ""));
        EXPECT_EQ(0, std::memcmp(p.data(), rp.data(), n * sizeof(float)));
        EXPECT_EQ(0, std::memcmp(m.data(), rm.data(), n * sizeof(float)));
        EXPECT_EQ(0, std::memcmp(v.data(), rv.data(), n * sizeof(float)));
        if (amsgrad) {
          EXPECT_EQ(0, std::memcmp(x.data(), rx.data(), n * sizeof(float)));
        }
      }
    }
  }
}

TEST(Optimizers, LambMatchesReference) {
  Tensor p = testing::random_tensor({3, 4}, DType::Float64, -1, 1, 1).set_requires_grad();
  std::vector<double> ref = p.to_vector<double>(), m(12), v(12);
  LAMB opt(single_group({p}), {{"lr", 0.05}, {"weight_decay", 0.1}});
  for (int step = 1; step <= 3; ++step) {
    Tensor grad = testing::random_tensor({3, 4}, DType::Float64, -1, 1, 10 + step);
    p.set_grad(grad);
    opt.step();
    std::vector<double> g = grad.to_vector<double>(), dir(12);
    double pn = 0, dn = 0;
    for (int i = 0; i < 12; ++i) {
      m[i] = 0.9 * m[i] + 0.1 * g[i];
      v[i] = 0.999 * v[i] + 0.001 * g[i] * g[i];
      double mh = m[i] / (1 - std::pow(0.9, step)), vh = v[i] / (1 - std::pow(0.999, step));
      dir[i] = mh / (std::sqrt(vh) + 1e-6) + 0.1 * ref[i];
      pn += ref[i] * ref[i];
      dn += dir[i] * dir[i];
    }
    for (int i = 0; i < 12; ++i) ref[i] -= 0.05 * std::sqrt(pn) / std::sqrt(dn) * dir[i];
    expect_close(p, from_vector(ref, {3, 4}), 1e-12, 1e-12);
  }
}

TEST(Optimizers, GroupsClippingAndErrors) {
  Tensor a = ones({2}).set_requires_grad(), b = ones({3}).set_requires_grad();
  SGD opt({ParamGroup{{a}, {{"lr", 0.1}}}, ParamGroup{{b}, {{"lr", 1.0}}}});
  a.set_grad(full({2}, 3.0));
  b.set_grad(full({3}, 4.0));
  double norm = clip_grad_norm({a, b}, 1.0);
  EXPECT_NEAR(norm, std::sqrt(2 * 9.0 + 3 * 16.0), 1e-9);
  EXPECT_NEAR(
      std::sqrt(sum(square(a.grad())).item<double>() + sum(square(b.grad())).item<double>()), 1.0,
      1e-5);
  opt.step();
  EXPECT_NEAR(a.to_vector<float>()[0], 1 - 0.1 * 3.0 / norm, 1e-6);
  EXPECT_NEAR(b.to_vector<float>()[0], 1 - 1.0 * 4.0 / norm, 1e-6);
  b.set_grad(tensor({-5, 0.5, 7}));
  clip_grad_value({b}, 1.0);
  expect_close(b.grad(), tensor({-1, 0.5, 1}), 0, 0);
  EXPECT_NEAR(clip_grad_norm({a}, 10.0, INFINITY), 3.0 / norm, 1e-6);
  expect_error([&] { Adam(single_group({a}), {{"betas", 0.9}}); }, "Adam: unknown option 'betas'");
  expect_error([&] { SGD(std::vector<Tensor>{zeros({2}, DType::Int64)}, 0.1); },
               "must be float32 or float64");
}

TEST(Optimizers, StateDictRestoresExactly) {
  auto run = [](Adam& opt, Tensor& p, int from, int to) {
    for (int k = from; k < to; ++k) {
      p.set_grad(testing::random_tensor({5}, DType::Float32, -1, 1, 100 + k));
      opt.step();
    }
  };
  Tensor p = ones({5}).set_requires_grad();
  Adam opt({p}, 0.01, {{"amsgrad", 1}});
  run(opt, p, 0, 3);
  NamedTensors saved = opt.state_dict();
  Tensor p_saved = p.clone();
  run(opt, p, 3, 6);

  Tensor q = p_saved.clone().set_requires_grad();
  Adam resumed({q}, 0.5);  // a different lr: the saved group options win
  resumed.load_state_dict(saved);
  EXPECT_DOUBLE_EQ(resumed.lr(), 0.01);
  run(resumed, q, 3, 6);
  expect_close(q, p, 0, 0);
  NamedTensors bad = saved;
  bad.emplace_back("state.7.exp_avg", zeros({5}));
  expect_error([&] { resumed.load_state_dict(bad); }, "names parameter 7 of 1");
}

// ------------------------------------------------------------------ Model and callbacks
// Two well-separated blobs in 4-d: any working training loop fits them.
TensorList blob_tensors(int64_t n, uint64_t seed) {
  Generator gen(seed);
  Tensor labels = randint(0, 3, {n}, DType::Int64, &gen);
  Tensor centers = tensor({{2, 0, 0, 0}, {0, 2, 0, 0}, {0, 0, 2, 2}});
  Tensor x = index_select(centers, 0, labels) + normal({n, 4}, 0, 0.3, DType::Float32, &gen);
  return {x, labels};
}
data::Dataset blobs(int64_t n, uint64_t seed) {
  return data::Dataset::from_tensors(blob_tensors(n, seed));
}

LossFn ce() {
  return [](const Tensor& p, const Tensor& t) { return cross_entropy(p, t); };
}

TEST(ModelApi, FitEvaluatePredict) {
  manual_seed(1);
  Model model(small_net());
  model.compile(std::make_shared<Adam>(model.module().parameters(), 0.05), ce(),
                {std::make_shared<Accuracy>()});
  auto train = blobs(256, 1).shuffle(256, 7).batch(32);
  auto val = blobs(128, 2).batch(64);
  History h = model.fit(train, {.epochs = 4, .validation = &val, .verbose = 0});
  ASSERT_EQ(h["loss"].size(), 4u);
  EXPECT_LT(h["loss"].back(), h["loss"].front());
  EXPECT_GT(h["val_accuracy"].back(), 0.95);
  EXPECT_GT(h["samples_per_second"].back(), 0);
  Logs logs = model.evaluate(val);
  EXPECT_NEAR(logs["accuracy"], h["val_accuracy"].back(), 1e-12);
  Tensor out = model.predict(val);
  EXPECT_EQ(out.shape(), Shape({128, 3}));
  expect_close(model.predict(blob_tensors(128, 2)[0], 50), out, 1e-5, 1e-6);
  expect_error([&] { Model(small_net()).fit(train); }, "call compile() first");
}

TEST(ModelApi, CustomLoopMatchesFit) {
  auto run = [](bool use_fit) {
    manual_seed(3);
    auto net = small_net();
    auto opt = std::make_shared<SGD>(net->parameters(), 0.1, 0.9);
    auto data = blobs(64, 3).batch(16);
    if (use_fit) {
      Model m(net);
      m.compile(opt, ce());
      m.fit(data, {.epochs = 2, .verbose = 0});
    } else {
      for (int epoch = 0; epoch < 2; ++epoch) {
        auto it = data.iterator();
        while (auto batch = it->next()) {
          opt->zero_grad();
          Tensor loss = cross_entropy((*net)((*batch)[0]), (*batch)[1]);
          loss.backward();
          opt->step();
        }
      }
    }
    return net->state_dict();
  };
  auto a = run(true), b = run(false);
  for (size_t i = 0; i < a.size(); ++i) expect_close(a[i].second, b[i].second, 0, 0, a[i].first);
}

// Ops in the prefetch thread (a map before prefetch) run beside training's ops: the
// result must be the same bits as with the whole pipeline on the training thread.
TEST(ModelApi, PrefetchedMapTrainsIdentically) {
  auto run = [](bool prefetch) {
    manual_seed(8);
    auto net = std::make_shared<Sequential>();
    net->add(std::make_shared<Conv2d>(1, 8, 3, ConvOptions{.padding = 1}))
        .add(std::make_shared<ReLU>())
        .add(std::make_shared<MaxPool2d>(2))
        .add(std::make_shared<Flatten>())
        .add(std::make_shared<Linear>(8 * 8 * 8, 3));
    Model m(net);
    m.compile(std::make_shared<Adam>(net->parameters(), 0.01), ce());
    Generator gen(9);
    Tensor x = randn({256, 1, 16, 16}, DType::Float32, &gen);
    Tensor y = randint(0, 3, {256}, DType::Int64, &gen);
    auto data =
        data::Dataset::from_tensors({x, y}).shuffle(256, 3).batch(32).map([](data::Example e) {
          e[0] = (e[0] - 0.5) * 2.0;
          return e;
        });
    if (prefetch) data = data.prefetch(2);
    m.fit(data, {.epochs = 2, .verbose = 0});
    return net->state_dict();
  };
  auto a = run(false), b = run(true);
  for (size_t i = 0; i < a.size(); ++i) expect_close(b[i].second, a[i].second, 0, 0, a[i].first);
}

TEST(ModelApi, Callbacks) {
  fs::path dir = temp_dir();
  manual_seed(2);
  Model model(small_net());
  model.compile(std::make_shared<Adam>(model.module().parameters(), 0.05), ce(),
                {std::make_shared<Accuracy>()});
  auto train = blobs(128, 4).batch(32);
  auto val = blobs(64, 5).batch(64);
  int batches = 0, epochs_begun = 0;
  auto lambda = std::make_shared<LambdaCallback>();
  lambda->batch_end = [&](Model&, int64_t, Logs& logs) {
    ++batches;
    EXPECT_TRUE(logs.count("batch_loss"));
  };
  lambda->epoch_begin = [&](Model&, int64_t) { ++epochs_begun; };
  auto schedule = std::make_shared<LearningRateScheduler>(
      [](int64_t epoch, double lr) { return epoch == 0 ? lr : lr * 0.5; });
  auto csv = std::make_shared<CSVLogger>((dir / "log.csv").string());
  auto best =
      std::make_shared<ModelCheckpoint>((dir / "best.safetensors").string(), "val_accuracy", true);
  auto every = std::make_shared<ModelCheckpoint>((dir / "e{epoch}.safetensors").string(), "loss");
  History h = model.fit(train, {.epochs = 3,
                                .validation = &val,
                                .callbacks = {lambda, schedule, csv, best, every},
                                .verbose = 0});
  EXPECT_EQ(batches, 12);
  EXPECT_EQ(epochs_begun, 3);
  EXPECT_DOUBLE_EQ(h["lr"][2], 0.05 * 0.25);
  EXPECT_TRUE(fs::exists(dir / "best.safetensors"));
  EXPECT_TRUE(fs::exists(dir / "e3.safetensors"));
  std::ifstream in(dir / "log.csv");
  std::string header, line;
  std::getline(in, header);
  EXPECT_EQ(header.rfind("epoch,accuracy,loss,lr", 0), 0u) << header;
  int rows = 0;
  while (std::getline(in, line)) ++rows;
  EXPECT_EQ(rows, 3);
  // The checkpoint of epoch 3 holds the final weights.
  auto other = small_net();
  Metadata meta = load_checkpoint((dir / "e3.safetensors").string(), *other);
  EXPECT_EQ(meta["epoch"], "3");
  expect_close(other->state_dict()[0].second, model.module().state_dict()[0].second, 0, 0);
  fs::remove_all(dir);
}

TEST(ModelApi, EarlyStoppingAndTerminateOnNaN) {
  manual_seed(4);
  Model model(small_net());
  model.compile(std::make_shared<SGD>(model.module().parameters(), 0.0), ce());
  auto train = blobs(64, 6).batch(32);
  // lr 0: the loss never improves, so training stops after patience + 1 epochs.
  auto stop = std::make_shared<EarlyStopping>("loss", 1, 1e-3);
  History h = model.fit(train, {.epochs = 10, .callbacks = {stop}, .verbose = 0});
  EXPECT_EQ(h["loss"].size(), 3u);
  EXPECT_EQ(stop->stopped_epoch(), 2);

  Model broken(std::make_shared<Lambda>([](const Tensor& x) {
    return narrow(x, 1, 0, 3) * std::numeric_limits<double>::quiet_NaN();
  }));
  Tensor w = zeros({1}).set_requires_grad();
  broken.compile(std::make_shared<SGD>(std::vector<Tensor>{w}, 0.1),
                 [w](const Tensor& p, const Tensor& t) { return cross_entropy(p, t) + sum(w); });
  int batches = 0;
  auto counter = std::make_shared<LambdaCallback>();
  counter->batch_end = [&](Model&, int64_t, Logs&) { ++batches; };
  broken.fit(
      train,
      {.epochs = 3, .callbacks = {std::make_shared<TerminateOnNaN>(), counter}, .verbose = 0});
  EXPECT_EQ(batches, 1);
}

TEST(ModelApi, ProgressBarLines) {
  std::ostringstream tty, plain;
  ProgressBar live(10, tty, true), quiet(10, plain, false);
  for (int64_t step = 1; step <= 10; ++step) {
    live.update(step, step * 32, {{"loss", 0.5}, {"accuracy", 0.25}});
    quiet.update(step, step * 32, {{"loss", 0.5}});
  }
  live.finish(10, 320, {{"loss", 0.5}, {"val_loss", 0.75}, {"lr", 1e-3}});
  quiet.finish(10, 320, {{"loss", 0.5}});
  std::string t = tty.str(), p = plain.str();
  EXPECT_NE(t.find("\r"), std::string::npos) << t;  // redrawn in place
  EXPECT_NE(t.find("10/10 [==============================]"), std::string::npos) << t;
  EXPECT_NE(t.find(" - loss: 0.5000"), std::string::npos) << t;
  EXPECT_NE(t.find(" - val_loss: 0.7500"), std::string::npos) << t;
  EXPECT_NE(t.find("lr: 1.00e-03"), std::string::npos) << t;
  EXPECT_NE(t.find("samples/s"), std::string::npos) << t;
  // Not a terminal: exactly one line for the epoch, no carriage returns.
  EXPECT_EQ(p.find("\r"), std::string::npos) << p;
  EXPECT_EQ(std::count(p.begin(), p.end(), '\n'), 1) << p;
  EXPECT_NE(p.find("10/10 ["), std::string::npos) << p;
}

// ------------------------------------------------------------------ checkpoints
TEST(Checkpoint, ResumeGivesBitIdenticalWeights) {
  fs::path dir = temp_dir();
  auto data = blobs(96, 9).batch(32);
  auto train = [&](Module& net, Optimizer& opt, int steps) {
    auto it = data.repeat().iterator();
    for (int s = 0; s < steps; ++s) {
      auto batch = it->next();
      opt.zero_grad();
      cross_entropy(net((*batch)[0]), (*batch)[1]).backward();
      opt.step();
    }
  };
  manual_seed(5);
  auto straight = small_net();
  Adam opt_straight(straight->parameters(), 0.01);
  train(*straight, opt_straight, 6);

  manual_seed(5);
  auto first = small_net();
  Adam opt_first(first->parameters(), 0.01);
  train(*first, opt_first, 3);
  std::string path = (dir / "ckpt.safetensors").string();
  save_checkpoint(path, *first, &opt_first, {{"step", "3"}});

  auto resumed = small_net();  // different initial weights, overwritten by the checkpoint
  Adam opt_resumed(resumed->parameters(), 0.5);
  Metadata meta = load_checkpoint(path, *resumed, &opt_resumed);
  EXPECT_EQ(meta["step"], "3");
  // The data iterator restarts, so skip the 3 batches the first run consumed.
  auto it = data.repeat().skip(3).iterator();
  for (int s = 0; s < 3; ++s) {
    auto batch = it->next();
    opt_resumed.zero_grad();
    cross_entropy((*resumed)((*batch)[0]), (*batch)[1]).backward();
    opt_resumed.step();
  }
  auto a = straight->state_dict(), b = resumed->state_dict();
  for (size_t i = 0; i < a.size(); ++i) expect_close(b[i].second, a[i].second, 0, 0, a[i].first);
  fs::remove_all(dir);
}

// fit() resumed from a checkpoint at epoch 1 of a shuffled pipeline ends with the same bits
// as the uninterrupted two-epoch run.
TEST(Checkpoint, FitResumesBitIdentically) {
  fs::path dir = temp_dir();
  std::string path = (dir / "epoch1.safetensors").string();
  auto data = blobs(96, 11).shuffle(96, 5).batch(16).prefetch(2);
  auto make = [](uint64_t seed) {
    manual_seed(seed);
    auto net = small_net();
    auto model = std::make_shared<Model>(net);
    model->compile(std::make_shared<Adam>(net->parameters(), 0.01), ce());
    return model;
  };
  auto straight = make(6);
  straight->fit(data, {.epochs = 2, .verbose = 0});

  auto first = make(6);
  first->fit(data, {.epochs = 1, .verbose = 0});
  save_checkpoint(path, first->module(), &first->optimizer());
  auto resumed = make(99);  // other initial weights, replaced by the checkpoint
  load_checkpoint(path, resumed->module(), &resumed->optimizer());
  resumed->fit(data, {.epochs = 2, .verbose = 0, .initial_epoch = 1});

  auto a = straight->module().state_dict(), b = resumed->module().state_dict();
  for (size_t i = 0; i < a.size(); ++i) expect_close(b[i].second, a[i].second, 0, 0, a[i].first);
  fs::remove_all(dir);
}

TEST(Checkpoint, BadFilesLeaveTheModelUnchanged) {
  fs::path dir = temp_dir();
  auto net = small_net();
  Adam opt(net->parameters(), 0.01);
  std::string path = (dir / "ok.safetensors").string();
  save_checkpoint(path, *net, &opt);
  auto target = small_net();
  Adam target_opt(target->parameters(), 0.01);
  NamedTensors before = target->state_dict();
  auto unchanged = [&] {
    auto now = target->state_dict();
    for (size_t i = 0; i < now.size(); ++i) expect_close(now[i].second, before[i].second, 0, 0);
  };
  // Truncated file.
  std::string bytes;
  {
    std::ifstream in(path, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  std::string cut = (dir / "cut.safetensors").string();
  std::ofstream(cut, std::ios::binary)
      .write(bytes.data(), static_cast<std::streamsize>(bytes.size() / 2));
  EXPECT_THROW(load_checkpoint(cut, *target, &target_opt), Error);
  unchanged();
  // A checkpoint of another architecture.
  auto other = std::make_shared<Sequential>();
  other->add(std::make_shared<Linear>(4, 8), "fc1");
  std::string other_path = (dir / "other.safetensors").string();
  save_checkpoint(other_path, *other);
  expect_error([&] { load_checkpoint(other_path, *target); }, "missing entry 'bn.weight'");
  unchanged();
  // Weights fine but no optimizer state for an optimizer that asks for it.
  save_checkpoint(other_path, *net);
  expect_error([&] { load_checkpoint(other_path, *target, &target_opt); }, "no optimizer state");
  unchanged();
  // A different optimizer.
  SGD sgd(target->parameters(), 0.1);
  expect_error([&] { load_checkpoint(path, *target, &sgd); }, "is for Adam, not SGD");
  unchanged();
  expect_error([&] { load_checkpoint((dir / "absent").string(), *target); }, "absent");
  fs::remove_all(dir);
}

}  // namespace
}  // namespace tessera::nn
