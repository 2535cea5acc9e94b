#include "tessera/nn/recurrent.h"

#include "tessera/core/error.h"
#include "tessera/nn/init.h"
#include "tessera/ops/creation.h"
#include "tessera/ops/elementwise.h"
#include "tessera/ops/linalg.h"
#include "tessera/ops/nn.h"
#include "tessera/ops/reduce.h"
#include "tessera/ops/shape.h"

namespace tessera::nn {
namespace {

int64_t gate_count(RNNBase::Cell cell) {
  switch (cell) {
    case RNNBase::Cell::Lstm:
      return 4;
    case RNNBase::Cell::Gru:
      return 3;
    default:
      return 1;
  }
}

std::string suffix(int64_t layer, bool reverse) {
  return "_l" + std::to_string(layer) + (reverse ? "_reverse" : "");
}

// Parameters of one layer and direction, looked up by PyTorch's names.
struct CellParams {
  Tensor w_ih, w_hh, b_ih, b_hh;
};

CellParams params_of(const Module& m, int64_t layer, bool reverse) {
  CellParams p;
  std::string s = suffix(layer, reverse);
  for (auto& [name, t] : m.named_parameters(false)) {
    if (name == "weight_ih" + s) p.w_ih = t;
    if (name == "weight_hh" + s) p.w_hh = t;
    if (name == "bias_ih" + s) p.b_ih = t;
    if (name == "bias_hh" + s) p.b_hh = t;
  }
  return p;
}

Tensor affine(const Tensor& x, const Tensor& w, const Tensor& b) {
  Tensor y = matmul(x, w.t());
  return b.defined() ? y + b : y;
}

}  // namespace

RNN::RNN(int64_t input_size, int64_t hidden_size, RNNOptions o)
    : RNNBase("RNN", o.nonlinearity == "relu" ? Cell::RnnRelu : Cell::RnnTanh, input_size,
              hidden_size, o) {
  check(o.nonlinearity == "tanh" || o.nonlinearity == "relu", "RNN",
        "nonlinearity must be tanh or relu, got ", o.nonlinearity);
}

RNNBase::RNNBase(const char* type, Cell cell, int64_t input_size, int64_t hidden, RNNOptions o)
    : Module(type), cell_(cell), input_size_(input_size), hidden_(hidden), o_(o) {
  check(input_size >= 1 && hidden >= 1 && o.num_layers >= 1, type,
        "input_size, hidden_size and num_layers must be positive, got ", input_size, ", ", hidden,
        " and ", o.num_layers);
  check(o.dropout >= 0 && o.dropout < 1, type, "dropout must be in [0, 1), got ", o.dropout);
  gates_ = gate_count(cell);
  int64_t dirs = o.bidirectional ? 2 : 1;
  for (int64_t layer = 0; layer < o.num_layers; ++layer) {
    int64_t in = layer == 0 ? input_size : hidden * dirs;
    for (int64_t d = 0; d < dirs; ++d) {
      std::string s = suffix(layer, d == 1);
      register_parameter("weight_ih" + s, init::fan_in_uniform({gates_ * hidden, in}, hidden));
      register_parameter("weight_hh" + s, init::fan_in_uniform({gates_ * hidden, hidden}, hidden));
      if (o.bias) {
        register_parameter("bias_ih" + s, init::fan_in_uniform({gates_ * hidden}, hidden));
        register_parameter("bias_hh" + s, init::fan_in_uniform({gates_ * hidden}, hidden));
      }
    }
  }
}

std::tuple<Tensor, Tensor, Tensor> RNNBase::run_direction(const Tensor& x, int64_t layer,
                                                          bool reverse, Tensor h, Tensor c,
                                                          const Tensor& mask) {
  CellParams p = params_of(*this, layer, reverse);
  const int64_t T = x.size(0);
  if (cell_ == Cell::Lstm && !mask.defined()) {  // the whole loop as one op
    auto [ys, cs] = lstm_sequence(x, h, c, p.w_ih, p.w_hh, p.b_ih, p.b_hh, reverse);
    if (T == 0) return {ys, h, c};
    int64_t last = reverse ? 0 : T - 1;
    return {ys, ys.select(0, last), cs.select(0, last)};
  }
  // The input projection of every step at once; only h @ W_hh is sequential.
  Tensor xw = affine(x, p.w_ih, p.b_ih);
  std::vector<Tensor> outputs(static_cast<size_t>(T));
  for (int64_t step = 0; step < T; ++step) {
    int64_t t = reverse ? T - 1 - step : step;
    Tensor gi = xw.select(0, t);
    Tensor gh = affine(h, p.w_hh, p.b_hh);
    Tensor h_new, c_new;
    switch (cell_) {
      case Cell::RnnTanh:
        h_new = tanh(gi + gh);
        break;
      case Cell::RnnRelu:
        h_new = relu(gi + gh);
        break;
      case Cell::Lstm: {
        auto g = chunk(gi + gh, 4, 1);
        c_new = sigmoid(g[1]) * c + sigmoid(g[0]) * tanh(g[2]);
        h_new = sigmoid(g[3]) * tanh(c_new);
        break;
      }
      case Cell::Gru: {
        auto a = chunk(gi, 3, 1), b = chunk(gh, 3, 1);
        Tensor r = sigmoid(a[0] + b[0]), z = sigmoid(a[1] + b[1]);
        Tensor n = tanh(a[2] + r * b[2]);
        h_new = n + z * (h - n);  // (1 - z) * n + z * h
        break;
      }
    }
    if (mask.defined()) {
      Tensor m = mask.select(0, t);  // [N, 1] bool: this step is inside the sequence
      h = where(m, h_new, h);
      if (c_new.defined()) c = where(m, c_new, c);
      outputs[static_cast<size_t>(t)] = where(m, h_new, zeros_like(h_new));
    } else {
      h = h_new;
      if (c_new.defined()) c = c_new;
      outputs[static_cast<size_t>(t)] = h_new;
    }
  }
  if (T == 0) {  // no steps: an empty output and the initial state, as the LSTM op gives
    return {zeros({0, x.size(1), h.size(1)}, x.dtype()), h, c};
  }
  return {stack(outputs, 0), h, c};
}

RNNOutput RNNBase::forward(const Tensor& input, const Tensor& h0, const Tensor& c0,
                           const Tensor& lengths) {
  const std::string& op = type_name();
  check(input.dim() == 3 && input.size(2) == input_size_, op, "expected input [",
        o_.batch_first ? "N, T, " : "T, N, ", input_size_, "], got shape ", input.shape());
  Tensor x = o_.batch_first ? transpose(input, 0, 1) : input;
  const int64_t T = x.size(0), N = x.size(1), dirs = o_.bidirectional ? 2 : 1;
  const Shape state_shape{o_.num_layers * dirs, N, hidden_};
  bool lstm = cell_ == Cell::Lstm;
  for (const Tensor* s : {&h0, &c0})
    if (s->defined())
      check(s->shape() == state_shape, op, "initial state shape ", s->shape(), ", expected ",
            state_shape);
  check(lstm || !c0.defined(), op, "only LSTM takes an initial cell state");
  Tensor h_init = h0.defined() ? h0 : zeros(state_shape, x.dtype());
  Tensor c_init = lstm ? (c0.defined() ? c0 : zeros(state_shape, x.dtype())) : Tensor();
  Tensor mask;
  if (lengths.defined()) {
    check(lengths.dim() == 1 && lengths.size(0) == N, op, "lengths shape ", lengths.shape(),
          ", expected [", N, "]");
    if (N > 0 && !lengths.is_symbolic()) {
      const Tensor as_int = lengths.to(DType::Int64);
      const int64_t lo = amin(as_int).item<int64_t>(), hi = amax(as_int).item<int64_t>();
      check(lo >= 0 && hi <= T, op, "lengths must lie in [0, ", T, "] (the sequence length), got ",
            lo < 0 ? lo : hi);
    }
    Tensor steps = reshape(arange(0, T, 1, DType::Int64), {T, 1, 1});
    mask = lt(steps, reshape(lengths.to(DType::Int64), {1, N, 1}));  // [T, N, 1]
  }
  Tensor layer_input = x;
  std::vector<Tensor> hs, cs;
  for (int64_t layer = 0; layer < o_.num_layers; ++layer) {
    std::vector<Tensor> outs;
    for (int64_t d = 0; d < dirs; ++d) {
      int64_t k = layer * dirs + d;
      auto [out, h, c] = run_direction(layer_input, layer, d == 1, h_init.select(0, k),
                                       lstm ? c_init.select(0, k) : Tensor(), mask);
      outs.push_back(out);
      hs.push_back(h);
      if (lstm) cs.push_back(c);
    }
    layer_input = dirs == 2 ? concat(outs, 2) : outs[0];
    if (o_.dropout > 0 && layer + 1 < o_.num_layers)
      layer_input = dropout(layer_input, o_.dropout, is_training());
  }
  RNNOutput result;
  result.output = o_.batch_first ? transpose(layer_input, 0, 1) : layer_input;
  result.h_n = stack(hs, 0);
  if (lstm) result.c_n = stack(cs, 0);
  return result;
}

}  // namespace tessera::nn
