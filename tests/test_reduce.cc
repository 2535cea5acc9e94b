// Reductions and scans against loop references over random shapes and axis sets,
// determinism across thread counts, empty-input rules and gradients.
#include <cmath>
#include <limits>

#include "../src/kernels/cpu/simd.h"
#include "test_util.h"

using namespace tessera;
using namespace tessera::testing;

namespace {

// Reference reduction over `axes` (all when empty) by explicit index walking.
Tensor reference_reduce(const Tensor& x, const Axes& axes, bool keepdim,
                        const std::function<double(const std::vector<double>&)>& fold) {
  int64_t nd = x.dim();
  std::vector<bool> red(nd, axes.empty());
  for (int64_t a : axes) red[(a + nd) % std::max<int64_t>(nd, 1)] = true;
  Shape kept;
  for (int64_t d = 0; d < nd; ++d) kept.push_back(red[d] ? 1 : x.shape()[d]);
  std::vector<double> v = x.to_vector<double>();
  std::vector<std::vector<double>> groups(shape_numel(kept));
  Dims strides = contiguous_strides(x.shape()), kstrides = contiguous_strides(kept);
  for (int64_t i = 0; i < x.numel(); ++i) {
    int64_t rem = i, o = 0;
    for (int64_t d = 0; d < nd; ++d) {
      int64_t idx = rem / strides[d];
      rem %= strides[d];
      if (!red[d]) o += idx * kstrides[d];
    }
    groups[o].push_back(v[i]);
  }
  std::vector<double> out;
  for (auto& g : groups) out.push_back(fold(g));
  Shape final_shape;
  for (int64_t d = 0; d < nd; ++d) {
    if (!red[d])
      final_shape.push_back(x.shape()[d]);
    else if (keepdim)
      final_shape.push_back(1);
  }
  return from_vector(out, {static_cast<int64_t>(out.size())}).reshape(final_shape);
}

double ref_sum(const std::vector<double>& g) {
  double s = 0;
  for (double v : g) s += v;
  return s;
}
double ref_prod(const std::vector<double>& g) {
  double s = 1;
  for (double v : g) s *= v;
  return s;
}
double ref_max(const std::vector<double>& g) { return *std::max_element(g.begin(), g.end()); }
double ref_min(const std::vector<double>& g) { return *std::min_element(g.begin(), g.end()); }
double ref_mean(const std::vector<double>& g) { return ref_sum(g) / g.size(); }
double ref_var(const std::vector<double>& g) {
  double m = ref_mean(g), s = 0;
  for (double v : g) s += (v - m) * (v - m);
  return s / (g.size() - 1);
}
double ref_lse(const std::vector<double>& g) {
  double m = ref_max(g), s = 0;
  for (double v : g) s += std::exp(v - m);
  return m + std::log(s);
}

const std::vector<std::pair<Shape, Axes>> kCases = {
    {{7}, {}},        {{7}, {0}},          {{3, 4}, {0}},       {{3, 4}, {1}}, {{3, 4}, {-1, 0}},
    {{2, 3, 4}, {1}}, {{2, 3, 4}, {0, 2}}, {{2, 1, 4}, {1}},    {{5, 1}, {0}}, {{100000}, {}},
    {{300, 70}, {0}}, {{70, 300}, {1}},    {{4, 5, 6}, {0, 1}}, {{}, {}}};

}  // namespace

TEST(Reduce, MatchesReference) {
  struct Op {
    const char* name;
    std::function<Tensor(const Tensor&, const Axes&, bool)> f;
    std::function<double(const std::vector<double>&)> ref;
  };
  std::vector<Op> ops = {
      {"sum", [](auto& x, auto& a, bool k) { return sum(x, a, k); }, ref_sum},
      {"mean", [](auto& x, auto& a, bool k) { return mean(x, a, k); }, ref_mean},
      {"amax", [](auto& x, auto& a, bool k) { return amax(x, a, k); }, ref_max},
      {"amin", [](auto& x, auto& a, bool k) { return amin(x, a, k); }, ref_min},
      {"logsumexp", [](auto& x, auto& a, bool k) { return logsumexp(x, a, k); }, ref_lse},
  };
  for (const Op& op : ops) {
    for (const auto& [shape, axes] : kCases) {
      for (bool keepdim : {false, true}) {
        for (DType dt : {DType::Float32, DType::Float64}) {
          Tensor x = random_tensor(shape, DType::Float64, -2, 2, 7).to(dt);
          double tol = dt == DType::Float32 ? 1e-5 : 1e-10;
          expect_close(op.f(x, axes, keepdim), reference_reduce(x, axes, keepdim, op.ref), tol, tol,
                       std::string(op.name) + " " + to_string(shape));
        }
      }
    }
  }
  Tensor small = random_tensor({3, 4}, DType::Float64, 0.5, 1.5, 8);
  expect_close(prod(small, {1}), reference_reduce(small, {1}, false, ref_prod), 1e-12, 1e-12);
  expect_close(var(small, {0}), reference_reduce(small, {0}, false, ref_var), 1e-12, 1e-12);
  expect_close(stddev(small, {0}, 0, true),
               sqrt(mul(reference_reduce(small, {0}, true, ref_var), 2.0 / 3.0)), 1e-12, 1e-12);
}

TEST(Reduce, NonContiguousIntegerAndBool) {
  Tensor x = random_tensor({6, 5}, DType::Float64, -2, 2, 9).t();
  expect_close(sum(x, {1}), reference_reduce(x, {1}, false, ref_sum), 1e-12, 1e-12);
  Tensor i = tensor({{1, 2, 3}, {4, 5, 6}}, DType::Int32);
  EXPECT_EQ(sum(i).dtype(), DType::Int64);
  EXPECT_EQ(sum(i, {0}).to_vector<int64_t>(), (std::vector<int64_t>{5, 7, 9}));
  EXPECT_EQ(prod(i).item<int64_t>(), 720);
  EXPECT_EQ(amax(i, {1}).to_vector<int32_t>(), (std::vector<int32_t>{3, 6}));
  Tensor b = tensor({{1, 0}, {1, 1}}).to(DType::Bool);
  EXPECT_EQ(all(b, {1}).to_vector<bool>(), (std::vector<bool>{false, true}));
  EXPECT_EQ(any(b, {1}).to_vector<bool>(), (std::vector<bool>{true, true}));
  EXPECT_EQ(count_nonzero(tensor({0, 1, 2, 0})).item<int64_t>(), 2);
  EXPECT_EQ(sum(b).item<int64_t>(), 3);
  EXPECT_DOUBLE_EQ(mean(i).item<double>(), 3.5);
}

TEST(Reduce, ArgmaxArgmin) {
  Tensor x = tensor({{1, 5, 5}, {7, 0, 7}});
  EXPECT_EQ(argmax(x, 1).to_vector<int64_t>(), (std::vector<int64_t>{1, 0}));  // first on ties
  EXPECT_EQ(argmin(x, 0).to_vector<int64_t>(), (std::vector<int64_t>{0, 1, 0}));
  EXPECT_EQ(argmax(x).item<int64_t>(), 3);
  EXPECT_EQ(argmax(x, 0, true).shape(), Shape({1, 3}));
  EXPECT_EQ(argmax(tensor({1, NAN, 3})).item<int64_t>(), 1);
}

TEST(Reduce, EmptyInputs) {
  EXPECT_EQ(sum(zeros({0})).item<float>(), 0.0f);
  EXPECT_EQ(prod(zeros({0})).item<float>(), 1.0f);
  EXPECT_EQ(sum(zeros({0, 3}), {0}).to_vector<float>(), (std::vector<float>{0, 0, 0}));
  EXPECT_EQ(sum(zeros({3, 0}), {0}).numel(), 0);
  EXPECT_TRUE(all(zeros({0})).item<bool>());
  EXPECT_FALSE(any(zeros({0})).item<bool>());
  EXPECT_TRUE(std::isnan(mean(zeros({0})).item<float>()));
  expect_error([] { amax(zeros({0})); }, "amax: reduction over an empty dimension has no identity");
  expect_error([] { argmin(zeros({2, 0}), 1); }, "argmin: reduction over an empty dimension");
  EXPECT_EQ(amax(zeros({0, 3}), {1}).numel(), 0);
}

TEST(Reduce, NanPropagates) {
  Tensor x = tensor({1, NAN, 3});
  EXPECT_TRUE(std::isnan(amax(x).item<float>()));
  EXPECT_TRUE(std::isnan(amin(x).item<float>()));
  EXPECT_TRUE(std::isnan(sum(x).item<float>()));
}

TEST(Reduce, BitIdenticalForAnyThreadCount) {
  Tensor x = random_tensor({3000001}, DType::Float32, -1, 1, 10);
  Tensor m = random_tensor({2000, 1500}, DType::Float32, -1, 1, 11);
  int saved = num_threads();
  set_num_threads(1);
  float s1 = sum(x).item<float>();
  std::vector<float> c1 = sum(m, {0}).to_vector<float>(), r1 = sum(m, {1}).to_vector<float>();
  set_num_threads(2);
  float s2 = sum(x).item<float>();
  std::vector<float> c2 = sum(m, {0}).to_vector<float>(), r2 = sum(m, {1}).to_vector<float>();
  set_num_threads(saved);
  EXPECT_EQ(s1, s2);
  EXPECT_EQ(c1, c2);
  EXPECT_EQ(r1, r2);
}

// A float32 sum over a leading axis runs each ISA's column loop: every one must give the
// bits of adding the rows in order in double, as the generic loop does, and so does sum().
TEST(Reduce, LeadingAxisSumOfEveryIsaAddsRowsInOrder) {
  const int64_t rows = 37, ld = 53, n = 45;  // n < ld: a block of columns
  Tensor m = random_tensor({rows, ld}, DType::Float32, -1, 1, 12);
  m.data<float>()[3] = 1e30f;  // in double the large value does not swallow the rest
  m.data<float>()[ld + 3] = -1e30f;
  std::vector<double> expected(n, 0.0);
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < n; ++j) expected[j] += static_cast<double>(m.data<float>()[i * ld + j]);
  for (const char* isa : {"generic", "avx2", "avx512"}) {
    const cpu::SimdTable* table = cpu::simd_for(isa);
    if (!table) {
      std::printf("LeadingAxisSumOfEveryIsaAddsRowsInOrder: %s not available on this CPU\n", isa);
      continue;
    }
    std::vector<double> acc(n, 0.0);
    table->add_rows_to_f64(m.data<float>(), rows, ld, n, acc.data());
    EXPECT_EQ(acc, expected) << isa;
  }
  std::vector<float> columns = sum(m, {0}).to_vector<float>();
  for (int64_t j = 0; j < n; ++j) EXPECT_EQ(columns[j], static_cast<float>(expected[j])) << j;
}

TEST(Reduce, Norms) {
  Tensor x = tensor({{3, -4}, {0, 0}});
  EXPECT_FLOAT_EQ(norm(x).item<float>(), 5.0f);
  EXPECT_FLOAT_EQ(norm(x, 1).item<float>(), 7.0f);
  EXPECT_FLOAT_EQ(norm(x, INFINITY).item<float>(), 4.0f);
  EXPECT_FLOAT_EQ(norm(x, 0.0).item<float>(), 5.0f);  // Frobenius
  EXPECT_EQ(norm(x, 2, {1}).to_vector<float>(), (std::vector<float>{5, 0}));
  EXPECT_NEAR(norm(x, 3).item<float>(), std::cbrt(91.0), 1e-5);
}

TEST(Scan, CumsumCumprod) {
  Tensor x = tensor({{1, 2, 3}, {4, 5, 6}});
  EXPECT_EQ(cumsum(x, 1).to_vector<float>(), (std::vector<float>{1, 3, 6, 4, 9, 15}));
  EXPECT_EQ(cumsum(x, 0).to_vector<float>(), (std::vector<float>{1, 2, 3, 5, 7, 9}));
  EXPECT_EQ(cumprod(x, 1).to_vector<float>(), (std::vector<float>{1, 2, 6, 4, 20, 120}));
  EXPECT_EQ(cumsum(tensor({1, 2}, DType::Int32), 0).dtype(), DType::Int64);
  EXPECT_EQ(cumsum(zeros({0, 2}), 0).numel(), 0);
  Tensor a = random_tensor({3, 4}, DType::Float64, 0.5, 1.5, 12);
  gradcheck([](const auto& in) { return cumsum(in[0], 1); }, {a});
  gradcheck([](const auto& in) { return cumprod(in[0], 0); }, {a});
  // Zeros (one, or several in a row) take the division-free path; to any order.
  Tensor zeros_in = tensor({{1.5, 0, 2, -0.5}, {0, 0, 3, 1}, {2, -1, 0.5, 0}}, DType::Float64);
  gradcheck([](const auto& in) { return cumprod(in[0], 1); }, {zeros_in});
  gradcheck([](const auto& in) { return cumprod(in[0], -2); }, {zeros_in});
  gradgradcheck([](const auto& in) { return cumprod(in[0], 1); }, {zeros_in});
  Tensor z = tensor({1, 0, 2}, DType::Float64).set_requires_grad();
  sum(cumprod(z, 0)).backward();
  // d/dz of z0 + z0 z1 + z0 z1 z2 at (1, 0, 2): (1 + z1 + z1 z2, z0 + z0 z2, z0 z1).
  expect_close(z.grad(), tensor({1, 3, 0}, DType::Float64), 0, 0);
}

TEST(Reduce, Gradients) {
  Tensor x = random_tensor({3, 4}, DType::Float64, -2, 2, 13);
  for (const Axes& axes : std::vector<Axes>{{}, {0}, {1}, {0, 1}}) {
    for (bool k : {false, true}) {
      gradcheck([&](const auto& in) { return sum(in[0], axes, k); }, {x});
      gradcheck([&](const auto& in) { return mean(in[0], axes, k); }, {x});
      gradcheck([&](const auto& in) { return amax(in[0], axes, k); }, {x});
      gradcheck([&](const auto& in) { return amin(in[0], axes, k); }, {x});
      gradcheck([&](const auto& in) { return prod(in[0], axes, k); }, {x});
      gradcheck([&](const auto& in) { return var(in[0], axes, 1, k); }, {x});
      gradcheck([&](const auto& in) { return stddev(in[0], axes, 1, k); }, {x});
      gradcheck([&](const auto& in) { return logsumexp(in[0], axes, k); }, {x});
      gradcheck([&](const auto& in) { return norm(in[0], 2, axes, k); }, {x});
    }
  }
  // prod with zeros: one zero and two zeros in a row.
  Tensor z = tensor({{0, 2, 3}, {0, 0, 4}, {1, 2, 3}}, DType::Float64);
  gradcheck([](const auto& in) { return prod(in[0], {1}); }, {z});
  gradgradcheck([](const auto& in) { return logsumexp(in[0], {1}); }, {x});
  gradgradcheck([](const auto& in) { return var(in[0], {0}); }, {x});
}
