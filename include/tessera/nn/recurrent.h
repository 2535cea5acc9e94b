// Recurrent layers: RNN (tanh or relu), LSTM and GRU with PyTorch's equations, parameter
// names (weight_ih_l0, weight_hh_l0_reverse, ...), gate order (LSTM i, f, g, o; GRU r, z,
// n) and initialization U(-1/sqrt(hidden), 1/sqrt(hidden)).
//
// Inputs are [T, N, features] ([N, T, features] with batch_first). Variable-length batches
// pass `lengths` [N]: positions at or after a sequence's length leave its state unchanged
// and produce zeros, so h_n holds each sequence's state at its own last step (what
// PyTorch's packed sequences give), and the reverse direction starts at that step.
#pragma once
#include <string>

#include "tessera/nn/module.h"

namespace tessera::nn {

struct RNNOptions {
  int64_t num_layers = 1;
  bool bias = true;
  bool batch_first = false;
  double dropout = 0.0;  // between layers, in training mode
  bool bidirectional = false;
  std::string nonlinearity = "tanh";  // RNN only: "tanh" or "relu"
};

struct RNNOutput {
  Tensor output;  // [T, N, D * hidden] (batch_first: [N, T, D * hidden])
  Tensor h_n;     // [num_layers * D, N, hidden]
  Tensor c_n;     // LSTM only
};

class RNNBase : public Module {
 public:
  enum class Cell { RnnTanh, RnnRelu, Lstm, Gru };
  RNNBase(const char* type_name, Cell cell, int64_t input_size, int64_t hidden_size,
          RNNOptions options);
  // h0 (and c0 for LSTM) are [num_layers * D, N, hidden]; zeros when undefined.
  RNNOutput forward(const Tensor& input, const Tensor& h0, const Tensor& c0 = Tensor(),
                    const Tensor& lengths = Tensor());
  Tensor forward(const Tensor& input) override { return forward(input, Tensor()).output; }

 private:
  // One direction of one layer over the whole sequence: outputs [T, N, H], final h, c.
  std::tuple<Tensor, Tensor, Tensor> run_direction(const Tensor& x, int64_t layer, bool reverse,
                                                   Tensor h, Tensor c, const Tensor& mask);
  Cell cell_;
  int64_t input_size_, hidden_;
  RNNOptions o_;
  int64_t gates_;
};

class RNN : public RNNBase {
 public:
  RNN(int64_t input_size, int64_t hidden_size, RNNOptions o = {});
};
class LSTM : public RNNBase {
 public:
  LSTM(int64_t input_size, int64_t hidden_size, RNNOptions o = {})
      : RNNBase("LSTM", Cell::Lstm, input_size, hidden_size, o) {}
};
class GRU : public RNNBase {
 public:
  GRU(int64_t input_size, int64_t hidden_size, RNNOptions o = {})
      : RNNBase("GRU", Cell::Gru, input_size, hidden_size, o) {}
};

}  // namespace tessera::nn
