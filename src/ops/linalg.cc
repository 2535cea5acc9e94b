// matmul as one primitive over [..., m, k] @ [..., k, n] with batch broadcasting;
// 1-d operands, dot, outer, tensordot and einsum are written with it.
#include "tessera/ops/linalg.h"

#include <map>
#include <set>

#include "../kernels/cpu/copy.h"
#include "../kernels/cpu/gemm.h"
#include "samples.h"
#include "tessera/core/parallel.h"
#include "tessera/ops/elementwise.h"
#include "tessera/ops/fused.h"
#include "tessera/ops/op.h"
#include "tessera/ops/reduce.h"
#include "tessera/ops/shape.h"

namespace tessera {
namespace {

Shape batch_of(const Shape& s) { return Shape(s.begin(), s.end() - 2); }

MetaList infer_matmul(const OpCall& c) {
  const Tensor &a = c.in(0), &b = c.in(1);
  check(a.dim() >= 2 && b.dim() >= 2, "matmul", "expects operands of at least 2 dimensions, got ",
        a.shape(), " @ ", b.shape());
  int64_t k1 = a.shape()[a.dim() - 1], k2 = b.shape()[b.dim() - 2];
  check(k1 == k2, "matmul", "inner dimensions differ: ", a.shape(), " @ ", b.shape(), " (", k1,
        " != ", k2, ")");
  check(a.dtype() == b.dtype(), "matmul", "operands must have the same dtype, got ",
        dtype_name(a.dtype()), " and ", dtype_name(b.dtype()));
  check(a.dtype() != DType::Bool, "matmul", "not defined for bool tensors");
  Shape out = broadcast_shapes(batch_of(a.shape()), batch_of(b.shape()), "matmul");
  out.push_back(a.shape()[a.dim() - 2]);
  out.push_back(b.shape()[b.dim() - 1]);
  return {{out, a.dtype()}};
}

// A matrix operand in a form gemm accepts: row-major or transposed, with a leading dimension.
struct MatrixView {
  Tensor t;  // possibly a contiguous copy
  bool trans = false;
  int64_t ld = 0;
};

MatrixView as_gemm_operand(const Tensor& x) {
  int64_t nd = x.dim();
  int64_t rows = x.shape()[nd - 2], cols = x.shape()[nd - 1];
  int64_t rs = x.strides()[nd - 2], cs = x.strides()[nd - 1];
  if ((cs == 1 || cols == 1) && rs >= std::max<int64_t>(cols, 1)) return {x, false, rs};
  if ((rs == 1 || rows == 1) && cs >= std::max<int64_t>(rows, 1)) return {x, true, cs};
  Tensor c = Tensor::empty(x.shape(), x.dtype());
  cpu::copy_into(x, c);
  return {c, false, std::max<int64_t>(cols, 1)};
}

template <typename T>
void matmul_typed(const Tensor& a_in, const Tensor& b_in, const Tensor& out) {
  const Shape& os = out.shape();
  int64_t nd = out.dim();
  int64_t m = os[nd - 2], n = os[nd - 1], k = a_in.shape()[a_in.dim() - 1];
  T* y = static_cast<T*>(out.data_ptr());
  auto run_gemm = [&](const MatrixView& A, const MatrixView& B, int64_t a_off, int64_t b_off,
                      int64_t mm, T* c) {
    const T* pa = static_cast<const T*>(A.t.data_ptr()) + a_off;
    const T* pb = static_cast<const T*>(B.t.data_ptr()) + b_off;
    if constexpr (std::is_same_v<T, float>) {
      cpu::gemm_f32(A.trans, B.trans, mm, n, k, pa, A.ld, pb, B.ld, c, n, false);
    } else {
      cpu::gemm_ref<T>(A.trans, B.trans, mm, n, k, pa, A.ld, pb, B.ld, c, n);
    }
  };
  // Folding the batch into the rows: one large gemm instead of many small ones.
  if (b_in.dim() == 2 && a_in.is_contiguous()) {
    MatrixView B = as_gemm_operand(b_in);
    MatrixView A{a_in, false, k};
    run_gemm(A, B, 0, 0, out.numel() / std::max<int64_t>(n, 1), y);
    return;
  }
  Shape batch = batch_of(os);
  Shape a_shape = batch, b_shape = batch;
  a_shape.push_back(m), a_shape.push_back(k);
  b_shape.push_back(k), b_shape.push_back(n);
  MatrixView A = as_gemm_operand(expand(a_in.detach(), a_shape));
  MatrixView B = as_gemm_operand(expand(b_in.detach(), b_shape));
  int64_t batches = shape_numel(batch);
  auto offset_of = [&](const Tensor& t, int64_t index) {
    int64_t off = 0;
    for (int64_t d = static_cast<int64_t>(batch.size()) - 1; d >= 0; --d) {
      off += (index % batch[d]) * t.strides()[d];
      index /= batch[d];
    }
    return off;
  };
  // Many small products run one per thread; large ones use the library's threads.
  int64_t grain = m * n * k >= 64 * 64 * 64 ? batches : 1;
  parallel_for(0, batches, grain, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      run_gemm(A, B, offset_of(A.t, i), offset_of(B.t, i), m, y + i * m * n);
    }
  });
}

void cpu_matmul(const OpCall& c, std::span<Tensor> outs) {
  const Tensor& out = outs[0];
  if (out.numel() == 0) return;
  // Graph plans time the float32 product on one thread and on all, and set "threads".
  cpu::GemmThreadsScope threads(c.attrs.has("threads")
                                    ? static_cast<cpu::GemmThreads>(c.attrs.i("threads"))
                                    : cpu::GemmThreads::by_size);
  DType t = out.dtype();
  if (t == DType::Float16 || t == DType::BFloat16) {
    Tensor a = c.in(0).to(DType::Float32), b = c.in(1).to(DType::Float32);
    Tensor o = Tensor::empty(out.shape(), DType::Float32);
    matmul_typed<float>(a, b, o);
    cpu::copy_into(o, out);
    return;
  }
  visit_dtype(t, [&](auto tag) {
    using T = decltype(tag);
    if constexpr (std::is_same_v<T, float16> || std::is_same_v<T, bfloat16> ||
                  std::is_same_v<T, bool>) {
      // handled above or rejected by inference
    } else {
      matmul_typed<T>(c.in(0), c.in(1), out);
    }
  });
}

TensorList grad_matmul(const GradCall& g) {
  const Tensor &a = g.in(0), &b = g.in(1);
  TensorList out(2);
  if (g.needs(0)) out[0] = sum_to(matmul(g.gout(), transpose(b, -1, -2)), a.shape());
  if (g.needs(1)) {
    const int64_t k = b.shape()[0], n = b.dim() == 2 ? b.shape()[1] : 0;
    if (b.dim() == 2 && a.dim() >= 2 && k > 1 && n > 1 && b.strides()[0] == 1) {
      // b is a transposed view (a dense layer's weight.t()): build its gradient in the same
      // column-major layout, so that the transpose's own backward hands the weight a
      // contiguous gradient, which .grad can take over without a copy.
      Tensor g_t = matmul(transpose(reshape(g.gout(), {-1, n}), 0, 1), reshape(a, {-1, k}));
      out[1] = transpose(g_t, 0, 1);
    } else {
      out[1] = sum_to(matmul(transpose(a, -1, -2), g.gout()), b.shape());
    }
  }
  return out;
}

// Matrices, batches (broadcast), vectors on either side, empty inner and outer sizes, and
// one product large enough for the blocked kernels.
std::vector<OpSample> matmul_samples() {
  std::vector<OpSample> out;
  uint64_t seed = 1;
  for (const auto& [sa, sb] : std::vector<std::pair<Shape, Shape>>{{{2, 3}, {3, 4}},
                                                                   {{2, 3, 4}, {4, 5}},
                                                                   {{3}, {3, 4}},
                                                                   {{3, 4}, {4}},
                                                                   {{3}, {3}},
                                                                   {{1, 2, 3}, {4, 3, 2}},
                                                                   {{0, 3}, {3, 4}},
                                                                   {{2, 0}, {0, 3}},
                                                                   {{33, 40}, {40, 37}}}) {
    // Rounding grows with the inner size.
    out.push_back(
        {{samples::values(sa, -2, 2, seed), samples::values(sb, -2, 2, seed + 1)}, {}, ~0u, 8});
    seed += 2;
  }
  return out;
}

constexpr OpDef kMatmul = [] {
  OpDef def{"matmul", infer_matmul, cpu_matmul, nullptr, grad_matmul};
  def.tunable = product_thread_choices;
  def.samples = matmul_samples;
  return def;
}();
const OpRegistrar r1(kMatmul);

}  // namespace

// The eager rule keeps products under 96^3 multiply-adds on one thread, which is right for
// most but not all (a batch-1 784->256 layer splits well across two cores; gemm.cc), so
// plans time both.
std::vector<Attrs> product_thread_choices(std::span<const Tensor> outputs) {
  if (outputs.empty() || outputs[0].dtype() != DType::Float32 || outputs[0].numel() == 0) return {};
  return {Attrs{{"threads", int64_t{1}}}, Attrs{{"threads", int64_t{2}}}};
}

const OpDef& matmul_op() { return kMatmul; }

Tensor matmul(const Tensor& a, const Tensor& b) {
  check_defined(a, "matmul", "a");
  check_defined(b, "matmul", "b");
  check(a.dim() >= 1 && b.dim() >= 1, "matmul", "operands must have at least 1 dimension, got ",
        a.shape(), " @ ", b.shape());
  Tensor a2 = a.dim() == 1 ? unsqueeze(a, 0) : a;
  Tensor b2 = b.dim() == 1 ? unsqueeze(b, 1) : b;
  Tensor out = run_op1(kMatmul, {a2, b2});
  if (b.dim() == 1) out = squeeze(out, -1);
  if (a.dim() == 1) out = squeeze(out, b.dim() == 1 ? -1 : -2);
  return out;
}

Tensor dot(const Tensor& a, const Tensor& b) {
  check(a.dim() == 1 && b.dim() == 1, "dot", "expects two 1-d tensors, got ", a.shape(), " and ",
        b.shape());
  check(a.numel() == b.numel(), "dot", "sizes differ: ", a.shape(), " and ", b.shape());
  return matmul(a, b);
}

Tensor outer(const Tensor& a, const Tensor& b) {
  check(a.dim() == 1 && b.dim() == 1, "outer", "expects two 1-d tensors, got ", a.shape(), " and ",
        b.shape());
  return mul(unsqueeze(a, 1), unsqueeze(b, 0));
}

Tensor tensordot(const Tensor& a, const Tensor& b, const std::vector<int64_t>& axes_a,
                 const std::vector<int64_t>& axes_b) {
  check(axes_a.size() == axes_b.size(), "tensordot", "got ", axes_a.size(), " axes for a and ",
        axes_b.size(), " for b");
  std::vector<bool> ca(a.dim(), false), cb(b.dim(), false);
  Dims perm_a, perm_b;
  Shape free_a, free_b;
  int64_t contracted = 1;
  check(axes_a.empty() || (a.dim() > 0 && b.dim() > 0), "tensordot",
        "cannot contract an axis of a 0-d tensor (shapes ", a.shape(), " and ", b.shape(), ")");
  for (size_t i = 0; i < axes_a.size(); ++i) {
    int64_t x = normalize_axis(axes_a[i], a.dim(), "tensordot");
    int64_t y = normalize_axis(axes_b[i], b.dim(), "tensordot");
    check(!ca[x] && !cb[y], "tensordot", "axis ", ca[x] ? axes_a[i] : axes_b[i], " of ",
          ca[x] ? "a" : "b", " is contracted twice");
    check(a.shape()[x] == b.shape()[y], "tensordot", "contracted sizes differ: axis ", x, " of ",
          a.shape(), " and axis ", y, " of ", b.shape());
    ca[x] = cb[y] = true;
    contracted *= a.shape()[x];
  }
  for (int64_t d = 0; d < a.dim(); ++d) {
    if (!ca[d]) perm_a.push_back(d), free_a.push_back(a.shape()[d]);
  }
  for (int64_t i : axes_a) perm_a.push_back(normalize_axis(i, a.dim(), "tensordot"));
  for (int64_t i : axes_b) perm_b.push_back(normalize_axis(i, b.dim(), "tensordot"));
  for (int64_t d = 0; d < b.dim(); ++d) {
    if (!cb[d]) perm_b.push_back(d), free_b.push_back(b.shape()[d]);
  }
  Tensor a2 = reshape(permute(a, perm_a), {shape_numel(free_a), contracted});
  Tensor b2 = reshape(permute(b, perm_b), {contracted, shape_numel(free_b)});
  Shape out = free_a;
  for (int64_t d : free_b) out.push_back(d);
  return reshape(matmul(a2, b2), out);
}

namespace {

// Sums away letters of `x` not in `keep`, returning the reduced tensor and its letters.
std::pair<Tensor, std::string> sum_letters(const Tensor& x, const std::string& letters,
                                           const std::set<char>& keep) {
  Axes axes;
  std::string rest;
  for (size_t i = 0; i < letters.size(); ++i) {
    if (keep.count(letters[i])) {
      rest += letters[i];
    } else {
      axes.push_back(static_cast<int64_t>(i));
    }
  }
  return {axes.empty() ? x : sum(x, axes), rest};
}

// Contracts two operands over shared letters not in `keep`; returns [batch, a-free, b-free].
std::pair<Tensor, std::string> contract(const Tensor& a, const std::string& la, const Tensor& b,
                                        const std::string& lb, const std::set<char>& keep) {
  std::string batch, afree, bfree, summed;
  for (char ch : la) {
    bool in_b = lb.find(ch) != std::string::npos;
    if (in_b && keep.count(ch))
      batch += ch;
    else if (in_b)
      summed += ch;
    else
      afree += ch;
  }
  for (char ch : lb) {
    if (la.find(ch) == std::string::npos) bfree += ch;
  }
  auto size_of = [&](char ch) {
    size_t i = la.find(ch);
    return i != std::string::npos ? a.shape()[i] : b.shape()[lb.find(ch)];
  };
  auto permuted = [](const Tensor& t, const std::string& letters, const std::string& order) {
    Dims perm;
    for (char ch : order) perm.push_back(static_cast<int64_t>(letters.find(ch)));
    return permute(t, perm);
  };
  for (char ch : batch + summed) {
    size_t i = la.find(ch), j = lb.find(ch);
    check(a.shape()[i] == b.shape()[j], "einsum", "letter '", std::string(1, ch), "' has size ",
          a.shape()[i], " in one operand and ", b.shape()[j], " in another");
  }
  int64_t B = 1, M = 1, N = 1, K = 1;
  Shape out_shape;
  for (char ch : batch) B *= size_of(ch), out_shape.push_back(size_of(ch));
  for (char ch : afree) M *= size_of(ch), out_shape.push_back(size_of(ch));
  for (char ch : bfree) N *= size_of(ch), out_shape.push_back(size_of(ch));
  for (char ch : summed) K *= size_of(ch);
  Tensor a3 = reshape(permuted(a, la, batch + afree + summed), {B, M, K});
  Tensor b3 = reshape(permuted(b, lb, batch + summed + bfree), {B, K, N});
  return {reshape(matmul(a3, b3), out_shape), batch + afree + bfree};
}

}  // namespace

Tensor einsum(const std::string& equation, const std::vector<Tensor>& operands) {
  std::string eq;
  for (char ch : equation) {
    if (ch != ' ') eq += ch;
  }
  size_t arrow = eq.find("->");
  std::string lhs = eq.substr(0, arrow);
  std::vector<std::string> inputs;
  size_t start = 0;
  while (true) {
    size_t comma = lhs.find(',', start);
    inputs.push_back(lhs.substr(start, comma - start));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  check(inputs.size() == operands.size(), "einsum", "equation '", equation, "' names ",
        inputs.size(), " operands, got ", operands.size());
  std::map<char, int> uses;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const std::string& s = inputs[i];
    check_defined(operands[i], "einsum", "operand");
    for (char ch : s) {
      check(std::isalpha(static_cast<unsigned char>(ch)), "einsum", "invalid character '",
            std::string(1, ch), "' in '", equation, "' (ellipsis is not supported)");
    }
    check(static_cast<int64_t>(s.size()) == operands[i].dim(), "einsum", "operand ", i, " has ",
          operands[i].dim(), " dimensions (shape ", operands[i].shape(), ") but '", s, "' names ",
          s.size());
    check(operands[i].dtype() == operands[0].dtype(), "einsum", "operands must share a dtype, got ",
          dtype_name(operands[0].dtype()), " and ", dtype_name(operands[i].dtype()));
    std::set<char> seen;
    for (char ch : s) {
      check(seen.insert(ch).second, "einsum", "letter '", std::string(1, ch),
            "' repeats within operand ", i, ", which is not supported");
      uses[ch]++;
    }
  }
  std::string output;
  if (arrow != std::string::npos) {
    output = eq.substr(arrow + 2);
    std::set<char> seen;
    for (char ch : output) {
      check(uses.count(ch) > 0, "einsum", "output letter '", std::string(1, ch),
            "' appears in no operand");
      check(seen.insert(ch).second, "einsum", "output letter '", std::string(1, ch), "' repeats");
    }
  } else {
    for (auto [ch, n] : uses) {
      if (n == 1) output += ch;
    }
  }
  // Fold operands left to right, keeping letters needed later or in the output.
  auto needed_after = [&](size_t i) {
    std::set<char> keep(output.begin(), output.end());
    for (size_t j = i + 1; j < inputs.size(); ++j) keep.insert(inputs[j].begin(), inputs[j].end());
    return keep;
  };
  // Not a structured binding: clang 14 (the fuzzing build) cannot capture those.
  Tensor acc;
  std::string letters;
  std::tie(acc, letters) = sum_letters(operands[0], inputs[0], needed_after(0));
  for (size_t i = 1; i < operands.size(); ++i) {
    std::set<char> keep = needed_after(i);
    auto [b, lb] = sum_letters(operands[i], inputs[i], [&] {
      std::set<char> k = keep;
      k.insert(letters.begin(), letters.end());
      return k;
    }());
    std::tie(acc, letters) = contract(acc, letters, b, lb, keep);
  }
  Dims perm;
  for (char ch : output) perm.push_back(static_cast<int64_t>(letters.find(ch)));
  return permute(acc, perm);
}

}  // namespace tessera
