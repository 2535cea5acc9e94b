// Float32 convolutions and the fully connected layer. Activations are NHWC; convolution
// weights [KH, KW, I, O] (depthwise [KH, KW, C * M]), so the innermost loops run over
// contiguous output channels and vectorize.
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

Result check_conv_options(const OpContext& ctx, const schema::ConvOptions* o) {
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

// Shared by Conv2D and DepthwiseConv2D: `depthwise` weights are [KH, KW, O] with O a
// multiple of C.
Result prepare_conv(const OpContext& ctx, bool depthwise, ConvGeometry* g) {
  if (Result r = expect_arity(ctx, 2, 3, 1); !r.ok()) return r;
  if (Result r = expect_dtype(ctx, DType::float32); !r.ok()) return r;
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
  if (geo.KH == 0 || geo.KW == 0) return op_error(ctx, "has an empty kernel");
  geo.OH = out_size(geo.H, geo.KH, geo.sh, geo.dh, geo.pt, o->pad_bottom());
  geo.OW = out_size(geo.W, geo.KW, geo.sw, geo.dw, geo.pl, o->pad_right());
  if (ctx.in.size() > 2 && ctx.in[2] && (ctx.in[2]->rank() != 1 || ctx.in[2]->dim(0) != geo.O)) {
    return op_error(ctx, "bias has shape " + shape_string(ctx.in[2]->shape) + ", expected [" +
                             std::to_string(geo.O) + "]");
  }
  if (Result r = expect_output_shape(ctx, 0, {geo.N, geo.OH, geo.OW, geo.O}); !r.ok()) return r;
  *g = geo;
  return {};
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

struct FcGeometry {
  int64_t rows;
  int I, O;
  schema::Activation act;
};

Result prepare_fc(const OpContext& ctx, FcGeometry* g) {
  if (Result r = expect_arity(ctx, 2, 3, 1); !r.ok()) return r;
  if (Result r = expect_dtype(ctx, DType::float32); !r.ok()) return r;
  const schema::FullyConnectedOptions* o = ctx.op().options_as_FullyConnectedOptions();
  if (!o || o->activation() > schema::Activation_MAX) {
    return op_error(ctx, "needs FullyConnectedOptions with a known activation");
  }
  const TensorDesc &x = *ctx.in[0], &w = *ctx.in[1];
  if (x.rank() < 1 || w.rank() != 2 || x.dim(-1) != w.dim(1)) {
    return op_error(ctx, "expects input [..., I] and weights [O, I], got " + shape_string(x.shape) +
                             " and " + shape_string(w.shape));
  }
  FcGeometry geo{x.dim(-1) == 0 ? 0 : x.numel / x.dim(-1), w.dim(1), w.dim(0), o->activation()};
  if (ctx.in.size() > 2 && ctx.in[2] && (ctx.in[2]->rank() != 1 || ctx.in[2]->dim(0) != geo.O)) {
    return op_error(ctx, "bias has shape " + shape_string(ctx.in[2]->shape) + ", expected [" +
                             std::to_string(geo.O) + "]");
  }
  std::vector<int32_t> out(x.shape.begin(), x.shape.end() - 1);
  out.push_back(geo.O);
  if (Result r = expect_output_shape(ctx, 0, out); !r.ok()) return r;
  *g = geo;
  return {};
}

TESSERA_LITE_MULTIVERSION
void fully_connected(const FcGeometry& g, const float* x, const float* w, const float* bias,
                     float* y) {
  for (int64_t r = 0; r < g.rows; ++r) {
    const float* in = x + r * g.I;
    for (int o = 0; o < g.O; ++o) {
      const float* wo = w + int64_t{o} * g.I;
      float acc = 0;
      // Reassociating the sum lets it vectorize (partial sums per lane).
#pragma omp simd reduction(+ : acc)
      for (int i = 0; i < g.I; ++i) acc += in[i] * wo[i];
      y[r * g.O + o] = activate(acc + (bias ? bias[o] : 0.0f), g.act);
    }
  }
}

const float* bias_of(const OpContext& ctx) {
  return ctx.in.size() > 2 && ctx.in[2] ? ctx.input<float>(2) : nullptr;
}

}  // namespace

const Kernel kConv2D{[](OpContext& ctx, size_t*) {
                       return prepare_conv(ctx, false, &ctx.params_as<ConvGeometry>());
                     },
                     [](const OpContext& ctx) {
                       conv2d<false>(ctx.params_as<ConvGeometry>(), ctx.input<float>(0),
                                     ctx.input<float>(1), bias_of(ctx), ctx.output<float>(0));
                     }};

const Kernel kDepthwiseConv2D{
    [](OpContext& ctx, size_t*) { return prepare_conv(ctx, true, &ctx.params_as<ConvGeometry>()); },
    [](const OpContext& ctx) {
      conv2d<true>(ctx.params_as<ConvGeometry>(), ctx.input<float>(0), ctx.input<float>(1),
                   bias_of(ctx), ctx.output<float>(0));
    }};

const Kernel kFullyConnected{
    [](OpContext& ctx, size_t*) { return prepare_fc(ctx, &ctx.params_as<FcGeometry>()); },
    [](const OpContext& ctx) {
      fully_connected(ctx.params_as<FcGeometry>(), ctx.input<float>(0), ctx.input<float>(1),
                      bias_of(ctx), ctx.output<float>(0));
    }};

}  // namespace tessera::lite
