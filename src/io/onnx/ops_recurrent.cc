// ONNX's RNN, GRU and LSTM: the step loop unrolled over the (import-time known) sequence
// length, with ONNX's gate orders (LSTM i, o, f, c; GRU z, r, h), peepholes, clipping,
// linear_before_reset, both layouts and per-batch sequence lengths.
#include "converter.h"
#include "tessera/ops/creation.h"
#include "tessera/ops/elementwise.h"
#include "tessera/ops/linalg.h"
#include "tessera/ops/shape.h"

namespace tessera::onnx {
namespace {

enum class Cell { rnn, gru, lstm };

using Activation = Tensor (*)(const Tensor&);

Activation activation(const NodeContext& c, const std::string& name) {
  if (name == "Sigmoid") return sigmoid;
  if (name == "Tanh") return tanh;
  if (name == "Relu") return relu;
  c.unsupported("activation '", name, "'");
}

TensorList recurrent(const NodeContext& c, Cell cell) {
  const int64_t gates = cell == Cell::lstm ? 4 : cell == Cell::gru ? 3 : 1;
  Tensor x = c.in(0);
  const Tensor &w = c.in(1), &r = c.in(2);
  const bool batch_first = c.attr_i("layout", 0) != 0;
  if (batch_first) x = transpose(x, 0, 1);
  c.require(x.dim() == 3, "X must be 3-d, got shape ", x.shape());
  const int64_t steps = x.size(0), batch = x.size(1);
  const int64_t hidden = c.attr_i("hidden_size", r.size(2));
  const std::string direction = c.attr_s("direction", "forward");
  const int64_t dirs = direction == "bidirectional" ? 2 : 1;
  c.require(w.dim() == 3 && w.size(0) == dirs && w.size(1) == gates * hidden, "W of shape ",
            w.shape(), " does not match ", dirs, " directions of ", gates, " gates of ", hidden);
  std::vector<std::string> names = {"Sigmoid", "Tanh", "Tanh"};
  if (cell == Cell::rnn) names = {"Tanh"};
  if (cell == Cell::gru) names = {"Sigmoid", "Tanh"};
  const auto per_dir = static_cast<int64_t>(names.size());
  std::vector<std::string> given;
  if (const auto* a = c.find("activations")) given.assign(a->strings().begin(), a->strings().end());
  c.require(given.empty() || static_cast<int64_t>(given.size()) == per_dir * dirs, "expected ",
            per_dir * dirs, " activations, got ", given.size());
  const double clip = c.attr_f("clip", 0.0);
  const bool linear_before_reset = c.attr_i("linear_before_reset", 0) != 0;
  Tensor lengths;
  if (c.has(4)) lengths = reshape(cast(c.in(4), DType::Int64), {batch, 1});
  Tensor h0 = c.has(5) ? c.in(5) : Tensor(), c0 = c.has(6) ? c.in(6) : Tensor();
  if (batch_first) {
    if (h0.defined()) h0 = transpose(h0, 0, 1);
    if (c0.defined()) c0 = transpose(c0, 0, 1);
  }
  TensorList ys, hs, cs;
  for (int64_t d = 0; d < dirs; ++d) {
    const bool reverse = direction == "reverse" || d == 1;
    if (reverse && lengths.defined()) {
      c.unsupported("reverse directions with sequence_lens");
    }
    auto act = [&](int64_t i) {
      return activation(c, given.empty() ? names[static_cast<size_t>(i)]
                                         : given[static_cast<size_t>(d * per_dir + i)]);
    };
    Activation f = act(0), g = per_dir > 1 ? act(1) : nullptr,
               h_act = per_dir > 2 ? act(2) : nullptr;
    Tensor wd = select(w, 0, d), rd = select(r, 0, d);
    Tensor wb, rb;
    if (c.has(3)) {
      std::vector<Tensor> biases = split(select(c.in(3), 0, d), gates * hidden, 0);
      wb = biases[0];
      rb = biases[1];
    } else {
      wb = zeros({gates * hidden}, x.dtype());
      rb = zeros({gates * hidden}, x.dtype());
    }
    Tensor h = h0.defined() ? select(h0, 0, d) : zeros({batch, hidden}, x.dtype());
    Tensor cstate = c0.defined() ? select(c0, 0, d) : zeros({batch, hidden}, x.dtype());
    std::vector<Tensor> peep;  // LSTM peepholes i, o, f
    if (cell == Cell::lstm && c.has(7)) peep = split(select(c.in(7), 0, d), hidden, 0);
    auto clipped = [&](const Tensor& v) { return clip > 0 ? clamp(v, -clip, clip) : v; };
    Tensor x_proj = add(matmul(x, transpose(wd, 0, 1)), wb);  // [T, N, G*H]
    Tensor r_t = transpose(rd, 0, 1);
    // GRU: the recurrent weights and biases of each gate (z, r, h), split once.
    std::vector<Tensor> r_gate, rb_gate;
    if (cell == Cell::gru) {
      r_gate = split(r_t, hidden, 1);
      rb_gate = split(rb, hidden, 0);
    }
    TensorList outs(static_cast<size_t>(steps));
    for (int64_t step = 0; step < steps; ++step) {
      const int64_t t = reverse ? steps - 1 - step : step;
      Tensor xt = select(x_proj, 0, t);
      Tensor h_new, c_new;
      if (cell == Cell::rnn) {
        h_new = f(clipped(add(xt, add(matmul(h, r_t), rb))));
      } else if (cell == Cell::lstm) {
        std::vector<Tensor> z = split(add(xt, add(matmul(h, r_t), rb)), hidden, 1);  // i, o, f, c
        Tensor i = z[0], o = z[1], fg = z[2];
        if (!peep.empty()) {
          i = add(i, mul(peep[0], cstate));
          fg = add(fg, mul(peep[2], cstate));
        }
        i = f(clipped(i));
        fg = f(clipped(fg));
        c_new = add(mul(fg, cstate), mul(i, g(clipped(z[3]))));
        if (!peep.empty()) o = add(o, mul(peep[1], c_new));
        h_new = mul(f(clipped(o)), h_act(c_new));
      } else {
        std::vector<Tensor> xz = split(xt, hidden, 1);  // z, r, h
        Tensor zg = f(clipped(add(xz[0], add(matmul(h, r_gate[0]), rb_gate[0]))));
        Tensor rg = f(clipped(add(xz[1], add(matmul(h, r_gate[1]), rb_gate[1]))));
        Tensor rh = linear_before_reset ? mul(rg, add(matmul(h, r_gate[2]), rb_gate[2]))
                                        : add(matmul(mul(rg, h), r_gate[2]), rb_gate[2]);
        Tensor hh = g(clipped(add(xz[2], rh)));
        h_new = add(mul(sub(ones_like(zg), zg), hh), mul(zg, h));
      }
      if (lengths.defined()) {
        Tensor live = lt(scalar_tensor(t, DType::Int64), lengths);  // [N, 1]
        outs[static_cast<size_t>(t)] = where(live, h_new, zeros_like(h_new));
        h = where(live, h_new, h);
        if (c_new.defined()) cstate = where(live, c_new, cstate);
      } else {
        outs[static_cast<size_t>(t)] = h_new;
        h = h_new;
        if (c_new.defined()) cstate = c_new;
      }
    }
    ys.push_back(steps > 0 ? stack(outs, 0) : zeros({0, batch, hidden}, x.dtype()));
    hs.push_back(h);
    cs.push_back(cstate);
  }
  Tensor y = stack(ys, 1), y_h = stack(hs, 0), y_c = stack(cs, 0);  // [T, D, N, H], [D, N, H]
  if (batch_first) {
    y = permute(y, {2, 0, 1, 3});
    y_h = transpose(y_h, 0, 1);
    y_c = transpose(y_c, 0, 1);
  }
  return {y, y_h, y_c};
}

TensorList rnn_op(const NodeContext& c) { return recurrent(c, Cell::rnn); }
TensorList gru_op(const NodeContext& c) { return recurrent(c, Cell::gru); }
TensorList lstm_op(const NodeContext& c) { return recurrent(c, Cell::lstm); }

}  // namespace

void add_recurrent_ops(OpTable& t) {
  t["RNN"] = {rnn_op};
  t["GRU"] = {gru_op};
  t["LSTM"] = {lstm_op};
}

}  // namespace tessera::onnx
