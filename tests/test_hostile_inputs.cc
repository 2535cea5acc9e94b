// Inputs at the edges of the API, found by an adversarial review (twelfth session): each
// either works as PyTorch does or raises tessera::Error naming the op. Under the
// sanitizer build, none may read out of bounds or overflow.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include "../src/kernels/cpu/simd.h"
#include "tessera/data/augment.h"
#include "tessera/data/dataset.h"
#include "tessera/graph/executor.h"
#include "tessera/graph/graph.h"
#include "tessera/io/npy.h"
#include "tessera/nn/containers.h"
#include "tessera/nn/layers.h"
#include "tessera/nn/losses.h"
#include "tessera/nn/lr_scheduler.h"
#include "tessera/nn/metrics.h"
#include "tessera/nn/model.h"
#include "tessera/nn/norm_layers.h"
#include "tessera/nn/optim.h"
#include "tessera/nn/recurrent.h"
#include "tessera/ops/index.h"
#include "tessera/ops/linalg.h"
#include "tessera/ops/nn.h"
#include "test_util.h"

using namespace tessera;
using namespace tessera::testing;

namespace {

constexpr int64_t kMax64 = std::numeric_limits<int64_t>::max();
constexpr int64_t kMin64 = std::numeric_limits<int64_t>::min();
constexpr float kInf = std::numeric_limits<float>::infinity();

// Expects an error whose message starts with "op: ".
void expect_op_error(const std::function<void()>& fn, const std::string& op) {
  try {
    fn();
    ADD_FAILURE() << "expected an error from " << op;
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()).rfind(op + ": ", 0), 0u) << "message was: " << e.what();
  }
}

}  // namespace

// A 0-d tensor takes axis 0 or -1 in reductions, flip and scans, as in PyTorch.
TEST(ZeroDim, AxisZeroOrMinusOneActsOnTheOneElement) {
  Tensor s = scalar_tensor(2.5, DType::Float32);
  for (int64_t axis : {0, -1}) {
    for (Tensor r : {sum(s, {axis}), mean(s, {axis}), amax(s, {axis}), logsumexp(s, {axis}),
                     flip(s, {axis}), cumsum(s, axis)}) {
      EXPECT_EQ(r.dim(), 0);
      EXPECT_FLOAT_EQ(r.item<float>(), 2.5f);
    }
    EXPECT_EQ(argmax(s, axis).item<int64_t>(), 0);
    EXPECT_EQ(sum(s, {axis}, true).dim(), 0);
  }
  Tensor x = scalar_tensor(2.5, DType::Float32);
  x.set_requires_grad();
  cumsum(x, 0).backward();  // the scan's gradient flips
  EXPECT_FLOAT_EQ(x.grad().item<float>(), 1.0f);
  Tensor y = scalar_tensor(2.5, DType::Float32);
  y.set_requires_grad();
  sum(mul(y, y), {0}).backward();
  EXPECT_FLOAT_EQ(y.grad().item<float>(), 5.0f);
  expect_op_error([&] { tensordot(s, s, {0}, {0}); }, "tensordot");
  expect_op_error([&] { split(s, 1, 0); }, "split");
  expect_op_error([&] { chunk(s, 1, 0); }, "chunk");
  expect_op_error([&] { concat({s, s}, 0); }, "concat");
  expect_op_error([&] { (void)s.size(0); }, "size");
  Tensor m = ones({2, 3});
  expect_op_error([&] { tensordot(m, m, {0, 0}, {0, 1}); }, "tensordot");
}

// Integer products and INT_MIN / -1 wrap in two's complement, as PyTorch's do.
TEST(IntegerOverflow, WrapsLikePyTorch) {
  Tensor q = floor_div(from_vector<int64_t>({kMin64, 7}), from_vector<int64_t>({-1, -1}));
  EXPECT_EQ(q.to_vector<int64_t>(), (std::vector<int64_t>{kMin64, -7}));
  uint64_t want = 1;
  for (int i = 0; i < 100; ++i) want *= 3;
  Tensor p = pow(from_vector<int64_t>({3}), from_vector<int64_t>({100}));
  EXPECT_EQ(p.to_vector<int64_t>()[0], static_cast<int64_t>(want));
  Tensor p8 = pow(cast(from_vector<int64_t>({3, -3}), DType::Int8),
                  cast(from_vector<int64_t>({5, 5}), DType::Int8));
  EXPECT_EQ(p8.to_vector<int64_t>(), (std::vector<int64_t>{-13, 13}));  // 243 and -243 wrapped
  Tensor p32 = pow(cast(from_vector<int64_t>({7}), DType::Int32),
                   cast(from_vector<int64_t>({20}), DType::Int32));
  uint32_t want32 = 1;
  for (int i = 0; i < 20; ++i) want32 *= 7;
  EXPECT_EQ(p32.to_vector<int64_t>()[0], static_cast<int32_t>(want32));
}

// Sizes whose arithmetic would overflow int64 are refused with the op's name.
TEST(IntegerOverflow, HugeSizesAndStridesAreErrors) {
  expect_op_error([] { narrow(arange(6), 0, 2, kMax64); }, "narrow");
  expect_op_error([] { one_hot(from_vector<int64_t>({kMax64})); }, "one_hot");
  expect_op_error(
      [] {
        conv2d(ones({1, 1, 4, 4}), ones({1, 1, 2, 2}), {}, 1, kMax64 / 2);
      },
      "conv2d");
  expect_op_error([] { conv1d(ones({1, 1, 4}), ones({1, 1, 2}), {}, kMax64); }, "conv1d");
  expect_op_error(
      [] {
        conv2d(ones({1, 1, 4, 4}), ones({1, 1, 2, 2}), {}, 1, std::string("same"), kMax64);
      },
      "conv2d");
  expect_op_error(
      [] {
        conv_transpose1d(ones({1, 1, 2}), ones({1, 1, 2}), {}, kMax64, 0, kMax64 - 1);
      },
      "conv_transpose1d");
  expect_op_error([] { max_pool1d(ones({1, 1, 4}), 2, kMax64, 0, 1, true); }, "max_pool1d");
  expect_op_error([] { max_pool1d(ones({1, 1, 4}), 2, 1, 0, kMax64); }, "max_pool1d");
  expect_op_error([] { avg_pool1d(ones({1, 1, 4}), kMax64, 1, kMax64 / 2); }, "avg_pool1d");
  expect_op_error([] { tile(ones({2}), std::vector<int64_t>(13, 1)); }, "tile");
  expect_op_error([] { split(arange(6), {8, -2}, 0); }, "split");
  expect_op_error([] { ones({1, 3}).expand({-2, 3}); }, "expand");
  // Wide randint ranges draw exact int64s (through double, values past 2^53 would all be
  // multiples of at least 2^10).
  int64_t odd = 0;
  for (int64_t v : randint(kMax64 - (int64_t{1} << 20), kMax64, {64}).to_vector<int64_t>()) {
    EXPECT_TRUE(v >= kMax64 - (int64_t{1} << 20) && v < kMax64);
    odd += v & 1;
  }
  EXPECT_GT(odd, 8);
  for (int64_t v : randint(kMin64, kMax64, {64}).to_vector<int64_t>()) EXPECT_NE(v, kMax64);
  EXPECT_EQ(split(arange(5), kMax64, 0).size(), 1u);
  // More pieces than a tensor has dimensions.
  EXPECT_EQ(split(arange(16), std::vector<int64_t>(16, 1), 0).size(), 16u);
  EXPECT_EQ(roll(scalar_tensor(3.0, DType::Float32), 5, 0).item<float>(), 3.0f);
}

// Ranges near the ends of int64 count and iterate exactly; counts past it are refused or,
// for repeat(), saturate.
TEST(IntegerOverflow, DatasetRangesAtTheEndsOfInt64) {
  auto values = [](const data::Dataset& d) {
    std::vector<int64_t> out;
    auto it = d.node()->make_iterator();
    while (auto e = it->next()) out.push_back((*e)[0].item<int64_t>());
    return out;
  };
  data::Dataset up = data::Dataset::range(kMax64 - 2, kMax64, 5);
  EXPECT_EQ(up.cardinality(), 1);
  EXPECT_EQ(values(up), (std::vector<int64_t>{kMax64 - 2}));
  data::Dataset down = data::Dataset::range(kMin64 + 3, kMin64, -2);
  EXPECT_EQ(values(down), (std::vector<int64_t>{kMin64 + 3, kMin64 + 1}));
  EXPECT_EQ(data::Dataset::range(10, 0, -3).cardinality(), 4);  // 10 7 4 1
  expect_op_error([] { data::Dataset::range(kMin64, kMax64); }, "range");
  EXPECT_EQ(data::Dataset::range(kMax64 / 2).repeat(4).cardinality(), kMax64);
  EXPECT_EQ(data::Dataset::range(kMax64 / 2).repeat(4).batch(2).cardinality(), kMax64 / 2 + 1);
  EXPECT_EQ(data::Dataset::range(0, kMax64).batch(2).cardinality(), kMax64 / 2 + 1);
  EXPECT_EQ(data::Dataset::range(0, kMax64).batch(2, true).cardinality(), kMax64 / 2);
}

// Bool bytes other than 0 and 1 in a .npy file read as true (loading them as C++ bools
// would be undefined).
TEST(Npy, BoolBytesOtherThanZeroAndOneReadAsTrue) {
  std::string header = "{'descr': '|b1', 'fortran_order': False, 'shape': (3,), }";
  header.resize(118, ' ');
  header += '\n';
  std::string file = std::string("\x93NUMPY\x01\x00", 8) + char(header.size() & 0xff) +
                     char(header.size() >> 8) + header + std::string("\x05\x00\xff", 3);
  Tensor t = io::parse_npy({reinterpret_cast<const uint8_t*>(file.data()), file.size()});
  ASSERT_EQ(t.dtype(), DType::Bool);
  const auto* bytes = static_cast<const uint8_t*>(t.data_ptr());
  EXPECT_EQ(bytes[0], 1);
  EXPECT_EQ(bytes[1], 0);
  EXPECT_EQ(bytes[2], 1);
  EXPECT_EQ(sum(t).item<int64_t>(), 2);
}

// Floats without an integer value convert to the lowest value of the type the conversion
// goes through (int32, or int64 for int64), as x86 and so PyTorch give; no undefined
// behaviour.
TEST(Cast, FloatsWithoutAnIntegerValue) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  Tensor f = from_vector<float>({nan, kInf, -kInf, 1e20f, 2.9f, -2.9f, 300.7f});
  constexpr int32_t lo32 = std::numeric_limits<int32_t>::min();
  EXPECT_EQ(cast(f, DType::Int32).to_vector<int64_t>(),
            (std::vector<int64_t>{lo32, lo32, lo32, lo32, 2, -2, 300}));
  EXPECT_EQ(cast(f, DType::Int64).to_vector<int64_t>(),
            (std::vector<int64_t>{kMin64, kMin64, kMin64, kMin64, 2, -2, 300}));
  EXPECT_EQ(cast(f, DType::UInt8).to_vector<int64_t>(),
            (std::vector<int64_t>{0, 0, 0, 0, 2, 254, 44}));  // low bytes of the int32s
  EXPECT_EQ(full({2}, 1e300, DType::Int64).to_vector<int64_t>(),
            (std::vector<int64_t>{kMin64, kMin64}));
  expect_op_error([] { arange(0.0, 1e19, 1.0); }, "arange");
  expect_op_error([] { arange(0.0, 1.0, 1e-20); }, "arange");
  expect_op_error(
      [] {
        interpolate(ones({1, 1, 2, 2}), static_cast<double>(kInf));
      },
      "interpolate");
}

// Methods of a default-constructed (undefined) tensor raise errors instead of reading
// through a null pointer.
TEST(Undefined, MethodsNameTheOp) {
  Tensor t;
  expect_op_error([&] { t.reshape({1}); }, "reshape");
  expect_op_error([&] { t.contiguous(); }, "contiguous");
  expect_op_error([&] { t.transpose(0, 1); }, "transpose");
  expect_op_error([&] { (void)t.item<float>(); }, "item");
  expect_op_error([&] { t.fill_(1); }, "fill_");
  expect_op_error([&] { t.to(DType::Int32); }, "to");
  expect_op_error([&] { (void)t.size(0); }, "size");
  expect_op_error([&] { split(t, 1, 0); }, "split");
}

// Float32 exp reaches 0, the subnormals and inf like libm's, on every ISA: masks of -inf
// give exactly 0 in softmax.
TEST(Exp, Float32ReachesZeroSubnormalsAndInfinity) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const std::vector<float> x = {-kInf, -200.0f, -104.0f, -100.0f, -90.0f, -87.0f, 0.0f,
                                1.0f,  88.0f,   88.7f,   88.75f,  89.0f,  kInf,   nan};
  for (const char* isa : {"generic", "avx2", "avx512"}) {
    const cpu::SimdTable* table = cpu::simd_for(isa);
    if (!table) {
      std::printf("Float32ReachesZeroSubnormalsAndInfinity: %s not available on this CPU\n", isa);
      continue;
    }
    std::vector<float> y(x.size());
    table->unary_f32(cpu::FastUnary::Exp, x.data(), y.data(), static_cast<int64_t>(x.size()));
    for (size_t i = 0; i < x.size(); ++i) {
      const float want = std::exp(x[i]);
      if (std::isnan(want)) {
        EXPECT_TRUE(std::isnan(y[i])) << isa << " exp(" << x[i] << ")";
      } else if (std::isinf(want) || want == 0.0f) {
        EXPECT_EQ(y[i], want) << isa << " exp(" << x[i] << ")";
      } else {
        // Two ulps of float, or of the smallest subnormal.
        const float tol = std::max(2 * (std::nextafter(want, kInf) - want),
                                   2 * std::numeric_limits<float>::denorm_min());
        EXPECT_NEAR(y[i], want, tol) << isa << " exp(" << x[i] << ")";
      }
    }
  }
  Tensor masked = softmax(from_vector<float>({0.0f, -kInf, 0.0f}), 0);
  EXPECT_EQ(masked.to_vector<float>(), (std::vector<float>{0.5f, 0.0f, 0.5f}));
  EXPECT_EQ(sigmoid(from_vector<float>({-kInf})).item<float>(), 0.0f);
  EXPECT_EQ(logsumexp(full({3}, -kInf)).item<float>(), -kInf);
  EXPECT_EQ(softmax(from_vector<float>({1000.0f, 0.0f}), 0).to_vector<float>()[1], 0.0f);
}

// Errors raised below an op (the limit of 12 dimensions) carry the op's name.
TEST(Errors, LimitsBelowAnOpNameTheOp) {
  Tensor x = ones(Shape(size_t{12}, 1));
  expect_op_error([&] { unsqueeze(x, 0); }, "unsqueeze");
  expect_op_error([&] { one_hot(zeros(Shape(size_t{12}, 1), DType::Int64), 3); }, "one_hot");
}

// Malformed einsum equations name einsum, not an op einsum is written with.
TEST(Errors, EinsumNamesItself) {
  expect_op_error([] { einsum("i->ii", {ones({3})}); }, "einsum");
  expect_op_error([] { einsum("i1,i->", {ones({3}), ones({3})}); }, "einsum");
  expect_op_error([] { einsum("i,i->", {ones({3}, DType::Int32), ones({3})}); }, "einsum");
  EXPECT_FLOAT_EQ(einsum("i,i->", {ones({3}), ones({3})}).item<float>(), 3.0f);
}

// Class indices of any integer dtype work as cross_entropy targets, as in Keras.
TEST(Losses, CrossEntropyTakesAnyIntegerTargets) {
  Tensor logits = from_vector<float>({1.0f, 2.0f, 0.5f, 0.1f, 0.2f, 3.0f}).reshape({2, 3});
  Tensor want = nn::cross_entropy(logits, from_vector<int64_t>({1, 2}));
  for (DType t : {DType::UInt8, DType::Int8, DType::Int32}) {
    Tensor got = nn::cross_entropy(logits, cast(from_vector<int64_t>({1, 2}), t));
    EXPECT_EQ(got.item<float>(), want.item<float>()) << dtype_name(t);
  }
}

// Mistakes inside helpers built from other ops name the helper.
TEST(Errors, HelpersNameThemselves) {
  expect_op_error([] { sum_to(zeros({2, 3}), {4}); }, "sum_to");
  expect_op_error([] { sum_to(zeros({3}), {2, 3}); }, "sum_to");
  EXPECT_EQ(sum_to(ones({2, 3}), {1, 3}).to_vector<float>(), (std::vector<float>{2, 2, 2}));
  expect_op_error(
      [] {
        nn::binary_cross_entropy_with_logits(zeros({2, 3}), zeros({2, 3}), {}, ones({4}));
      },
      "binary_cross_entropy_with_logits");
  expect_op_error([] { repeat_interleave(scalar_tensor(1.0, DType::Float32), 2, 0); },
                  "repeat_interleave");
  expect_op_error(
      [] {
        nn::binary_cross_entropy(from_vector<float>({0.5f, 1.5f}), zeros({2}));
      },
      "binary_cross_entropy");
  EXPECT_NEAR(nn::binary_cross_entropy(from_vector<float>({0.5f, 0.5f}), zeros({2})).item<float>(),
              std::log(2.0f), 1e-6);
  nn::Unflatten bad(1, Shape{4, 2}), inferred(1, Shape{-1, 3});
  expect_op_error([&] { bad.forward(zeros({2, 6})); }, "Unflatten");
  EXPECT_EQ(inferred.forward(zeros({2, 6})).shape(), (Shape{2, 2, 3}));
}

// Arguments outside their domain are errors, not silently clamped or reinterpreted.
TEST(Errors, ArgumentsOutsideTheirDomain) {
  expect_op_error([] { nn::Embedding(-1, 2); }, "Embedding");
  expect_op_error([] { eye(2, -2); }, "eye");
  EXPECT_EQ(eye(2, -1).shape(), (Shape{2, 2}));
  Generator g(7);
  expect_op_error([&] { data::uniform_double(g, 2.0, 1.0); }, "uniform_double");
  expect_op_error([&] { data::random_flip(ones({1, 2, 2}), g, 2.0); }, "random_flip");
}

// Writing into an expanded view (elements sharing memory) is refused, as in PyTorch.
TEST(InPlace, ExpandedDestinationsAreRefused) {
  NoGradGuard no_grad;
  Tensor e = ones({1, 3}).expand({4, 3});
  expect_op_error([&] { e.fill_(2); }, "fill_");
  expect_op_error([&] { e.add_(ones({4, 3})); }, "add_");
  expect_op_error([&] { e.copy_(zeros({4, 3})); }, "copy_");
  expect_op_error([&] { e.mul_(2); }, "mul_");
  Tensor one = ones({1}).expand({1, 1});  // size-1 dims may have any stride
  one.fill_(3);
  EXPECT_FLOAT_EQ(one.item<float>(), 3.0f);
}

// ---- a second review: modules, optimizers, schedules, metrics, graphs, threads ----

// Several threads running ops on one parameter (inference from threads, a map with
// workers) and backward passes on several threads: no race on the gradient accumulator,
// and no update lost.
TEST(Threads, OpsAndBackwardOnOneParameterFromSeveralThreads) {
  Tensor w = ones({8});
  w.set_requires_grad();
  constexpr int kThreads = 4, kSteps = 200;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kSteps; ++i) sum(mul(w, 2.0)).backward();
    });
  }
  for (auto& t : threads) t.join();
  for (float g : w.grad().to_vector<float>()) EXPECT_EQ(g, 2.0f * kThreads * kSteps);
  // A map with workers applies a layer: its outputs carry no autodiff history.
  auto layer = std::make_shared<nn::Linear>(4, 4);
  auto mapped = data::Dataset::from_tensors({ones({64, 4})})
                    .map([&](data::Example e) { return data::Example{layer->forward(e[0])}; }, 4);
  auto it = mapped.node()->make_iterator();
  int64_t n = 0;
  while (auto e = it->next()) {
    EXPECT_FALSE((*e)[0].requires_grad());
    ++n;
  }
  EXPECT_EQ(n, 64);
}

TEST(Metrics, BadInputsAreErrorsAndCountNothing) {
  nn::RocAuc auc;
  EXPECT_THROW(auc.update(from_vector<float>({std::nanf(""), 0.5f}), from_vector<float>({1, 0})),
               Error);
  nn::ConfusionMatrix cm(2);
  expect_error([&] { (void)cm.count(5, 5); }, "outside");
  // The second target is out of range: the first sample is not counted either.
  EXPECT_THROW(cm.update(from_vector<float>({0.9f, 0.1f, 0.9f, 0.1f}).reshape({2, 2}),
                         from_vector<int64_t>({0, 7})),
               Error);
  EXPECT_EQ(cm.count(0, 0), 0);
  EXPECT_THROW(nn::ConfusionMatrix(int64_t{1} << 33), Error);
}

TEST(Schedules, FarEpochsAndDegenerateCycles) {
  Tensor w = ones({2});
  w.set_requires_grad();
  nn::SGD opt({w}, 1.0);
  nn::CosineAnnealingWarmRestarts doubling(opt, 1, 2), constant(opt, 3, 1);
  EXPECT_TRUE(std::isfinite(doubling.lr_at(kMax64, 1.0)));
  EXPECT_EQ(constant.lr_at((int64_t{1} << 50) + 1, 1.0),
            constant.lr_at(((int64_t{1} << 50) + 1) % 3, 1.0));
  nn::OneCycleLR one(opt, 1.0, 10, 0.1);  // the warm-up is a single step
  EXPECT_EQ(one.lr_at(0, 1.0), 1.0);
  EXPECT_TRUE(std::isfinite(one.lr_at(5, 1.0)));
  expect_op_error([&] { nn::OneCycleLR(opt, 1.0, 10, 2.0); }, "OneCycleLR");
  expect_op_error([&] { one.set_epoch(-5); }, "LRScheduler");
}

TEST(Optimizers, RepeatedParametersAndBadOptionsAreErrors) {
  Tensor w = ones({2});
  w.set_requires_grad();
  EXPECT_THROW(nn::SGD({nn::ParamGroup{{w}, {}}, nn::ParamGroup{{w}, {}}}, {{"lr", 1.0}}), Error);
  EXPECT_THROW(nn::SGD({w, w}, 1.0), Error);
  EXPECT_THROW(nn::SGD({w}, std::nan("")), Error);
  EXPECT_THROW(nn::SGD({w}, -0.1), Error);
  EXPECT_THROW(nn::Adam({w}, 1e-3, {{"beta2", 1.0}}), Error);
  nn::Adam adam({w}, 1e-3);
  sum(w * 1.0).backward();
  adam.step();
  nn::NamedTensors state = adam.state_dict();
  for (auto& [name, t] : state) {
    if (name.find(".step") != std::string::npos) t = scalar_tensor(-3.0, DType::Int64);
  }
  expect_error([&] { adam.load_state_dict(state); }, "negative step");
  expect_error(
      [&] {
        adam.load_state_dict({{"state.-1.step", scalar_tensor(1.0, DType::Int64)}});
      },
      "bad entry name");
}

TEST(Modules, ModesAndStateDictsSurviveMistakes) {
  auto bn = std::make_shared<nn::BatchNorm1d>(3);
  auto seq = std::make_shared<nn::Sequential>(
      std::initializer_list<nn::ModulePtr>{std::make_shared<nn::Linear>(3, 3), bn});
  bn->eval();  // frozen statistics inside a training model
  (void)seq->summary({2, 3});
  EXPECT_TRUE(seq->is_training());
  EXPECT_FALSE(bn->is_training());
  EXPECT_THROW((void)seq->summary({2, 5}), Error);  // fails inside the forward pass
  EXPECT_TRUE(seq->is_training());
  EXPECT_FALSE(bn->is_training());
  auto lin = std::make_shared<nn::Linear>(2, 2);
  nn::NamedTensors sd = lin->state_dict();
  Tensor before = lin->state_dict()[0].second.clone();
  sd[0].second = Tensor();
  expect_op_error([&] { lin->load_state_dict(sd); }, "load_state_dict");
  EXPECT_EQ(lin->state_dict()[0].second.to_vector<float>(), before.to_vector<float>());
}

// A module added inside its own subtree would make parameters() recurse forever.
TEST(Modules, CyclesAreRefused) {
  auto outer = std::make_shared<nn::Sequential>();
  auto inner = std::make_shared<nn::Sequential>();
  outer->add(inner);
  expect_op_error([&] { outer->add(outer); }, "Sequential");
  expect_op_error([&] { inner->add(outer); }, "Sequential");
  outer->add(std::make_shared<nn::Linear>(2, 2));  // a fresh module is fine
  EXPECT_EQ(outer->parameters().size(), 2u);
}

// An epoch without a batch has no loss: fit says the dataset is empty (as Keras does)
// instead of returning a History without "loss".
TEST(Modules, FitOnAnEmptyDatasetIsAnError) {
  auto net = std::make_shared<nn::Linear>(2, 2);
  nn::Model model(net);
  model.compile(std::make_shared<nn::SGD>(net->parameters(), 0.1),
                [](const Tensor& p, const Tensor& t) { return nn::cross_entropy(p, t); });
  auto empty = data::Dataset::from_tensors({zeros({0, 2}), zeros({0}, DType::Int64)}).batch(4);
  expect_op_error([&] { model.fit(empty, {.epochs = 1, .verbose = 0}); }, "Model::fit");
}

// Recurrent layers: no steps give an empty output (all cells alike), and lengths outside
// [0, T] are errors rather than masks that keep stale state.
TEST(Modules, RecurrentEdgeCases) {
  nn::GRU gru(3, 4);
  nn::RNN rnn(3, 4);
  nn::LSTM lstm(3, 4);
  for (nn::RNNBase* m : std::vector<nn::RNNBase*>{&gru, &rnn, &lstm}) {
    nn::RNNOutput out = m->forward(zeros({0, 2, 3}), Tensor());
    EXPECT_EQ(out.output.shape(), (Shape{0, 2, 4}));
    EXPECT_EQ(out.h_n.shape(), (Shape{1, 2, 4}));
  }
  expect_op_error(
      [&] {
        gru.forward(zeros({4, 2, 3}), Tensor(), Tensor(), from_vector<int64_t>({9, 2}));
      },
      "GRU");
  expect_op_error(
      [&] {
        rnn.forward(zeros({4, 2, 3}), Tensor(), Tensor(), from_vector<int64_t>({-1, 2}));
      },
      "RNN");
  EXPECT_EQ(gru.forward(zeros({4, 2, 3}), Tensor(), Tensor(), from_vector<int64_t>({4, 0}))
                .output.shape(),
            (Shape{4, 2, 4}));
}

TEST(Graphs, ShapeListsOfTheWrongLengthAreErrors) {
  graph::Graph g;
  graph::Value input;
  input.kind = graph::ValueKind::input;
  input.shape = Dims{graph::kUnknownDim, 3};
  g.values.push_back(input);
  g.inputs = {0};
  g.symbols.push_back({0, 0});
  expect_op_error([&] { graph::bind_symbols(g, {}); }, "graph");
  expect_op_error([&] { graph::bind_symbols(g, {Dims{-5, 3}}); }, "graph");
  EXPECT_EQ(graph::bind_symbols(g, {Dims{4, 3}}), (std::vector<int64_t>{4}));
}
