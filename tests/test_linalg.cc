// matmul, dot, outer, tensordot and einsum against a triple-loop reference,
// over batch broadcasting, transposed operands, dtypes, empty dims and gradients.
#include <thread>

#include "../src/kernels/cpu/gemm.h"
#include "../src/kernels/cpu/matmul_onednn.h"
#include "../src/kernels/cpu/simd.h"
#include "tessera/core/parallel.h"
#include "tessera/ops/fused.h"
#include "test_util.h"

using namespace tessera;
using namespace tessera::testing;

namespace {

// Reference [..., m, k] @ [..., k, n] with broadcast batch, in float64.
Tensor reference_matmul(const Tensor& a, const Tensor& b) {
  Shape batch = broadcast_shapes(Shape(a.shape().begin(), a.shape().end() - 2),
                                 Shape(b.shape().begin(), b.shape().end() - 2), "ref");
  int64_t m = a.size(-2), k = a.size(-1), n = b.size(-1);
  Shape sa = batch, sb = batch, so = batch;
  sa.push_back(m), sa.push_back(k), sb.push_back(k), sb.push_back(n);
  so.push_back(m), so.push_back(n);
  std::vector<double> va = a.expand(sa).to_vector<double>(), vb = b.expand(sb).to_vector<double>();
  std::vector<double> out(shape_numel(so), 0.0);
  for (int64_t t = 0; t < shape_numel(batch); ++t) {
    for (int64_t i = 0; i < m; ++i) {
      for (int64_t j = 0; j < n; ++j) {
        double s = 0;
        for (int64_t p = 0; p < k; ++p) s += va[t * m * k + i * k + p] * vb[t * k * n + p * n + j];
        out[t * m * n + i * n + j] = s;
      }
    }
  }
  return from_vector(out, {static_cast<int64_t>(out.size())}).reshape(so);
}

}  // namespace

TEST(Matmul, MatchesReference) {
  std::vector<std::pair<Shape, Shape>> cases = {
      {{3, 4}, {4, 5}},       {{1, 1}, {1, 1}},          {{2, 3, 4}, {4, 2}},
      {{2, 3, 4}, {2, 4, 5}}, {{2, 1, 3, 4}, {5, 4, 2}}, {{0, 3}, {3, 4}},
      {{3, 0}, {0, 4}},       {{64, 130}, {130, 70}},    {{1, 5}, {5, 1}}};
  for (const auto& [sa, sb] : cases) {
    for (DType dt : {DType::Float32, DType::Float64, DType::Int64}) {
      Tensor a = random_tensor(sa, DType::Float64, -3, 3, 1).to(dt);
      Tensor b = random_tensor(sb, DType::Float64, -3, 3, 2).to(dt);
      Tensor c = matmul(a, b);
      EXPECT_EQ(c.dtype(), dt);
      double tol = dt == DType::Float32 ? 1e-4 : 1e-10;
      expect_close(c, reference_matmul(a, b), tol, tol,
                   to_string(sa) + "@" + to_string(sb) + " " + dtype_name(dt));
    }
  }
}

// Graph plans choose one thread or all for each float32 product ("threads" attribute);
// with all, a product of a few rows splits its columns across threads.
// warm_up_kernels runs beside products on other threads (the train command runs it while
// it reads the data) and again at any time, leaving results unchanged.
TEST(Matmul, WarmUpBesideProductsLeavesThemRight) {
  Tensor a = random_tensor({64, 200}, DType::Float32, -1, 1, 20);
  Tensor b = random_tensor({200, 48}, DType::Float32, -1, 1, 21);
  Tensor want = reference_matmul(a, b);
  std::thread warm(warm_up_kernels);
  for (int i = 0; i < 5; ++i) expect_close(matmul(a, b), want, 1e-4, 1e-4);
  warm.join();
  warm_up_kernels();
  expect_close(matmul(a, b), want, 1e-4, 1e-4);
}

// Dense-layer products (x @ W^T, a few dozen rows or more) go to oneDNN's matmul
// primitive where it has its brgemm kernels (dense operands here), else to sgemm (padded
// leading dimensions): either way right, accumulating or not, at every thread choice.
TEST(Matmul, PrimitivePathMatchesTheReference) {
  const int64_t m = 40, n = 70, k = 400;
  for (bool padded : {false, true}) {
    const int64_t lda = padded ? 410 : k, ldb = padded ? 403 : k, ldc = padded ? 75 : n;
    Tensor a = random_tensor({m, lda}, DType::Float32, -1, 1, 30);
    Tensor b = random_tensor({n, ldb}, DType::Float32, -1, 1, 31);
    Tensor c0 = random_tensor({m, ldc}, DType::Float32, -1, 1, 32);
    Tensor product = reference_matmul(a.narrow(1, 0, k).to(DType::Float64),
                                      b.narrow(1, 0, k).to(DType::Float64).t());
    if (!padded && cpu::simd_for("avx512")) {
      std::vector<float> c(c0.to_vector<float>());
      EXPECT_TRUE(cpu::onednn_matmul_f32(false, true, m, n, k, a.data<float>(), lda,
                                         b.data<float>(), ldb, c.data(), ldc, false));
      expect_close(from_vector(c, {m, ldc}), product, 1e-4, 1e-4, "primitive");
    } else if (!padded) {
      std::printf("PrimitivePathMatchesTheReference: no AVX-512, sgemm takes the products\n");
    }
    for (bool accumulate : {false, true}) {
      for (auto threads :
           {cpu::GemmThreads::by_size, cpu::GemmThreads::one, cpu::GemmThreads::all}) {
        cpu::GemmThreadsScope scope(threads);
        Tensor c = c0.clone();
        cpu::gemm_f32(false, true, m, n, k, a.data<float>(), lda, b.data<float>(), ldb,
                      c.data<float>(), ldc, accumulate);
        Tensor want = accumulate ? product + c0.narrow(1, 0, n).to(DType::Float64) : product;
        expect_close(
            c.narrow(1, 0, n), want, 1e-4, 1e-4,
            str_cat(padded ? "padded " : "dense ", accumulate ? "accumulate" : "overwrite"));
        // Columns past n belong to someone else.
        EXPECT_EQ(c.narrow(1, n, ldc - n).to_vector<float>(),
                  c0.narrow(1, n, ldc - n).to_vector<float>());
      }
    }
  }
}

// One cached primitive serves every thread: two threads running the same dense-layer
// product at once must each get their own right result (a primitive holding oneDNN's own
// scratchpad gave wrong results in most of these runs).
TEST(Matmul, PrimitiveRunsOnTwoThreadsAtOnce) {
  Tensor w = random_tensor({256, 784}, DType::Float32, -1, 1, 40);
  Tensor xs[2] = {random_tensor({128, 784}, DType::Float32, -1, 1, 41),
                  random_tensor({128, 784}, DType::Float32, -1, 1, 42)};
  Tensor want[2] = {reference_matmul(xs[0], w.t()), reference_matmul(xs[1], w.t())};
  int wrong[2] = {0, 0};
  auto run = [&](int t) {
    for (int i = 0; i < 60; ++i) {
      std::vector<float> got = matmul(xs[t], w.t()).to_vector<float>();
      std::vector<double> ref = want[t].to_vector<double>();
      for (size_t k = 0; k < got.size(); ++k) {
        if (std::fabs(got[k] - ref[k]) > 1e-3 + 1e-4 * std::fabs(ref[k])) {
          ++wrong[t];
          break;
        }
      }
    }
  };
  std::thread other(run, 1);
  run(0);
  other.join();
  EXPECT_EQ(wrong[0], 0);
  EXPECT_EQ(wrong[1], 0);
}

TEST(Matmul, EveryThreadChoiceMatchesTheReference) {
  for (int64_t m : {1, 3, 16, 17}) {
    for (int64_t n : {64, 100, 257}) {
      for (int64_t k : {5, 300}) {
        Tensor a = random_tensor({m, k}, DType::Float32, -1, 1, 10);
        Tensor b = random_tensor({k, n}, DType::Float32, -1, 1, 11);
        Tensor bt = random_tensor({n, k}, DType::Float32, -1, 1, 12).t();  // a weight.t()
        for (const Tensor& rhs : {b, bt}) {
          Tensor want = reference_matmul(a, rhs);
          for (int64_t threads : {0, 1, 2}) {
            Tensor got = run_op1(matmul_op(), {a, rhs}, {{"threads", threads}});
            expect_close(got, want, 1e-4, 1e-4,
                         str_cat(m, "x", k, "x", n, " threads ", threads,
                                 rhs.is_contiguous() ? "" : " transposed"));
          }
        }
      }
    }
  }
}

TEST(Matmul, TransposedAndStridedOperands) {
  Tensor a = random_tensor({5, 3}, DType::Float32, -1, 1, 3);
  Tensor b = random_tensor({4, 5}, DType::Float32, -1, 1, 4);
  expect_close(matmul(a.t(), b.t()), reference_matmul(a.t(), b.t()), 1e-5, 1e-5);
  Tensor big = random_tensor({6, 10}, DType::Float32, -1, 1, 5);
  Tensor strided = big.slice(1, 0, 10, 2);  // column stride 2: needs a copy
  expect_close(matmul(strided, b.t()), reference_matmul(strided, b.t()), 1e-5, 1e-5);
  Tensor bt = random_tensor({2, 5, 4}, DType::Float32, -1, 1, 6).transpose(1, 2);
  Tensor at = random_tensor({2, 3, 5}, DType::Float32, -1, 1, 7);
  expect_close(matmul(at, bt.transpose(1, 2)), reference_matmul(at, bt.transpose(1, 2)), 1e-5,
               1e-5);
  Tensor h = random_tensor({3, 4}, DType::Float64, -1, 1, 8).to(DType::BFloat16);
  Tensor hb = random_tensor({4, 2}, DType::Float64, -1, 1, 9).to(DType::BFloat16);
  expect_close(matmul(h, hb), reference_matmul(h, hb), 2e-2, 2e-2);
}

TEST(Matmul, VectorFormsDotOuter) {
  Tensor v = tensor({1, 2, 3}), w = tensor({4, 5, 6});
  Tensor m = tensor({{1, 0, 0}, {0, 2, 0}});
  EXPECT_EQ(matmul(v, w).dim(), 0);
  EXPECT_FLOAT_EQ(dot(v, w).item<float>(), 32.0f);
  EXPECT_EQ(matmul(m, v).to_vector<float>(), (std::vector<float>{1, 4}));
  EXPECT_EQ(matmul(tensor({1, 1}), m).to_vector<float>(), (std::vector<float>{1, 2, 0}));
  EXPECT_EQ(outer(v, tensor({1, 2})).to_vector<float>(), (std::vector<float>{1, 2, 2, 4, 3, 6}));
  expect_error(
      [] {
        matmul(zeros({2, 3}), zeros({4, 5}));
      },
      "matmul: inner dimensions differ: [2,3] @ [4,5] (3 != 4)");
  expect_error(
      [] {
        matmul(zeros({2, 2, 3}), zeros({3, 3, 4}));
      },
      "matmul: shapes do not broadcast: [2] and [3]");
  expect_error([] { dot(zeros({2}), zeros({3})); }, "dot: sizes differ");
  expect_error(
      [] {
        matmul(zeros({2, 2}), zeros({2, 2}, DType::Float64));
      },
      "matmul: operands must have the same dtype");
}

TEST(Matmul, TensordotAndEinsum) {
  Tensor a = random_tensor({2, 3, 4}, DType::Float64, -1, 1, 10);
  Tensor b = random_tensor({4, 3, 5}, DType::Float64, -1, 1, 11);
  Tensor td = tensordot(a, b, {1, 2}, {1, 0});
  Tensor ref = reference_matmul(a.reshape({2, 12}), b.permute({1, 0, 2}).reshape({12, 5}));
  expect_close(td, ref, 1e-12, 1e-12);
  // Attention-style contractions.
  Tensor q = random_tensor({2, 3, 5, 4}, DType::Float64, -1, 1, 12);
  Tensor k = random_tensor({2, 3, 6, 4}, DType::Float64, -1, 1, 13);
  expect_close(einsum("bhqd,bhkd->bhqk", {q, k}), reference_matmul(q, k.transpose(-1, -2)), 1e-12,
               1e-12);
  Tensor x = random_tensor({3, 4}, DType::Float64, -1, 1, 14);
  Tensor y = random_tensor({4, 5}, DType::Float64, -1, 1, 15);
  expect_close(einsum("ij,jk->ik", {x, y}), reference_matmul(x, y), 1e-12, 1e-12);
  expect_close(einsum("ij,jk", {x, y}), reference_matmul(x, y), 1e-12, 1e-12);
  expect_close(einsum("ij->ji", {x}), x.t(), 0, 0);
  expect_close(einsum("ij->", {x}), sum(x), 1e-12, 1e-12);
  expect_close(einsum("ij,ij->i", {x, x}), sum(mul(x, x), {1}), 1e-12, 1e-12);
  expect_close(einsum("i,j->ij", {x.select(0, 0), y.select(1, 0)}),
               outer(x.select(0, 0), y.select(1, 0)), 1e-12, 1e-12);
  Tensor z = random_tensor({5, 2}, DType::Float64, -1, 1, 16);
  expect_close(einsum("ij,jk,kl->il", {x, y, z}), reference_matmul(reference_matmul(x, y), z),
               1e-12, 1e-12);
  expect_error([&] { einsum("ij,jk->ik", {x, x}); }, "einsum: letter 'j' has size 4");
  expect_error([&] { einsum("ii->i", {x}); }, "einsum: letter 'i' repeats");
  expect_error([&] { einsum("ij->iz", {x}); }, "einsum: output letter 'z'");
}

TEST(Matmul, Gradients) {
  Tensor a = random_tensor({2, 3, 4}, DType::Float64, -1, 1, 20);
  Tensor b = random_tensor({4, 2}, DType::Float64, -1, 1, 21);
  Tensor c = random_tensor({1, 4, 2}, DType::Float64, -1, 1, 22);
  gradcheck([](const auto& in) { return matmul(in[0], in[1]); }, {a, b});
  gradcheck([](const auto& in) { return matmul(in[0], in[1]); }, {a, c});
  gradcheck([](const auto& in) { return matmul(in[0], in[1]); },
            {random_tensor({3}), random_tensor({3, 2})});
  gradcheck([](const auto& in) { return einsum("bij,jk->bik", {in[0], in[1]}); }, {a, b});
  gradgradcheck([](const auto& in) { return matmul(in[0], in[1]); }, {a, b});
  gradcheck([](const auto& in) { return matmul(in[0].t(), in[1]); },
            {random_tensor({3, 2}), random_tensor({3, 4})});
  // A transposed right operand (a dense layer's weight.t()) takes its own gradient path,
  // which must hand the weight a contiguous gradient.
  auto dense = [](const auto& in) { return matmul(in[0], in[1].t()); };
  gradcheck(dense, {a, random_tensor({5, 4})});
  gradgradcheck(dense, {a, random_tensor({5, 4})});
  Tensor w = random_tensor({5, 4}).set_requires_grad();
  sum(matmul(a, w.t())).backward();
  EXPECT_TRUE(w.grad().is_contiguous());
  expect_close(w.grad(), sum(a, {0, 1}).unsqueeze(0).expand({5, 4}), 1e-12, 1e-12);
}
