// Float32 convolutions and the fully connected layer. Activations are NHWC; convolution
// weights [KH, KW, I, O] (depthwise [KH, KW, C * M]), so the innermost loops run over
// contiguous output channels and vectorize.
#include <cmath>
#include <cstdint>
#include <cstring>

#include "conv_tiles.h"
#include "dot.h"
#include "kernel.h"

namespace tessera::lite {
namespace {

struct ConvGeometry {
  int N, H, W, C, KH, KW, O, OH, OW;
  int sh, sw, dh, dw, pt, pl;
  schema::Activation act;
};

int out_size(int in, int k, int stride, int dilation, int lo, int hi) {
  int64_t span = int64_t{dilation} * (k - 1) + 1, padded = int64_t{in} + lo + hi;
  return padded < span ? 0 : static_cast<int>((padded - span) / stride + 1);
}

TESSERA_LITE_COLD Result check_conv_options(const OpContext& ctx, const schema::ConvOptions* o) {
  if (!o) return op_error(ctx, "needs ConvOptions");
  auto bad = [](int v, int lo) { return v < lo || v > (1 << 16); };
  if (bad(o->stride_h(), 1) || bad(o->stride_w(), 1) || bad(o->dilation_h(), 1) ||
      bad(o->dilation_w(), 1) || bad(o->pad_top(), 0) || bad(o->pad_left(), 0) ||
      bad(o->pad_bottom(), 0) || bad(o->pad_right(), 0)) {
    return op_error(ctx, "strides and dilations must be in [1, 65536] and padding in [0, 65536]");
  }
  if (o->activation() > schema::Activation_MAX) return op_error(ctx, "unknown activation");
  return {};
}

// Float layers may store their weights compressed: float16, or int8 with per-channel
// scales (the converter's float16 and dynamic-range options). They are expanded to float32
// once, into persistent memory, at allocation; activations stay float32.
bool compressed_weights(const OpContext& ctx) {
  const TensorDesc& w = *ctx.in[1];
  return ctx.in[0]->dtype == DType::float32 &&
         (w.dtype == DType::float16 || (w.dtype == DType::int8 && !w.scales.empty()));
}

// The checks of a float layer: float32 everywhere but the weights, which may be compressed
// (constant; int8 symmetric along `w_axis`, one scale per channel or one for all).
TESSERA_LITE_COLD Result check_float_layer(OpContext& ctx, int w_axis, int channels) {
  const TensorDesc& w = *ctx.in[1];
  for (size_t i = 0; i < ctx.in.size(); ++i) {
    if (i == 1 || !ctx.in[i]) continue;
    if (ctx.in[i]->dtype != DType::float32) return expect_dtype(ctx, DType::float32);
  }
  if (ctx.out[0]->dtype != DType::float32) return expect_dtype(ctx, DType::float32);
  if (w.dtype == DType::float32) return {};
  if (!compressed_weights(ctx) || !w.constant) {
    return op_error(ctx, std::string("weights of ") + dtype_name(w.dtype) +
                             " must be constant float16, or int8 with scales");
  }
  if (w.dtype == DType::int8) {
    if (w.scales.size() != 1 &&
        (w.scales.size() != static_cast<size_t>(channels) || w.quant_axis != w_axis)) {
      return op_error(ctx, "int8 weights need one scale, or one per output channel along axis " +
                               std::to_string(w_axis));
    }
    for (int64_t z : w.zero_points) {
      if (z != 0) return op_error(ctx, "int8 weights must be symmetric (zero point 0)");
    }
  }
  ctx.persistent_bytes = static_cast<size_t>(w.numel) * sizeof(float);
  return {};
}

float half_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exponent = (h >> 10) & 0x1fu, mantissa = h & 0x3ffu, bits;
  if (exponent == 0x1f) {
    bits = sign | 0x7f800000u | (mantissa << 13);  // inf, nan
  } else if (exponent != 0) {
    bits = sign | ((exponent + 112) << 23) | (mantissa << 13);
  } else if (mantissa == 0) {
    bits = sign;
  } else {  // subnormal: normalize
    exponent = 113;
    while (!(mantissa & 0x400u)) mantissa <<= 1, --exponent;
    bits = sign | (exponent << 23) | ((mantissa & 0x3ffu) << 13);
  }
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

// Expands compressed weights into ctx.persistent (float32, same layout).
// Decodes compressed weights into `out` (float32, same layout).
TESSERA_LITE_COLD void decode_weights(const OpContext& ctx, int w_axis, float* out) {
  const TensorDesc& w = *ctx.in[1];
  if (w.dtype == DType::float16) {
    const auto* in = static_cast<const uint16_t*>(ctx.in_data[1]);
    for (int64_t i = 0; i < w.numel; ++i) out[i] = half_to_float(in[i]);
    return;
  }
  int64_t inner = 1;
  for (int d = w_axis + 1; d < w.rank(); ++d) inner *= w.dim(d);
  const int64_t channels = w.dim(w_axis);
  const auto* in = static_cast<const int8_t*>(ctx.in_data[1]);
  for (int64_t i = 0; i < w.numel; ++i) {
    const size_t c = w.scales.size() > 1 ? static_cast<size_t>((i / inner) % channels) : 0;
    out[i] = static_cast<float>(in[i]) * w.scales[c];
  }
}

// Expands compressed weights into ctx.persistent (float32, same layout).
TESSERA_LITE_COLD void expand_weights(const OpContext& ctx, int w_axis) {
  if (compressed_weights(ctx)) decode_weights(ctx, w_axis, static_cast<float*>(ctx.persistent));
}

// The float32 weights a float layer computes with.
const float* float_weights(const OpContext& ctx) {
  return compressed_weights(ctx) ? static_cast<const float*>(ctx.persistent) : ctx.input<float>(1);
}

struct ConvParams {
  ConvGeometry g;
  Requant q;  // integer convolutions
  bool int8;
  // Integer convolutions with patches of at least kMinPackedPatch values gather each
  // output pixel's patch (zero point removed) and take dot products with weights packed
  // per output channel as int16 [O, KH, KW, C]: products of 16-bit values summed in 32 bits
  // (pmaddwd, VNNI), the form x86 and NEON multiply fastest.
  bool packed;
  int64_t patch;  // KH * KW * C
  Dot16x4 dot;
  bool tiles;  // the register-tiled kernels (conv_tiles.h)
  // int8 tiles: the persistent memory holds the per-channel multipliers, then the bias
  // corrections, then the packed weights.
  size_t correction_at, weights_at;
  bool pool;       // a 2x2 max pool of stride 2 follows (ConvOptions.max_pool_2x2)
  size_t pool_at;  // where the rows before pooling are, in scratch
  // int8 tiles pool their int32 sums before requantizing (every multiplier finite and
  // positive: conv2d_int8_tiles_pooled_row), with no rows in scratch.
  bool pool_sums;
  // float32 tiles of narrow windows read a padded copy of each image, in scratch at
  // image_at (prepare_float_image).
  bool float_image;
  size_t image_at;
  ConvTileArgs float_tiles;  // the float32 tiles' geometry: the padded copy's, or g's
};

ConvTileArgs tile_args(const ConvGeometry& g) {
  return {g.N,
          g.H,
          g.W,
          g.C,
          g.KH,
          g.KW,
          g.O,
          g.OH,
          g.OW,
          g.sh,
          g.sw,
          g.dh,
          g.dw,
          g.pt,
          g.pl,
          g.act == schema::Activation_Relu,
          g.act == schema::Activation_Relu6};
}

size_t align64(size_t n) { return (n + 63) / 64 * 64; }
constexpr int64_t kMinPackedPatch = 16;

// Shared by Conv2D and DepthwiseConv2D: `depthwise` weights are [KH, KW, O] with O a
// multiple of C.
TESSERA_LITE_COLD Result prepare_conv_layer(OpContext& ctx, bool depthwise, size_t* scratch_bytes) {
  if (Result r = expect_arity(ctx, 2, 3, 1); !r.ok()) return r;
  ConvParams& params = ctx.params_as<ConvParams>();
  params.int8 = ctx.in[0]->dtype == DType::int8;
  params.pool_sums = params.float_image = false;
  const schema::ConvOptions* o = ctx.op().options_as_ConvOptions();
  if (Result r = check_conv_options(ctx, o); !r.ok()) return r;
  const TensorDesc &x = *ctx.in[0], &w = *ctx.in[1];
  if (x.rank() != 4 || w.rank() != (depthwise ? 3 : 4)) {
    return op_error(ctx, "expects input [N,H,W,C] and weights " +
                             std::string(depthwise ? "[KH,KW,C*M]" : "[KH,KW,C,O]") + ", got " +
                             shape_string(x.shape) + " and " + shape_string(w.shape));
  }
  ConvGeometry geo{x.dim(0),
                   x.dim(1),
                   x.dim(2),
                   x.dim(3),
                   w.dim(0),
                   w.dim(1),
                   depthwise ? w.dim(2) : w.dim(3),
                   0,
                   0,
                   o->stride_h(),
                   o->stride_w(),
                   o->dilation_h(),
                   o->dilation_w(),
                   o->pad_top(),
                   o->pad_left(),
                   o->activation()};
  if (depthwise ? (geo.C == 0 || geo.O % geo.C != 0) : w.dim(2) != geo.C) {
    return op_error(ctx, "weights " + shape_string(w.shape) + " do not fit " +
                             std::to_string(geo.C) + " input channels");
  }
  // Zero input channels would leave output pixels summing KH x KW taps of nothing: refused,
  // as a model without meaning whose loops could run for hours.
  if (geo.KH == 0 || geo.KW == 0 || geo.C == 0) {
    return op_error(ctx, "has an empty kernel or no input channels");
  }
  geo.OH = out_size(geo.H, geo.KH, geo.sh, geo.dh, geo.pt, o->pad_bottom());
  geo.OW = out_size(geo.W, geo.KW, geo.sw, geo.dw, geo.pl, o->pad_right());
  if (ctx.in.size() > 2 && ctx.in[2] && (ctx.in[2]->rank() != 1 || ctx.in[2]->dim(0) != geo.O)) {
    return op_error(ctx, "bias has shape " + shape_string(ctx.in[2]->shape) + ", expected [" +
                             std::to_string(geo.O) + "]");
  }
  params.pool = o->max_pool_2x2();
  const std::vector<int32_t> out = params.pool
                                       ? std::vector<int32_t>{geo.N, geo.OH / 2, geo.OW / 2, geo.O}
                                       : std::vector<int32_t>{geo.N, geo.OH, geo.OW, geo.O};
  if (Result r = expect_output_shape(ctx, 0, out); !r.ok()) return r;
  params.g = geo;
  if (!params.int8) {
    if (Result r = check_float_layer(ctx, depthwise ? 2 : 3, geo.O); !r.ok()) return r;
  }
  // Register tiles: float32 on AVX-512, int8 on AVX-512 VNNI.
  params.tiles = !depthwise && (params.int8 ? conv_vnni_supported() : conv_tiles_supported());
  if (params.tiles && !params.int8) {
    *scratch_bytes = static_cast<size_t>(geo.C) * sizeof(float);  // zeros for padded taps
    // Windows rows of up to 16 values (a first layer): the edge checks cost more than a copy.
    params.float_image = int64_t{geo.KW} * geo.C <= 16;
    params.float_tiles = params.float_image ? float_image_args(tile_args(geo)) : tile_args(geo);
    if (params.float_image) {
      const size_t floats = float_image_floats(tile_args(geo));
      if (floats == SIZE_MAX) return op_error(ctx, "the padded input is too large");
      params.image_at = align64(*scratch_bytes);
      *scratch_bytes = params.image_at + floats * sizeof(float);
    }
  }
  if (params.int8 && params.tiles) {
    params.correction_at = align64(static_cast<size_t>(geo.O) * sizeof(float));
    params.weights_at = params.correction_at + align64(static_cast<size_t>(geo.O) * 4);
    ctx.persistent_bytes = params.weights_at + int8_packed_bytes(tile_args(geo));
    *scratch_bytes = int8_scratch_bytes(tile_args(geo));
    if (*scratch_bytes == SIZE_MAX) return op_error(ctx, "the padded input is too large");
    Result r = check_int8_layer(ctx, 3, geo.O, geo.act, &params.q);
    params.pool_sums = params.pool && r.ok();
    for (size_t o = 0; params.pool_sums && o < w.scales.size(); ++o) {
      const float multiplier = params.q.x_scale * w.scales[o] * params.q.y_inv_scale;
      params.pool_sums = std::isfinite(multiplier) && multiplier > 0;
    }
    return r;
  }
  if (params.int8) {
    params.patch = int64_t{geo.KH} * geo.KW * geo.C;
    params.packed = !depthwise && params.patch >= kMinPackedPatch;
    params.dot = best_dot16x4();
    if (params.packed) {
      *scratch_bytes = static_cast<size_t>(params.patch) * sizeof(int16_t);
      ctx.persistent_bytes = static_cast<size_t>(params.patch * geo.O) * sizeof(int16_t);
    } else {
      *scratch_bytes = static_cast<size_t>(geo.O) * sizeof(int32_t);  // accumulators
    }
    return check_int8_layer(ctx, depthwise ? 2 : 3, geo.O, geo.act, &params.q);
  }
  return {};
}

TESSERA_LITE_COLD Result prepare_conv(OpContext& ctx, bool depthwise, size_t* scratch_bytes) {
  Result r = prepare_conv_layer(ctx, depthwise, scratch_bytes);
  ConvParams& p = ctx.params_as<ConvParams>();
  if (!r.ok() || !p.pool || p.pool_sums) return r;
  // After the kernel's scratch: the two rows a pooled row needs (tiles), or the whole map.
  const int64_t rows = p.tiles ? 2 : int64_t{p.g.N} * p.g.OH;
  const int64_t bytes = rows * p.g.OW * p.g.O * (p.int8 ? 1 : 4);
  if (bytes > (int64_t{1} << 40)) return op_error(ctx, "the map before pooling is too large");
  p.pool_at = align64(*scratch_bytes);
  *scratch_bytes = p.pool_at + static_cast<size_t>(bytes);
  return r;
}

// Depthwise: output channel o reads input channel o / M (M = O / C) through weights
// [KH, KW, O]; otherwise every input channel through weights [KH, KW, C, O].
template <bool kDepthwise>
TESSERA_LITE_MULTIVERSION void conv2d(const ConvGeometry& g, const float* x, const float* w,
                                      const float* bias, float* y) {
  const int O = g.O, M = g.O / g.C;
  for (int n = 0; n < g.N; ++n) {
    for (int oh = 0; oh < g.OH; ++oh) {
      for (int ow = 0; ow < g.OW; ++ow) {
        float* out = y + ((int64_t{n} * g.OH + oh) * g.OW + ow) * O;
        for (int o = 0; o < O; ++o) out[o] = bias ? bias[o] : 0.0f;
        for (int kh = 0; kh < g.KH; ++kh) {
          int ih = oh * g.sh - g.pt + kh * g.dh;
          if (ih < 0 || ih >= g.H) continue;
          for (int kw = 0; kw < g.KW; ++kw) {
            int iw = ow * g.sw - g.pl + kw * g.dw;
            if (iw < 0 || iw >= g.W) continue;
            const float* in = x + ((int64_t{n} * g.H + ih) * g.W + iw) * g.C;
            if constexpr (kDepthwise) {
              const float* wk = w + (int64_t{kh} * g.KW + kw) * O;
              for (int o = 0; o < O; ++o) out[o] += in[o / M] * wk[o];
            } else {
              const float* wk = w + (int64_t{kh} * g.KW + kw) * g.C * O;
              for (int c = 0; c < g.C; ++c) {
                const float v = in[c];
                const float* wc = wk + int64_t{c} * O;
                for (int o = 0; o < O; ++o) out[o] += v * wc[o];
              }
            }
          }
        }
        for (int o = 0; o < O; ++o) out[o] = activate(out[o], g.act);
      }
    }
  }
}

template <bool kDepthwise>
TESSERA_LITE_MULTIVERSION void conv2d_int8(const ConvGeometry& g, const Requant& q,
                                           const int8_t* __restrict x, const int8_t* __restrict w,
                                           const float* __restrict w_scales,
                                           const int32_t* __restrict bias, int32_t* __restrict acc,
                                           int8_t* __restrict y) {
  // Locals, not g's fields, in the loops: int8 pointers may alias anything, g included.
  const int O = g.O, C = g.C, H = g.H, W = g.W, KH = g.KH, KW = g.KW, M = g.O / g.C;
  const int32_t zero = q.x_zero;
  const float base = q.x_scale * q.y_inv_scale;
  const Requant rq = q;
  for (int n = 0; n < g.N; ++n) {
    for (int oh = 0; oh < g.OH; ++oh) {
      for (int ow = 0; ow < g.OW; ++ow) {
        for (int o = 0; o < O; ++o) acc[o] = bias ? bias[o] : 0;
        for (int kh = 0; kh < KH; ++kh) {
          int ih = oh * g.sh - g.pt + kh * g.dh;
          if (ih < 0 || ih >= H) continue;
          for (int kw = 0; kw < KW; ++kw) {
            int iw = ow * g.sw - g.pl + kw * g.dw;
            if (iw < 0 || iw >= W) continue;
            const int8_t* in = x + ((int64_t{n} * H + ih) * W + iw) * C;
            if constexpr (kDepthwise) {
              const int8_t* wk = w + (int64_t{kh} * KW + kw) * O;
              for (int o = 0; o < O; ++o) acc[o] += (in[o / M] - zero) * int32_t{wk[o]};
            } else {
              const int8_t* wk = w + (int64_t{kh} * KW + kw) * C * O;
              for (int c = 0; c < C; ++c) {
                const int32_t v = in[c] - zero;
                const int8_t* wc = wk + int64_t{c} * O;
                for (int o = 0; o < O; ++o) acc[o] += v * int32_t{wc[o]};
              }
            }
          }
        }
        int8_t* out = y + ((int64_t{n} * g.OH + oh) * g.OW + ow) * O;
        for (int o = 0; o < O; ++o) {
          out[o] = requantize(acc[o], base * w_scales[rq.per_channel ? o : 0], rq);
        }
      }
    }
  }
}

// HWIO int8 weights -> OHWI int16 (or channel pairs for the tiles), once, at allocation.
TESSERA_LITE_COLD void pack_conv_weights(const OpContext& ctx) {
  const ConvParams& p = ctx.params_as<ConvParams>();
  if (!p.int8) return expand_weights(ctx, ctx.desc->code == schema::OpCode_DepthwiseConv2D ? 2 : 3);
  if (p.int8 && p.tiles) {
    auto* base = static_cast<uint8_t*>(ctx.persistent);
    auto* multipliers = reinterpret_cast<float*>(base);
    const std::vector<float>& ws = ctx.in[1]->scales;
    for (int o = 0; o < p.g.O; ++o) {
      multipliers[o] = p.q.x_scale * ws[p.q.per_channel ? o : 0] * p.q.y_inv_scale;
    }
    pack_int8_weights(tile_args(p.g), ctx.input<int8_t>(1), p.q.x_zero,
                      reinterpret_cast<int8_t*>(base + p.weights_at),
                      reinterpret_cast<int32_t*>(base + p.correction_at));
    return;
  }
  if (!p.int8 || !p.packed) return;
  const int8_t* w = ctx.input<int8_t>(1);
  auto* packed = static_cast<int16_t*>(ctx.persistent);
  const int64_t O = p.g.O, K = p.patch;
  for (int64_t k = 0; k < K; ++k) {
    for (int64_t o = 0; o < O; ++o) packed[o * K + k] = w[k * O + o];
  }
}

void conv2d_int8_packed(const ConvParams& p, const int8_t* __restrict x,
                        const int16_t* __restrict w, const float* __restrict w_scales,
                        const int32_t* __restrict bias, int16_t* __restrict patch,
                        int8_t* __restrict y) {
  const ConvGeometry& g = p.g;
  const Requant& q = p.q;
  const int C = g.C, O = g.O, H = g.H, W = g.W;
  const int64_t K = p.patch;
  const int16_t zero = static_cast<int16_t>(q.x_zero);
  const float base = q.x_scale * q.y_inv_scale;
  for (int n = 0; n < g.N; ++n) {
    for (int oh = 0; oh < g.OH; ++oh) {
      for (int ow = 0; ow < g.OW; ++ow) {
        int16_t* at = patch;
        for (int kh = 0; kh < g.KH; ++kh) {
          int ih = oh * g.sh - g.pt + kh * g.dh;
          for (int kw = 0; kw < g.KW; ++kw, at += C) {
            int iw = ow * g.sw - g.pl + kw * g.dw;
            if (ih < 0 || ih >= H || iw < 0 || iw >= W) {
              for (int c = 0; c < C; ++c) at[c] = 0;  // padding is real zero
              continue;
            }
            const int8_t* in = x + ((int64_t{n} * H + ih) * W + iw) * C;
            for (int c = 0; c < C; ++c) at[c] = static_cast<int16_t>(in[c] - zero);
          }
        }
        int8_t* out = y + ((int64_t{n} * g.OH + oh) * g.OW + ow) * O;
        // Four output channels per pass over the patch (rows past O repeat the last).
        for (int o = 0; o < O; o += 4) {
          const int16_t* rows[4];
          for (int j = 0; j < 4; ++j) rows[j] = w + std::min(o + j, O - 1) * K;
          int32_t acc[4];
          p.dot(patch, rows[0], rows[1], rows[2], rows[3], K, acc);
          for (int j = 0; j < 4 && o + j < O; ++j) {
            int32_t a = acc[j] + (bias ? bias[o + j] : 0);
            out[o + j] = requantize(a, base * w_scales[q.per_channel ? o + j : 0], q);
          }
        }
      }
    }
  }
}

Int8TileArgs int8_tile_args(const ConvParams& p) {
  return {tile_args(p.g), p.q.x_zero, p.q.y_zero, p.q.lo, p.q.hi};
}
// Before the rows of image n of a tiled convolution: its padded copy in scratch, where the
// kernel reads one (prepare_int8_image, prepare_float_image).
void prepare_image(const OpContext& ctx, int n) {
  const ConvParams& p = ctx.params_as<ConvParams>();
  if (p.int8 && p.tiles) {
    prepare_int8_image(int8_tile_args(p), ctx.input<int8_t>(0), n, ctx.scratch);
  }
  if (p.float_image) {
    prepare_float_image(tile_args(p.g), ctx.input<float>(0), n,
                        reinterpret_cast<float*>(static_cast<uint8_t*>(ctx.scratch) + p.image_at));
  }
}
Int8Weights int8_weights(const OpContext& ctx) {
  const ConvParams& p = ctx.params_as<ConvParams>();
  const auto* base = static_cast<const uint8_t*>(ctx.persistent);
  return {base + p.weights_at, reinterpret_cast<const int32_t*>(base + p.correction_at),
          reinterpret_cast<const float*>(base)};
}
const int32_t* int8_bias(const OpContext& ctx) {
  return ctx.in.size() > 2 && ctx.in[2] ? ctx.input<int32_t>(2) : nullptr;
}

// The whole pooled map of int8 tiles that pool their sums (ConvParams::pool_sums).
void int8_pooled_map(const OpContext& ctx) {
  const ConvParams& p = ctx.params_as<ConvParams>();
  const int PH = p.g.OH / 2, PW = p.g.OW / 2;
  for (int n = 0; n < p.g.N; ++n) {
    prepare_image(ctx, n);
    for (int ph = 0; ph < PH; ++ph) {
      conv2d_int8_tiles_pooled_row(
          int8_tile_args(p), int8_weights(ctx), int8_bias(ctx), ctx.scratch, ph,
          static_cast<int8_t*>(ctx.out_data[0]) + (int64_t{n} * PH + ph) * PW * p.g.O);
    }
  }
}

// Output row (n, oh) of a tiled convolution into `row`.
void conv_row(const OpContext& ctx, int n, int oh, void* row) {
  const ConvParams& p = ctx.params_as<ConvParams>();
  const bool bias = ctx.in.size() > 2 && ctx.in[2];
  if (p.int8) {
    // Image n is in scratch (prepare_image).
    conv2d_int8_tiles_row(int8_tile_args(p), int8_weights(ctx), int8_bias(ctx), ctx.scratch, oh,
                          static_cast<int8_t*>(row));
  } else {
    // With a padded copy, image n is in scratch as image 0 of a padded input.
    const auto* image =
        reinterpret_cast<const float*>(static_cast<const uint8_t*>(ctx.scratch) + p.image_at);
    conv2d_tiles_row(p.float_tiles, p.float_image ? image : ctx.input<float>(0), float_weights(ctx),
                     bias ? ctx.input<float>(2) : nullptr, static_cast<const float*>(ctx.scratch),
                     p.float_image ? 0 : n, oh, static_cast<float*>(row));
  }
}

// The whole output map of a tiled convolution, row by row (one copy for both kinds).
__attribute__((noinline)) void tiles_map(const OpContext& ctx, void* y) {
  const ConvParams& p = ctx.params_as<ConvParams>();
  const size_t row = static_cast<size_t>(p.g.OW) * p.g.O * (p.int8 ? 1 : sizeof(float));
  for (int n = 0; n < p.g.N; ++n) {
    prepare_image(ctx, n);
    for (int oh = 0; oh < p.g.OH; ++oh) {
      conv_row(ctx, n, oh, static_cast<uint8_t*>(y) + (int64_t{n} * p.g.OH + oh) * row);
    }
  }
}

// The whole output map, [N, OH, OW, O], into `y`.
template <bool kDepthwise>
void conv_map(const OpContext& ctx, void* y) {
  const ConvParams& p = ctx.params_as<ConvParams>();
  const bool bias = ctx.in.size() > 2 && ctx.in[2];
  if (p.tiles) {
    tiles_map(ctx, y);
  } else if (p.int8 && p.packed) {
    conv2d_int8_packed(p, ctx.input<int8_t>(0), static_cast<const int16_t*>(ctx.persistent),
                       ctx.in[1]->scales.data(), bias ? ctx.input<int32_t>(2) : nullptr,
                       static_cast<int16_t*>(ctx.scratch), static_cast<int8_t*>(y));
  } else if (p.int8) {
    conv2d_int8<kDepthwise>(p.g, p.q, ctx.input<int8_t>(0), ctx.input<int8_t>(1),
                            ctx.in[1]->scales.data(), bias ? ctx.input<int32_t>(2) : nullptr,
                            static_cast<int32_t*>(ctx.scratch), static_cast<int8_t*>(y));
  } else {
    conv2d<kDepthwise>(p.g, ctx.input<float>(0), float_weights(ctx),
                       bias ? ctx.input<float>(2) : nullptr, static_cast<float*>(y));
  }
}

// A 2x2 max pool of stride 2 over two rows of OW pixels, O channels each.
template <typename T>
void pool_rows(const T* __restrict r0, const T* __restrict r1, int OW, int O, T* __restrict out) {
  for (int pw = 0; pw < OW / 2; ++pw) {
    const T *a = r0 + int64_t{2 * pw} * O, *b = r1 + int64_t{2 * pw} * O;
#pragma omp simd
    for (int c = 0; c < O; ++c) {
      out[int64_t{pw} * O + c] = std::max(std::max(a[c], a[O + c]), std::max(b[c], b[O + c]));
    }
  }
}

// A convolution whose whole map `map` computes (conv_map), pooled or not. Not a template:
// one copy serves both kinds.
void eval_conv_layer(const OpContext& ctx, void (*map)(const OpContext&, void*)) {
  const ConvParams& p = ctx.params_as<ConvParams>();
  if (p.tiles && !p.int8) {  // the input of padded taps
    std::fill(static_cast<float*>(ctx.scratch), static_cast<float*>(ctx.scratch) + p.g.C, 0.0f);
  }
  if (!p.pool) return map(ctx, ctx.out_data[0]);
  if (p.pool_sums) return int8_pooled_map(ctx);
  // Pooled: each pair of rows is pooled while in cache (tiles), or the map first.
  const size_t element = p.int8 ? 1 : sizeof(float), row = size_t(p.g.OW) * p.g.O * element;
  const size_t pooled_row = size_t(p.g.OW / 2) * p.g.O * element;
  auto* rows = static_cast<uint8_t*>(ctx.scratch) + p.pool_at;
  if (!p.tiles) map(ctx, rows);
  for (int n = 0; n < p.g.N; ++n) {
    if (p.tiles) prepare_image(ctx, n);
    for (int ph = 0; ph < p.g.OH / 2; ++ph) {
      uint8_t* r0 = rows;
      if (p.tiles) {
        conv_row(ctx, n, 2 * ph, r0);
        conv_row(ctx, n, 2 * ph + 1, r0 + row);
      } else {
        r0 += (int64_t{n} * p.g.OH + 2 * ph) * row;
      }
      uint8_t* out =
          static_cast<uint8_t*>(ctx.out_data[0]) + (int64_t{n} * (p.g.OH / 2) + ph) * pooled_row;
      if (p.int8) {
        pool_rows(reinterpret_cast<int8_t*>(r0), reinterpret_cast<int8_t*>(r0 + row), p.g.OW, p.g.O,
                  reinterpret_cast<int8_t*>(out));
      } else {
        pool_rows(reinterpret_cast<float*>(r0), reinterpret_cast<float*>(r0 + row), p.g.OW, p.g.O,
                  reinterpret_cast<float*>(out));
      }
    }
  }
}

template <bool kDepthwise>
void eval_conv(const OpContext& ctx) {
  eval_conv_layer(ctx, conv_map<kDepthwise>);
}

struct FcGeometry {
  int64_t rows;
  int I, O;
  schema::Activation act;
};

struct FcParams {
  FcGeometry g;
  Requant q;
  bool int8;
  Dot16x8x4 dot;
  bool packed;  // float32 weights packed for fully_connected_packed (conv_tiles.h)
  // int8 with VNNI: fully_connected_int8_packed; the persistent memory holds the output
  // multipliers, the corrections from correction_at, then the packed weights.
  bool packed8;
  size_t correction_at, weights_at;
};

TESSERA_LITE_COLD Result prepare_fc(OpContext& ctx, size_t* scratch_bytes) {
  if (Result r = expect_arity(ctx, 2, 3, 1); !r.ok()) return r;
  FcParams& params = ctx.params_as<FcParams>();
  params.int8 = ctx.in[0]->dtype == DType::int8;
  FcGeometry* g = &params.g;
  const schema::FullyConnectedOptions* o = ctx.op().options_as_FullyConnectedOptions();
  if (!o || o->activation() > schema::Activation_MAX) {
    return op_error(ctx, "needs FullyConnectedOptions with a known activation");
  }
  const TensorDesc &x = *ctx.in[0], &w = *ctx.in[1];
  if (x.rank() < 1 || w.rank() != 2 || x.dim(-1) != w.dim(1)) {
    return op_error(ctx, "expects input [..., I] and weights [O, I], got " + shape_string(x.shape) +
                             " and " + shape_string(w.shape));
  }
  // Rows from the leading dims: with I == 0 there are still rows to fill (with the bias).
  int64_t rows = 1;
  for (size_t d = 0; d + 1 < x.shape.size(); ++d) rows *= x.shape[d];
  FcGeometry geo{rows, w.dim(1), w.dim(0), o->activation()};
  if (ctx.in.size() > 2 && ctx.in[2] && (ctx.in[2]->rank() != 1 || ctx.in[2]->dim(0) != geo.O)) {
    return op_error(ctx, "bias has shape " + shape_string(ctx.in[2]->shape) + ", expected [" +
                             std::to_string(geo.O) + "]");
  }
  std::vector<int32_t> out(x.shape.begin(), x.shape.end() - 1);
  out.push_back(geo.O);
  if (Result r = expect_output_shape(ctx, 0, out); !r.ok()) return r;
  *g = geo;
  if (!params.int8) {
    if (Result r = check_float_layer(ctx, 0, geo.O); !r.ok()) return r;
    params.packed = conv_tiles_supported() && ctx.in[1]->constant;
    if (params.packed) ctx.persistent_bytes = fc_packed_floats(geo.I, geo.O) * sizeof(float);
  }
  if (params.int8) {
    params.dot = best_dot16x8x4();
    *scratch_bytes = static_cast<size_t>(geo.I + 4) * sizeof(int16_t);  // the row
    params.packed8 = conv_vnni_supported() && ctx.in[1]->constant;
    if (params.packed8) {
      params.correction_at = align64(static_cast<size_t>(geo.O) * sizeof(float));
      params.weights_at = params.correction_at + align64(static_cast<size_t>(geo.O) * 4);
      ctx.persistent_bytes = params.weights_at + fc_int8_packed_bytes(geo.I, geo.O);
    }
    return check_int8_layer(ctx, 0, geo.O, geo.act, &params.q);
  }
  return {};
}

TESSERA_LITE_MULTIVERSION
void fully_connected(const FcGeometry& g, const float* x, const float* w, const float* bias,
                     float* y) {
  for (int64_t r = 0; r < g.rows; ++r) {
    const float* in = x + r * g.I;
    // Four outputs per pass over the row: four independent sums keep the multiply-add
    // pipelines full (one sum waits on its own latency) and each input load feeds four.
    int o = 0;
    for (; o + 4 <= g.O; o += 4) {
      const float *w0 = w + int64_t{o} * g.I, *w1 = w0 + g.I, *w2 = w1 + g.I, *w3 = w2 + g.I;
      float a0 = 0, a1 = 0, a2 = 0, a3 = 0;
      // Reassociating the sums lets them vectorize (partial sums per lane).
#pragma omp simd reduction(+ : a0, a1, a2, a3)
      for (int i = 0; i < g.I; ++i) {
        a0 += in[i] * w0[i];
        a1 += in[i] * w1[i];
        a2 += in[i] * w2[i];
        a3 += in[i] * w3[i];
      }
      const float sums[4] = {a0, a1, a2, a3};
      for (int j = 0; j < 4; ++j) {
        y[r * g.O + o + j] = activate(sums[j] + (bias ? bias[o + j] : 0.0f), g.act);
      }
    }
    for (; o < g.O; ++o) {
      const float* wo = w + int64_t{o} * g.I;
      float acc = 0;
#pragma omp simd reduction(+ : acc)
      for (int i = 0; i < g.I; ++i) acc += in[i] * wo[i];
      y[r * g.O + o] = activate(acc + (bias ? bias[o] : 0.0f), g.act);
    }
  }
}

void fully_connected_int8(const FcParams& p, const int8_t* x, const int8_t* w,
                          const float* w_scales, const int32_t* bias, int16_t* row, int8_t* y) {
  const FcGeometry& g = p.g;
  const Requant& q = p.q;
  const float base = q.x_scale * q.y_inv_scale;
  for (int64_t r = 0; r < g.rows; ++r) {
    for (int i = 0; i < g.I; ++i) row[i] = static_cast<int16_t>(x[r * g.I + i] - q.x_zero);
    // Four outputs per pass over the row (rows past O repeat the last).
    for (int o = 0; o < g.O; o += 4) {
      const int8_t* rows[4];
      for (int j = 0; j < 4; ++j) rows[j] = w + int64_t{std::min(o + j, g.O - 1)} * g.I;
      int32_t acc[4];
      p.dot(row, rows[0], rows[1], rows[2], rows[3], g.I, acc);
      for (int j = 0; j < 4 && o + j < g.O; ++j) {
        int32_t a = acc[j] + (bias ? bias[o + j] : 0);
        y[r * g.O + o + j] = requantize(a, base * w_scales[q.per_channel ? o + j : 0], q);
      }
    }
  }
}

struct TransposeConvParams {
  ConvGeometry g;  // H, W: the input; OH, OW: the output
  Requant q;       // int8
  bool int8;
};

TESSERA_LITE_COLD Result prepare_transpose_conv(OpContext& ctx, size_t* scratch_bytes) {
  if (Result r = expect_arity(ctx, 2, 3, 1); !r.ok()) return r;
  const schema::ConvOptions* o = ctx.op().options_as_ConvOptions();
  if (Result r = check_conv_options(ctx, o); !r.ok()) return r;
  const TensorDesc &x = *ctx.in[0], &w = *ctx.in[1], &y = *ctx.out[0];
  if (x.rank() != 4 || w.rank() != 4 || y.rank() != 4 || w.dim(2) != x.dim(3) ||
      y.dim(0) != x.dim(0) || y.dim(3) != w.dim(3)) {
    return op_error(ctx,
                    "expects input [N,H,W,C], weights [KH,KW,C,O] and output [N,OH,OW,O], "
                    "got " +
                        shape_string(x.shape) + ", " + shape_string(w.shape) + " and " +
                        shape_string(y.shape));
  }
  if (ctx.in.size() > 2 && ctx.in[2] && (ctx.in[2]->rank() != 1 || ctx.in[2]->dim(0) != w.dim(3))) {
    return op_error(ctx, "bias has shape " + shape_string(ctx.in[2]->shape));
  }
  if (w.dim(0) == 0 || w.dim(1) == 0 || x.dim(3) == 0) {  // as prepare_conv_layer
    return op_error(ctx, "has an empty kernel or no input channels");
  }
  TransposeConvParams& p = ctx.params_as<TransposeConvParams>();
  p.g = {x.dim(0),        x.dim(1),      x.dim(2),      x.dim(3),
         w.dim(0),        w.dim(1),      w.dim(3),      y.dim(1),
         y.dim(2),        o->stride_h(), o->stride_w(), o->dilation_h(),
         o->dilation_w(), o->pad_top(),  o->pad_left(), o->activation()};
  p.int8 = x.dtype == DType::int8;
  if (!p.int8) return check_float_layer(ctx, 3, w.dim(3));
  *scratch_bytes = static_cast<size_t>(y.numel) * sizeof(int32_t);  // the sums
  return check_int8_layer(ctx, 3, w.dim(3), o->activation(), &p.q);
}

// Each input pixel scatters into the output pixels its taps reach: out += (x - zero) * w,
// in float (zero 0) or in int32 sums of int8 (zero: the input's zero point). One build, not
// one per instruction set: decoders' upsampling is rarely the hot layer, and clones cost size.
template <typename In, typename Weight, typename Acc>
void scatter_taps(const ConvGeometry& g, const In* __restrict x, const Weight* __restrict w,
                  Acc zero, Acc* __restrict out) {
  const int O = g.O, C = g.C;
  for (int n = 0; n < g.N; ++n) {
    for (int ih = 0; ih < g.H; ++ih) {
      for (int iw = 0; iw < g.W; ++iw) {
        const In* in = x + ((int64_t{n} * g.H + ih) * g.W + iw) * C;
        for (int kh = 0; kh < g.KH; ++kh) {
          const int oh = ih * g.sh - g.pt + kh * g.dh;
          if (oh < 0 || oh >= g.OH) continue;
          for (int kw = 0; kw < g.KW; ++kw) {
            const int ow = iw * g.sw - g.pl + kw * g.dw;
            if (ow < 0 || ow >= g.OW) continue;
            Acc* at = out + ((int64_t{n} * g.OH + oh) * g.OW + ow) * O;
            const Weight* wk = w + (int64_t{kh} * g.KW + kw) * C * O;
            for (int c = 0; c < C; ++c) {
              const Acc v = static_cast<Acc>(in[c]) - zero;
              for (int o = 0; o < O; ++o) at[o] += v * static_cast<Acc>(wk[int64_t{c} * O + o]);
            }
          }
        }
      }
    }
  }
}

void transpose_conv2d(const ConvGeometry& g, const float* __restrict x, const float* __restrict w,
                      const float* __restrict bias, float* __restrict y) {
  const int O = g.O;
  for (int64_t i = 0; i < int64_t{g.N} * g.OH * g.OW; ++i) {
    for (int o = 0; o < O; ++o) y[i * O + o] = bias ? bias[o] : 0.0f;
  }
  scatter_taps(g, x, w, 0.0f, y);
  if (g.act != schema::Activation_None) {
    for (int64_t i = 0; i < int64_t{g.N} * g.OH * g.OW * O; ++i) y[i] = activate(y[i], g.act);
  }
}

// The int8 form: int32 sums, then requantized per channel.
void transpose_conv2d_int8(const TransposeConvParams& p, const int8_t* __restrict x,
                           const int8_t* __restrict w, const float* w_scales,
                           const int32_t* __restrict bias, int32_t* __restrict acc,
                           int8_t* __restrict y) {
  const ConvGeometry& g = p.g;
  const int O = g.O;
  const int64_t pixels = int64_t{g.N} * g.OH * g.OW;
  for (int64_t i = 0; i < pixels; ++i) {
    for (int o = 0; o < O; ++o) acc[i * O + o] = bias ? bias[o] : 0;
  }
  scatter_taps(g, x, w, p.q.x_zero, acc);
  for (int64_t i = 0; i < pixels; ++i) {
    for (int o = 0; o < O; ++o) {
      float multiplier = p.q.x_scale * w_scales[p.q.per_channel ? o : 0] * p.q.y_inv_scale;
      y[i * O + o] = requantize(acc[i * O + o], multiplier, p.q);
    }
  }
}

}  // namespace

const Kernel kTransposeConv2D{
    prepare_transpose_conv,
    [](const OpContext& ctx) {
      const TransposeConvParams& p = ctx.params_as<TransposeConvParams>();
      const bool bias = ctx.in.size() > 2 && ctx.in[2];
      if (p.int8) {
        transpose_conv2d_int8(p, ctx.input<int8_t>(0), ctx.input<int8_t>(1),
                              ctx.in[1]->scales.data(), bias ? ctx.input<int32_t>(2) : nullptr,
                              static_cast<int32_t*>(ctx.scratch), ctx.output<int8_t>(0));
      } else {
        transpose_conv2d(p.g, ctx.input<float>(0), float_weights(ctx),
                         bias ? ctx.input<float>(2) : nullptr, ctx.output<float>(0));
      }
    },
    [](const OpContext& ctx) {
      if (!ctx.params_as<TransposeConvParams>().int8) expand_weights(ctx, 3);
    }};

const Kernel kConv2D{
    [](OpContext& ctx, size_t* scratch) { return prepare_conv(ctx, false, scratch); },
    eval_conv<false>, pack_conv_weights};
const Kernel kDepthwiseConv2D{
    [](OpContext& ctx, size_t* scratch) { return prepare_conv(ctx, true, scratch); },
    eval_conv<true>, pack_conv_weights};

const Kernel kFullyConnected{
    prepare_fc,
    [](const OpContext& ctx) {
      const FcParams& p = ctx.params_as<FcParams>();
      const bool bias = ctx.in.size() > 2 && ctx.in[2];
      if (p.int8 && p.packed8) {
        const auto* base = static_cast<const uint8_t*>(ctx.persistent);
        const Int8TileArgs q{{}, p.q.x_zero, p.q.y_zero, p.q.lo, p.q.hi};
        fully_connected_int8_packed(q, ctx.input<int8_t>(0), p.g.rows, p.g.I, p.g.O,
                                    reinterpret_cast<const int8_t*>(base + p.weights_at),
                                    reinterpret_cast<const int32_t*>(base + p.correction_at),
                                    reinterpret_cast<const float*>(base),
                                    bias ? ctx.input<int32_t>(2) : nullptr,
                                    static_cast<uint8_t*>(ctx.scratch), ctx.output<int8_t>(0));
      } else if (p.int8) {
        fully_connected_int8(p, ctx.input<int8_t>(0), ctx.input<int8_t>(1),
                             ctx.in[1]->scales.data(), bias ? ctx.input<int32_t>(2) : nullptr,
                             static_cast<int16_t*>(ctx.scratch), ctx.output<int8_t>(0));
      } else if (p.packed) {
        fully_connected_packed(
            ctx.input<float>(0), p.g.rows, p.g.I, p.g.O, static_cast<const float*>(ctx.persistent),
            bias ? ctx.input<float>(2) : nullptr, p.g.act == schema::Activation_Relu,
            p.g.act == schema::Activation_Relu6, ctx.output<float>(0));
      } else {
        fully_connected(p.g, ctx.input<float>(0), float_weights(ctx),
                        bias ? ctx.input<float>(2) : nullptr, ctx.output<float>(0));
      }
    },
    [](const OpContext& ctx) {
      const FcParams& p = ctx.params_as<FcParams>();
      if (p.int8 && p.packed8) {
        auto* base = static_cast<uint8_t*>(ctx.persistent);
        auto* multipliers = reinterpret_cast<float*>(base);
        const std::vector<float>& ws = ctx.in[1]->scales;
        for (int o = 0; o < p.g.O; ++o) {
          multipliers[o] = p.q.x_scale * ws[p.q.per_channel ? o : 0] * p.q.y_inv_scale;
        }
        return pack_fc_int8(ctx.input<int8_t>(1), p.g.I, p.g.O, p.q.x_zero,
                            reinterpret_cast<int8_t*>(base + p.weights_at),
                            reinterpret_cast<int32_t*>(base + p.correction_at));
      }
      if (p.int8) return;
      if (!p.packed) return expand_weights(ctx, 0);
      const float* w = ctx.input<float>(1);
      std::vector<float> decoded;  // compressed weights, decoded first (at allocation)
      if (compressed_weights(ctx)) {
        decoded.resize(static_cast<size_t>(ctx.in[1]->numel));
        decode_weights(ctx, 0, decoded.data());
        w = decoded.data();
      }
      pack_fc_weights(w, p.g.I, p.g.O, static_cast<float*>(ctx.persistent));
    }};

}  // namespace tessera::lite
