// Quantize and Dequantize, and the int8 inputs and outputs of kernels with float32 loops
// (Int8Float): vectorized loops, built at -O3 (kernels.cc, where the shared checks live, is
// built for size; elementwise.cc at -O2).
#include "kernel.h"

namespace tessera::lite {

namespace {

struct QuantizeParams {
  float scale;  // Quantize: 1 / the output's scale; Dequantize: the input's scale
  int32_t zero;
};

TESSERA_LITE_COLD Result prepare_quantize(OpContext& ctx, size_t*) {
  if (Result r = expect_arity(ctx, 1, 1, 1); !r.ok()) return r;
  bool to_int8 = ctx.desc->code == schema::OpCode_Quantize;
  const TensorDesc &in = *ctx.in[0], &out = *ctx.out[0];
  const TensorDesc& q = to_int8 ? out : in;
  const TensorDesc& f = to_int8 ? in : out;
  if (!is_int8_per_tensor(q) || f.dtype != DType::float32) {
    return op_error(ctx, "converts between float32 and int8 with one scale and zero point");
  }
  auto& p = ctx.params_as<QuantizeParams>();
  p = {to_int8 ? 1.0f / q.scales[0] : q.scales[0], static_cast<int32_t>(q.zero_points[0])};
  return expect_output_shape(ctx, 0, in.shape);
}

}  // namespace

// Not inlined: one copy of each vectorized loop serves every kernel (library size).
// Quantize runs on every int8 model's input: built for AVX2 and AVX-512 too.
TESSERA_LITE_MULTIVERSION __attribute__((noinline)) void quantize(const float* x, int8_t* y,
                                                                  int64_t n, float inv,
                                                                  int32_t zero) {
  for (int64_t i = 0; i < n; ++i) {
    // Clamped in float first: infinities and huge values saturate (a float past 2^31 has no
    // int32), NaN becomes the zero point.
    float v = std::min(std::max(x[i] * inv, -256.0f), 256.0f);
    v = v == v ? v : 0.0f;  // a select, not a branch: the loop stays vectorized
    int32_t q = round_to_int(v) + zero;
    y[i] = static_cast<int8_t>(std::min(std::max(q, -128), 127));
  }
}

__attribute__((noinline)) void dequantize(const int8_t* x, float* y, int64_t n, float scale,
                                          int32_t zero) {
  for (int64_t i = 0; i < n; ++i) y[i] = scale * static_cast<float>(x[i] - zero);
}

const float* float_input(const OpContext& ctx, int i) {
  if (!ctx.int8.on) return ctx.input<float>(static_cast<size_t>(i));
  auto* f = reinterpret_cast<float*>(static_cast<uint8_t*>(ctx.scratch) + ctx.int8.at[i]);
  dequantize(ctx.input<int8_t>(static_cast<size_t>(i)), f, ctx.in[static_cast<size_t>(i)]->numel,
             ctx.int8.scale[i], ctx.int8.zero[i]);
  return f;
}

float* float_output(const OpContext& ctx) {
  if (!ctx.int8.on) return ctx.output<float>(0);
  return reinterpret_cast<float*>(static_cast<uint8_t*>(ctx.scratch) +
                                  ctx.int8.at[ctx.int8.inputs]);
}

void finish_float_output(const OpContext& ctx) {
  if (ctx.int8.on) {
    quantize(float_output(ctx), ctx.output<int8_t>(0), ctx.out[0]->numel, ctx.int8.out_inv_scale,
             ctx.int8.out_zero);
  }
}

const Kernel kQuantize{prepare_quantize, [](const OpContext& ctx) {
                         const auto& p = ctx.params_as<QuantizeParams>();
                         quantize(ctx.input<float>(0), ctx.output<int8_t>(0), ctx.in[0]->numel,
                                  p.scale, p.zero);
                       }};
const Kernel kDequantize{prepare_quantize, [](const OpContext& ctx) {
                           const auto& p = ctx.params_as<QuantizeParams>();
                           dequantize(ctx.input<int8_t>(0), ctx.output<float>(0), ctx.in[0]->numel,
                                      p.scale, p.zero);
                         }};

}  // namespace tessera::lite
