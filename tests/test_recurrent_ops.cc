// lstm_sequence against a step-by-step reference written with elementwise ops, on random
// shapes (empty and size-1 dims included), both directions, with and without biases; its
// gradients against float64 finite differences, first and second order.
#include "test_util.h"

namespace tessera {
namespace {

using testing::expect_close;
using testing::expect_error;
using testing::gradcheck;
using testing::gradgradcheck;
using testing::random_tensor;

struct LstmInputs {
  Tensor x, h0, c0, w_ih, w_hh, b_ih, b_hh;
};

LstmInputs random_inputs(int64_t T, int64_t N, int64_t I, int64_t H, DType dtype, uint64_t seed) {
  return {random_tensor({T, N, I}, dtype, -1, 1, seed),
          random_tensor({N, H}, dtype, -1, 1, seed + 1),
          random_tensor({N, H}, dtype, -1, 1, seed + 2),
          random_tensor({4 * H, I}, dtype, -0.7, 0.7, seed + 3),
          random_tensor({4 * H, H}, dtype, -0.7, 0.7, seed + 4),
          random_tensor({4 * H}, dtype, -0.5, 0.5, seed + 5),
          random_tensor({4 * H}, dtype, -0.5, 0.5, seed + 6)};
}

// The equations one step at a time (what nn::LSTM computed before the fused op).
std::pair<Tensor, Tensor> reference(const LstmInputs& in, bool bias, bool reverse) {
  const int64_t T = in.x.size(0), H = in.w_hh.size(1);
  Tensor h = in.h0, c = in.c0;
  std::vector<Tensor> ys(static_cast<size_t>(T)), cs(static_cast<size_t>(T));
  for (int64_t step = 0; step < T; ++step) {
    int64_t t = reverse ? T - 1 - step : step;
    Tensor gates = matmul(in.x.select(0, t), in.w_ih.t()) + matmul(h, in.w_hh.t());
    if (bias) gates = gates + in.b_ih + in.b_hh;
    auto g = chunk(gates, 4, 1);
    c = sigmoid(g[1]) * c + sigmoid(g[0]) * tanh(g[2]);
    h = sigmoid(g[3]) * tanh(c);
    ys[static_cast<size_t>(t)] = h;
    cs[static_cast<size_t>(t)] = c;
  }
  if (T == 0)
    return {zeros({0, in.x.size(1), H}, in.x.dtype()), zeros({0, in.x.size(1), H}, in.x.dtype())};
  return {stack(ys, 0), stack(cs, 0)};
}

std::pair<Tensor, Tensor> fused(const LstmInputs& in, bool bias, bool reverse) {
  return lstm_sequence(in.x, in.h0, in.c0, in.w_ih, in.w_hh, bias ? in.b_ih : Tensor(),
                       bias ? in.b_hh : Tensor(), reverse);
}

TEST(LstmSequence, MatchesStepByStepReference) {
  struct Case {
    int64_t T, N, I, H;
  };
  const Case cases[] = {{5, 3, 4, 6}, {1, 1, 1, 1}, {7, 2, 9, 3},  {0, 2, 3, 4},
                        {3, 0, 2, 2}, {4, 1, 0, 5}, {6, 4, 16, 17}};
  uint64_t seed = 10;
  for (const Case& k : cases) {
    for (DType dtype : {DType::Float32, DType::Float64}) {
      for (bool bias : {true, false}) {
        for (bool reverse : {false, true}) {
          LstmInputs in = random_inputs(k.T, k.N, k.I, k.H, dtype, seed += 7);
          auto [y, c] = fused(in, bias, reverse);
          auto [y_ref, c_ref] = reference(in, bias, reverse);
          std::string what = "T=" + std::to_string(k.T) + " N=" + std::to_string(k.N) +
                             " I=" + std::to_string(k.I) + " H=" + std::to_string(k.H) + " " +
                             dtype_name(dtype) + (bias ? " bias" : "") +
                             (reverse ? " reverse" : "");
          double tol = dtype == DType::Float32 ? 1e-5 : 1e-12;
          expect_close(y, y_ref, tol, tol, what + " h");
          expect_close(c, c_ref, tol, tol, what + " c");
        }
      }
    }
  }
}

TEST(LstmSequence, Gradients) {
  for (bool bias : {true, false}) {
    for (bool reverse : {false, true}) {
      LstmInputs in = random_inputs(4, 2, 3, 3, DType::Float64, reverse ? 40 : 50);
      auto f = [&](const std::vector<Tensor>& v) {
        LstmInputs a{v[0], v[1], v[2], v[3], v[4], bias ? v[5] : Tensor(), bias ? v[6] : Tensor()};
        auto [y, c] = fused(a, bias, reverse);
        // c enters as well: the final cell state is a model output (c_n).
        return concat({y, c * 0.5}, 0);
      };
      gradcheck(f, {in.x, in.h0, in.c0, in.w_ih, in.w_hh, in.b_ih, in.b_hh}, 1e-6, 1e-6, 1e-5,
                std::string("lstm") + (bias ? " bias" : "") + (reverse ? " reverse" : ""));
    }
  }
}

TEST(LstmSequence, SecondOrderGradients) {
  LstmInputs in = random_inputs(3, 2, 2, 2, DType::Float64, 70);
  auto f = [&](const std::vector<Tensor>& v) {
    return lstm_sequence(v[0], v[1], v[2], v[3], v[4], v[5], v[6], false).first;
  };
  gradgradcheck(f, {in.x, in.h0, in.c0, in.w_ih, in.w_hh, in.b_ih, in.b_hh});
}

TEST(LstmSequence, EmptySequenceGradientsAreZero) {
  LstmInputs in = random_inputs(0, 2, 3, 2, DType::Float64, 80);
  Tensor h0 = in.h0.clone().set_requires_grad(), w = in.w_ih.clone().set_requires_grad();
  auto [y, c] = lstm_sequence(in.x, h0, in.c0, w, in.w_hh, in.b_ih, in.b_hh, false);
  TensorList g = grad({sum(y) + sum(c)}, {h0, w}, {}, false, false, true);
  for (const Tensor& t : g) {
    if (t.defined()) {
      EXPECT_EQ(sum(abs(t)).item<double>(), 0.0);
    }
  }
}

TEST(LstmSequence, Errors) {
  LstmInputs in = random_inputs(2, 3, 4, 5, DType::Float32, 90);
  expect_error(
      [&] { lstm_sequence(in.x, in.h0, in.c0, in.w_ih, in.w_hh.t(), in.b_ih, in.b_hh, false); },
      "w_hh must be [4 * hidden, hidden]");
  expect_error(
      [&] { lstm_sequence(in.x, in.c0.t(), in.c0, in.w_ih, in.w_hh, in.b_ih, in.b_hh, false); },
      "h0 has shape [5,3], expected [3,5]");
  expect_error(
      [&] { lstm_sequence(in.x, in.h0, in.c0, in.w_ih, in.w_hh, in.b_ih, Tensor(), false); },
      "give both biases or neither");
  expect_error(
      [&] {
        lstm_sequence(in.x.to(DType::Float64), in.h0, in.c0, in.w_ih, in.w_hh, in.b_ih, in.b_hh,
                      false);
      },
      "h0 is float32, expected float64 like x");
  expect_error(
      [&] { lstm_sequence(in.h0, in.h0, in.c0, in.w_ih, in.w_hh, in.b_ih, in.b_hh, false); },
      "input must be [T, N, features]");
}

}  // namespace
}  // namespace tessera
