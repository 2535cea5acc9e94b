// cond and while_loop: eager behaviour, traced graphs that choose at run time, gradients
// through both (against float64 central differences of the graph itself), saved models
// that keep them, and the errors users see.
#include <cstdio>
#include <cstdlib>
#include <fstream>

#include "tessera/graph/control_flow.h"
#include "tessera/graph/saved_model.h"
#include "test_util.h"

namespace tessera {
namespace {

using graph::TensorSpec;
using testing::expect_close;
using testing::random_tensor;

Tensor positive(const Tensor& x) { return gt(sum(x), scalar_tensor(0.0, x.dtype())); }

// y = cond(sum(x) > 0, x * w + 1, tanh(x) - w): both branches use a captured weight.
TensorList branchy(const TensorList& in, const Tensor& w) {
  const Tensor& x = in[0];
  return cond(
      positive(x), [&](const TensorList& a) { return TensorList{add(mul(a[0], w), 1.0)}; },
      [&](const TensorList& a) { return TensorList{sub(tanh(a[0]), w)}; }, {x});
}

int count_ops(const graph::Graph& g, const std::string& op) {
  int n = 0;
  for (const graph::Node& node : g.nodes) n += op == node.op();
  return n;
}

TEST(Cond, EagerRunsOnlyTheBranchTaken) {
  int then_calls = 0, else_calls = 0;
  Tensor x = tensor({1, 2});
  auto then_fn = [&](const TensorList& a) {
    ++then_calls;
    return TensorList{mul(a[0], 2.0)};
  };
  auto else_fn = [&](const TensorList& a) {
    ++else_calls;
    return TensorList{neg(a[0])};
  };
  TensorList y = cond(positive(x), then_fn, else_fn, {x});
  expect_close(y[0], tensor({2, 4}));
  EXPECT_EQ(then_calls, 1);
  EXPECT_EQ(else_calls, 0);
  EXPECT_THROW(cond(x, then_fn, else_fn, {x}), Error);  // two-element predicate
}

TEST(Cond, TracedGraphChoosesAtRunTimeWithOneTrace) {
  Tensor w = random_tensor({3}, DType::Float32);
  Function f([&](const TensorList& in) { return branchy(in, w); }, {.signature = {{{-1, 3}}}});
  for (int64_t batch : {1, 4}) {
    for (double sign : {1.0, -1.0}) {
      Tensor x = mul(random_tensor({batch, 3}, DType::Float32, 0.1, 1.0, batch), sign);
      expect_close(f({x})[0], branchy({x}, w)[0], 1e-6, 1e-6, "batch and sign");
    }
  }
  EXPECT_EQ(f.trace_count(), 1);
  const graph::Graph& g = f.graph_for({random_tensor({2, 3}, DType::Float32)});
  EXPECT_EQ(count_ops(g, "cond"), 1);
  EXPECT_NE(g.to_string().find("then_branch: graph("), std::string::npos) << g.to_string();
}

TEST(Cond, BranchesThatDisagreeAreAClearError) {
  Function f([](const TensorList& in) {
    return cond(
        positive(in[0]), [](const TensorList& a) { return TensorList{a[0]}; },
        [](const TensorList& a) { return TensorList{sum(a[0], {0})}; }, {in[0]});
  });
  try {
    f({random_tensor({2, 3}, DType::Float32)});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("cond"), std::string::npos) << msg;
    EXPECT_NE(msg.find("float32[2,3]"), std::string::npos) << msg;
    EXPECT_NE(msg.find("float32[3]"), std::string::npos) << msg;
  }
}

// Checks the graph's gradient of loss_fn against central differences of the graph's loss
// (float64): both run as traced graphs, so this tests the gradient rules of the graph ops.
void graph_gradcheck(const std::function<Tensor(const TensorList&)>& loss_fn, TensorList inputs,
                     const std::string& what) {
  std::vector<TensorSpec> sig;
  for (const Tensor& t : inputs) sig.push_back({t.shape(), DType::Float64});
  Function loss([&](const TensorList& in) { return TensorList{loss_fn(in)}; }, {.signature = sig});
  Function grads(
      [&](const TensorList& in) {
        TensorList xs = in;
        for (Tensor& x : xs) x.set_requires_grad(true);
        TensorList g = grad({loss_fn(xs)}, xs, {}, false, false, /*allow_unused=*/true);
        for (size_t i = 0; i < g.size(); ++i) {
          if (!g[i].defined()) g[i] = zeros_like(xs[i]);
        }
        return g;
      },
      {.signature = sig});
  TensorList analytic = grads(inputs);
  const double eps = 1e-6;
  for (size_t i = 0; i < inputs.size(); ++i) {
    Tensor numeric = zeros(inputs[i].shape(), DType::Float64);
    for (int64_t k = 0; k < inputs[i].numel(); ++k) {
      TensorList plus = inputs, minus = inputs;
      plus[i] = inputs[i].clone();
      minus[i] = inputs[i].clone();
      double v = inputs[i].reshape({-1}).to_vector<double>()[k];
      plus[i].reshape({-1}).select(0, k).fill_(v + eps);
      minus[i].reshape({-1}).select(0, k).fill_(v - eps);
      double d = (loss(plus)[0].item<double>() - loss(minus)[0].item<double>()) / (2 * eps);
      numeric.reshape({-1}).select(0, k).fill_(d);
    }
    expect_close(analytic[i], numeric, 1e-4, 1e-6, str_cat(what, ": input ", i));
  }
}

TEST(Cond, GradientsOfBothBranchesAndTheirCapturesMatchFiniteDifferences) {
  auto loss = [](const TensorList& in) {
    const Tensor& w = in[1];
    Tensor y = branchy({in[0]}, w)[0];
    return sum(mul(y, y));
  };
  Tensor w = random_tensor({3}, DType::Float64, -1, 1, 7);
  graph_gradcheck(loss, {random_tensor({2, 3}, DType::Float64, 0.1, 1.0, 3), w}, "then branch");
  graph_gradcheck(loss, {random_tensor({2, 3}, DType::Float64, -1.0, -0.1, 4), w}, "else branch");
}

TEST(Cond, GraphGradientsMatchEagerOnes) {
  Tensor w = random_tensor({3}, DType::Float32, -1, 1, 5);
  Tensor x = random_tensor({4, 3}, DType::Float32, 0.1, 1.0, 6);
  auto step = [](const TensorList& in) {
    TensorList xs = in;
    for (Tensor& t : xs) t.set_requires_grad(true);
    Tensor loss = mean(square(branchy({xs[0]}, xs[1])[0]));
    return grad({loss}, xs);
  };
  Function f(step);
  TensorList graph_grads = f({x, w}), eager_grads = step({x.detach(), w.detach()});
  for (size_t i = 0; i < 2; ++i) expect_close(graph_grads[i], eager_grads[i], 1e-5, 1e-6);
}

// Doubles x until its sum passes a limit, counting the iterations in an int64 variable.
TensorList doubling(const TensorList& vars, double limit, int64_t max_iterations = -1) {
  return while_loop(
      [=](const TensorList& v) {
        return TensorList{lt(sum(v[0]), scalar_tensor(limit, v[0].dtype()))};
      },
      [](const TensorList& v) {
        return TensorList{mul(v[0], 2.0), add(v[1], int64_t{1})};
      },
      vars, max_iterations);
}

TEST(WhileLoop, EagerAndTracedLoopsRunTheSameIterations) {
  Function f([](const TensorList& in) { return doubling(in, 100.0); },
             {.signature = {{{-1}}, {{}, DType::Int64}}});
  Tensor zero = scalar_tensor(int64_t{0}, DType::Int64);
  for (float start : {1.0f, 3.0f, 200.0f}) {
    Tensor x = full({3}, start);
    TensorList eager = doubling({x, zero}, 100.0), traced = f({x, zero});
    expect_close(traced[0], eager[0]);
    EXPECT_EQ(traced[1].item<int64_t>(), eager[1].item<int64_t>()) << start;
  }
  EXPECT_EQ(doubling({full({3}, 1.0f), zero}, 100.0)[1].item<int64_t>(), 6);  // 3 * 2^6 > 100
  EXPECT_EQ(f({full({5}, 1.0f), zero})[1].item<int64_t>(), 5);                // another size
  EXPECT_EQ(f.trace_count(), 1);
  EXPECT_EQ(doubling({full({3}, 1.0f), zero}, 100.0, 2)[1].item<int64_t>(), 2);  // the cap
}

TEST(WhileLoop, BodyThatChangesAShapeIsAClearError) {
  auto grow = [](const TensorList& v) { return TensorList{concat({v[0], v[0]}, 0)}; };
  auto forever = [](const TensorList& v) {
    return TensorList{gt(sum(v[0]), scalar_tensor(0.0, DType::Float32))};
  };
  Function f([&](const TensorList& in) { return while_loop(forever, grow, in); });
  try {
    f({ones({2})});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("while_loop"), std::string::npos) << msg;
    EXPECT_NE(msg.find("loop variable 0 from float32[2] into float32[4]"), std::string::npos)
        << msg;
  }
}

// h = tanh(h * w + x) repeated while the loop counter is below n (an input): an RNN-like
// recurrence whose length the data decides.
Tensor recurrence(const TensorList& in, int64_t max_iterations) {
  const Tensor &x = in[0], &w = in[1], &n = in[2];
  TensorList out = while_loop([&](const TensorList& v) { return TensorList{lt(v[1], n)}; },
                              [&](const TensorList& v) {
                                return TensorList{tanh(add(mul(v[0], w), x)), add(v[1], 1.0)};
                              },
                              {x, zeros({}, x.dtype())}, max_iterations);
  return sum(square(out[0]));
}

TEST(WhileLoop, GradientsThroughTheLoopMatchFiniteDifferences) {
  Tensor x = random_tensor({2, 3}, DType::Float64, -1, 1, 11);
  Tensor w = random_tensor({3}, DType::Float64, -1, 1, 12);
  for (double steps : {0.5, 1.5, 4.5, 20.5}) {  // non-integers: no jump; 20.5 hits the cap
    graph_gradcheck([](const TensorList& in) { return recurrence(in, 8); },
                    {x, w, scalar_tensor(steps, DType::Float64)}, str_cat(steps, " steps"));
  }
}

TEST(WhileLoop, GradientsReachThroughACondInsideTheBody) {
  // The body's cond captures x and w, which the body itself captures from the trace.
  auto loss = [](const TensorList& in) {
    const Tensor &x = in[0], &w = in[1];
    TensorList out = while_loop(
        [](const TensorList& v) { return TensorList{lt(v[1], scalar_tensor(3.0, v[1].dtype()))}; },
        [&](const TensorList& v) {
          Tensor h = cond(
              positive(v[0]),
              [&](const TensorList& a) { return TensorList{tanh(add(mul(a[0], w), x))}; },
              [&](const TensorList& a) { return TensorList{sub(mul(a[0], 0.5), x)}; }, {v[0]})[0];
          return TensorList{h, add(v[1], 1.0)};
        },
        {x, zeros({}, x.dtype())}, 5);
    return sum(square(out[0]));
  };
  Tensor w = random_tensor({3}, DType::Float64, -1, 1, 13);
  for (uint64_t seed : {14, 15, 16}) {
    graph_gradcheck(loss, {random_tensor({2, 3}, DType::Float64, -1, 1, seed), w},
                    str_cat("seed ", seed));
  }
}

TEST(WhileLoop, GradientsNeedMaximumIterations) {
  Function f([](const TensorList& in) {
    TensorList xs = in;
    xs[0].set_requires_grad(true);
    return grad({recurrence(xs, -1)}, {xs[0]});
  });
  try {
    f({ones({2}), ones({2}), scalar_tensor(2.0, DType::Float32)});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("maximum_iterations"), std::string::npos) << e.what();
  }
}

TEST(ControlFlow, SavedModelsKeepBranchesAndLoops) {
  Tensor w = random_tensor({3}, DType::Float32);
  Function f(
      [&](const TensorList& in) {
        Tensor y = branchy(in, w)[0];
        Tensor n = scalar_tensor(int64_t{0}, DType::Int64);
        return doubling({y, n}, 50.0, 20);
      },
      {.signature = {{{-1, 3}}}});
  Tensor x = random_tensor({2, 3}, DType::Float32, 0.1, 1, 2);
  auto g = std::make_shared<graph::Graph>(f.graph_for({x}));
  // TESSERA_WRITE_CORPUS=dir writes this model there as a fuzzer seed (tests/corpus).
  if (const char* corpus = std::getenv("TESSERA_WRITE_CORPUS")) {
    std::ofstream(std::string(corpus) + "/valid_control_flow.tsm", std::ios::binary)
        << graph::serialize_model({{"serve", g}});
  }
  std::string path = ::testing::TempDir() + "control_flow.tsm";
  graph::save_model(path, {{"serve", g}});
  graph::SavedModel model = graph::SavedModel::load(path);
  for (double sign : {1.0, -1.0}) {
    Tensor xs = mul(x, sign);
    TensorList want = f({xs}), got = model.run({xs});
    expect_close(got[0], want[0]);
    EXPECT_EQ(got[1].item<int64_t>(), want[1].item<int64_t>());
  }
  std::remove(path.c_str());
}

TEST(ControlFlow, HostileCaptureCountsAreLoadErrors) {
  Function f([](const TensorList& in) {
    return cond(
        positive(in[0]), [](const TensorList& a) { return TensorList{exp(a[0])}; },
        [](const TensorList& a) { return TensorList{neg(a[0])}; }, {in[0]});
  });
  graph::Graph g = f.graph_for({ones({2})});
  for (graph::Node& node : g.nodes) {
    if (std::string(node.op()) == "cond") node.attrs.set("then_captures", int64_t{5});
  }
  std::string bytes = graph::serialize_model({{"serve", std::make_shared<graph::Graph>(g)}});
  if (const char* corpus = std::getenv("TESSERA_WRITE_CORPUS")) {
    std::ofstream(std::string(corpus) + "/cond_capture_count_out_of_range.tsm", std::ios::binary)
        << bytes;
  }
  try {
    graph::SavedModel::from_bytes(
        std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()));
    FAIL() << "expected an error";
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("then_captures"), std::string::npos) << msg;
  }
}

}  // namespace
}  // namespace tessera
