// Every dtype through the common elementwise and reduction ops, against a float64
// reference converted the way C++ converts (integers wrap, floats round).
#include <cmath>

#include "test_util.h"

using namespace tessera;
using namespace tessera::testing;

namespace {

const DType kAll[] = {DType::Bool,    DType::UInt8,    DType::Int8,    DType::Int32,  DType::Int64,
                      DType::Float16, DType::BFloat16, DType::Float32, DType::Float64};

// Small non-negative values so products fit every integer type.
Tensor values(const Shape& shape, DType dt, uint64_t seed) {
  Tensor t = random_tensor(shape, DType::Float64, 0, dt == DType::Bool ? 2 : 10, seed);
  return floor(t).to(dt);
}

// The reference result: exact doubles, then the C++ conversion to `dt`.
Tensor convert_reference(const std::vector<double>& v, const Shape& shape, DType dt) {
  Tensor d = from_vector(v, {static_cast<int64_t>(v.size())}).reshape(shape);
  if (!is_floating(dt) && dt != DType::Bool) return d.to(DType::Int64).to(dt);
  return d.to(dt);
}

double tol(DType dt) { return dt == DType::BFloat16 ? 1e-2 : dt == DType::Float16 ? 1e-3 : 1e-6; }

}  // namespace

TEST(Dtypes, BinaryOpsOnEveryDtype) {
  struct Case {
    const char* name;
    std::function<Tensor(const Tensor&, const Tensor&)> op;
    std::function<double(double, double)> ref;
    bool bool_ok;
  };
  std::vector<Case> cases = {
      {"add", [](auto& a, auto& b) { return add(a, b); }, [](double a, double b) { return a + b; },
       true},
      {"sub", [](auto& a, auto& b) { return sub(a, b); }, [](double a, double b) { return a - b; },
       false},
      {"mul", [](auto& a, auto& b) { return mul(a, b); }, [](double a, double b) { return a * b; },
       true},
      {"maximum", [](auto& a, auto& b) { return maximum(a, b); },
       [](double a, double b) { return std::max(a, b); }, true},
      {"minimum", [](auto& a, auto& b) { return minimum(a, b); },
       [](double a, double b) { return std::min(a, b); }, true},
  };
  for (const Case& c : cases) {
    for (DType dt : kAll) {
      if (dt == DType::Bool && !c.bool_ok) continue;
      Tensor a = values({3, 4}, dt, 1), b = values({4}, dt, 2);
      Tensor y = c.op(a, b);
      ASSERT_EQ(y.dtype(), dt) << c.name << " " << dtype_name(dt);
      std::vector<double> va = a.to_vector<double>(), vb = b.expand({3, 4}).to_vector<double>();
      std::vector<double> r(va.size());
      for (size_t i = 0; i < r.size(); ++i) {
        r[i] = c.ref(va[i], vb[i]);
        if (dt == DType::Bool) r[i] = r[i] != 0;
      }
      expect_close(y, convert_reference(r, {3, 4}, dt), tol(dt), tol(dt),
                   std::string(c.name) + " " + dtype_name(dt));
    }
  }
}

TEST(Dtypes, ComparisonsUnaryAndReductionsOnEveryDtype) {
  for (DType dt : kAll) {
    std::string what = dtype_name(dt);
    Tensor a = values({2, 5}, dt, 3), b = values({2, 5}, dt, 4);
    std::vector<double> va = a.to_vector<double>(), vb = b.to_vector<double>();
    std::vector<bool> lt_ref, eq_ref;
    for (size_t i = 0; i < va.size(); ++i) {
      lt_ref.push_back(va[i] < vb[i]);
      eq_ref.push_back(va[i] == vb[i]);
    }
    EXPECT_EQ(lt(a, b).to_vector<bool>(), lt_ref) << what;
    EXPECT_EQ(eq(a, b).to_vector<bool>(), eq_ref) << what;
    double total = 0, biggest = -1;
    for (double v : va) total += v, biggest = std::max(biggest, v);
    EXPECT_NEAR(sum(a).item<double>(), total, tol(dt) * 50) << what;
    EXPECT_EQ(sum(a).dtype(), is_floating(dt) ? dt : DType::Int64) << what;
    EXPECT_EQ(amax(a).item<double>(), biggest) << what;
    EXPECT_EQ(amax(a).dtype(), dt) << what;
    if (dt != DType::Bool) {
      std::vector<double> sq;
      for (double v : va) sq.push_back(v * v);
      expect_close(square(a), convert_reference(sq, {2, 5}, dt), tol(dt), tol(dt), what);
      std::vector<double> ng;
      for (double v : va) ng.push_back(-v);
      expect_close(neg(a), convert_reference(ng, {2, 5}, dt), tol(dt), tol(dt), what);
    }
    if (is_integral(dt)) {
      Tensor d = add(values({2, 5}, dt, 5), scalar_tensor(1, dt));  // nonzero divisors
      std::vector<double> vd = d.to_vector<double>(), fd, md;
      for (size_t i = 0; i < va.size(); ++i) {
        fd.push_back(std::floor(va[i] / vd[i]));
        md.push_back(va[i] - vd[i] * std::floor(va[i] / vd[i]));
      }
      expect_close(floor_div(a, d), convert_reference(fd, {2, 5}, dt), 0, 0, what);
      expect_close(mod(a, d), convert_reference(md, {2, 5}, dt), 0, 0, what);
    }
    // Casting through every other dtype and back keeps these small values.
    for (DType other : kAll) {
      if (other == DType::Bool || dt == DType::Bool) continue;
      expect_close(a.to(other).to(dt), a, 0, 0, what + " via " + dtype_name(other));
    }
  }
}

TEST(Dtypes, IntegerOverflowWraps) {
  EXPECT_EQ(add(tensor({100}, DType::Int8), tensor({100}, DType::Int8)).item<int>(), -56);
  EXPECT_EQ(mul(tensor({16}, DType::UInt8), tensor({17}, DType::UInt8)).item<int>(), 16);
  EXPECT_EQ(sub(tensor({0}, DType::UInt8), tensor({1}, DType::UInt8)).item<int>(), 255);
}
