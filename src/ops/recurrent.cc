// lstm_sequence: one direction of one LSTM layer over a whole sequence, as one op. The
// step loop runs inside the kernel (one matrix product per step instead of a dozen small
// ops), and graphs, saved models and the lite converter see a single node to lower.
// Equations and gate order (i, f, g, o) are PyTorch's:
//   gates = x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh
//   c_t = sigmoid(f) c_{t-1} + sigmoid(i) tanh(g),   h_t = sigmoid(o) tanh(c_t)
// The gradient rule is backpropagation through time written with ops, so it is itself
// differentiable and traces into graphs like any other rule.
#include <cmath>
#include <vector>

#include "../kernels/cpu/gemm.h"
#include "tessera/ops/creation.h"
#include "tessera/ops/elementwise.h"
#include "tessera/ops/linalg.h"
#include "tessera/ops/nn.h"
#include "tessera/ops/op.h"
#include "tessera/ops/reduce.h"
#include "tessera/ops/shape.h"

namespace tessera {
namespace {

// Inputs: x [T, N, I], h0 [N, H], c0 [N, H], w_ih [4H, I], w_hh [4H, H], then optionally
// b_ih [4H], b_hh [4H]. Outputs: y [T, N, H] (every h_t) and c [T, N, H] (every c_t),
// indexed by time whatever the direction.
MetaList infer_lstm(const OpCall& c) {
  const char* op = "lstm_sequence";
  check(c.inputs.size() == 5 || c.inputs.size() == 7, op,
        "takes x, h0, c0, w_ih, w_hh and optionally b_ih, b_hh; got ", c.inputs.size(), " inputs");
  const Tensor &x = c.in(0), &w_hh = c.in(4);
  check(x.dim() == 3, op, "input must be [T, N, features], got ", x.shape());
  check(w_hh.dim() == 2 && w_hh.shape()[0] % 4 == 0 && w_hh.shape()[0] == 4 * w_hh.shape()[1], op,
        "w_hh must be [4 * hidden, hidden], got ", w_hh.shape());
  const int64_t T = x.shape()[0], N = x.shape()[1], I = x.shape()[2], H = w_hh.shape()[1];
  const Shape expected[] = {{T, N, I}, {N, H}, {N, H}, {4 * H, I}, {4 * H, H}, {4 * H}, {4 * H}};
  const char* names[] = {"x", "h0", "c0", "w_ih", "w_hh", "b_ih", "b_hh"};
  for (size_t i = 0; i < c.inputs.size(); ++i) {
    check(c.in(i).shape() == expected[i], op, names[i], " has shape ", c.in(i).shape(),
          ", expected ", expected[i]);
    check(c.in(i).dtype() == x.dtype(), op, names[i], " is ", dtype_name(c.in(i).dtype()),
          ", expected ", dtype_name(x.dtype()), " like x");
  }
  check(x.dtype() == DType::Float32 || x.dtype() == DType::Float64, op,
        "expects float32 or float64, got ", dtype_name(x.dtype()));
  return {{{T, N, H}, x.dtype()}, {{T, N, H}, x.dtype()}};
}

template <typename T>
T sigmoid_of(T v) {
  return T(1) / (T(1) + std::exp(-v));
}

// C (m x n, leading dimension n) += A (m x k) * B^T (B is n x k).
template <typename T>
void add_product_bt(int64_t m, int64_t n, int64_t k, const T* a, const T* b, T* c) {
  if constexpr (std::is_same_v<T, float>) {
    cpu::gemm_f32(false, true, m, n, k, a, k, b, k, c, n, true);
  } else {
    std::vector<T> tmp(static_cast<size_t>(m * n));
    cpu::gemm_ref<T>(false, true, m, n, k, a, k, b, k, tmp.data(), n);
    for (size_t i = 0; i < tmp.size(); ++i) c[i] += tmp[i];
  }
}

template <typename T>
void run_lstm(const OpCall& c, std::span<Tensor> outs) {
  Tensor x = c.in(0).contiguous(), h0 = c.in(1).contiguous(), c0 = c.in(2).contiguous(),
         w_ih = c.in(3).contiguous(), w_hh = c.in(4).contiguous();
  const int64_t steps = x.shape()[0], N = x.shape()[1], I = x.shape()[2], H = w_hh.shape()[1];
  const int64_t G = 4 * H;
  const bool reverse = c.attrs.has("reverse") && c.attrs.b("reverse");
  // The input projection of every step at once, biases included.
  std::vector<T> gates(static_cast<size_t>(steps * N * G), T(0));
  if (c.inputs.size() == 7) {
    Tensor b_ih = c.in(5).contiguous(), b_hh = c.in(6).contiguous();
    const T *bi = b_ih.data<T>(), *bh = b_hh.data<T>();
    for (int64_t r = 0; r < steps * N; ++r)
      for (int64_t j = 0; j < G; ++j) gates[static_cast<size_t>(r * G + j)] = bi[j] + bh[j];
  }
  if (steps * N > 0 && I > 0)
    add_product_bt<T>(steps * N, G, I, x.data<T>(), w_ih.data<T>(), gates.data());
  T *y = outs[0].data<T>(), *cs = outs[1].data<T>();
  const T *h_prev = h0.data<T>(), *c_prev = c0.data<T>();
  for (int64_t step = 0; step < steps; ++step) {
    const int64_t t = reverse ? steps - 1 - step : step;
    T* g = gates.data() + t * N * G;
    if (N > 0 && H > 0) add_product_bt<T>(N, G, H, h_prev, w_hh.data<T>(), g);
    T *h_out = y + t * N * H, *c_out = cs + t * N * H;
    for (int64_t n = 0; n < N; ++n) {
      const T* row = g + n * G;
      for (int64_t j = 0; j < H; ++j) {
        T in = sigmoid_of(row[j]), forget = sigmoid_of(row[H + j]);
        T cell = std::tanh(row[2 * H + j]), out = sigmoid_of(row[3 * H + j]);
        T c_new = forget * c_prev[n * H + j] + in * cell;
        c_out[n * H + j] = c_new;
        h_out[n * H + j] = out * std::tanh(c_new);
      }
    }
    h_prev = h_out;
    c_prev = c_out;
  }
}

void cpu_lstm(const OpCall& c, std::span<Tensor> outs) {
  if (outs[0].dtype() == DType::Float32) {
    run_lstm<float>(c, outs);
  } else {
    run_lstm<double>(c, outs);
  }
}

// Backpropagation through time. The gates of every step are recomputed at once from the
// saved outputs (h_{t-1} is y shifted by one step); only the recurrence through h and c
// runs step by step.
TensorList grad_lstm(const GradCall& g) {
  const bool reverse = g.attrs.has("reverse") && g.attrs.b("reverse");
  // Work in processing order: a reverse layer is a forward one over flipped time.
  auto in_order = [&](const Tensor& t) { return reverse ? flip(t, {0}) : t; };
  Tensor x = in_order(g.in(0)), h0 = g.in(1), c0 = g.in(2), w_ih = g.in(3), w_hh = g.in(4);
  Tensor y = in_order(g.out(0)), cs = in_order(g.out(1));
  Tensor gy = in_order(g.gout(0)), gc = in_order(g.gout(1));
  const int64_t steps = x.size(0), H = w_hh.size(1);
  TensorList grads(g.inputs.size());
  if (steps == 0) {  // empty outputs depend on nothing
    for (size_t k = 0; k < g.inputs.size(); ++k)
      if (g.needs(k)) grads[k] = zeros_like(g.in(k));
    return grads;
  }
  Tensor h_prev = concat({unsqueeze(h0, 0), slice(y, 0, 0, steps - 1)}, 0);
  Tensor c_prev = concat({unsqueeze(c0, 0), slice(cs, 0, 0, steps - 1)}, 0);
  Tensor pre = matmul(x, w_ih.t()) + matmul(h_prev, w_hh.t());
  if (g.inputs.size() == 7) pre = pre + g.in(5) + g.in(6);
  auto parts = chunk(pre, 4, 2);
  Tensor i = sigmoid(parts[0]), f = sigmoid(parts[1]), cell = tanh(parts[2]), o = sigmoid(parts[3]);
  Tensor tanh_c = tanh(cs);
  // What each step's dh and dc turn into, computed for all steps before the loop.
  Tensor dc_from_dh = o * (1.0 - square(tanh_c));
  Tensor di_pre = i * (1.0 - i), df_pre = f * (1.0 - f), dg_pre = 1.0 - square(cell),
         do_pre = o * (1.0 - o);
  std::vector<Tensor> d_gates(static_cast<size_t>(steps));
  Tensor dh_next = zeros_like(h0), dc_next = zeros_like(c0);
  for (int64_t t = steps - 1; t >= 0; --t) {
    Tensor dh = gy.select(0, t) + dh_next;
    Tensor dc = gc.select(0, t) + dc_next + dh * dc_from_dh.select(0, t);
    Tensor dgate = concat(
        {dc * cell.select(0, t) * di_pre.select(0, t),
         dc * c_prev.select(0, t) * df_pre.select(0, t), dc * i.select(0, t) * dg_pre.select(0, t),
         dh * tanh_c.select(0, t) * do_pre.select(0, t)},
        1);
    d_gates[static_cast<size_t>(t)] = dgate;
    dc_next = dc * f.select(0, t);
    dh_next = matmul(dgate, w_hh);
  }
  Tensor dG = stack(d_gates, 0);  // [T, N, 4H]
  Tensor dG_rows = reshape(dG, {-1, 4 * H});
  if (g.needs(0)) grads[0] = in_order(matmul(dG, w_ih));
  if (g.needs(1)) grads[1] = dh_next;
  if (g.needs(2)) grads[2] = dc_next;
  if (g.needs(3)) grads[3] = matmul(dG_rows.t(), reshape(x, {-1, x.size(2)}));
  if (g.needs(4)) grads[4] = matmul(dG_rows.t(), reshape(h_prev, {-1, H}));
  if (g.inputs.size() == 7 && (g.needs(5) || g.needs(6))) {
    Tensor db = sum(dG_rows, {0});
    if (g.needs(5)) grads[5] = db;
    if (g.needs(6)) grads[6] = db;
  }
  return grads;
}

constexpr OpDef kLstmSequence{"lstm_sequence", infer_lstm, cpu_lstm,
                              nullptr,         grad_lstm,  kSaveInputs | kSaveOutputs};
const OpRegistrar lstm_registrar(kLstmSequence);

}  // namespace

std::pair<Tensor, Tensor> lstm_sequence(const Tensor& x, const Tensor& h0, const Tensor& c0,
                                        const Tensor& w_ih, const Tensor& w_hh, const Tensor& b_ih,
                                        const Tensor& b_hh, bool reverse) {
  for (auto [t, name] :
       {std::pair{&x, "x"}, {&h0, "h0"}, {&c0, "c0"}, {&w_ih, "w_ih"}, {&w_hh, "w_hh"}})
    check_defined(*t, "lstm_sequence", name);
  check(b_ih.defined() == b_hh.defined(), "lstm_sequence", "give both biases or neither");
  Attrs attrs{{"reverse", reverse}};
  TensorList out = b_ih.defined()
                       ? run_op(kLstmSequence, {x, h0, c0, w_ih, w_hh, b_ih, b_hh}, attrs)
                       : run_op(kLstmSequence, {x, h0, c0, w_ih, w_hh}, attrs);
  return {out[0], out[1]};
}

}  // namespace tessera
