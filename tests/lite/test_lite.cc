// The lite runtime and the converter: graphs lowered to lite models give the outputs of
// eager mode (each op on random shapes, and whole networks), the interpreter's calls
// report misuse, and malformed model files are errors, never crashes.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <random>

#include "../../tools/reference_models.h"
#include "../test_models.h"
#include "../test_util.h"
#include "kernels/conv_tiles.h"  // src/lite: the int8 tiles, pooled and not
#include "kernels/kernel.h"      // src/lite: quantize
#include "lite_model_generated.h"
#include "model.h"  // src/lite: the checked model, to count its activations
#include "run_lite.h"
#include "tessera/convert/lite_converter.h"
#include "tessera/graph/passes.h"
#include "tessera/graph/trace.h"
#include "tessera/lite/lite.h"

namespace tessera {
namespace {

using graph::TensorSpec;
using testing::random_tensor;
using testing::run_lite;
namespace fb = tessera::lite::schema;

std::vector<uint8_t> convert_fn(const graph::GraphFn& fn, const std::vector<Shape>& shapes,
                                bool optimize, int64_t batch = 1) {
  std::vector<TensorSpec> specs;
  for (const Shape& s : shapes) specs.push_back({s, DType::Float32, ""});
  graph::Graph g = graph::trace(fn, specs);
  if (optimize) g = graph::optimize_for_inference(std::move(g));
  return convert::to_lite(g, {.batch = batch}).bytes;
}

// fn traced on inputs of `shapes`, converted (after the inference passes or not), run in
// lite, against fn run eagerly.
void expect_lite_matches(const graph::GraphFn& fn, const std::vector<Shape>& shapes,
                         const std::string& what, bool optimize = true, double rtol = 1e-5) {
  std::vector<uint8_t> bytes;
  try {
    bytes = convert_fn(fn, shapes, optimize);
  } catch (const Error& e) {
    FAIL() << what << ": " << e.what();
  }
  TensorList inputs;
  for (size_t i = 0; i < shapes.size(); ++i) {
    inputs.push_back(random_tensor(shapes[i], DType::Float32, -2, 2, 7 + i));
  }
  TensorList got = run_lite(bytes, inputs), want = fn(inputs);
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i) {
    testing::expect_close(got[i], want[i].contiguous(), rtol, 1e-5, what);
  }
}

std::string shape_text(const Shape& s) {
  std::ostringstream os;
  os << s;
  return os.str();
}

TEST(LiteOps, ConvolutionsOnRandomShapes) {
  std::mt19937 rng(3);
  auto pick = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  for (int trial = 0; trial < 12; ++trial) {
    int64_t N = pick(1, 2), C = pick(1, 5), H = pick(3, 9), W = pick(1, 8), K = pick(1, 3);
    int64_t stride = pick(1, 2), pad = pick(0, K / 2 + 0), dil = pick(1, 2);
    if (dil * (K - 1) + 1 > H + 2 * pad || dil * (K - 1) + 1 > W + 2 * pad) dil = 1;
    if (K > W + 2 * pad) K = 1;
    bool depthwise = trial % 3 == 2, bias = trial % 2 == 0, relu = trial % 4 < 2;
    int64_t O = depthwise ? C * pick(1, 2) : pick(1, 6);
    Tensor w = random_tensor({O, depthwise ? 1 : C, K, K}, DType::Float32, -1, 1, 11 + trial);
    Tensor b = bias ? random_tensor({O}, DType::Float32, -1, 1, 13 + trial) : Tensor();
    auto fn = [=](const TensorList& in) {
      return TensorList{conv2d(in[0], w, b, stride, pad, dil, depthwise ? C : 1,
                               relu ? FusedActivation::relu : FusedActivation::none)};
    };
    expect_lite_matches(fn, {{N, C, H, W}},
                        "conv " + shape_text({N, C, H, W}) + " O=" + std::to_string(O) +
                            " K=" + std::to_string(K) + " stride=" + std::to_string(stride) +
                            " pad=" + std::to_string(pad) + " dil=" + std::to_string(dil) +
                            (depthwise ? " depthwise" : ""),
                        trial % 2 == 0);
  }
  // Wide rows, so that the widest tiles (14 and 7 pixels) and their tails run too.
  struct Wide {
    int64_t C, W, O, K, stride;
  };
  for (const Wide& c : {Wide{1, 30, 20, 3, 1}, Wide{1, 33, 12, 3, 1}, Wide{3, 31, 40, 3, 2},
                        Wide{2, 29, 64, 1, 1}, Wide{5, 45, 70, 3, 1}}) {
    Tensor w = random_tensor({c.O, c.C, c.K, c.K}, DType::Float32, -1, 1, 91);
    auto fn = [=](const TensorList& in) {
      return TensorList{conv2d(in[0], w, Tensor(), c.stride, c.K / 2, 1, 1, FusedActivation::relu)};
    };
    expect_lite_matches(fn, {{1, c.C, 4, c.W}},
                        "wide conv W=" + std::to_string(c.W) + " O=" + std::to_string(c.O), true);
  }
}

void expect_int8_close(const graph::GraphFn& fn, const Shape& shape, const std::string& what,
                       int64_t min_int8_ops);  // below

size_t count_ops(const std::vector<uint8_t>& bytes, fb::OpCode code) {
  size_t count = 0;
  for (const fb::Operator* op : *fb::GetModel(bytes.data())->operators())
    count += op->opcode() == code;
  return count;
}

// A 2x2 max pool of stride 2 after a convolution is fused into it (odd sizes drop the last
// row and column, as floor mode does); not where the convolution's output is read elsewhere,
// or the pool differs (ceil mode, other sizes). Float and int8, every kernel path (the
// capped-ISA runs of this test take the portable and non-tiled ones).
TEST(LiteOps, ConvolutionsWithFusedMaxPool) {
  std::mt19937 rng(5);
  auto pick = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  for (int trial = 0; trial < 8; ++trial) {
    int64_t N = pick(1, 2), C = pick(1, 6), H = pick(2, 11), W = pick(2, 11), K = pick(1, 3);
    bool depthwise = trial % 4 == 3, relu = trial % 2 == 0;
    int64_t O = depthwise ? C : pick(1, 40);
    Tensor w = random_tensor({O, depthwise ? 1 : C, K, K}, DType::Float32, -1, 1, 31 + trial);
    Tensor b = random_tensor({O}, DType::Float32, -1, 1, 37 + trial);
    auto fn = [=](const TensorList& in) {
      Tensor y = conv2d(in[0], w, b, 1, K / 2, 1, depthwise ? C : 1,
                        relu ? FusedActivation::relu : FusedActivation::none);
      return TensorList{max_pool2d(y, 2, 2)};
    };
    std::string what = "conv+pool " + shape_text({N, C, H, W}) + " O=" + std::to_string(O) +
                       " K=" + std::to_string(K) + (depthwise ? " depthwise" : "");
    expect_lite_matches(fn, {{N, C, H, W}}, what, true);
    std::vector<uint8_t> bytes = convert_fn(fn, {{N, C, H, W}}, true);
    EXPECT_EQ(count_ops(bytes, fb::OpCode_MaxPool2D), 0u) << what;
    expect_int8_close(fn, {N, C, H, W}, what + " int8", 1);
  }
  Tensor w = random_tensor({8, 3, 3, 3}, DType::Float32, -1, 1, 45);
  auto shared = [&](const TensorList& in) {  // the convolution's output is read twice
    Tensor y = conv2d(in[0], w, Tensor(), 1, 1);
    return TensorList{max_pool2d(y, 2, 2), relu(y)};
  };
  auto ceil = [&](const TensorList& in) {
    return TensorList{max_pool2d(conv2d(in[0], w, Tensor(), 1, 1), 2, 2, 0, 1, true)};
  };
  for (auto fn : {graph::GraphFn(shared), graph::GraphFn(ceil)}) {
    expect_lite_matches(fn, {{1, 3, 7, 5}}, "not fused", true);
    EXPECT_EQ(count_ops(convert_fn(fn, {{1, 3, 7, 5}}, true), fb::OpCode_MaxPool2D), 1u);
  }
}

TEST(LiteOps, TransposedConvolutionsOnRandomShapes) {
  std::mt19937 rng(4);
  auto pick = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  for (int trial = 0; trial < 8; ++trial) {
    int64_t C = pick(1, 4), O = pick(1, 5), H = pick(1, 5), W = pick(1, 5), K = pick(1, 3);
    int64_t stride = pick(1, 2), pad = pick(0, K - 1), dil = pick(1, 2);
    int64_t out_pad = stride > 1 ? pick(0, stride - 1) : 0;
    auto size = [&](int64_t in) {
      return (in - 1) * stride - 2 * pad + dil * (K - 1) + 1 + out_pad;
    };
    if (pad > dil * (K - 1) || size(H) < 1 || size(W) < 1) pad = 0;
    Tensor w = random_tensor({C, O, K, K}, DType::Float32, -1, 1, 21 + trial);
    Tensor b = trial % 2 ? random_tensor({O}, DType::Float32, -1, 1, 23 + trial) : Tensor();
    auto fn = [=](const TensorList& in) {
      return TensorList{conv_transpose2d(in[0], w, b, stride, pad, out_pad, 1, dil)};
    };
    expect_lite_matches(fn, {{2, C, H, W}},
                        "transposed conv " + shape_text({2, C, H, W}) + " O=" + std::to_string(O) +
                            " K=" + std::to_string(K) + " stride=" + std::to_string(stride) +
                            " pad=" + std::to_string(pad) + " dil=" + std::to_string(dil) +
                            " out_pad=" + std::to_string(out_pad),
                        false);
  }
}

TEST(LiteOps, PoolingOnRandomShapes) {
  std::mt19937 rng(5);
  auto pick = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  for (int trial = 0; trial < 12; ++trial) {
    int64_t N = pick(1, 2), C = pick(1, 4), H = pick(2, 9), W = pick(2, 9);
    int64_t K = pick(1, 3), stride = pick(1, 3), pad = pick(0, K / 2);
    bool ceil_mode = trial % 2 == 1, include_pad = trial % 3 == 0;
    if (ceil_mode && include_pad) include_pad = false;  // not lowered (see the converter)
    auto fn = [=](const TensorList& in) {
      return TensorList{max_pool2d(in[0], K, stride, pad, 1, ceil_mode),
                        avg_pool2d(in[0], K, stride, pad, ceil_mode, include_pad)};
    };
    expect_lite_matches(fn, {{N, C, H, W}},
                        "pool " + shape_text({N, C, H, W}) + " K=" + std::to_string(K) +
                            " stride=" + std::to_string(stride) + " pad=" + std::to_string(pad) +
                            (ceil_mode ? " ceil" : "") + (include_pad ? " include_pad" : ""));
  }
  expect_lite_matches([](const TensorList& in) { return TensorList{max_pool2d(in[0], 2)}; },
                      {{1, 3, 8, 6}}, "2x2 pool");
  expect_lite_matches(
      [](const TensorList& in) { return TensorList{adaptive_avg_pool2d(in[0], 1)}; },
      {{2, 5, 4, 3}}, "global average pool");
}

TEST(LiteOps, ElementwiseWithBroadcastingInBothLayouts) {
  Tensor per_channel = random_tensor({1, 3, 1, 1}, DType::Float32, 0.5, 2, 3);
  Tensor row = random_tensor({5}, DType::Float32, 0.5, 2, 4);
  Tensor w = random_tensor({3, 2, 1, 1}, DType::Float32, -1, 1, 5);
  // After a convolution the activation is NHWC inside the lite model.
  expect_lite_matches(
      [&](const TensorList& in) {
        Tensor y = conv2d(in[0], w);
        return TensorList{sigmoid(y * per_channel + 1.0), tanh(y) - in[1], maximum(y, 0.25),
                          hard_swish(y) / per_channel, minimum(relu6(y), in[1])};
      },
      {{2, 2, 4, 5}, {2, 3, 4, 5}}, "NHWC elementwise", false);
  expect_lite_matches(
      [&](const TensorList& in) {
        return TensorList{in[0] * row, exp(neg(abs(in[0]))), sqrt(square(in[0]) + 1.0),
                          silu(in[0]) - in[1], div(in[0], in[1] * in[1] + 1.0)};
      },
      {{3, 1, 5}, {4, 5}}, "plain elementwise", false);
  expect_lite_matches([&](const TensorList& in) { return TensorList{in[0] * 2.0 + 0.5}; },
                      {{2, 3, 1, 5}}, "fused program", true);
  expect_lite_matches([&](const TensorList& in) { return TensorList{in[0] + in[1]}; },
                      {{0, 3}, {1, 3}}, "empty dimension", false);
}

TEST(LiteOps, ResizeNearestAndBilinear) {
  for (bool corners : {false, true}) {
    expect_lite_matches(
        [&](const TensorList& in) {
          return TensorList{interpolate(in[0], std::vector<int64_t>{7, 5}, "bilinear", corners),
                            interpolate(in[0], std::vector<int64_t>{2, 9}, "bilinear", corners)};
        },
        {{2, 3, 4, 6}}, corners ? "bilinear, align_corners" : "bilinear", false);
  }
  expect_lite_matches(
      [&](const TensorList& in) {
        return TensorList{interpolate(in[0], std::vector<int64_t>{8, 3}, "nearest"),
                          interpolate(in[0], 2.0, "nearest"), interpolate(in[0], 1.5, "bilinear")};
      },
      {{1, 2, 5, 4}}, "nearest and scale factors", false);
  expect_lite_matches([&](const TensorList& in) { return TensorList{interpolate(in[0], 3.0)}; },
                      {{1, 1, 1, 1}}, "a single pixel", false);
}

// Embedding lookup with int64 and int32 indices as model inputs; an index out of range
// reads zeros (eager mode would refuse it; a running lite model cannot fail).
TEST(LiteOps, EmbeddingLookup) {
  Tensor table = random_tensor({6, 5}, DType::Float32, -1, 1, 31);
  for (DType dtype : {DType::Int64, DType::Int32}) {
    auto fn = [&](const TensorList& in) { return TensorList{relu(embedding(table, in[0]))}; };
    graph::Graph g = graph::trace(fn, {TensorSpec{{3, 4}, dtype, "ids"}});
    std::vector<uint8_t> bytes = convert::to_lite(g).bytes;
    Tensor ids = randint(0, 6, {3, 4}, dtype);
    testing::expect_close(run_lite(bytes, {ids})[0], fn({ids})[0], 1e-6, 1e-6,
                          std::string("embedding ") + dtype_name(dtype));
    std::vector<int64_t> bad(12, 0);
    bad[5] = 6, bad[7] = -1;
    Tensor out = run_lite(bytes, {from_vector(bad, {3, 4}).to(dtype)})[0];
    Tensor row = out.select(0, 1);  // flat positions 4..7: indices 0, 6, 0, -1
    EXPECT_EQ(amax(abs(row.select(0, 1))).item<float>(), 0.0f) << "index 6 reads zeros";
    EXPECT_EQ(amax(abs(row.select(0, 3))).item<float>(), 0.0f) << "index -1 reads zeros";
    EXPECT_GT(amax(abs(row.select(0, 0))).item<float>(), 0.0f) << "index 0 reads its row";
  }
}

// LSTM layers (both directions, stacked, batch-first, given states or zeros), each lowered
// to one Lstm operator, and the slices that read the last step.
TEST(LiteOps, LstmLayersAndSlices) {
  struct Case {
    int64_t T, N, I, H;
    nn::RNNOptions o;
    bool states;
  };
  const Case cases[] = {{5, 2, 3, 4, {}, false},
                        {1, 1, 1, 1, {}, true},
                        {6, 3, 5, 7, {.num_layers = 2, .bidirectional = true}, true},
                        {4, 2, 8, 6, {.bias = false, .batch_first = true}, false}};
  int k = 0;
  for (const Case& c : cases) {
    manual_seed(40 + k++);
    nn::LSTM lstm(c.I, c.H, c.o);
    lstm.eval();
    const int64_t L = c.o.num_layers * (c.o.bidirectional ? 2 : 1);
    Shape x_shape = c.o.batch_first ? Shape{c.N, c.T, c.I} : Shape{c.T, c.N, c.I};
    std::vector<Shape> shapes{x_shape};
    if (c.states) shapes.insert(shapes.end(), {{L, c.N, c.H}, {L, c.N, c.H}});
    auto fn = [&](const TensorList& in) {
      nn::RNNOutput r =
          c.states ? lstm.forward(in[0], in[1], in[2]) : lstm.forward(in[0], Tensor());
      Tensor last = r.output.select(c.o.batch_first ? 1 : 0, -1);
      return TensorList{r.output, r.h_n, r.c_n, relu(last)};
    };
    std::vector<TensorSpec> specs;
    for (const Shape& s : shapes) specs.push_back({s, DType::Float32, ""});
    graph::Graph g = graph::optimize_for_inference(
        graph::trace(fn, specs, {.variables = lstm.named_parameters()}));
    size_t lstm_nodes = 0;
    for (const graph::Node& n : g.nodes) lstm_nodes += n.op() == std::string("lstm_sequence");
    EXPECT_EQ(lstm_nodes, static_cast<size_t>(L)) << "one node per layer and direction";
    std::vector<uint8_t> bytes = convert::to_lite(g).bytes;
    TensorList inputs;
    for (size_t i = 0; i < shapes.size(); ++i) {
      inputs.push_back(random_tensor(shapes[i], DType::Float32, -1, 1, 50 + i));
    }
    TensorList got = run_lite(bytes, inputs);
    NoGradGuard no_grad;
    TensorList want = fn(inputs);
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < got.size(); ++i) {
      testing::expect_close(got[i], want[i].contiguous(), 1e-5, 1e-5,
                            "LSTM case " + std::to_string(k) + " output " + std::to_string(i));
    }
  }
  expect_lite_matches(
      [&](const TensorList& in) {
        return TensorList{slice(in[0], 1, 1, 7, 2), slice(in[0], 0, -2, 3), slice(in[0], 1, 0, 0)};
      },
      {{3, 7}}, "plain slices", false);
  Tensor w = random_tensor({4, 3, 3, 3}, DType::Float32, -1, 1, 6);
  expect_lite_matches(
      [&](const TensorList& in) {
        Tensor y = conv2d(in[0], w, Tensor(), 1, 1);  // NHWC in lite
        return TensorList{slice(y, 1, 1, 4, 2), relu(slice(y, 3, 0, 3)), y.select(2, -1)};
      },
      {{2, 3, 5, 4}}, "slices of NHWC values", false);
}

TEST(LiteOps, ShapeSoftmaxMeanPadAndConcat) {
  Tensor w = random_tensor({4, 3, 3, 3}, DType::Float32, -1, 1, 6);
  expect_lite_matches(
      [&](const TensorList& in) {
        Tensor y = conv2d(in[0], w, Tensor(), 1, 1);  // NHWC in lite
        return TensorList{
            softmax(y, 1),         softmax(y, -1),         mean(y, {2, 3}, false),
            mean(y, {1}, true),    mean(y, {1, 2}, false), pad(y, {1, 2, 0, 1}, "constant", 0.5),
            concat({y, in[1]}, 1), reshape(y, {2, -1}),    permute(y, {0, 2, 3, 1})};
      },
      {{2, 3, 5, 4}, {2, 2, 5, 4}}, "after a convolution", false);
  expect_lite_matches(
      [&](const TensorList& in) {
        return TensorList{softmax(in[0], 0), concat({in[0], in[0]}, 0), mean(in[0], {0}, true),
                          permute(in[0], {1, 0})};
      },
      {{3, 7}}, "plain", false);
}

TEST(LiteModels, TheMainJobsNetworksMatchTheirGraphs) {
  for (bool cnn : {true, false}) {
    manual_seed(9);
    nn::ModulePtr net = testing::make_small_net(cnn);
    net->eval();
    graph::Graph g =
        graph::trace([&](const TensorList& in) { return TensorList{net->forward(in[0])}; },
                     {TensorSpec{{graph::kUnknownDim, 1, 16, 16}, DType::Float32, "x"}},
                     {.variables = net->named_parameters()});
    g = graph::optimize_for_inference(std::move(g));
    for (int64_t batch : {1, 3}) {
      std::vector<uint8_t> bytes = convert::to_lite(g, {.batch = batch}).bytes;
      Tensor x = random_tensor({batch, 1, 16, 16}, DType::Float32, 0, 1, 21);
      TensorList got = run_lite(bytes, {x});
      NoGradGuard no_grad;
      ASSERT_EQ(got.size(), 1u);
      testing::expect_close(got[0], net->forward(x), 1e-5, 1e-5,
                            std::string(cnn ? "CNN" : "MLP") + " batch " + std::to_string(batch));
    }
  }
}

// Full-integer int8: layers on int8 with calibrated ranges. Each result is within a few
// quantization steps of eager float32 (inputs, weights and outputs are each rounded once).
void expect_int8_close(const graph::GraphFn& fn, const Shape& shape, const std::string& what,
                       int64_t min_int8_ops) {
  std::vector<TensorSpec> specs{{shape, DType::Float32, ""}};
  graph::Graph g = graph::optimize_for_inference(graph::trace(fn, specs));
  TensorList calibration;
  Tensor x = random_tensor(shape, DType::Float32, -2, 2, 31);
  convert::LiteModel lm =
      convert::to_lite(g, {.quantization = convert::Quantization::int8, .calibration = {{x}}});
  EXPECT_GE(lm.int8_operators, min_int8_ops) << what;
  TensorList got = run_lite(lm.bytes, {x}), want = fn({x});
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    double range = amax(want[i]).item<double>() - std::min(0.0, amin(want[i]).item<double>());
    double step = range / 255;
    double worst = amax(abs(got[i] - want[i])).item<double>();
    EXPECT_LE(worst, 4 * step) << what << ": error " << worst << " with steps of " << step;
  }
}

TEST(LiteInt8, LayersStayWithinAFewQuantizationSteps) {
  std::mt19937 rng(8);
  auto pick = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  for (int trial = 0; trial < 8; ++trial) {
    int64_t C = pick(1, 6), H = pick(3, 8), W = pick(3, 8), K = pick(1, 3);
    bool depthwise = trial % 3 == 2;
    int64_t O = depthwise ? C : pick(1, 8);
    Tensor w = random_tensor({O, depthwise ? 1 : C, K, K}, DType::Float32, -1, 1, 41 + trial);
    Tensor b = random_tensor({O}, DType::Float32, -1, 1, 43 + trial);
    int64_t stride = pick(1, 2), pad = K / 2;
    auto fn = [=](const TensorList& in) {
      Tensor y = conv2d(in[0], w, b, stride, pad, 1, depthwise ? C : 1,
                        trial % 2 ? FusedActivation::relu : FusedActivation::none);
      return TensorList{max_pool2d(y, 2, 2, 0, 1, true)};
    };
    expect_int8_close(fn, {2, C, H, W},
                      "int8 conv+pool C=" + std::to_string(C) + " O=" + std::to_string(O) +
                          " K=" + std::to_string(K) + (depthwise ? " depthwise" : ""),
                      2);
  }
  for (int trial = 0; trial < 5; ++trial) {
    int64_t C = pick(1, 6), O = pick(1, 6), H = pick(1, 6), W = pick(1, 6), K = pick(1, 4);
    int64_t stride = pick(1, 3), pad = pick(0, K - 1), out_pad = stride > 1 ? 1 : 0;
    Tensor w = random_tensor({C, O, K, K}, DType::Float32, -1, 1, 61 + trial);
    Tensor b = trial % 2 ? random_tensor({O}, DType::Float32, -1, 1, 63 + trial) : Tensor();
    auto fn = [=](const TensorList& in) {
      Tensor y = conv_transpose2d(in[0], w, b, stride, pad, out_pad);
      return TensorList{trial % 2 ? relu(y) : y};
    };
    expect_int8_close(fn, {2, C, H, W},
                      "int8 transposed conv C=" + std::to_string(C) + " O=" + std::to_string(O) +
                          " K=" + std::to_string(K) + " stride=" + std::to_string(stride),
                      1);
  }
  // Wide rows: the 14- and 7-pixel int8 tiles and their tails, one-channel windows (a quad
  // per window row) and wider ones.
  for (auto [C, W, O] : {std::tuple{1, 30, 20}, std::tuple{1, 33, 12}, std::tuple{3, 29, 24},
                         std::tuple{2, 31, 40}}) {
    Tensor cw = random_tensor({O, C, 3, 3}, DType::Float32, -1, 1, 71 + O);
    Tensor cb = random_tensor({O}, DType::Float32, -1, 1, 72 + O);
    auto fn = [=](const TensorList& in) {
      return TensorList{conv2d(in[0], cw, cb, 1, 1, 1, 1, FusedActivation::relu)};
    };
    expect_int8_close(fn, {1, C, 3, W},
                      "int8 wide conv C=" + std::to_string(C) + " W=" + std::to_string(W) +
                          " O=" + std::to_string(O),
                      1);
  }
  Tensor w = random_tensor({7, 12}, DType::Float32, -1, 1, 51);
  Tensor b = random_tensor({7}, DType::Float32, -1, 1, 52);
  expect_int8_close(
      [&](const TensorList& in) { return TensorList{relu(matmul(in[0], w.t()) + b)}; }, {3, 12},
      "int8 linear", 1);
}

// Quantization saturates infinities and values past int32 (a division by zero in an int8
// region), and sends NaN to the zero point.
// Calibration data with NaN or inf gives no int8 scale: an error naming the value, not a
// model that computes zeros or fails to load.
TEST(LiteInt8, NonFiniteCalibrationIsAnError) {
  Tensor w = random_tensor({4, 2, 3, 3}, DType::Float32, -0.5, 0.5, 7);
  graph::GraphFn fn = [&](const TensorList& in) {
    return TensorList{relu(conv2d(in[0], w, Tensor(), 1, 1))};
  };
  graph::Graph g = graph::optimize_for_inference(
      graph::trace(fn, {TensorSpec{{1, 2, 5, 5}, DType::Float32, "x"}}));
  Tensor good = random_tensor({1, 2, 5, 5}, DType::Float32, -2, 2, 8);
  convert::LiteModel ok =
      convert::to_lite(g, {.quantization = convert::Quantization::int8, .calibration = {{good}}});
  EXPECT_GE(ok.int8_operators, 1);
  for (float bad : {std::nanf(""), std::numeric_limits<float>::infinity()}) {
    Tensor x = good.clone();
    x.narrow(2, 1, 1).fill_(bad);
    try {
      convert::to_lite(g, {.quantization = convert::Quantization::int8, .calibration = {{x}}});
      ADD_FAILURE() << "calibration with " << bad << " was accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("finite calibration"), std::string::npos) << e.what();
    }
  }
}

TEST(LiteInt8, QuantizeSaturates) {
  const float inf = std::numeric_limits<float>::infinity();
  const float x[] = {inf, -inf, NAN, 1e30f, -1e30f, 0.26f, -0.26f};
  int8_t y[7];
  lite::quantize(x, y, 7, 1.0f / 0.01f, -5);
  EXPECT_EQ(std::vector<int8_t>(y, y + 7),
            (std::vector<int8_t>{127, -128, -5, 127, -128, 21, -31}));
}

// The operators of a lite model with `code` whose output is int8.
int int8_outputs_of(const std::vector<uint8_t>& bytes, lite::schema::OpCode code) {
  std::unique_ptr<lite::Model> model;
  EXPECT_TRUE(lite::Model::from_buffer(bytes.data(), bytes.size(), model).ok());
  if (!model) return 0;
  int n = 0;
  for (const lite::OpDesc& op : model->data().ops) {
    n += op.code == code &&
         model->data().tensors[static_cast<size_t>(op.outputs[0])].dtype == lite::DType::int8;
  }
  return n;
}

// Full-integer int8 beyond the layers: elementwise ops, reductions, softmax, resize, pad,
// concat and embeddings run on int8 (float32 loops inside, Int8Float) and stay within a few
// quantization steps of eager float32.
TEST(LiteInt8, ElementwiseReductionsAndMovesRunOnInt8) {
  using lite::schema::OpCode;
  Tensor w1 = random_tensor({6, 3, 3, 3}, DType::Float32, -0.5, 0.5, 101);
  Tensor w2 = random_tensor({6, 3, 3, 3}, DType::Float32, -0.5, 0.5, 102);
  auto conv = [](const Tensor& x, const Tensor& w) { return conv2d(x, w, Tensor(), 1, 1); };
  struct Case {
    std::string what;
    graph::GraphFn fn;
    std::vector<OpCode> int8_codes;
  };
  std::vector<Case> cases = {
      {"residual add, sub",
       [&](const TensorList& in) {
         Tensor a = conv(in[0], w1), b = conv(in[0], w2);
         return TensorList{sub(add(a, b), b)};
       },
       {OpCode::OpCode_Add, OpCode::OpCode_Sub}},
      {"swish, tanh, maximum",
       [&](const TensorList& in) {
         Tensor a = conv(in[0], w1);
         return TensorList{maximum(tanh(mul(a, sigmoid(a))), conv(in[0], w2))};
       },
       {OpCode::OpCode_Logistic, OpCode::OpCode_Mul, OpCode::OpCode_Tanh, OpCode::OpCode_Maximum}},
      {"hard swish, relu6",
       [&](const TensorList& in) { return TensorList{relu6(hard_swish(conv(in[0], w1)))}; },
       {OpCode::OpCode_HardSwish, OpCode::OpCode_Relu6}},
      {"global average pool, softmax",
       [&](const TensorList& in) {
         return TensorList{softmax(mean(conv(in[0], w1), {2, 3}), 1)};
       },
       {OpCode::OpCode_Sum, OpCode::OpCode_Div, OpCode::OpCode_Softmax}},  // mean: sum / 30
      {"pad, concat",
       [&](const TensorList& in) {
         Tensor p = pad(conv(in[0], w1), {1, 2, 0, 1});
         return TensorList{concat({p, p}, 1)};
       },
       {OpCode::OpCode_Pad, OpCode::OpCode_Concat}},
      {"pad with -inf, then max pool (ONNX's asymmetric pooling pads)",
       [&](const TensorList& in) {
         const double inf = std::numeric_limits<double>::infinity();
         return TensorList{max_pool2d(pad(conv(in[0], w1), {0, 1, 1, 0}, "constant", -inf), 2)};
       },
       {OpCode::OpCode_Pad}},
      {"bilinear and nearest resize",
       [&](const TensorList& in) {
         Tensor a = conv(in[0], w1);
         return TensorList{add(interpolate(a, 2.0, "bilinear"), interpolate(a, 2.0, "nearest"))};
       },
       {OpCode::OpCode_Resize, OpCode::OpCode_Resize, OpCode::OpCode_Add}},
  };
  const Shape shape{2, 3, 6, 5};
  Tensor x = random_tensor(shape, DType::Float32, -2, 2, 103);
  for (const Case& c : cases) {
    graph::Graph g =
        graph::optimize_for_inference(graph::trace(c.fn, {TensorSpec{shape, DType::Float32, ""}}));
    convert::LiteModel lm =
        convert::to_lite(g, {.quantization = convert::Quantization::int8, .calibration = {{x}}});
    std::map<OpCode, int> want;
    for (OpCode code : c.int8_codes) ++want[code];
    for (auto [code, n] : want) {
      EXPECT_EQ(int8_outputs_of(lm.bytes, code), n)
          << c.what << ": " << lite::schema::EnumNameOpCode(code);
    }
    Tensor got = run_lite(lm.bytes, {x})[0], expected = c.fn({x})[0];
    double range = amax(expected).item<double>() - std::min(0.0, amin(expected).item<double>());
    double worst = amax(abs(got - expected)).item<double>();
    EXPECT_LE(worst, 4 * range / 255) << c.what << ": error " << worst << " of a range " << range;
  }
  // An embedding table quantized per tensor: rows keep its quantization.
  Tensor table = random_tensor({7, 5}, DType::Float32, -1, 1, 104);
  auto lookup = [&](const TensorList& in) { return TensorList{embedding(table, in[0])}; };
  Tensor ids = tensor({{3, 0, 6}, {1, 1, 5}}, DType::Int64);
  graph::Graph g =
      graph::optimize_for_inference(graph::trace(lookup, {TensorSpec{{2, 3}, DType::Int64, ""}}));
  convert::LiteModel lm =
      convert::to_lite(g, {.quantization = convert::Quantization::int8, .calibration = {{ids}}});
  EXPECT_EQ(int8_outputs_of(lm.bytes, OpCode::OpCode_EmbeddingLookup), 1);
  Tensor got = run_lite(lm.bytes, {ids})[0];
  // Half a step of the table's range (about 2 / 255) at most.
  testing::expect_close(got, lookup({ids})[0], 0, 1.0 / 255 + 1e-6, "int8 embedding");
}

// The VNNI int8 tiles against a scalar convolution, exactly; and the tiles that pool their
// int32 sums before requantizing give exactly the bytes of requantizing two rows and pooling
// them. Every geometry of the tiles (14, 7 and single pixels; pooled 2 x 4 pixels for up to
// 32 channels, 2 x 2 for more; odd widths and heights drop the last column and row) and of
// the patches (a quad per window row, or whole windows; dilated; with strides).
TEST(LiteInt8, VnniTilesMatchAScalarConvolutionPooledOrNot) {
  if (!lite::conv_vnni_supported()) GTEST_SKIP() << "no AVX-512 VNNI on this machine";
  std::mt19937 rng(12);
  auto pick = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  struct Case {
    int C, H, W, O, K, stride, dilation;
  };
  for (Case c :
       {Case{1, 28, 28, 32, 3, 1, 1}, Case{32, 14, 14, 64, 3, 1, 1}, Case{1, 9, 11, 16, 3, 1, 1},
        Case{3, 7, 13, 20, 3, 1, 1}, Case{2, 10, 9, 40, 2, 2, 1}, Case{5, 6, 6, 72, 1, 1, 1},
        Case{4, 8, 17, 8, 3, 1, 1}, Case{1, 12, 30, 24, 3, 1, 2}, Case{6, 9, 10, 36, 3, 2, 2},
        Case{64, 40, 36, 8, 3, 1, 1}}) {
    const int pad = c.K / 2 * c.dilation, span = (c.K - 1) * c.dilation + 1;
    const int OH = (c.H + 2 * pad - span) / c.stride + 1,
              OW = (c.W + 2 * pad - span) / c.stride + 1;
    lite::ConvTileArgs g{1,        c.H,      c.W,        c.C,        c.K, c.K, c.O,  OH,   OW,
                         c.stride, c.stride, c.dilation, c.dilation, pad, pad, true, false};
    lite::Int8TileArgs q{g, pick(-20, 20), pick(-10, 10), -128, 127};
    std::vector<int8_t> x(size_t(c.H) * c.W * c.C), w(size_t(c.K) * c.K * c.C * c.O);
    for (int8_t& v : x) v = static_cast<int8_t>(pick(-128, 127));
    for (int8_t& v : w) v = static_cast<int8_t>(pick(-127, 127));
    std::vector<int32_t> bias(c.O), correction(c.O);
    std::vector<float> scale(c.O);
    for (int o = 0; o < c.O; ++o) {
      bias[o] = pick(-3000, 3000);
      // Sums of K*K*C products of about 74 x 73 (std): outputs of some tens of steps.
      scale[o] = std::uniform_real_distribution<float>(0.004f, 0.012f)(rng) /
                 std::sqrt(static_cast<float>(c.K * c.K * c.C));
    }
    std::vector<int8_t> packed(lite::int8_packed_bytes(g));
    lite::pack_int8_weights(g, w.data(), q.x_zero, packed.data(), correction.data());
    const lite::Int8Weights weights{packed.data(), correction.data(), scale.data()};
    std::vector<uint8_t> scratch(lite::int8_scratch_bytes(g));
    std::vector<int8_t> rows(size_t(2) * OW * c.O), want(size_t(OW / 2) * c.O), got(want.size());
    lite::prepare_int8_image(q, x.data(), 0, scratch.data());
    std::string what = "C=" + std::to_string(c.C) + " H=" + std::to_string(c.H) +
                       " W=" + std::to_string(c.W) + " O=" + std::to_string(c.O) +
                       " K=" + std::to_string(c.K) + " stride=" + std::to_string(c.stride) +
                       " dilation=" + std::to_string(c.dilation);
    for (int oh = 0; oh < OH; ++oh) {
      std::vector<int8_t> row(size_t(OW) * c.O), expected(row.size());
      lite::conv2d_int8_tiles_row(q, weights, bias.data(), scratch.data(), oh, row.data());
      for (int ow = 0; ow < OW; ++ow) {
        for (int o = 0; o < c.O; ++o) {
          int32_t acc = bias[o];
          for (int kh = 0; kh < c.K; ++kh) {
            for (int kw = 0; kw < c.K; ++kw) {
              const int ih = oh * c.stride - pad + kh * c.dilation,
                        iw = ow * c.stride - pad + kw * c.dilation;
              if (ih < 0 || ih >= c.H || iw < 0 || iw >= c.W) continue;
              for (int ci = 0; ci < c.C; ++ci) {
                acc += (x[(size_t(ih) * c.W + iw) * c.C + ci] - q.x_zero) *
                       w[((size_t(kh) * c.K + kw) * c.C + ci) * c.O + o];
              }
            }
          }
          const float r = static_cast<float>(acc) * scale[o];
          const int32_t v = static_cast<int32_t>(r + std::copysign(0.5f, r)) + q.y_zero;
          expected[size_t(ow) * c.O + o] = static_cast<int8_t>(std::clamp(v, q.lo, q.hi));
        }
      }
      ASSERT_EQ(row, expected) << what << " row " << oh;
    }
    for (int ph = 0; ph < OH / 2; ++ph) {
      lite::conv2d_int8_tiles_row(q, weights, bias.data(), scratch.data(), 2 * ph, rows.data());
      lite::conv2d_int8_tiles_row(q, weights, bias.data(), scratch.data(), 2 * ph + 1,
                                  rows.data() + size_t(OW) * c.O);
      for (int pw = 0; pw < OW / 2; ++pw) {
        for (int o = 0; o < c.O; ++o) {
          auto at = [&](int r, int col) { return rows[(size_t(r) * OW + col) * c.O + o]; };
          want[size_t(pw) * c.O + o] = std::max(std::max(at(0, 2 * pw), at(0, 2 * pw + 1)),
                                                std::max(at(1, 2 * pw), at(1, 2 * pw + 1)));
        }
      }
      lite::conv2d_int8_tiles_pooled_row(q, weights, bias.data(), scratch.data(), ph, got.data());
      ASSERT_EQ(got, want) << what << " pooled row " << ph;
    }
  }
}

// Two layers reading one bias (ONNX exporters merge equal initializers): each quantizes
// its own copy with its own scales.
TEST(LiteInt8, LayersSharingABiasEachQuantizeIt) {
  Tensor w1 = random_tensor({4, 2, 3, 3}, DType::Float32, -1, 1, 81);
  Tensor w2 = random_tensor({4, 4, 3, 3}, DType::Float32, -1, 1, 82);
  Tensor shared = random_tensor({4}, DType::Float32, -1, 1, 83);
  auto fn = [=](const TensorList& in) {
    Tensor y = conv2d(in[0], w1, shared, 1, 1, 1, 1, FusedActivation::relu);
    return TensorList{conv2d(y, w2, shared, 1, 1, 1, 1, FusedActivation::relu)};
  };
  expect_int8_close(fn, {1, 2, 6, 6}, "int8 convs sharing a bias", 2);
}

// The tests' small CNN (16x16 inputs) traced for inference, weights as constants.
graph::Graph traced_small_cnn(uint64_t seed, nn::ModulePtr* keep = nullptr) {
  manual_seed(seed);
  nn::ModulePtr net = testing::make_small_net(true);
  net->eval();
  if (keep) *keep = net;
  graph::Graph g =
      graph::trace([&](const TensorList& in) { return TensorList{net->forward(in[0])}; },
                   {TensorSpec{{graph::kUnknownDim, 1, 16, 16}, DType::Float32, "x"}},
                   {.variables = net->named_parameters()});
  return graph::optimize_for_inference(std::move(g));
}

TEST(LiteInt8, TheSmallCnnAgreesWithFloat) {
  graph::Graph g = traced_small_cnn(9);
  std::vector<TensorList> calibration;
  for (int i = 0; i < 4; ++i) {
    calibration.push_back({random_tensor({16, 1, 16, 16}, DType::Float32, 0, 1, 60 + i)});
  }
  convert::LiteModel f32 = convert::to_lite(g, {.batch = 32});
  convert::LiteModel i8 = convert::to_lite(
      g, {.batch = 32, .quantization = convert::Quantization::int8, .calibration = calibration});
  EXPECT_GE(i8.int8_operators, 4);  // 2 conv (pools fused in), fully connected, the flatten
  Tensor x = random_tensor({32, 1, 16, 16}, DType::Float32, 0, 1, 70);
  Tensor a = run_lite(f32.bytes, {x})[0], q = run_lite(i8.bytes, {x})[0];
  double agree = mean(eq(argmax(a, 1), argmax(q, 1)).to(DType::Float32)).item<double>();
  EXPECT_GE(agree, 0.9) << "top-1 agreement of int8 with float32";
  double range = amax(abs(a)).item<double>();
  EXPECT_LE(amax(abs(a - q)).item<double>(), 0.1 * range);
}

// With TESSERA_WRITE_LITE_GOLDEN=DIR, writes the files test_lite_golden checks (the small
// CNN as float32 and int8 lite models, an input, and eager mode's output on it).
TEST(LiteGolden, WrittenWhenAsked) {
  const char* dir = std::getenv("TESSERA_WRITE_LITE_GOLDEN");
  if (!dir) GTEST_SKIP() << "set TESSERA_WRITE_LITE_GOLDEN=DIR to write the golden files";
  nn::ModulePtr net;
  graph::Graph g = traced_small_cnn(12, &net);
  std::vector<TensorList> calibration;
  for (int i = 0; i < 4; ++i) {
    calibration.push_back({random_tensor({8, 1, 16, 16}, DType::Float32, 0, 1, 90 + i)});
  }
  Tensor x = random_tensor({2, 1, 16, 16}, DType::Float32, 0, 1, 99);
  NoGradGuard no_grad;
  Tensor y = net->forward(x).contiguous();
  auto write = [&](const std::string& name, const void* data, size_t bytes) {
    std::ofstream(std::string(dir) + "/" + name, std::ios::binary)
        .write(static_cast<const char*>(data), static_cast<std::streamsize>(bytes));
  };
  std::vector<uint8_t> f32 = convert::to_lite(g, {.batch = 2}).bytes;
  std::vector<uint8_t> i8 =
      convert::to_lite(
          g, {.batch = 2, .quantization = convert::Quantization::int8, .calibration = calibration})
          .bytes;
  write("cnn_float32.tlite", f32.data(), f32.size());
  write("cnn_int8.tlite", i8.data(), i8.size());
  write("input.f32", x.data_ptr(), static_cast<size_t>(x.numel()) * 4);
  write("expected.f32", y.data_ptr(), static_cast<size_t>(y.numel()) * 4);
}

// Compressed weights: float16 halves the file and stays within float16's rounding of
// float32; int8 weights (per channel) quarter it and stay within a few percent. Both
// compute in float32.
TEST(LiteCompressedWeights, Float16AndInt8WeightsComputeInFloat) {
  nn::ModulePtr net;
  graph::Graph g = traced_small_cnn(14, &net);
  Tensor x = random_tensor({4, 1, 16, 16}, DType::Float32, 0, 1, 15);
  NoGradGuard no_grad;
  Tensor want = net->forward(x);
  double range = amax(abs(want)).item<double>();
  convert::LiteModel f32 = convert::to_lite(g, {.batch = 4});
  for (auto [how, tolerance] : {std::pair{convert::Quantization::float16, 2e-3},
                                std::pair{convert::Quantization::dynamic_int8, 0.05}}) {
    convert::LiteModel lm = convert::to_lite(g, {.batch = 4, .quantization = how});
    EXPECT_EQ(lm.int8_operators, 3);  // the two convolutions and the dense layer
    EXPECT_LT(lm.bytes.size(), f32.bytes.size());
    Tensor got = run_lite(lm.bytes, {x})[0];
    EXPECT_LE(amax(abs(got - want)).item<double>(), tolerance * range)
        << (how == convert::Quantization::float16 ? "float16" : "int8") << " weights";
  }
  // A transposed convolution's weights are compressed too.
  Tensor w = random_tensor({3, 4, 3, 3}, DType::Float32, -1, 1, 16);
  auto up = [&](const TensorList& in) {
    return TensorList{conv_transpose2d(in[0], w, Tensor(), 2, 1, 1)};
  };
  graph::Graph tg = graph::trace(up, {TensorSpec{{1, 3, 5, 5}, DType::Float32, "x"}});
  Tensor tx = random_tensor({1, 3, 5, 5}, DType::Float32, -1, 1, 17);
  Tensor twant = up({tx})[0];
  for (auto [how, tolerance] : {std::pair{convert::Quantization::float16, 2e-3},
                                std::pair{convert::Quantization::dynamic_int8, 0.05}}) {
    convert::LiteModel lm = convert::to_lite(tg, {.quantization = how});
    EXPECT_EQ(lm.int8_operators, 1);
    Tensor got = run_lite(lm.bytes, {tx})[0];
    EXPECT_LE(amax(abs(got - twant)).item<double>(), tolerance * amax(abs(twant)).item<double>())
        << "transposed convolution, compressed weights";
  }
}

// The main job's CNN: its weights dominate the file, and int8 stores them in a quarter of
// the bytes (biases in int32), so the file is at most 0.3x the float one (the issue's
// target).
TEST(LiteInt8, TheMainJobsCnnFileIsUnderAThirdOfFloat) {
  manual_seed(1);
  nn::ModulePtr net = tools::make_reference_cnn();
  net->eval();
  graph::Graph g =
      graph::trace([&](const TensorList& in) { return TensorList{net->forward(in[0])}; },
                   {TensorSpec{{graph::kUnknownDim, 1, 28, 28}, DType::Float32, "x"}},
                   {.variables = net->named_parameters()});
  g = graph::optimize_for_inference(std::move(g));
  convert::LiteModel f32 = convert::to_lite(g);
  convert::LiteModel i8 = convert::to_lite(
      g, {.quantization = convert::Quantization::int8,
          .calibration = {{random_tensor({8, 1, 28, 28}, DType::Float32, 0, 1, 80)}}});
  EXPECT_EQ(i8.int8_operators, 5);  // 2 conv (pools fused in), the flatten (a reshape), 2 dense
  // No layout transposes: the one-channel input is NHWC as it is, and the dense layer's
  // weights are reordered to read the NHWC flatten. No pooling operators: each convolution
  // pools its rows as it makes them.
  for (const convert::LiteModel* m : {&f32, &i8}) {
    const fb::Model* model = fb::GetModel(m->bytes.data());
    for (const fb::Operator* op : *model->operators()) {
      EXPECT_NE(op->opcode(), fb::OpCode_Transpose);
      EXPECT_NE(op->opcode(), fb::OpCode_MaxPool2D);
    }
  }
  EXPECT_LE(static_cast<double>(i8.bytes.size()), 0.3 * static_cast<double>(f32.bytes.size()))
      << i8.bytes.size() << " against " << f32.bytes.size();
  convert::LiteModel f16 = convert::to_lite(g, {.quantization = convert::Quantization::float16});
  convert::LiteModel w8 =
      convert::to_lite(g, {.quantization = convert::Quantization::dynamic_int8});
  EXPECT_LE(static_cast<double>(f16.bytes.size()), 0.52 * static_cast<double>(f32.bytes.size()));
  EXPECT_LE(static_cast<double>(w8.bytes.size()), 0.3 * static_cast<double>(f32.bytes.size()));
}

TEST(LiteModels, UnsupportedOpsAreListedWithTheirNodes) {
  auto fn = [](const TensorList& in) {
    return TensorList{cumsum(in[0], 1), conv2d(in[1], ones({4, 2, 3, 3}), Tensor(), 1, 0, 1, 2)};
  };
  try {
    convert_fn(fn, {{2, 3}, {1, 4, 4, 4}}, false);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("2 of"), std::string::npos) << m;
    EXPECT_NE(m.find("cumsum"), std::string::npos) << m;
    EXPECT_NE(m.find("grouped convolution"), std::string::npos) << m;
    EXPECT_NE(m.find("node "), std::string::npos) << m;
  }
}

std::vector<uint8_t> small_model() {
  Tensor w = random_tensor({3, 1, 3, 3}, DType::Float32, -1, 1, 2);
  return convert_fn(
      [&](const TensorList& in) {
        return TensorList{
            softmax(reshape(max_pool2d(conv2d(in[0], w, Tensor(), 1, 1), 2), {1, -1}), 1)};
      },
      {{1, 1, 6, 6}}, true);
}

TEST(LiteInterpreter, CallsReportMisuse) {
  std::vector<uint8_t> bytes = small_model();
  std::unique_ptr<lite::Model> model;
  ASSERT_TRUE(lite::Model::from_buffer(bytes.data(), bytes.size(), model).ok());
  EXPECT_EQ(model->metadata("producer"), "tessera convert");
  lite::Interpreter interpreter(*model);
  lite::Result early = interpreter.invoke();
  EXPECT_EQ(early.status, lite::Status::not_allocated);
  EXPECT_EQ(early.message, "invoke: call allocate() first");
  EXPECT_EQ(interpreter.input_data(0), nullptr);
  ASSERT_TRUE(interpreter.allocate().ok());
  size_t need = interpreter.arena_bytes();
  EXPECT_GT(need, 0u);
  float x[36] = {};
  EXPECT_EQ(interpreter.set_input(0, x, 35 * 4).status, lite::Status::invalid_argument);
  EXPECT_EQ(interpreter.set_input(1, x, 36 * 4).status, lite::Status::invalid_argument);
  EXPECT_TRUE(interpreter.set_input(0, x, 36 * 4).ok());
  // Caller memory: too small or misaligned is refused with the size it needs.
  alignas(64) static uint8_t arena[1 << 16];
  lite::Result r = interpreter.allocate(arena, need - 1);
  EXPECT_EQ(r.status, lite::Status::invalid_argument);
  EXPECT_NE(r.message.find(std::to_string(need)), std::string::npos) << r.message;
  EXPECT_EQ(interpreter.allocate(arena + 1, sizeof(arena) - 1).status,
            lite::Status::invalid_argument);
  ASSERT_TRUE(interpreter.allocate(arena, need).ok());
  EXPECT_EQ(interpreter.input_data(0),
            arena + (static_cast<uint8_t*>(interpreter.input_data(0)) - arena));
  ASSERT_TRUE(interpreter.set_input(0, x, sizeof(x)).ok());
  ASSERT_TRUE(interpreter.invoke().ok());
  const float* p = static_cast<const float*>(interpreter.output_data(0));
  float total = 0;
  for (int i = 0; i < 27; ++i) total += p[i];
  EXPECT_NEAR(total, 1.0f, 1e-5);  // softmax
}

TEST(LiteInterpreter, ArenaReusesMemory) {
  // A chain of 8 activations of 4 KiB: the arena holds two or three of them at a time, not
  // every one side by side.
  std::vector<uint8_t> bytes = convert_fn(
      [](const TensorList& in) {
        Tensor y = in[0];
        for (int i = 0; i < 4; ++i) y = sigmoid(tanh(y));
        return TensorList{y};
      },
      {{1, 1024}}, true);
  std::unique_ptr<lite::Model> model;
  ASSERT_TRUE(lite::Model::from_buffer(bytes.data(), bytes.size(), model).ok());
  lite::Interpreter interpreter(*model);
  ASSERT_TRUE(interpreter.allocate().ok());
  size_t sum = 0;
  for (size_t t = 0; t < model->data().tensors.size(); ++t) {
    if (!model->data().tensors[t].constant) sum += model->data().tensors[t].bytes;
  }
  EXPECT_EQ(sum, 9u * 4096);
  EXPECT_LE(interpreter.arena_bytes(), sum / 3) << interpreter.arena_bytes() << " of " << sum;
}

// With TESSERA_WRITE_LITE_CORPUS=DIR, the hand-made bad models below and a valid one are
// written there: that is how tests/corpus/lite was made (the fuzz script starts from it).
void write_corpus_file(const std::string& name, const uint8_t* data, size_t size) {
  const char* dir = std::getenv("TESSERA_WRITE_LITE_CORPUS");
  if (!dir) return;
  std::ofstream(std::string(dir) + "/" + name + ".tlite", std::ios::binary)
      .write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
}

// Every prefix of a valid model, and random byte flips in it, load as an error or as a
// model that runs; none crashes (the ASan build checks every access).
TEST(LiteModelFiles, TruncatedAndCorruptedModelsAreErrors) {
  std::vector<uint8_t> bytes = small_model();
  write_corpus_file("valid_small", bytes.data(), bytes.size());
  write_corpus_file("truncated", bytes.data(), bytes.size() / 2);
  for (size_t cut = 0; cut < bytes.size(); cut += std::max<size_t>(1, bytes.size() / 300)) {
    std::vector<uint8_t> part(bytes.begin(), bytes.begin() + static_cast<ptrdiff_t>(cut));
    std::unique_ptr<lite::Model> model;
    lite::Result r = lite::Model::from_buffer(part.data(), part.size(), model);
    EXPECT_FALSE(r.ok()) << "a model cut at " << cut << " of " << bytes.size() << " loaded";
    EXPECT_FALSE(r.message.empty());
  }
  std::mt19937 rng(1);
  int loaded = 0;
  for (int trial = 0; trial < 3000; ++trial) {
    std::vector<uint8_t> bad = bytes;
    for (int k = 0; k < 1 + trial % 4; ++k) {
      bad[rng() % bad.size()] ^= static_cast<uint8_t>(1u << (rng() % 8));
    }
    std::unique_ptr<lite::Model> model;
    if (!lite::Model::from_buffer(bad.data(), bad.size(), model).ok()) continue;
    ++loaded;
    lite::Interpreter interpreter(*model);
    if (interpreter.allocate().ok()) {
      EXPECT_TRUE(interpreter.invoke().ok());
    }
  }
  EXPECT_GT(loaded, 0);  // most flips land in weights, which load fine
}

// Models built by hand with one inconsistency each.
TEST(LiteModelFiles, InconsistentModelsNameTheProblem) {
  struct Case {
    const char* file;
    const char* what;
    std::function<void(flatbuffers::FlatBufferBuilder&,
                       std::vector<flatbuffers::Offset<fb::Tensor>>&,
                       std::vector<flatbuffers::Offset<fb::Operator>>&, std::vector<fb::Buffer>&,
                       std::vector<int>& inputs)>
        edit;
    const char* expect;
  };
  std::vector<int32_t> shape{1, 4};
  auto relu_op = [](flatbuffers::FlatBufferBuilder& b, std::vector<int> in, std::vector<int> out,
                    fb::OpCode code = fb::OpCode_Relu) {
    return fb::CreateOperatorDirect(b, code, &in, &out);
  };
  std::vector<Case> cases = {
      {"buffer_out_of_range", "a buffer past the data",
       [&](auto& b, auto& t, auto& ops, auto& buffers, auto& in) {
         buffers.push_back(fb::Buffer(64, 16));
         t.push_back(fb::CreateTensorDirect(b, "w", fb::DType_Float32, &shape, 0));
         ops.push_back(relu_op(b, {0}, {1}));
       },
       "outside the model"},
      {"buffer_size_mismatch", "a buffer of the wrong size",
       [&](auto& b, auto& t, auto& ops, auto& buffers, auto& in) {
         buffers.push_back(fb::Buffer(0, 8));
         t.push_back(fb::CreateTensorDirect(b, "w", fb::DType_Float32, &shape, 0));
         ops.push_back(relu_op(b, {0}, {1}));
       },
       "needs 16 bytes"},
      {"negative_dim", "a negative dimension",
       [&](auto& b, auto& t, auto& ops, auto&, auto& in) {
         std::vector<int32_t> bad{1, -4};
         t.push_back(fb::CreateTensorDirect(b, "y", fb::DType_Float32, &bad));
         ops.push_back(relu_op(b, {0}, {1}));
       },
       "negative dimension"},
      {"huge_tensor", "a huge tensor",
       [&](auto& b, auto& t, auto& ops, auto&, auto& in) {
         std::vector<int32_t> bad{65536, 65536};
         t.push_back(fb::CreateTensorDirect(b, "y", fb::DType_Float32, &bad));
         ops.push_back(relu_op(b, {0}, {1}));
       },
       "more than 2^31"},
      {"unknown_opcode", "an unknown op code",
       [&](auto& b, auto& t, auto& ops, auto&, auto& in) {
         t.push_back(fb::CreateTensorDirect(b, "y", fb::DType_Float32, &shape));
         ops.push_back(relu_op(b, {0}, {1}, static_cast<fb::OpCode>(999)));
       },
       "unknown op code"},
      {"tensor_index_out_of_range", "a tensor index out of range",
       [&](auto& b, auto& t, auto& ops, auto&, auto& in) {
         t.push_back(fb::CreateTensorDirect(b, "y", fb::DType_Float32, &shape));
         ops.push_back(relu_op(b, {7}, {1}));
       },
       "names tensor 7"},
      {"read_before_write", "a read before any write",
       [&](auto& b, auto& t, auto& ops, auto&, auto& in) {
         t.push_back(fb::CreateTensorDirect(b, "y", fb::DType_Float32, &shape));
         t.push_back(fb::CreateTensorDirect(b, "z", fb::DType_Float32, &shape));
         ops.push_back(relu_op(b, {2}, {1}));
       },
       "before anything writes it"},
      {"quantization_mismatch", "inconsistent quantization",
       [&](auto& b, auto& t, auto& ops, auto&, auto& in) {
         std::vector<float> scales{0.5f, 0.25f};
         std::vector<int64_t> zeros{0};
         auto q = fb::CreateQuantizationDirect(b, &scales, &zeros, 1);
         t.push_back(fb::CreateTensorDirect(b, "y", fb::DType_Int8, &shape, -1, q));
         ops.push_back(relu_op(b, {0}, {1}));
       },
       "quantization scales"},
      {"conv_no_input_channels", "a convolution over no input channels",
       [&](auto& b, auto& t, auto& ops, auto& buffers, auto& in) {
         // Zero channels and wide dims: output pixels would sum taps of nothing for hours.
         std::vector<int32_t> xs{1, 4, 4, 0}, ws{3, 3, 0, 2}, ys{1, 4, 4, 2};
         t[0] = fb::CreateTensorDirect(b, "x", fb::DType_Float32, &xs);
         t.push_back(fb::CreateTensorDirect(b, "y", fb::DType_Float32, &ys));
         buffers.push_back(fb::Buffer(0, 0));
         t.push_back(fb::CreateTensorDirect(b, "w", fb::DType_Float32, &ws, 0));
         std::vector<int> ins{0, 2}, outs{1};
         auto options = fb::CreateConvOptions(b, 1, 1, 1, 1, 1, 1);
         ops.push_back(fb::CreateOperatorDirect(b, fb::OpCode_Conv2D, &ins, &outs,
                                                fb::OperatorOptions_ConvOptions, options.Union()));
       },
       "no input channels"},
      {"kernel_shape_mismatch", "shapes a kernel refuses",
       [&](auto& b, auto& t, auto& ops, auto&, auto& in) {
         std::vector<int32_t> other{1, 5};
         t.push_back(fb::CreateTensorDirect(b, "y", fb::DType_Float32, &other));
         ops.push_back(relu_op(b, {0}, {1}));
       },
       "output 0 has shape [1,5]"},
  };
  for (const Case& c : cases) {
    flatbuffers::FlatBufferBuilder b;
    std::vector<flatbuffers::Offset<fb::Tensor>> tensors{
        fb::CreateTensorDirect(b, "x", fb::DType_Float32, &shape)};
    std::vector<flatbuffers::Offset<fb::Operator>> ops;
    std::vector<fb::Buffer> buffers;
    std::vector<int> inputs{0}, outputs{1};
    c.edit(b, tensors, ops, buffers, inputs);
    std::vector<uint8_t> data(16, 0);
    b.ForceVectorAlignment(data.size(), 1, 64);
    auto data_offset = b.CreateVector(data);
    auto model =
        fb::CreateModel(b, 1, b.CreateVector(tensors), b.CreateVector(ops), b.CreateVector(inputs),
                        b.CreateVector(outputs), b.CreateVectorOfStructs(buffers), 0, data_offset);
    fb::FinishModelBuffer(b, model);
    write_corpus_file(c.file, b.GetBufferPointer(), b.GetSize());
    std::unique_ptr<lite::Model> loaded;
    lite::Result r = lite::Model::from_buffer(b.GetBufferPointer(), b.GetSize(), loaded);
    if (r.ok()) {
      lite::Interpreter interpreter(*loaded);
      r = interpreter.allocate();
    }
    EXPECT_FALSE(r.ok()) << c.what;
    EXPECT_NE(r.message.find(c.expect), std::string::npos) << c.what << ": " << r.message;
  }
}

// The committed corpus (also the fuzzer's seeds): valid_* files load and run, the rest are
// errors with a message.
TEST(LiteModelFiles, TheCommittedCorpusLoadsOrFailsCleanly) {
  int files = 0;
  for (const auto& entry :
       std::filesystem::directory_iterator(std::string(TESSERA_TEST_DIR) + "/corpus/lite")) {
    std::ifstream in(entry.path(), std::ios::binary);
    std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), {});
    std::unique_ptr<lite::Model> model;
    lite::Result r = lite::Model::from_buffer(bytes.data(), bytes.size(), model);
    if (r.ok()) {
      lite::Interpreter interpreter(*model);
      r = interpreter.allocate();
      if (r.ok()) r = interpreter.invoke();
    }
    bool valid = entry.path().filename().string().rfind("valid_", 0) == 0;
    EXPECT_EQ(r.ok(), valid) << entry.path() << ": " << r.message;
    if (!valid) {
      EXPECT_FALSE(r.message.empty()) << entry.path();
    }
    ++files;
  }
  EXPECT_GE(files, 10);
}

}  // namespace
}  // namespace tessera
