// dropout (a composite of bernoulli and mul), and three families of primitives whose
// gradients are each other's ops, so every order of derivative is available:
// - embedding (a gather of rows) and embedding_backward (a scatter-add into rows);
// - pad and pad_backward (the adjoint: a scatter-add of the padded gradient);
// - upsample_{nearest,bilinear}2d and their adjoint "_backward" ops, computed as
//   separable taps (src/kernels/cpu/conv.h).
#include <cmath>
#include <cstring>
#include <string>

#include "../kernels/cpu/conv.h"
#include "../kernels/cpu/copy.h"
#include "run_float.h"
#include "samples.h"
#include "tessera/core/parallel.h"
#include "tessera/ops/creation.h"
#include "tessera/ops/elementwise.h"
#include "tessera/ops/nn.h"
#include "tessera/ops/op.h"

namespace tessera {
namespace {

using detail::contiguous_as;
using detail::run_float;

// ------------------------------------------------------------------ embedding

// The indices as int64, checked against the number of rows (before any parallel loop).
std::vector<int64_t> checked_indices(const char* op, const Tensor& idx, int64_t rows) {
  std::vector<int64_t> v = idx.to_vector<int64_t>();
  for (int64_t i : v) {
    check(i >= 0 && i < rows, op, "index ", i, " is out of range for ", rows,
          " embeddings (indices shape ", idx.shape(), ")");
  }
  return v;
}

void check_indices(const char* op, const Tensor& idx) {
  check(is_integral(idx.dtype()), op, "expects integer indices, got ", dtype_name(idx.dtype()));
}

MetaList infer_embedding(const OpCall& c) {
  const char* op = "embedding";
  const Tensor &w = c.in(0), &idx = c.in(1);
  check(w.dim() == 2, op, "expects a 2-d weight [num_embeddings, dim], got shape ", w.shape());
  check_indices(op, idx);
  int64_t pad = c.attrs.i("padding_idx");
  check(pad < w.shape()[0], op, "padding_idx ", pad, " is out of range for ", w.shape()[0],
        " embeddings");
  Shape out = idx.shape();
  out.push_back(w.shape()[1]);
  return {{out, w.dtype()}};
}

void cpu_embedding(const OpCall& c, std::span<Tensor> outs) {
  const Tensor& out = outs[0];
  const Tensor& w = c.in(0);
  std::vector<int64_t> idx = checked_indices("embedding", c.in(1), w.shape()[0]);
  if (out.numel() == 0) return;
  Tensor wc = contiguous_as(w, w.dtype());
  const int64_t pad = c.attrs.i("padding_idx");
  const bool mask = c.attrs.b("mask_padding");
  const size_t row_bytes = w.shape()[1] * w.element_size();
  const char* src = static_cast<const char*>(wc.data_ptr());
  char* dst = static_cast<char*>(out.data_ptr());
  int64_t n = static_cast<int64_t>(idx.size());
  parallel_for(0, n, std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(w.shape()[1], 1)),
               [&](int64_t lo, int64_t hi) {
                 for (int64_t i = lo; i < hi; ++i) {
                   if (mask && idx[i] == pad) {
                     std::memset(dst + i * row_bytes, 0, row_bytes);
                   } else {
                     std::memcpy(dst + i * row_bytes, src + idx[i] * row_bytes, row_bytes);
                   }
                 }
               });
}

MetaList infer_embedding_backward(const OpCall& c) {
  const char* op = "embedding_backward";
  const Tensor &g = c.in(0), &idx = c.in(1);
  check_indices(op, idx);
  check(is_floating(g.dtype()), op, "expects a floating-point gradient, got ",
        dtype_name(g.dtype()));
  Shape expected = idx.shape();
  expected.push_back(g.dim() > 0 ? g.shape()[g.dim() - 1] : 0);
  check(g.shape() == expected, op, "gradient has shape ", g.shape(), ", expected ", expected,
        " for indices ", idx.shape());
  return {{{c.attrs.i("num_weights"), expected.back()}, g.dtype()}};
}

void cpu_embedding_backward(const OpCall& c, std::span<Tensor> outs) {
  const Tensor& out = outs[0];
  std::vector<int64_t> idx =
      checked_indices("embedding_backward", c.in(1), c.attrs.i("num_weights"));
  const int64_t pad = c.attrs.i("padding_idx");
  run_float(c.inputs, out, [&](auto tag, const std::vector<Tensor>& in, const Tensor& o) {
    using T = decltype(tag);
    const T* g = static_cast<const T*>(in[0].data_ptr());
    T* gw = static_cast<T*>(o.data_ptr());
    std::fill(gw, gw + o.numel(), T(0));
    const int64_t D = o.shape()[1], n = static_cast<int64_t>(idx.size());
    // Columns in parallel; every column adds the rows in index order (deterministic).
    parallel_for(0, D, std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(n, 1)),
                 [&](int64_t lo, int64_t hi) {
                   for (int64_t i = 0; i < n; ++i) {
                     if (idx[i] == pad) continue;
                     T* row = gw + idx[i] * D;
                     const T* gr = g + i * D;
                     for (int64_t j = lo; j < hi; ++j) row[j] += gr[j];
                   }
                 });
  });
}

TensorList grad_embedding(const GradCall& g);
TensorList grad_embedding_backward(const GradCall& g);
// Rows looked up by int64 indices (not swept) of two shapes, repeats included, with and
// without a padding index, and no index at all.
std::vector<OpSample> embedding_samples() {
  Tensor w = samples::values({7, 5}, -2, 2, 1);
  Tensor idx = from_vector(std::vector<int64_t>{3, 0, 6, 3, 2, 1}, {2, 3});
  auto attrs = [](int64_t padding_idx) {
    return Attrs{{"padding_idx", padding_idx}, {"mask_padding", false}};
  };
  return {{{w, idx}, attrs(-1), 1u},
          {{w, from_vector(std::vector<int64_t>{2, 2, 5}, {3})}, attrs(2), 1u},
          {{w, from_vector(std::vector<int64_t>{}, {0})}, attrs(-1), 1u}};
}

constexpr OpDef kEmbedding = [] {
  OpDef def{"embedding", infer_embedding, cpu_embedding, nullptr, grad_embedding, kSaveInputs};
  def.samples = embedding_samples;
  return def;
}();
constexpr OpDef kEmbeddingBackward{"embedding_backward",    infer_embedding_backward,
                                   cpu_embedding_backward,  nullptr,
                                   grad_embedding_backward, kSaveInputs};

TensorList grad_embedding(const GradCall& g) {
  TensorList out(2);
  if (g.needs(0)) {
    out[0] =
        run_op1(kEmbeddingBackward, {g.gout(), g.in(1)},
                {{"num_weights", g.in_shape(0)[0]}, {"padding_idx", g.attrs.i("padding_idx")}});
  }
  return out;
}

TensorList grad_embedding_backward(const GradCall& g) {
  // The adjoint of the scatter-add is the gather, with padding rows reading zero.
  TensorList out(2);
  if (g.needs(0)) {
    out[0] = run_op1(kEmbedding, {g.gout(), g.in(1)},
                     {{"padding_idx", g.attrs.i("padding_idx")}, {"mask_padding", true}});
  }
  return out;
}

// ------------------------------------------------------------------ pad

enum class PadMode { kConstant, kReflect, kReplicate };

PadMode parse_pad_mode(const std::string& mode) {
  if (mode == "constant") return PadMode::kConstant;
  if (mode == "reflect") return PadMode::kReflect;
  if (mode == "replicate") return PadMode::kReplicate;
  fail("pad", "mode must be \"constant\", \"reflect\" or \"replicate\", got \"", mode, "\"");
}

struct PadPlan {
  Shape in, out;
  std::vector<int64_t> before, after;     // per dimension
  std::vector<std::vector<int64_t>> src;  // per dimension: input index of each output, or -1
};

PadPlan plan_pad(const Shape& in, const std::vector<int64_t>& pads, const std::string& mode_name,
                 bool build) {
  const char* op = "pad";
  PadMode mode = parse_pad_mode(mode_name);
  size_t nd = in.size();
  check(pads.size() % 2 == 0 && pads.size() <= 2 * nd, op,
        "pads must hold two values (before, after) per padded dimension, last dimension first, "
        "at most ",
        2 * nd, " for input ", in, "; got ", pads.size());
  PadPlan p;
  p.in = in;
  p.out = in;
  p.before.assign(nd, 0);
  p.after.assign(nd, 0);
  for (size_t i = 0; i < pads.size() / 2; ++i) {
    size_t d = nd - 1 - i;
    p.before[d] = pads[2 * i];
    p.after[d] = pads[2 * i + 1];
  }
  for (size_t d = 0; d < nd; ++d) {
    int64_t L = in[d], b = p.before[d], a = p.after[d];
    if (mode != PadMode::kConstant) {
      check(b >= 0 && a >= 0, op, mode_name, " padding must be non-negative, got (", b, ", ", a,
            ") for dimension ", d, " of input ", in);
    }
    if (mode == PadMode::kReflect) {
      check(b < L && a < L, op, "reflect padding (", b, ", ", a,
            ") must be smaller than the size of dimension ", d, " of input ", in);
    }
    if (mode == PadMode::kReplicate) {
      check(L > 0 || (b == 0 && a == 0), op, "replicate padding of dimension ", d,
            " needs a non-empty dimension, input ", in);
    }
    int64_t grown = 0;
    check(!__builtin_add_overflow(L, b, &grown) && !__builtin_add_overflow(grown, a, &p.out[d]), op,
          "padding (", b, ", ", a, ") of dimension ", d, " of input ", in, " is too large");
    check(p.out[d] >= 0, op, "padding (", b, ", ", a, ") makes dimension ", d, " of input ", in,
          " negative");
  }
  if (build) {
    p.src.resize(nd);
    for (size_t d = 0; d < nd; ++d) {
      int64_t L = in[d];
      for (int64_t o = 0; o < p.out[d]; ++o) {
        int64_t i = o - p.before[d];
        if (mode == PadMode::kConstant) {
          i = i >= 0 && i < L ? i : -1;
        } else if (mode == PadMode::kReflect) {
          if (i < 0) i = -i;
          if (i >= L) i = 2 * (L - 1) - i;
        } else {
          i = std::clamp<int64_t>(i, 0, L - 1);
        }
        p.src[d].push_back(i);
      }
    }
  }
  return p;
}

// Calls fn(row, src_offset or -1) for output rows [lo, hi) (rows of the last dimension).
template <typename Fn>
void for_pad_rows(const PadPlan& p, const Dims& in_strides, int64_t lo, int64_t hi, Fn&& fn) {
  size_t nd = p.out.size();
  for (int64_t r = lo; r < hi; ++r) {
    int64_t rem = r, off = 0;
    for (size_t d = nd - 1; d-- > 0;) {
      int64_t o = rem % p.out[d];
      rem /= p.out[d];
      int64_t s = p.src[d][o];
      if (s < 0 || off < 0) {
        off = -1;
      } else {
        off += s * in_strides[d];
      }
    }
    fn(r, off);
  }
}

MetaList infer_pad(const OpCall& c) {
  return {
      {plan_pad(c.in(0).shape(), c.attrs.ints("pads"), c.attrs.get<std::string>("mode"), false).out,
       c.in(0).dtype()}};
}

void cpu_pad(const OpCall& c, std::span<Tensor> outs) {
  const Tensor& out = outs[0];
  if (out.numel() == 0) return;
  const Tensor& x = c.in(0);
  PadPlan p = plan_pad(x.shape(), c.attrs.ints("pads"), c.attrs.get<std::string>("mode"), true);
  Tensor xc = contiguous_as(x, x.dtype());
  if (out.dim() == 0) {
    cpu::copy_into(xc, out);
    return;
  }
  double value = c.attrs.f("value");
  Dims strides = contiguous_strides(x.shape());
  int64_t inner = out.shape()[out.dim() - 1], rows = out.numel() / inner;
  const std::vector<int64_t>& last = p.src.back();
  visit_dtype(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* src = static_cast<const T*>(xc.data_ptr());
    T* dst = static_cast<T*>(out.data_ptr());
    const T fill = cpu::convert<T>(value);
    parallel_for(0, rows, std::max<int64_t>(1, kParallelGrain / inner),
                 [&](int64_t lo, int64_t hi) {
                   for_pad_rows(p, strides, lo, hi, [&](int64_t r, int64_t off) {
                     T* y = dst + r * inner;
                     if (off < 0) {
                       std::fill(y, y + inner, fill);
                       return;
                     }
                     for (int64_t o = 0; o < inner; ++o)
                       y[o] = last[o] < 0 ? fill : src[off + last[o]];
                   });
                 });
  });
}

MetaList infer_pad_backward(const OpCall& c) {
  const char* op = "pad_backward";
  const Tensor& g = c.in(0);
  check(is_floating(g.dtype()), op, "expects a floating-point gradient, got ",
        dtype_name(g.dtype()));
  Shape in(c.attrs.ints("input_shape"));
  Shape expected = plan_pad(in, c.attrs.ints("pads"), c.attrs.get<std::string>("mode"), false).out;
  check(g.shape() == expected, op, "gradient has shape ", g.shape(), ", expected ", expected,
        " for input ", in);
  return {{in, g.dtype()}};
}

void cpu_pad_backward(const OpCall& c, std::span<Tensor> outs) {
  const Tensor& out = outs[0];
  if (out.numel() == 0) return;
  const Tensor& g = c.in(0);
  PadPlan p = plan_pad(out.shape(), c.attrs.ints("pads"), c.attrs.get<std::string>("mode"), true);
  Dims strides = contiguous_strides(out.shape());
  run_float(c.inputs, out, [&](auto tag, const std::vector<Tensor>& in, const Tensor& o) {
    using T = decltype(tag);
    const T* gy = static_cast<const T*>(in[0].data_ptr());
    T* gx = static_cast<T*>(o.data_ptr());
    std::fill(gx, gx + o.numel(), T(0));
    if (o.dim() == 0) {
      gx[0] = gy[0];
      return;
    }
    if (g.numel() == 0) return;
    size_t nd = p.out.size();
    int64_t inner = p.out[nd - 1], rows = g.numel() / inner;
    const std::vector<int64_t>& last = p.src.back();
    // Leading unpadded dimensions split the work into independent blocks; rows within a
    // block add in order, so the result does not depend on the thread count.
    size_t lead = 0;
    while (lead + 1 < nd && p.before[lead] == 0 && p.after[lead] == 0) ++lead;
    int64_t blocks = 1;
    for (size_t d = 0; d < lead; ++d) blocks *= p.out[d];
    int64_t per_block = rows / blocks;
    parallel_for(
        0, blocks, std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(per_block * inner, 1)),
        [&](int64_t lo, int64_t hi) {
          for_pad_rows(p, strides, lo * per_block, hi * per_block, [&](int64_t r, int64_t off) {
            if (off < 0) return;
            const T* y = gy + r * inner;
            for (int64_t j = 0; j < inner; ++j) {
              if (last[j] >= 0) gx[off + last[j]] += y[j];
            }
          });
        });
  });
}

TensorList grad_pad(const GradCall& g);
TensorList grad_pad_backward(const GradCall& g);
// Constant padding of the last one and two dimensions (cropping too: negative pads),
// reflect and replicate, a 0-d input.
std::vector<OpSample> pad_samples() {
  auto attrs = [](std::vector<int64_t> pads, const char* mode) {
    return Attrs{{"pads", std::move(pads)}, {"mode", std::string(mode)}, {"value", 0.5}};
  };
  return {{{samples::values({2, 37}, -2, 2, 1)}, attrs({1, 2}, "constant")},
          {{samples::values({2, 3, 4}, -2, 2, 2)}, attrs({2, 1, 0, 3}, "constant")},
          {{samples::values({2, 3, 6}, -2, 2, 3)}, attrs({-1, 2}, "constant")},
          {{samples::values({2, 5, 6}, -2, 2, 4)}, attrs({2, 3, 1, 1}, "reflect")},
          {{samples::values({3, 4}, -2, 2, 5)}, attrs({2, 1}, "replicate")},
          {{samples::values({2, 0}, -2, 2, 6)}, attrs({1, 1}, "constant")}};
}

constexpr OpDef kPad = [] {
  OpDef def{"pad", infer_pad, cpu_pad, nullptr, grad_pad, kSaveNothing};
  def.samples = pad_samples;
  return def;
}();
constexpr OpDef kPadBackward{"pad_backward", infer_pad_backward, cpu_pad_backward,
                             nullptr,        grad_pad_backward,  kSaveNothing};

TensorList grad_pad(const GradCall& g) { return {run_adjoint(kPadBackward, g)}; }

TensorList grad_pad_backward(const GradCall& g) {
  Attrs a = g.attrs;
  a.set("value", 0.0);
  return {run_op1(kPad, {g.gout()}, a)};
}

// ------------------------------------------------------------------ interpolation

template <bool kBilinear>
constexpr const char* upsample_name() {
  return kBilinear ? "upsample_bilinear2d" : "upsample_nearest2d";
}
template <bool kBilinear>
constexpr const char* upsample_backward_name() {
  return kBilinear ? "upsample_bilinear2d_backward" : "upsample_nearest2d_backward";
}

// The 1-d sampling of one dimension. ratio > 0 is the input step per output step given
// by a scale factor (1 / scale); otherwise it follows from the sizes.
cpu::Taps resize_taps(bool bilinear, int64_t in, int64_t out, double ratio, bool align_corners) {
  cpu::Taps t;
  for (int64_t o = 0; o < out; ++o) {
    if (!bilinear) {
      int64_t s = ratio > 0 ? static_cast<int64_t>(std::floor(static_cast<double>(o) * ratio))
                            : o * in / out;
      t.add(std::min(s, in - 1), 1.0);
    } else {
      double src;
      if (align_corners) {
        src = out > 1 ? static_cast<double>(o) * static_cast<double>(in - 1) /
                            static_cast<double>(out - 1)
                      : 0.0;
      } else {
        double r = ratio > 0 ? ratio : static_cast<double>(in) / static_cast<double>(out);
        src = std::max(r * (static_cast<double>(o) + 0.5) - 0.5, 0.0);
      }
      int64_t i0 = std::min(static_cast<int64_t>(src), in - 1);
      int64_t i1 = i0 < in - 1 ? i0 + 1 : i0;
      double l1 = src - static_cast<double>(i0);
      if (i1 == i0) {
        t.add(i0, 1.0);
      } else {
        t.add(i0, 1.0 - l1);
        t.add(i1, l1);
      }
    }
    t.end_output();
  }
  return t;
}

// Validates an upsample op's input shape and attributes; returns the output shape.
template <bool kBilinear>
Shape upsample_shape(const char* op, const Shape& x, const Attrs& a) {
  check(x.size() == 4, op, "expects a 4-d input [N, C, H, W], got shape ", x);
  check(x[2] >= 1 && x[3] >= 1, op, "expects non-empty spatial dimensions, got input ", x);
  const std::vector<int64_t>& size = a.ints("size");
  check(size.size() == 2 && size[0] >= 1 && size[1] >= 1, op,
        "output size must be 2 positive values, got ", Dims(size));
  return {x[0], x[1], size[0], size[1]};
}

template <bool kBilinear>
std::pair<cpu::Taps, cpu::Taps> upsample_taps(const Shape& in, const Shape& out, const Attrs& a) {
  bool ac = a.b("align_corners");
  return {resize_taps(kBilinear, in[2], out[2], a.f("ratio_h"), ac),
          resize_taps(kBilinear, in[3], out[3], a.f("ratio_w"), ac)};
}

template <bool kBilinear>
MetaList infer_upsample(const OpCall& c) {
  const char* op = upsample_name<kBilinear>();
  const Tensor& x = c.in(0);
  check(is_floating(x.dtype()), op, "expects a floating-point input, got ", dtype_name(x.dtype()));
  return {{upsample_shape<kBilinear>(op, x.shape(), c.attrs), x.dtype()}};
}

template <bool kBilinear>
void cpu_upsample(const OpCall& c, std::span<Tensor> outs) {
  const Tensor& out = outs[0];
  if (out.numel() == 0) return;
  const Shape& in = c.in(0).shape();
  auto taps = upsample_taps<kBilinear>(in, out.shape(), c.attrs);
  const auto &rows = taps.first, &cols = taps.second;  // not bindings: clang 14 lambdas
  run_float(c.inputs, out, [&](auto tag, const std::vector<Tensor>& ins, const Tensor& o) {
    using T = decltype(tag);
    cpu::separable_apply<T>(rows, cols, in[0] * in[1], in[2], in[3],
                            static_cast<const T*>(ins[0].data_ptr()),
                            static_cast<T*>(o.data_ptr()));
  });
}

template <bool kBilinear>
MetaList infer_upsample_backward(const OpCall& c) {
  const char* op = upsample_backward_name<kBilinear>();
  const Tensor& g = c.in(0);
  check(is_floating(g.dtype()), op, "expects a floating-point gradient, got ",
        dtype_name(g.dtype()));
  Shape in(c.attrs.ints("input_shape"));
  Shape expected = upsample_shape<kBilinear>(op, in, c.attrs);
  check(g.shape() == expected, op, "gradient has shape ", g.shape(), ", expected ", expected,
        " for input ", in);
  return {{in, g.dtype()}};
}

template <bool kBilinear>
void cpu_upsample_backward(const OpCall& c, std::span<Tensor> outs) {
  const Tensor& out = outs[0];
  if (out.numel() == 0) return;
  const Shape& in = out.shape();
  auto taps = upsample_taps<kBilinear>(in, c.in(0).shape(), c.attrs);
  const auto &rows = taps.first, &cols = taps.second;  // not bindings: clang 14 lambdas
  run_float(c.inputs, out, [&](auto tag, const std::vector<Tensor>& ins, const Tensor& o) {
    using T = decltype(tag);
    cpu::separable_apply_adjoint<T>(rows, cols, in[0] * in[1], in[2], in[3],
                                    static_cast<const T*>(ins[0].data_ptr()),
                                    static_cast<T*>(o.data_ptr()));
  });
}

template <bool kBilinear>
TensorList grad_upsample(const GradCall& g);
template <bool kBilinear>
TensorList grad_upsample_backward(const GradCall& g);

// Up and down, to sizes that are no multiple of the input's, corners aligned (bilinear),
// an empty batch.
template <bool kBilinear>
std::vector<OpSample> upsample_samples() {
  auto attrs = [](int64_t h, int64_t w, bool align_corners) {
    return Attrs{{"size", std::vector<int64_t>{h, w}},
                 {"ratio_h", 0.0},
                 {"ratio_w", 0.0},
                 {"align_corners", align_corners}};
  };
  std::vector<OpSample> out = {{{samples::values({2, 3, 4, 5}, -2, 2, 1)}, attrs(8, 10, false)},
                               {{samples::values({1, 2, 5, 4}, -2, 2, 2)}, attrs(7, 9, false)},
                               {{samples::values({2, 2, 6, 7}, -2, 2, 3)}, attrs(2, 3, false)},
                               {{samples::values({0, 2, 3, 3}, -2, 2, 4)}, attrs(6, 6, false)}};
  if (kBilinear) out.push_back({{samples::values({1, 2, 3, 4}, -2, 2, 5)}, attrs(5, 7, true)});
  return out;
}

template <bool kBilinear>
constexpr OpDef kUpsample = [] {
  OpDef def{upsample_name<kBilinear>(), infer_upsample<kBilinear>,
            cpu_upsample<kBilinear>,    nullptr,
            grad_upsample<kBilinear>,   kSaveNothing};
  def.samples = upsample_samples<kBilinear>;
  return def;
}();
template <bool kBilinear>
constexpr OpDef kUpsampleBackward{
    upsample_backward_name<kBilinear>(), infer_upsample_backward<kBilinear>,
    cpu_upsample_backward<kBilinear>,    nullptr,
    grad_upsample_backward<kBilinear>,   kSaveNothing};

template <bool kBilinear>
TensorList grad_upsample(const GradCall& g) {
  return {run_adjoint(kUpsampleBackward<kBilinear>, g)};
}

template <bool kBilinear>
TensorList grad_upsample_backward(const GradCall& g) {
  return {run_op1(kUpsample<kBilinear>, {g.gout()}, g.attrs)};
}

const OpRegistrar r1(kEmbedding), r2(kEmbeddingBackward), r3(kPad), r4(kPadBackward),
    r5(kUpsample<false>), r6(kUpsample<true>), r7(kUpsampleBackward<false>),
    r8(kUpsampleBackward<true>);

Tensor interpolate_impl(const Tensor& x, int64_t oh, int64_t ow, double ratio_h, double ratio_w,
                        const std::string& mode, bool align_corners) {
  const char* op = "interpolate";
  check(mode == "nearest" || mode == "bilinear", op,
        "mode must be \"nearest\" or \"bilinear\", got \"", mode, "\"");
  check(mode == "bilinear" || !align_corners, op,
        "align_corners can only be set with mode \"bilinear\"");
  Attrs a{{"size", std::vector<int64_t>{oh, ow}},
          {"ratio_h", ratio_h},
          {"ratio_w", ratio_w},
          {"align_corners", align_corners}};
  return run_op1(mode == "bilinear" ? kUpsample<true> : kUpsample<false>, {x}, a);
}

void check_interpolate_input(const Tensor& x) {
  check_defined(x, "interpolate", "input");
  check(x.dim() == 4, "interpolate", "expects a 4-d input [N, C, H, W], got shape ", x.shape());
}

}  // namespace

Tensor dropout(const Tensor& x, double p, bool training, Generator* gen) {
  check_defined(x, "dropout", "input");
  check(p >= 0.0 && p <= 1.0, "dropout", "probability must be in [0, 1], got ", p);
  check(is_floating(x.dtype()), "dropout", "expects a floating-point input, got ",
        dtype_name(x.dtype()));
  if (!training || p == 0.0) return x;
  if (p == 1.0) return mul(x, zeros({}, x.dtype()));
  Tensor keep = bernoulli(x.shape(), 1.0 - p, x.dtype(), gen);
  return mul(x, mul(keep, 1.0 / (1.0 - p)));
}

Tensor embedding(const Tensor& weight, const Tensor& indices, int64_t padding_idx) {
  check_defined(weight, "embedding", "weight");
  check_defined(indices, "embedding", "indices");
  return run_op1(
      kEmbedding, {weight, indices},
      {{"padding_idx", padding_idx < 0 ? int64_t{-1} : padding_idx}, {"mask_padding", false}});
}

Tensor pad(const Tensor& x, const std::vector<int64_t>& pads, const std::string& mode,
           double value) {
  check_defined(x, "pad", "input");
  return run_op1(kPad, {x}, {{"pads", pads}, {"mode", mode}, {"value", value}});
}

Tensor interpolate(const Tensor& x, const std::vector<int64_t>& size, const std::string& mode,
                   bool align_corners) {
  check_interpolate_input(x);
  check(size.size() == 2, "interpolate", "size needs 2 values (H, W), got ", size.size());
  return interpolate_impl(x, size[0], size[1], 0.0, 0.0, mode, align_corners);
}

Tensor interpolate(const Tensor& x, double scale_factor, const std::string& mode,
                   bool align_corners) {
  return interpolate(x, scale_factor, scale_factor, mode, align_corners);
}

Tensor interpolate(const Tensor& x, double scale_h, double scale_w, const std::string& mode,
                   bool align_corners) {
  check_interpolate_input(x);
  check(scale_h > 0 && scale_w > 0, "interpolate", "scale factors must be positive, got ", scale_h,
        " and ", scale_w);
  // Output sizes past 2^31 could not be allocated anyway; beyond int64 their conversion
  // would be undefined.
  constexpr double kMaxSize = 2147483648.0;
  check(static_cast<double>(x.shape()[2]) * scale_h < kMaxSize &&
            static_cast<double>(x.shape()[3]) * scale_w < kMaxSize,
        "interpolate", "scale factors ", scale_h, " and ", scale_w,
        " give an output of 2^31 or more rows or columns for input ", x.shape());
  int64_t oh = static_cast<int64_t>(std::floor(static_cast<double>(x.shape()[2]) * scale_h));
  int64_t ow = static_cast<int64_t>(std::floor(static_cast<double>(x.shape()[3]) * scale_w));
  check(oh >= 1 && ow >= 1, "interpolate", "scale factors ", scale_h, " and ", scale_w,
        " give an empty output for input ", x.shape());
  return interpolate_impl(x, oh, ow, 1.0 / scale_h, 1.0 / scale_w, mode, align_corners);
}

}  // namespace tessera
