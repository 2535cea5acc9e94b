// Lstm (float32): one direction of one LSTM layer over a whole sequence, the equations and
// gate order (i, f, g, o) of PyTorch's LSTM and of the graph's lstm_sequence op:
//   gates = x_t W_ih^T + h_{t-1} W_hh^T + bias
//   c_t = sigmoid(f) c_{t-1} + sigmoid(i) tanh(g),   h_t = sigmoid(o) tanh(c_t)
// Scratch holds one step's gates and, when the model does not ask for every c_t, the cell
// state.
#include <cstring>

#include "kernel.h"

namespace tessera::lite {
namespace {

struct LstmParams {
  int64_t T, N, I, H;
  bool reverse, cell_output;
};

TESSERA_LITE_COLD Result prepare_lstm(OpContext& ctx, size_t* scratch_bytes) {
  if (ctx.out.size() != 1 && ctx.out.size() != 2) {
    return op_error(ctx, "has 1 or 2 outputs (every h_t, then every c_t), got " +
                             std::to_string(ctx.out.size()));
  }
  if (Result r = expect_arity(ctx, 5, 6, ctx.out.size()); !r.ok()) return r;
  if (Result r = expect_dtype(ctx, DType::float32); !r.ok()) return r;
  const schema::LstmOptions* o = ctx.op().options_as_LstmOptions();
  if (!o) return op_error(ctx, "needs LstmOptions");
  const TensorDesc &x = *ctx.in[0], &w_hh = *ctx.in[4];
  if (x.rank() != 3 || w_hh.rank() != 2 || w_hh.dim(0) != 4 * int64_t{w_hh.dim(1)}) {
    return op_error(ctx, "expects x [T,N,I] and w_hh [4H,H], got " + shape_string(x.shape) +
                             " and " + shape_string(w_hh.shape));
  }
  const int32_t T = x.dim(0), N = x.dim(1), I = x.dim(2), H = w_hh.dim(1);
  const std::vector<int32_t> expected[] = {{N, H}, {N, H}, {4 * H, I}, {4 * H, H}, {4 * H}};
  const char* names[] = {"h0", "c0", "w_ih", "w_hh", "bias"};
  for (size_t i = 1; i < ctx.in.size(); ++i) {
    if (ctx.in[i] && ctx.in[i]->shape != expected[i - 1]) {
      return op_error(ctx, std::string(names[i - 1]) + " has shape " +
                               shape_string(ctx.in[i]->shape) + ", expected " +
                               shape_string(expected[i - 1]));
    }
  }
  for (size_t i = 0; i < ctx.out.size(); ++i) {
    if (Result r = expect_output_shape(ctx, i, {T, N, H}); !r.ok()) return r;
  }
  LstmParams& p = ctx.params_as<LstmParams>();
  p = {T, N, I, H, o->reverse(), ctx.out.size() == 2};
  *scratch_bytes = static_cast<size_t>(N) * (4 * H + (p.cell_output ? 0 : H)) * sizeof(float);
  return {};
}

inline float sigmoid(float v) { return 1.0f / (1.0f + std::exp(-v)); }

// gates[n][j] += sum_k in[n][k] * w[j][k], for N rows of K values and G gates.
TESSERA_LITE_MULTIVERSION
void add_products(const float* in, const float* w, int64_t N, int64_t K, int64_t G, float* gates) {
  for (int64_t n = 0; n < N; ++n) {
    const float* row = in + n * K;
    for (int64_t j = 0; j < G; ++j) {
      const float* wj = w + j * K;
      float acc = 0;
#pragma omp simd reduction(+ : acc)
      for (int64_t k = 0; k < K; ++k) acc += row[k] * wj[k];
      gates[n * G + j] += acc;
    }
  }
}

void lstm(const OpContext& ctx) {
  const LstmParams& p = ctx.params_as<LstmParams>();
  const int64_t N = p.N, H = p.H, G = 4 * H;
  const float* x = ctx.input<float>(0);
  const float *w_ih = ctx.input<float>(3), *w_hh = ctx.input<float>(4);
  const float* bias = ctx.in.size() > 5 && ctx.in[5] ? ctx.input<float>(5) : nullptr;
  float* y = ctx.output<float>(0);
  float* gates = static_cast<float*>(ctx.scratch);
  float* cell = p.cell_output ? nullptr : gates + N * G;  // updated in place
  if (cell) std::memcpy(cell, ctx.input<float>(2), static_cast<size_t>(N * H) * sizeof(float));
  const float *h_prev = ctx.input<float>(1), *c_prev = cell ? cell : ctx.input<float>(2);
  for (int64_t step = 0; step < p.T; ++step) {
    const int64_t t = p.reverse ? p.T - 1 - step : step;
    for (int64_t n = 0; n < N; ++n) {
      for (int64_t j = 0; j < G; ++j) gates[n * G + j] = bias ? bias[j] : 0.0f;
    }
    add_products(x + t * N * p.I, w_ih, N, p.I, G, gates);
    add_products(h_prev, w_hh, N, H, G, gates);
    float* h_out = y + t * N * H;
    float* c_out = cell ? cell : ctx.output<float>(1) + t * N * H;
    for (int64_t n = 0; n < N; ++n) {
      const float* g = gates + n * G;
      for (int64_t j = 0; j < H; ++j) {
        float c = sigmoid(g[H + j]) * c_prev[n * H + j] + sigmoid(g[j]) * std::tanh(g[2 * H + j]);
        c_out[n * H + j] = c;
        h_out[n * H + j] = sigmoid(g[3 * H + j]) * std::tanh(c);
      }
    }
    h_prev = h_out;
    c_prev = c_out;
  }
}

}  // namespace

const Kernel kLstm{prepare_lstm, lstm};

}  // namespace tessera::lite
