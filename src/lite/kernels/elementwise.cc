// Elementwise kernels: unary activations and math, and binary ops with NumPy broadcasting
// (fast paths for equal shapes and for a single value), float32 loops for float32 and int8
// tensors (Int8Float, quantize.cc).
#include <cmath>

#include "kernel.h"

namespace tessera::lite {
namespace {

TESSERA_LITE_COLD Result prepare_unary(OpContext& ctx, size_t* scratch_bytes) {
  if (Result r = expect_arity(ctx, 1, 1, 1); !r.ok()) return r;
  if (Result r = prepare_int8_float(ctx, 1, scratch_bytes); !r.ok()) return r;
  return expect_output_shape(ctx, 0, ctx.in[0]->shape);
}

template <typename F>
void map(const float* x, float* y, int64_t n, F f) {
  for (int64_t i = 0; i < n; ++i) y[i] = f(x[i]);
}

void unary_loops(const OpContext& ctx, const float* x, float* y) {
  const int64_t n = ctx.in[0]->numel;
  switch (ctx.desc->code) {
    case schema::OpCode_Relu:
      return map(x, y, n, [](float v) { return std::max(v, 0.0f); });
    case schema::OpCode_Relu6:
      return map(x, y, n, [](float v) { return std::min(std::max(v, 0.0f), 6.0f); });
    case schema::OpCode_Logistic:
      return map(x, y, n, [](float v) { return 1.0f / (1.0f + std::exp(-v)); });
    case schema::OpCode_Tanh:
      return map(x, y, n, [](float v) { return std::tanh(v); });
    case schema::OpCode_HardSwish:
      return map(x, y, n,
                 [](float v) { return v * std::min(std::max(v + 3.0f, 0.0f), 6.0f) / 6.0f; });
    case schema::OpCode_Neg:
      return map(x, y, n, [](float v) { return -v; });
    case schema::OpCode_Abs:
      return map(x, y, n, [](float v) { return std::fabs(v); });
    case schema::OpCode_Exp:
      return map(x, y, n, [](float v) { return std::exp(v); });
    case schema::OpCode_Sqrt:
      return map(x, y, n, [](float v) { return std::sqrt(v); });
    case schema::OpCode_Square:
      return map(x, y, n, [](float v) { return v * v; });
    case schema::OpCode_Silu:
      return map(x, y, n, [](float v) { return v / (1.0f + std::exp(-v)); });
    default:
      return;
  }
}

void unary(const OpContext& ctx) {
  unary_loops(ctx, float_input(ctx, 0), float_output(ctx));
  finish_float_output(ctx);
}

struct BinaryParams {
  int rank;
  int64_t out_shape[kMaxRank], a_strides[kMaxRank], b_strides[kMaxRank];  // 0 where broadcast
  bool same_shape, a_single, b_single;
  schema::Activation act;
};

TESSERA_LITE_COLD Result prepare_binary(OpContext& ctx, size_t* scratch_bytes) {
  if (Result r = expect_arity(ctx, 2, 2, 1); !r.ok()) return r;
  if (Result r = prepare_int8_float(ctx, 2, scratch_bytes); !r.ok()) return r;
  const TensorDesc &a = *ctx.in[0], &b = *ctx.in[1];
  const schema::BinaryOptions* o = ctx.op().options_as_BinaryOptions();
  BinaryParams& p = ctx.params_as<BinaryParams>();
  p = {};
  p.act = o ? o->activation() : schema::Activation_None;
  if (p.act > schema::Activation_MAX) return op_error(ctx, "unknown activation");
  p.rank = std::max(a.rank(), b.rank());
  std::vector<int32_t> shape(static_cast<size_t>(p.rank));
  int64_t sa = 1, sb = 1;
  for (int d = p.rank - 1; d >= 0; --d) {
    int da = d - (p.rank - a.rank()), db = d - (p.rank - b.rank());
    int32_t x = da >= 0 ? a.dim(da) : 1, y = db >= 0 ? b.dim(db) : 1;
    if (x != y && x != 1 && y != 1) {
      return op_error(
          ctx, "cannot broadcast " + shape_string(a.shape) + " with " + shape_string(b.shape));
    }
    int32_t out = x == 1 ? y : x;
    shape[static_cast<size_t>(d)] = out;
    p.out_shape[d] = out;
    p.a_strides[d] = x == 1 ? 0 : sa;
    p.b_strides[d] = y == 1 ? 0 : sb;
    sa *= x;
    sb *= y;
  }
  p.same_shape = a.shape == b.shape;
  p.a_single = a.numel == 1;
  p.b_single = b.numel == 1;
  return expect_output_shape(ctx, 0, shape);
}

// y = f(a, b) with broadcasting; the fused activation is a second pass (inside these loops
// it would triple their code for every op).
template <typename F>
void combine(const BinaryParams& p, const float* a, const float* b, float* y, int64_t n, F f) {
  if (p.same_shape) {
    for (int64_t i = 0; i < n; ++i) y[i] = f(a[i], b[i]);
  } else if (p.b_single) {
    const float v = b[0];
    for (int64_t i = 0; i < n; ++i) y[i] = f(a[i], v);
  } else if (p.a_single) {
    const float v = a[0];
    for (int64_t i = 0; i < n; ++i) y[i] = f(v, b[i]);
  } else {
    int64_t index[kMaxRank] = {}, ia = 0, ib = 0;
    for (int64_t i = 0; i < n; ++i) {
      y[i] = f(a[ia], b[ib]);
      for (int d = p.rank - 1; d >= 0; --d) {
        ia += p.a_strides[d];
        ib += p.b_strides[d];
        if (++index[d] < p.out_shape[d]) break;
        ia -= p.a_strides[d] * p.out_shape[d];
        ib -= p.b_strides[d] * p.out_shape[d];
        index[d] = 0;
      }
    }
  }
}

void binary(const OpContext& ctx) {
  const BinaryParams& p = ctx.params_as<BinaryParams>();
  const float *a = float_input(ctx, 0), *b = float_input(ctx, 1);
  float* y = float_output(ctx);
  const int64_t n = ctx.out[0]->numel;
  switch (ctx.desc->code) {
    case schema::OpCode_Add:
      combine(p, a, b, y, n, [](float u, float v) { return u + v; });
      break;
    case schema::OpCode_Sub:
      combine(p, a, b, y, n, [](float u, float v) { return u - v; });
      break;
    case schema::OpCode_Mul:
      combine(p, a, b, y, n, [](float u, float v) { return u * v; });
      break;
    case schema::OpCode_Div:
      combine(p, a, b, y, n, [](float u, float v) { return u / v; });
      break;
    case schema::OpCode_Maximum:
      combine(p, a, b, y, n, [](float u, float v) { return std::max(u, v); });
      break;
    case schema::OpCode_Minimum:
      combine(p, a, b, y, n, [](float u, float v) { return std::min(u, v); });
      break;
    default:
      return;
  }
  if (p.act == schema::Activation_Relu) {
    for (int64_t i = 0; i < n; ++i) y[i] = std::max(y[i], 0.0f);
  } else if (p.act == schema::Activation_Relu6) {
    for (int64_t i = 0; i < n; ++i) y[i] = std::min(std::max(y[i], 0.0f), 6.0f);
  }
  finish_float_output(ctx);
}

}  // namespace

const Kernel kUnary{prepare_unary, unary};
const Kernel kBinary{prepare_binary, binary};

}  // namespace tessera::lite
