// Softmax, mean and sum, resize, embedding lookup, and the data-movement kernels (reshape,
// transpose, concat, pad, slice). Activations are NHWC.
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>

#include "kernel.h"

namespace tessera::lite {
namespace {

TESSERA_LITE_COLD Result prepare_reshape(OpContext& ctx, size_t*) {
  if (Result r = expect_arity(ctx, 1, 1, 1); !r.ok()) return r;
  if (ctx.in[0]->dtype != ctx.out[0]->dtype || ctx.in[0]->numel != ctx.out[0]->numel) {
    return op_error(ctx, "cannot reshape " + shape_string(ctx.in[0]->shape) + " " +
                             dtype_name(ctx.in[0]->dtype) + " to " +
                             shape_string(ctx.out[0]->shape) + " " + dtype_name(ctx.out[0]->dtype));
  }
  return {};
}

// Strides of a shape (row-major), in elements.
void strides_of(const std::vector<int32_t>& shape, int64_t* strides) {
  int64_t s = 1;
  for (int d = static_cast<int>(shape.size()) - 1; d >= 0; --d) {
    strides[d] = s;
    s *= shape[static_cast<size_t>(d)];
  }
}

struct TransposeParams {
  int rank;
  int64_t out_shape[kMaxRank], in_strides[kMaxRank];  // input stride of each output axis
  size_t element;
};

TESSERA_LITE_COLD Result prepare_transpose(OpContext& ctx, size_t*) {
  if (Result r = expect_arity(ctx, 1, 1, 1); !r.ok()) return r;
  const schema::TransposeOptions* o = ctx.op().options_as_TransposeOptions();
  const TensorDesc &x = *ctx.in[0], &y = *ctx.out[0];
  if (!o || !o->perm() || static_cast<int>(o->perm()->size()) != x.rank()) {
    return op_error(ctx,
                    "needs a permutation of the input's " + std::to_string(x.rank()) + " axes");
  }
  if (x.dtype != y.dtype) return op_error(ctx, "input and output dtypes differ");
  TransposeParams& p = ctx.params_as<TransposeParams>();
  p.rank = x.rank();
  p.element = dtype_size(x.dtype);
  int64_t in_strides[kMaxRank];
  strides_of(x.shape, in_strides);
  std::vector<int32_t> out;
  bool used[kMaxRank] = {};
  for (int d = 0; d < p.rank; ++d) {
    int a = o->perm()->Get(static_cast<flatbuffers::uoffset_t>(d));
    if (a < 0 || a >= p.rank || used[a]) return op_error(ctx, "perm is not a permutation");
    used[a] = true;
    out.push_back(x.dim(a));
    p.out_shape[d] = x.dim(a);
    p.in_strides[d] = in_strides[a];
  }
  return expect_output_shape(ctx, 0, out);
}

// Walks the output in order, the input offset following an odometer over the output axes
// (typed, so each element is one load and one store).
template <typename T>
void transpose_as(const TransposeParams& p, const T* __restrict in, T* __restrict out,
                  int64_t total) {
  const int rank = p.rank;
  const int64_t inner = p.out_shape[rank - 1], inner_stride = p.in_strides[rank - 1];
  int64_t index[kMaxRank] = {}, offset = 0;
  for (int64_t i = 0; i < total; i += inner) {
    for (int64_t j = 0; j < inner; ++j) out[i + j] = in[offset + j * inner_stride];
    for (int d = rank - 2; d >= 0; --d) {  // next row of the output
      offset += p.in_strides[d];
      if (++index[d] < p.out_shape[d]) break;
      offset -= p.in_strides[d] * p.out_shape[d];
      index[d] = 0;
    }
  }
}

void transpose(const OpContext& ctx) {
  const TransposeParams& p = ctx.params_as<TransposeParams>();
  const int64_t total = ctx.out[0]->numel;
  if (total == 0) return;
  if (p.rank == 0) {
    std::memcpy(ctx.out_data[0], ctx.in_data[0], p.element);
    return;
  }
  switch (p.element) {
    case 1:
      return transpose_as(p, ctx.input<uint8_t>(0), ctx.output<uint8_t>(0), total);
    case 2:
      return transpose_as(p, ctx.input<uint16_t>(0), ctx.output<uint16_t>(0), total);
    case 4:
      return transpose_as(p, ctx.input<uint32_t>(0), ctx.output<uint32_t>(0), total);
    default:
      return transpose_as(p, ctx.input<uint64_t>(0), ctx.output<uint64_t>(0), total);
  }
}

int normalize_axis(int axis, int rank) { return axis < 0 ? axis + rank : axis; }

TESSERA_LITE_COLD Result prepare_concat(OpContext& ctx, size_t*) {
  if (ctx.in.empty() || ctx.out.size() != 1) return op_error(ctx, "takes inputs and one output");
  const schema::ConcatOptions* o = ctx.op().options_as_ConcatOptions();
  if (!o) return op_error(ctx, "needs ConcatOptions");
  const TensorDesc& first = *ctx.in[0];
  int axis = normalize_axis(o->axis(), first.rank());
  if (axis < 0 || axis >= first.rank()) return op_error(ctx, "axis out of range");
  std::vector<int32_t> shape = first.shape;
  shape[static_cast<size_t>(axis)] = 0;
  for (const TensorDesc* t : ctx.in) {
    if (!t || t->dtype != first.dtype || t->rank() != first.rank()) {
      return op_error(ctx, "inputs must be present and share dtype and rank");
    }
    for (int d = 0; d < first.rank(); ++d) {
      if (d != axis && t->dim(d) != first.dim(d)) {
        return op_error(ctx, "input shapes " + shape_string(first.shape) + " and " +
                                 shape_string(t->shape) + " differ off the concat axis");
      }
    }
    shape[static_cast<size_t>(axis)] += t->dim(axis);
  }
  if (ctx.out[0]->dtype != first.dtype) return op_error(ctx, "output dtype differs");
  for (const TensorDesc* t : ctx.in) {  // bytes are copied: one quantization for all
    if (t->scales != ctx.out[0]->scales || t->zero_points != ctx.out[0]->zero_points) {
      return op_error(ctx, "inputs and output must share their quantization");
    }
  }
  ctx.params_as<int>() = axis;
  return expect_output_shape(ctx, 0, shape);
}

void concat(const OpContext& ctx) {
  int axis = ctx.params_as<int>();
  const TensorDesc& y = *ctx.out[0];
  int64_t outer = 1, inner = static_cast<int64_t>(dtype_size(y.dtype));
  for (int d = 0; d < axis; ++d) outer *= y.dim(d);
  for (int d = axis + 1; d < y.rank(); ++d) inner *= y.dim(d);
  auto* out = ctx.output<uint8_t>(0);
  for (int64_t o = 0; o < outer; ++o) {
    for (size_t i = 0; i < ctx.in.size(); ++i) {
      int64_t chunk = ctx.in[i]->dim(axis) * inner;
      std::memcpy(out, ctx.input<uint8_t>(i) + o * chunk, static_cast<size_t>(chunk));
      out += chunk;
    }
  }
}

// int8 pads with the padding value quantized (0 is the zero point, exactly).
struct PadParams {
  int rank;
  int32_t before[kMaxRank];
  float value;
  int8_t value8;
};

TESSERA_LITE_COLD Result prepare_pad(OpContext& ctx, size_t*) {
  if (Result r = expect_arity(ctx, 1, 1, 1); !r.ok()) return r;
  const schema::PadOptions* o = ctx.op().options_as_PadOptions();
  const TensorDesc &x = *ctx.in[0], &y = *ctx.out[0];
  const bool int8 = is_int8_per_tensor(x) && is_int8_per_tensor(y) && x.scales == y.scales &&
                    x.zero_points == y.zero_points;
  if (!int8) {
    if (Result r = expect_dtype(ctx, DType::float32); !r.ok()) return r;
  }
  if (!o || !o->before() || !o->after() || static_cast<int>(o->before()->size()) != x.rank() ||
      static_cast<int>(o->after()->size()) != x.rank()) {
    return op_error(ctx, "needs before and after padding for each of the input's axes");
  }
  PadParams& p = ctx.params_as<PadParams>();
  p.rank = x.rank();
  p.value = o->value();
  if (int8) {  // -inf (max pooling's padding) becomes -128, NaN the zero point
    const float q = std::nearbyint(p.value / x.scales[0]) + static_cast<float>(x.zero_points[0]);
    p.value8 = static_cast<int8_t>(std::isnan(q) ? static_cast<float>(x.zero_points[0])
                                                 : std::clamp(q, -128.0f, 127.0f));
  }
  std::vector<int32_t> shape;
  for (int d = 0; d < x.rank(); ++d) {
    int32_t b = o->before()->Get(static_cast<flatbuffers::uoffset_t>(d));
    int32_t a = o->after()->Get(static_cast<flatbuffers::uoffset_t>(d));
    if (b < 0 || a < 0 || b > (1 << 20) || a > (1 << 20)) {
      return op_error(ctx, "padding must be in [0, 2^20]");
    }
    p.before[d] = b;
    shape.push_back(x.dim(d) + a + b);
  }
  return expect_output_shape(ctx, 0, shape);
}

template <typename T>
void pad_as(const OpContext& ctx, T value) {
  const PadParams& p = ctx.params_as<PadParams>();
  const TensorDesc &x = *ctx.in[0], &y = *ctx.out[0];
  T* out = ctx.output<T>(0);
  for (int64_t i = 0; i < y.numel; ++i) out[i] = value;
  int64_t ys[kMaxRank], index[kMaxRank] = {};
  strides_of(y.shape, ys);
  const T* in = ctx.input<T>(0);
  for (int64_t i = 0; i < x.numel; ++i) {
    int64_t at = 0;
    for (int d = 0; d < p.rank; ++d) at += (index[d] + p.before[d]) * ys[d];
    out[at] = in[i];
    for (int d = p.rank - 1; d >= 0; --d) {
      if (++index[d] < x.dim(d)) break;
      index[d] = 0;
    }
  }
}

void pad(const OpContext& ctx) {
  const PadParams& p = ctx.params_as<PadParams>();
  if (ctx.in[0]->dtype == DType::int8) return pad_as<int8_t>(ctx, p.value8);
  pad_as<float>(ctx, p.value);
}

struct ReduceParams {
  int rank;
  bool reduced[kMaxRank];
  int64_t count;  // elements averaged into each output
};

TESSERA_LITE_COLD Result prepare_mean(OpContext& ctx, size_t* scratch_bytes) {
  if (Result r = expect_arity(ctx, 1, 1, 1); !r.ok()) return r;
  if (Result r = prepare_int8_float(ctx, 1, scratch_bytes); !r.ok()) return r;
  const schema::MeanOptions* o = ctx.op().options_as_MeanOptions();
  const TensorDesc& x = *ctx.in[0];
  if (!o || !o->axes()) return op_error(ctx, "needs MeanOptions with axes");
  ReduceParams& p = ctx.params_as<ReduceParams>();
  p = {};
  p.rank = x.rank();
  p.count = 1;
  for (int a : *o->axes()) {
    int axis = normalize_axis(a, x.rank());
    if (axis < 0 || axis >= x.rank() || p.reduced[axis]) {
      return op_error(ctx, "axes must be distinct axes of the input");
    }
    p.reduced[axis] = true;
    p.count *= x.dim(axis);
  }
  std::vector<int32_t> shape;
  for (int d = 0; d < x.rank(); ++d) {
    if (!p.reduced[d]) {
      shape.push_back(x.dim(d));
    } else if (o->keep_dims()) {
      shape.push_back(1);
    }
  }
  return expect_output_shape(ctx, 0, shape);
}

void mean(const OpContext& ctx) {
  const ReduceParams& p = ctx.params_as<ReduceParams>();
  const TensorDesc& x = *ctx.in[0];
  float* out = float_output(ctx);
  for (int64_t i = 0; i < ctx.out[0]->numel; ++i) out[i] = 0;
  // Output strides over the input's axes (0 along reduced ones).
  int64_t os[kMaxRank], s = 1, index[kMaxRank] = {};
  for (int d = p.rank - 1; d >= 0; --d) {
    os[d] = p.reduced[d] ? 0 : s;
    if (!p.reduced[d]) s *= x.dim(d);
  }
  const float* in = float_input(ctx, 0);
  int64_t at = 0;
  for (int64_t i = 0; i < x.numel; ++i) {
    out[at] += in[i];
    for (int d = p.rank - 1; d >= 0; --d) {
      at += os[d];
      if (++index[d] < x.dim(d)) break;
      at -= os[d] * x.dim(d);
      index[d] = 0;
    }
  }
  if (ctx.desc->code != schema::OpCode_Sum) {
    float scale = p.count > 0 ? 1.0f / static_cast<float>(p.count) : 0.0f;
    for (int64_t i = 0; i < ctx.out[0]->numel; ++i) out[i] *= scale;
  }
  finish_float_output(ctx);
}

struct SoftmaxParams {
  int64_t outer, axis, inner;
};

TESSERA_LITE_COLD Result prepare_softmax(OpContext& ctx, size_t* scratch_bytes) {
  if (Result r = expect_arity(ctx, 1, 1, 1); !r.ok()) return r;
  if (Result r = prepare_int8_float(ctx, 1, scratch_bytes); !r.ok()) return r;
  const schema::SoftmaxOptions* o = ctx.op().options_as_SoftmaxOptions();
  const TensorDesc& x = *ctx.in[0];
  int axis = normalize_axis(o ? o->axis() : -1, x.rank());
  if (x.rank() == 0 || axis < 0 || axis >= x.rank()) return op_error(ctx, "axis out of range");
  SoftmaxParams& p = ctx.params_as<SoftmaxParams>();
  p = {1, x.dim(axis), 1};
  for (int d = 0; d < axis; ++d) p.outer *= x.dim(d);
  for (int d = axis + 1; d < x.rank(); ++d) p.inner *= x.dim(d);
  return expect_output_shape(ctx, 0, x.shape);
}

void softmax(const OpContext& ctx) {
  const SoftmaxParams& p = ctx.params_as<SoftmaxParams>();
  const float* in = float_input(ctx, 0);
  float* out = float_output(ctx);
  for (int64_t o = 0; o < p.outer; ++o) {
    for (int64_t i = 0; i < p.inner; ++i) {
      const float* x = in + o * p.axis * p.inner + i;
      float* y = out + o * p.axis * p.inner + i;
      float top = -std::numeric_limits<float>::infinity();
      for (int64_t k = 0; k < p.axis; ++k) top = std::max(top, x[k * p.inner]);
      float total = 0;
      for (int64_t k = 0; k < p.axis; ++k) total += y[k * p.inner] = std::exp(x[k * p.inner] - top);
      for (int64_t k = 0; k < p.axis; ++k) y[k * p.inner] /= total;
    }
  }
  finish_float_output(ctx);
}

struct ResizeParams {
  int N, H, W, C, OH, OW;
  bool bilinear, align_corners;
  double ratio_h, ratio_w;
};

TESSERA_LITE_COLD Result prepare_resize(OpContext& ctx, size_t* scratch_bytes) {
  if (Result r = expect_arity(ctx, 1, 1, 1); !r.ok()) return r;
  if (Result r = prepare_int8_float(ctx, 1, scratch_bytes); !r.ok()) return r;
  const schema::ResizeOptions* o = ctx.op().options_as_ResizeOptions();
  const TensorDesc &x = *ctx.in[0], &y = *ctx.out[0];
  if (!o || x.rank() != 4 || y.rank() != 4 || x.dim(0) != y.dim(0) || x.dim(3) != y.dim(3) ||
      x.dim(1) < 1 || x.dim(2) < 1 || !std::isfinite(o->ratio_h()) ||
      !std::isfinite(o->ratio_w())) {
    return op_error(ctx,
                    "resizes [N,H,W,C] to [N,OH,OW,C] (non-empty H and W) with "
                    "ResizeOptions, got " +
                        shape_string(x.shape) + " -> " + shape_string(y.shape));
  }
  ctx.params_as<ResizeParams>() = {x.dim(0),     x.dim(1),    x.dim(2),      x.dim(3),
                                   y.dim(1),     y.dim(2),    o->bilinear(), o->align_corners(),
                                   o->ratio_h(), o->ratio_w()};
  return {};
}

// Where output position o reads along one axis: two input positions and the second's
// weight (the same arithmetic as the graph's interpolate, in double).
void source(const ResizeParams& p, int o, int in, int out, double ratio, int* i0, int* i1,
            float* w1) {
  if (!p.bilinear) {
    int64_t s = ratio > 0 ? static_cast<int64_t>(std::floor(o * ratio)) : int64_t{o} * in / out;
    *i0 = *i1 = static_cast<int>(std::min<int64_t>(s, in - 1));
    *w1 = 0;
    return;
  }
  double src;
  if (p.align_corners) {
    src = out > 1 ? static_cast<double>(o) * (in - 1) / (out - 1) : 0.0;
  } else {
    double r = ratio > 0 ? ratio : static_cast<double>(in) / out;
    src = std::max(r * (o + 0.5) - 0.5, 0.0);
  }
  *i0 = std::min(static_cast<int>(src), in - 1);
  *i1 = *i0 < in - 1 ? *i0 + 1 : *i0;
  *w1 = *i1 == *i0 ? 0.0f : static_cast<float>(src - *i0);
}

void resize(const OpContext& ctx) {
  const ResizeParams& p = ctx.params_as<ResizeParams>();
  const float* x = float_input(ctx, 0);
  float* y = float_output(ctx);
  for (int n = 0; n < p.N; ++n) {
    for (int oh = 0; oh < p.OH; ++oh) {
      int h0, h1, w0, w1;
      float lh, lw;
      source(p, oh, p.H, p.OH, p.ratio_h, &h0, &h1, &lh);
      for (int ow = 0; ow < p.OW; ++ow) {
        source(p, ow, p.W, p.OW, p.ratio_w, &w0, &w1, &lw);
        const float* a = x + ((int64_t{n} * p.H + h0) * p.W + w0) * p.C;
        const float* b = x + ((int64_t{n} * p.H + h0) * p.W + w1) * p.C;
        const float* c = x + ((int64_t{n} * p.H + h1) * p.W + w0) * p.C;
        const float* d = x + ((int64_t{n} * p.H + h1) * p.W + w1) * p.C;
        float* out = y + ((int64_t{n} * p.OH + oh) * p.OW + ow) * p.C;
        for (int k = 0; k < p.C; ++k) {
          float top = a[k] + (b[k] - a[k]) * lw, bottom = c[k] + (d[k] - c[k]) * lw;
          out[k] = top + (bottom - top) * lh;
        }
      }
    }
  }
  finish_float_output(ctx);
}

TESSERA_LITE_COLD Result prepare_embedding(OpContext& ctx, size_t*) {
  if (Result r = expect_arity(ctx, 2, 2, 1); !r.ok()) return r;
  const TensorDesc &ids = *ctx.in[0], &table = *ctx.in[1], &y = *ctx.out[0];
  // An int8 table gives int8 rows in its own quantization.
  const bool int8 = is_int8_per_tensor(table) && is_int8_per_tensor(y) &&
                    table.scales == y.scales && table.zero_points == y.zero_points;
  if ((ids.dtype != DType::int32 && ids.dtype != DType::int64) ||
      (!int8 && (table.dtype != DType::float32 || y.dtype != DType::float32)) ||
      table.rank() != 2 || ids.rank() >= kMaxRank) {
    return op_error(ctx,
                    "looks up int32/int64 indices (rank below 6) in a float32 table "
                    "[V, D] (or int8, the output in its quantization), got " +
                        std::string(dtype_name(ids.dtype)) + " " + shape_string(ids.shape) +
                        " and " + dtype_name(table.dtype) + " " + shape_string(table.shape));
  }
  std::vector<int32_t> shape = ids.shape;
  shape.push_back(table.dim(1));
  return expect_output_shape(ctx, 0, shape);
}

void embedding(const OpContext& ctx) {
  const TensorDesc &ids = *ctx.in[0], &table = *ctx.in[1];
  const int64_t V = table.dim(0);
  const size_t row = static_cast<size_t>(table.dim(1)) * dtype_size(table.dtype);
  const auto* rows = ctx.input<uint8_t>(1);
  auto* out = ctx.output<uint8_t>(0);
  // Out of range: a row of zeros (0.0f, or the int8 zero point).
  const bool int8 = table.dtype == DType::int8;
  for (int64_t i = 0; i < ids.numel; ++i) {
    int64_t id = ids.dtype == DType::int32 ? ctx.input<int32_t>(0)[i] : ctx.input<int64_t>(0)[i];
    if (id >= 0 && id < V) {
      std::memcpy(out + i * row, rows + id * row, row);
    } else {
      std::memset(out + i * row, int8 ? static_cast<int>(table.zero_points[0]) : 0, row);
    }
  }
}

// Slice: the rows start, start + step, ... of one axis, copied as blocks of bytes (any
// dtype; an int8 tensor keeps its quantization).
struct SliceParams {
  int64_t outer, in_rows, out_rows, start, step;
  size_t row_bytes;  // one position of the axis: the product of the later dims
};

TESSERA_LITE_COLD Result prepare_slice(OpContext& ctx, size_t*) {
  if (Result r = expect_arity(ctx, 1, 1, 1); !r.ok()) return r;
  const schema::SliceOptions* o = ctx.op().options_as_SliceOptions();
  const TensorDesc &x = *ctx.in[0], &y = *ctx.out[0];
  if (!o || o->axis() < 0 || o->axis() >= x.rank() || o->step() < 1) {
    return op_error(ctx, "needs SliceOptions with an axis of the input's " +
                             std::to_string(x.rank()) + " and a positive step");
  }
  if (x.dtype != y.dtype || x.scales != y.scales || x.zero_points != y.zero_points) {
    return op_error(ctx, "input and output dtypes or quantization differ");
  }
  const int axis = o->axis();
  const int64_t n = x.dim(axis), count = y.rank() == x.rank() ? y.dim(axis) : -1;
  // The last element read, start + (count - 1) * step, must be inside the axis.
  if (count < 0 || o->start() < 0 ||
      (count > 0 && o->start() + (count - 1) * int64_t{o->step()} >= n)) {
    return op_error(ctx, "slice of axis " + std::to_string(axis) + " from " +
                             std::to_string(o->start()) + " by " + std::to_string(o->step()) +
                             " reads outside the input " + shape_string(x.shape));
  }
  std::vector<int32_t> shape = x.shape;
  shape[static_cast<size_t>(axis)] = static_cast<int32_t>(count);
  if (Result r = expect_output_shape(ctx, 0, shape); !r.ok()) return r;
  SliceParams& p = ctx.params_as<SliceParams>();
  p.outer = 1;
  for (int d = 0; d < axis; ++d) p.outer *= x.dim(d);
  p.row_bytes = dtype_size(x.dtype);
  for (int d = axis + 1; d < x.rank(); ++d) p.row_bytes *= static_cast<size_t>(x.dim(d));
  p.in_rows = n;
  p.out_rows = count;
  p.start = o->start();
  p.step = o->step();
  return {};
}

void slice(const OpContext& ctx) {
  const SliceParams& p = ctx.params_as<SliceParams>();
  const auto* in = static_cast<const uint8_t*>(ctx.in_data[0]);
  auto* out = static_cast<uint8_t*>(ctx.out_data[0]);
  for (int64_t o = 0; o < p.outer; ++o) {
    for (int64_t r = 0; r < p.out_rows; ++r) {
      std::memcpy(out + static_cast<size_t>(o * p.out_rows + r) * p.row_bytes,
                  in + static_cast<size_t>(o * p.in_rows + p.start + r * p.step) * p.row_bytes,
                  p.row_bytes);
    }
  }
}

}  // namespace

const Kernel kReshape{prepare_reshape, [](const OpContext& ctx) {
                        if (ctx.out_data[0] != ctx.in_data[0]) {
                          std::memmove(ctx.out_data[0], ctx.in_data[0], ctx.out[0]->bytes);
                        }
                      }};
const Kernel kTranspose{prepare_transpose, transpose};
const Kernel kConcat{prepare_concat, concat};
const Kernel kPad{prepare_pad, pad};
const Kernel kMean{prepare_mean, mean};
const Kernel kSoftmax{prepare_softmax, softmax};
const Kernel kResize{prepare_resize, resize};
const Kernel kEmbeddingLookup{prepare_embedding, embedding};
const Kernel kSlice{prepare_slice, slice};

}  // namespace tessera::lite
