// Elementwise ops against float64 references on random shapes (broadcasting,
// size-1 and empty dims, non-contiguous views, several dtypes), their gradients
// against finite differences, and second-order gradients of the smooth ones.
#include <cmath>
#include <limits>
#include <numbers>

#include "test_util.h"

using namespace tessera;
using namespace tessera::testing;

namespace {

const std::vector<Shape> kShapes = {{}, {1}, {7}, {3, 1, 4}, {2, 0, 3}, {5, 6}, {70000}};

struct UnaryCase {
  const char* name;
  std::function<Tensor(const Tensor&)> op;
  std::function<double(double)> ref;
  double lo, hi;
  bool smooth;  // second derivative checked
  bool differentiable;
};

double sigmoid_ref(double x) { return 1 / (1 + std::exp(-x)); }
double gelu_ref(double x) { return 0.5 * x * (1 + std::erf(x / std::sqrt(2.0))); }
double gelu_tanh_ref(double x) {
  return 0.5 * x * (1 + std::tanh(std::sqrt(2 / std::numbers::pi) * (x + 0.044715 * x * x * x)));
}

std::vector<UnaryCase> unary_cases() {
  const double kAlpha = 1.6732632423543772, kScale = 1.0507009873554805;
  return {
      {"neg", [](auto& x) { return neg(x); }, [](double x) { return -x; }, -3, 3, true, true},
      {"abs", [](auto& x) { return abs(x); }, [](double x) { return std::fabs(x); }, -3, 3, false,
       true},
      {"sign", [](auto& x) { return sign(x); }, [](double x) { return (x > 0) - (x < 0); }, -3, 3,
       false, false},
      {"exp", [](auto& x) { return exp(x); }, [](double x) { return std::exp(x); }, -5, 5, true,
       true},
      {"expm1", [](auto& x) { return expm1(x); }, [](double x) { return std::expm1(x); }, -2, 2,
       true, true},
      {"log", [](auto& x) { return log(x); }, [](double x) { return std::log(x); }, 0.1, 5, true,
       true},
      {"log1p", [](auto& x) { return log1p(x); }, [](double x) { return std::log1p(x); }, -0.5, 5,
       true, true},
      {"log2", [](auto& x) { return log2(x); }, [](double x) { return std::log2(x); }, 0.1, 5, true,
       true},
      {"sqrt", [](auto& x) { return sqrt(x); }, [](double x) { return std::sqrt(x); }, 0.1, 5, true,
       true},
      {"rsqrt", [](auto& x) { return rsqrt(x); }, [](double x) { return 1 / std::sqrt(x); }, 0.2, 5,
       true, true},
      {"square", [](auto& x) { return square(x); }, [](double x) { return x * x; }, -3, 3, true,
       true},
      {"reciprocal", [](auto& x) { return reciprocal(x); }, [](double x) { return 1 / x; }, 0.5, 3,
       true, true},
      {"sin", [](auto& x) { return sin(x); }, [](double x) { return std::sin(x); }, -3, 3, true,
       true},
      {"cos", [](auto& x) { return cos(x); }, [](double x) { return std::cos(x); }, -3, 3, true,
       true},
      {"tan", [](auto& x) { return tan(x); }, [](double x) { return std::tan(x); }, -1.2, 1.2, true,
       true},
      {"asin", [](auto& x) { return asin(x); }, [](double x) { return std::asin(x); }, -0.9, 0.9,
       true, true},
      {"acos", [](auto& x) { return acos(x); }, [](double x) { return std::acos(x); }, -0.9, 0.9,
       true, true},
      {"atan", [](auto& x) { return atan(x); }, [](double x) { return std::atan(x); }, -3, 3, true,
       true},
      {"sinh", [](auto& x) { return sinh(x); }, [](double x) { return std::sinh(x); }, -3, 3, true,
       true},
      {"cosh", [](auto& x) { return cosh(x); }, [](double x) { return std::cosh(x); }, -3, 3, true,
       true},
      {"tanh", [](auto& x) { return tanh(x); }, [](double x) { return std::tanh(x); }, -4, 4, true,
       true},
      {"sigmoid", [](auto& x) { return sigmoid(x); }, sigmoid_ref, -8, 8, true, true},
      {"relu", [](auto& x) { return relu(x); }, [](double x) { return x > 0 ? x : 0; }, -3, 3,
       false, true},
      {"relu6", [](auto& x) { return relu6(x); },
       [](double x) { return std::min(std::max(x, 0.0), 6.0); }, -3, 9, false, true},
      {"leaky_relu", [](auto& x) { return leaky_relu(x, 0.2); },
       [](double x) { return x > 0 ? x : 0.2 * x; }, -3, 3, false, true},
      {"elu", [](auto& x) { return elu(x, 0.7); },
       [](double x) { return x > 0 ? x : 0.7 * std::expm1(x); }, -3, 3, false, true},
      {"selu", [](auto& x) { return selu(x); },
       [=](double x) { return kScale * (x > 0 ? x : kAlpha * std::expm1(x)); }, -3, 3, false, true},
      {"gelu", [](auto& x) { return gelu(x); }, gelu_ref, -4, 4, true, true},
      {"gelu_tanh", [](auto& x) { return gelu(x, true); }, gelu_tanh_ref, -4, 4, true, true},
      {"silu", [](auto& x) { return silu(x); }, [](double x) { return x * sigmoid_ref(x); }, -6, 6,
       true, true},
      {"softplus", [](auto& x) { return softplus(x, 2.0, 5.0); },
       [](double x) { return 2 * x > 5 ? x : std::log1p(std::exp(2 * x)) / 2; }, -4, 4, false,
       true},
      {"softsign", [](auto& x) { return softsign(x); },
       [](double x) { return x / (1 + std::fabs(x)); }, -3, 3, false, true},
      {"hard_sigmoid", [](auto& x) { return hard_sigmoid(x); },
       [](double x) { return std::min(std::max(x / 6 + 0.5, 0.0), 1.0); }, -5, 5, false, true},
      {"hard_swish", [](auto& x) { return hard_swish(x); },
       [](double x) { return x * std::min(std::max(x + 3, 0.0), 6.0) / 6; }, -5, 5, false, true},
      {"erf", [](auto& x) { return erf(x); }, [](double x) { return std::erf(x); }, -3, 3, true,
       true},
      {"floor", [](auto& x) { return floor(x); }, [](double x) { return std::floor(x); }, -3, 3,
       false, false},
      {"ceil", [](auto& x) { return ceil(x); }, [](double x) { return std::ceil(x); }, -3, 3, false,
       false},
      {"round", [](auto& x) { return round(x); }, [](double x) { return std::nearbyint(x); }, -3, 3,
       false, false},
      {"trunc", [](auto& x) { return trunc(x); }, [](double x) { return std::trunc(x); }, -3, 3,
       false, false},
      {"clamp", [](auto& x) { return clamp(x, -0.5, 0.7); },
       [](double x) { return std::min(std::max(x, -0.5), 0.7); }, -2, 2, false, true},
  };
}

// Elementwise reference: applies ref to x (as float64) into the expected dtype.
Tensor reference_unary(const Tensor& x, const std::function<double(double)>& ref, DType out) {
  std::vector<double> v = x.to_vector<double>();
  for (double& e : v) e = ref(e);
  return from_vector(v, {static_cast<int64_t>(v.size())}).reshape(x.shape()).to(out);
}

}  // namespace

TEST(Unary, MatchesReferenceOnShapesAndDtypes) {
  for (const UnaryCase& c : unary_cases()) {
    for (const Shape& shape : kShapes) {
      for (DType dt : {DType::Float32, DType::Float64}) {
        Tensor x = random_tensor(shape, DType::Float64, c.lo, c.hi, 3).to(dt);
        Tensor y = c.op(x);
        EXPECT_EQ(y.dtype(), dt) << c.name;
        double tol = dt == DType::Float32 ? 2e-6 : 1e-12;
        expect_close(y, reference_unary(x, c.ref, dt), tol, tol,
                     std::string(c.name) + " " + dtype_name(dt) + " " + to_string(shape));
      }
    }
  }
}

TEST(Unary, NonContiguousAndHalfInputs) {
  for (const UnaryCase& c : unary_cases()) {
    Tensor base = random_tensor({6, 5}, DType::Float64, c.lo, c.hi, 4);
    Tensor x = base.transpose(0, 1).slice(0, 0, 5, 2);  // strided view
    expect_close(c.op(x.to(DType::Float64).transpose(0, 1).transpose(0, 1)),
                 reference_unary(x, c.ref, DType::Float64), 1e-12, 1e-12, c.name);
    Tensor xf = base.to(DType::Float32).t();
    expect_close(c.op(xf), reference_unary(xf, c.ref, DType::Float32), 2e-6, 2e-6, c.name);
    for (DType half : {DType::Float16, DType::BFloat16}) {
      Tensor xh = base.to(half);
      Tensor yh = c.op(xh);
      EXPECT_EQ(yh.dtype(), half) << c.name;
      double tol = half == DType::Float16 ? 2e-3 : 1.6e-2;
      expect_close(yh, reference_unary(xh, c.ref, DType::Float64), tol, tol,
                   std::string(c.name) + " " + dtype_name(half));
    }
  }
}

TEST(Unary, IntegerInputs) {
  Tensor i = tensor({-3, -1, 0, 2, 5}, DType::Int32);
  EXPECT_EQ(abs(i).to_vector<int32_t>(), (std::vector<int32_t>{3, 1, 0, 2, 5}));
  EXPECT_EQ(neg(i).dtype(), DType::Int32);
  EXPECT_EQ(square(i).to_vector<int32_t>(), (std::vector<int32_t>{9, 1, 0, 4, 25}));
  EXPECT_EQ(relu(i).to_vector<int32_t>(), (std::vector<int32_t>{0, 0, 0, 2, 5}));
  EXPECT_EQ(sign(i).to_vector<int32_t>(), (std::vector<int32_t>{-1, -1, 0, 1, 1}));
  Tensor e = exp(i);  // float functions of integers compute in float32
  EXPECT_EQ(e.dtype(), DType::Float32);
  EXPECT_NEAR(e.to_vector<float>()[3], std::exp(2.0f), 1e-5);
  EXPECT_EQ(bitwise_not(tensor({0, 5}, DType::UInt8)).to_vector<uint8_t>(),
            (std::vector<uint8_t>{255, 250}));
  expect_error([] { bitwise_not(zeros({2})); }, "bitwise_not: needs an integer or bool tensor");
  expect_error([] { neg(zeros({2}, DType::Bool)); }, "neg: not defined for bool tensors");
}

TEST(Unary, IntegerOverflowWrapsAround) {
  // As in NumPy and PyTorch (and never C++'s undefined behaviour: UBSan checks this).
  const int64_t big = std::numeric_limits<int64_t>::max(),
                small = std::numeric_limits<int64_t>::min();
  Tensor top = from_vector(std::vector<int64_t>{big, small, 7}, {3});
  EXPECT_EQ(add(top, top).to_vector<int64_t>(), (std::vector<int64_t>{-2, 0, 14}));
  EXPECT_EQ(sub(top, from_vector(std::vector<int64_t>{-1, 1, 0}, {3})).to_vector<int64_t>(),
            (std::vector<int64_t>{small, big, 7}));
  EXPECT_EQ(mul(top, top).to_vector<int64_t>(), (std::vector<int64_t>{1, 0, 49}));
  EXPECT_EQ(neg(top).to_vector<int64_t>(), (std::vector<int64_t>{small + 1, small, -7}));
  EXPECT_EQ(abs(top).to_vector<int64_t>(), (std::vector<int64_t>{big, small, 7}));
  EXPECT_EQ(sum(top).item<int64_t>(), big + small + 7 + 0);  // -1 + 7 = 6
  Tensor i8 = from_vector(std::vector<int8_t>{127, -128}, {2});
  EXPECT_EQ(add(i8, i8).to_vector<int8_t>(), (std::vector<int8_t>{-2, 0}));
  EXPECT_EQ(cumsum(from_vector(std::vector<int64_t>{big, 1}, {2}), 0).to_vector<int64_t>(),
            (std::vector<int64_t>{big, small}));
}

TEST(Unary, Predicates) {
  Tensor x = tensor({1.0, NAN, INFINITY, -INFINITY, 0.0});
  EXPECT_EQ(isnan(x).to_vector<bool>(), (std::vector<bool>{false, true, false, false, false}));
  EXPECT_EQ(isinf(x).to_vector<bool>(), (std::vector<bool>{false, false, true, true, false}));
  EXPECT_EQ(isfinite(x).to_vector<bool>(), (std::vector<bool>{true, false, false, false, true}));
  EXPECT_EQ(logical_not(x).to_vector<bool>(),
            (std::vector<bool>{false, false, false, false, true}));
  EXPECT_EQ(round(tensor({0.5, 1.5, 2.5, -0.5})).to_vector<float>(),
            (std::vector<float>{0, 2, 2, -0}));
}

TEST(Unary, GradientsMatchFiniteDifferences) {
  for (const UnaryCase& c : unary_cases()) {
    if (!c.differentiable) continue;
    // Stay away from kinks: shift values off the breakpoints by construction.
    Tensor x = random_tensor({3, 4}, DType::Float64, c.lo, c.hi, 11);
    gradcheck([&](const std::vector<Tensor>& in) { return c.op(in[0]); }, {x}, 1e-6, 1e-5, 1e-4,
              c.name);
  }
}

TEST(Unary, SecondOrderGradients) {
  for (const UnaryCase& c : unary_cases()) {
    if (!c.smooth) continue;
    Tensor x = random_tensor({5}, DType::Float64, c.lo, c.hi, 12);
    gradgradcheck([&](const std::vector<Tensor>& in) { return c.op(in[0]); }, {x}, 1e-5, 1e-4, 1e-3,
                  c.name);
  }
}

TEST(Unary, SimdPathsAgree) {
  // The dispatched float32 fast path (AVX-512/AVX2/generic) against double references.
  Tensor x = random_tensor({100003}, DType::Float32, -20, 20, 5);
  expect_close(exp(x),
               reference_unary(
                   x, [](double v) { return std::exp(v); }, DType::Float32),
               3e-7, 0, "exp");
  expect_close(tanh(x),
               reference_unary(
                   x, [](double v) { return std::tanh(v); }, DType::Float32),
               2e-6, 1e-7, "tanh");
  expect_close(sigmoid(x), reference_unary(x, sigmoid_ref, DType::Float32), 2e-6, 1e-7, "sigmoid");
}

namespace {

struct BinaryCase {
  const char* name;
  std::function<Tensor(const Tensor&, const Tensor&)> op;
  std::function<double(double, double)> ref;
  double lo, hi;
  bool differentiable;
};

double py_mod(double a, double b) {
  double r = std::fmod(a, b);
  return (r != 0 && ((r < 0) != (b < 0))) ? r + b : r;
}

std::vector<BinaryCase> binary_cases() {
  return {
      {"add", [](auto& a, auto& b) { return add(a, b); }, [](double a, double b) { return a + b; },
       -3, 3, true},
      {"sub", [](auto& a, auto& b) { return sub(a, b); }, [](double a, double b) { return a - b; },
       -3, 3, true},
      {"mul", [](auto& a, auto& b) { return mul(a, b); }, [](double a, double b) { return a * b; },
       -3, 3, true},
      {"div", [](auto& a, auto& b) { return div(a, b); }, [](double a, double b) { return a / b; },
       0.5, 3, true},
      {"pow", [](auto& a, auto& b) { return pow(a, b); },
       [](double a, double b) { return std::pow(a, b); }, 0.5, 2, true},
      {"maximum", [](auto& a, auto& b) { return maximum(a, b); },
       [](double a, double b) { return std::max(a, b); }, -3, 3, true},
      {"minimum", [](auto& a, auto& b) { return minimum(a, b); },
       [](double a, double b) { return std::min(a, b); }, -3, 3, true},
      {"atan2", [](auto& a, auto& b) { return atan2(a, b); },
       [](double a, double b) { return std::atan2(a, b); }, -3, 3, true},
      {"mod", [](auto& a, auto& b) { return mod(a, b); }, py_mod, 0.5, 3, false},
      {"floor_div", [](auto& a, auto& b) { return floor_div(a, b); },
       [](double a, double b) { return std::floor(a / b); }, 0.5, 3, false},
  };
}

const std::vector<std::pair<Shape, Shape>> kBroadcastPairs = {{{}, {}},
                                                              {{5}, {5}},
                                                              {{3, 1}, {1, 4}},
                                                              {{2, 3, 4}, {4}},
                                                              {{1}, {2, 3}},
                                                              {{0, 3}, {1, 3}},
                                                              {{4, 1, 5}, {3, 1}},
                                                              {{100000}, {1}},
                                                              {{1}, {100000}},
                                                              {{300, 300}, {300, 300}}};

Tensor reference_binary(const Tensor& a, const Tensor& b,
                        const std::function<double(double, double)>& ref, DType out) {
  Shape s = broadcast_shapes(a.shape(), b.shape(), "ref");
  std::vector<double> va = a.expand(s).to_vector<double>(), vb = b.expand(s).to_vector<double>();
  std::vector<double> v(va.size());
  for (size_t i = 0; i < v.size(); ++i) v[i] = ref(va[i], vb[i]);
  return from_vector(v, {static_cast<int64_t>(v.size())}).reshape(s).to(out);
}

}  // namespace

TEST(Binary, MatchesReferenceWithBroadcasting) {
  for (const BinaryCase& c : binary_cases()) {
    for (const auto& [sa, sb] : kBroadcastPairs) {
      for (DType dt : {DType::Float32, DType::Float64}) {
        Tensor a = random_tensor(sa, DType::Float64, c.lo, c.hi, 21).to(dt);
        Tensor b = random_tensor(sb, DType::Float64, c.lo, c.hi, 22).to(dt);
        double tol = dt == DType::Float32 ? 2e-6 : 1e-12;
        std::string what = std::string(c.name) + " " + to_string(sa) + " " + to_string(sb);
        expect_close(c.op(a, b), reference_binary(a, b, c.ref, dt), tol, tol, what);
        expect_close(c.op(b, a), reference_binary(b, a, c.ref, dt), tol, tol, what + " swapped");
      }
    }
  }
}

TEST(Binary, NonContiguousAndMixedDtypes) {
  Tensor a = random_tensor({4, 6}, DType::Float64, 0.5, 2, 31);
  Tensor b = random_tensor({6, 4}, DType::Float64, 0.5, 2, 32).t();
  for (const BinaryCase& c : binary_cases()) {
    expect_close(c.op(a, b), reference_binary(a, b, c.ref, DType::Float64), 1e-12, 1e-12, c.name);
    Tensor af = a.to(DType::Float16), bi = b.to(DType::Float32);
    Tensor y = c.op(af, bi);
    EXPECT_EQ(y.dtype(), DType::Float32) << c.name;
    expect_close(y, reference_binary(af, bi, c.ref, DType::Float32), 1e-5, 1e-5, c.name);
  }
}

TEST(Binary, IntegerSemantics) {
  Tensor a = tensor({7, -7, 7, -7}, DType::Int64), b = tensor({2, 2, -2, -2}, DType::Int64);
  EXPECT_EQ(floor_div(a, b).to_vector<int64_t>(), (std::vector<int64_t>{3, -4, -4, 3}));
  EXPECT_EQ(mod(a, b).to_vector<int64_t>(), (std::vector<int64_t>{1, 1, -1, -1}));
  EXPECT_EQ(pow(tensor({2, 3}, DType::Int32), tensor({10, 3}, DType::Int32)).to_vector<int32_t>(),
            (std::vector<int32_t>{1024, 27}));
  EXPECT_EQ(add(tensor({250}, DType::UInt8), tensor({10}, DType::UInt8)).to_vector<uint8_t>()[0],
            4);
  EXPECT_EQ(bitwise_and(tensor({12}, DType::Int32), tensor({10}, DType::Int32)).item<int>(), 8);
  EXPECT_EQ(bitwise_or(tensor({12}, DType::Int32), tensor({10}, DType::Int32)).item<int>(), 14);
  EXPECT_EQ(bitwise_xor(tensor({12}, DType::Int32), tensor({10}, DType::Int32)).item<int>(), 6);
  EXPECT_EQ(left_shift(tensor({3}, DType::Int64), tensor({4}, DType::Int64)).item<int64_t>(), 48);
  EXPECT_EQ(right_shift(tensor({-16}, DType::Int64), tensor({2}, DType::Int64)).item<int64_t>(),
            -4);
  expect_error(
      [&] {
        floor_div(a, tensor({1, 0, 1, 1}, DType::Int64));
      },
      "floor_div: integer division by zero");
  expect_error([&] { mod(a, zeros({1}, DType::Int64)); }, "mod: integer division by zero");
  expect_error([] { pow(tensor({2}, DType::Int32), tensor({-1}, DType::Int32)); },
               "pow: integers to negative integer powers are not allowed");
  expect_error([] { bitwise_and(zeros({2}), zeros({2})); }, "bitwise_and: needs integer or bool");
  EXPECT_TRUE(std::isinf(div(ones({1}), zeros({1})).item<float>()));  // floats follow IEEE
}

TEST(Binary, ComparisonsAndLogic) {
  Tensor a = tensor({1, 2, 3}), b = tensor({3, 2, 1});
  EXPECT_EQ(eq(a, b).to_vector<bool>(), (std::vector<bool>{false, true, false}));
  EXPECT_EQ(ne(a, b).to_vector<bool>(), (std::vector<bool>{true, false, true}));
  EXPECT_EQ(lt(a, b).to_vector<bool>(), (std::vector<bool>{true, false, false}));
  EXPECT_EQ(le(a, b).to_vector<bool>(), (std::vector<bool>{true, true, false}));
  EXPECT_EQ(gt(a, b).to_vector<bool>(), (std::vector<bool>{false, false, true}));
  EXPECT_EQ(ge(a, b).to_vector<bool>(), (std::vector<bool>{false, true, true}));
  EXPECT_EQ(gt(a, b).dtype(), DType::Bool);
  Tensor p = tensor({1, 0, 1, 0}), q = tensor({1, 1, 0, 0}, DType::Int32);
  EXPECT_EQ(logical_and(p, q).to_vector<bool>(), (std::vector<bool>{true, false, false, false}));
  EXPECT_EQ(logical_or(p, q).to_vector<bool>(), (std::vector<bool>{true, true, true, false}));
  EXPECT_EQ(logical_xor(p, q).to_vector<bool>(), (std::vector<bool>{false, true, true, false}));
  Tensor nan_max = maximum(tensor({NAN, 1}), tensor({0, NAN}));
  EXPECT_TRUE(std::isnan(nan_max.to_vector<float>()[0]));
  EXPECT_TRUE(std::isnan(nan_max.to_vector<float>()[1]));
}

TEST(Binary, GradientsWithBroadcasting) {
  for (const BinaryCase& c : binary_cases()) {
    if (!c.differentiable) continue;
    for (const auto& [sa, sb] :
         std::vector<std::pair<Shape, Shape>>{{{3, 4}, {3, 4}}, {{3, 1}, {1, 4}}, {{2, 3}, {}}}) {
      Tensor a = random_tensor(sa, DType::Float64, c.lo, c.hi, 41);
      Tensor b = random_tensor(sb, DType::Float64, c.lo, c.hi, 42);
      gradcheck([&](const std::vector<Tensor>& in) { return c.op(in[0], in[1]); }, {a, b}, 1e-6,
                1e-5, 1e-4, std::string(c.name) + " " + to_string(sa) + " " + to_string(sb));
    }
  }
}

TEST(Binary, SecondOrder) {
  for (const char* name : {"mul", "div", "pow", "atan2"}) {
    for (const BinaryCase& c : binary_cases()) {
      if (std::string(c.name) != name) continue;
      Tensor a = random_tensor({2, 3}, DType::Float64, c.lo, c.hi, 51);
      Tensor b = random_tensor({3}, DType::Float64, c.lo, c.hi, 52);
      gradgradcheck([&](const std::vector<Tensor>& in) { return c.op(in[0], in[1]); }, {a, b}, 1e-5,
                    1e-4, 1e-3, name);
    }
  }
}

TEST(Ternary, WhereClampLerpCast) {
  Tensor cond = tensor({1, 0, 1}).to(DType::Bool);
  Tensor w = where(cond, tensor({1, 2, 3}), tensor({10}, DType::Float64));
  EXPECT_EQ(w.dtype(), DType::Float64);
  EXPECT_EQ(w.to_vector<double>(), (std::vector<double>{1, 10, 3}));
  expect_error([] { where(ones({2}), ones({2}), ones({2})); }, "where: condition must be bool");
  EXPECT_EQ(clamp(tensor({-5, 0, 5}, DType::Int32), -2, 3).to_vector<int32_t>(),
            (std::vector<int32_t>{-2, 0, 3}));
  EXPECT_EQ(clamp_min(tensor({-1, 1}), 0).to_vector<float>(), (std::vector<float>{0, 1}));
  EXPECT_EQ(lerp(tensor({0, 10}), tensor({10, 20}), tensor({0.5})).to_vector<float>(),
            (std::vector<float>{5, 15}));
  EXPECT_EQ(cast(tensor({1.7, -1.7}), DType::Int32).to_vector<int32_t>(),
            (std::vector<int32_t>{1, -1}));
  EXPECT_EQ(cast(tensor({0.0, 0.5}), DType::Bool).to_vector<bool>(),
            (std::vector<bool>{false, true}));
  Tensor a = random_tensor({3, 4}, DType::Float64, -1, 1, 61);
  Tensor b = random_tensor({4}, DType::Float64, -1, 1, 62);
  Tensor mask = gt(random_tensor({3, 1}, DType::Float64, -1, 1, 63), zeros({}));
  gradcheck([&](const std::vector<Tensor>& in) { return where(mask, in[0], in[1]); }, {a, b});
  gradcheck([&](const std::vector<Tensor>& in) { return lerp(in[0], in[1], in[2]); },
            {a, b, random_tensor({3, 1}, DType::Float64, 0, 1, 64)});
  gradcheck([&](const std::vector<Tensor>& in) { return cast(in[0], DType::Float32); }, {a}, 1e-3,
            1e-3, 1e-3);
}

TEST(Operators, Overloads) {
  Tensor a = tensor({1, 2}), b = tensor({3, 4});
  EXPECT_EQ((a + b).to_vector<float>(), (std::vector<float>{4, 6}));
  EXPECT_EQ((a - b).to_vector<float>(), (std::vector<float>{-2, -2}));
  EXPECT_EQ((a * b).to_vector<float>(), (std::vector<float>{3, 8}));
  EXPECT_EQ((b / a).to_vector<float>(), (std::vector<float>{3, 2}));
  EXPECT_EQ((-a).to_vector<float>(), (std::vector<float>{-1, -2}));
  EXPECT_EQ((1 - a).to_vector<float>(), (std::vector<float>{0, -1}));
  EXPECT_EQ((2.0 * a + 1).to_vector<float>(), (std::vector<float>{3, 5}));
  EXPECT_EQ((4 / a).to_vector<float>(), (std::vector<float>{4, 2}));
}
