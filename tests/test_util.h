// Shared test helpers: random tensors, comparison against references, and a
// float64 central-finite-difference gradient check (first and second order).
#pragma once
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "tessera/tessera.h"

namespace tessera::testing {

// Uniform values in [lo, hi) of the given dtype (drawn in float64, then cast).
inline Tensor random_tensor(const Shape& shape, DType dtype = DType::Float64, double lo = -1.0,
                            double hi = 1.0, uint64_t seed = 1) {
  Generator gen(seed);
  Tensor t = uniform(shape, lo, hi, DType::Float64, &gen);
  if (!is_floating(dtype)) t = floor(t);
  return t.to(dtype);
}

// Asserts two tensors have the same shape and values within tolerance (NaNs must match).
inline void expect_close(const Tensor& actual, const Tensor& expected, double rtol = 1e-5,
                         double atol = 1e-6, const std::string& what = "") {
  ASSERT_EQ(actual.shape(), expected.shape()) << what;
  std::vector<double> a = actual.to_vector<double>(), e = expected.to_vector<double>();
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::isnan(e[i])) {
      EXPECT_TRUE(std::isnan(a[i])) << what << " at " << i;
      continue;
    }
    if (std::isinf(e[i])) {
      EXPECT_EQ(a[i], e[i]) << what << " at " << i;
      continue;
    }
    EXPECT_NEAR(a[i], e[i], atol + rtol * std::fabs(e[i])) << what << " at flat index " << i;
  }
}

// Sum of f(inputs) weighted by fixed random projections: a scalar to differentiate.
using Fn = std::function<Tensor(const std::vector<Tensor>&)>;

inline Tensor projected(const Fn& f, const std::vector<Tensor>& inputs, const Tensor& weights) {
  Tensor out = f(inputs);
  return sum(mul(out, weights));
}

// Checks autodiff gradients of f at `inputs` (float64) against central differences.
inline void gradcheck(const Fn& f, std::vector<Tensor> inputs, double eps = 1e-6,
                      double atol = 1e-5, double rtol = 1e-4, const std::string& what = "") {
  for (Tensor& t : inputs) t = t.to(DType::Float64).clone().detach().set_requires_grad();
  Tensor probe = f(inputs);
  Tensor weights = random_tensor(probe.shape(), DType::Float64, -1, 1, 99);
  Tensor loss = projected(f, inputs, weights);
  TensorList analytic = grad({loss}, inputs, {}, false, false, true);
  for (size_t i = 0; i < inputs.size(); ++i) {
    std::vector<Tensor> base;
    for (const Tensor& t : inputs) base.push_back(t.detach().clone());
    Tensor numeric = zeros(inputs[i].shape(), DType::Float64);
    double* num = numeric.data<double>();
    double* x = base[i].data<double>();
    for (int64_t k = 0; k < base[i].numel(); ++k) {
      double orig = x[k];
      x[k] = orig + eps;
      double up = projected(f, base, weights).item<double>();
      x[k] = orig - eps;
      double down = projected(f, base, weights).item<double>();
      x[k] = orig;
      num[k] = (up - down) / (2 * eps);
    }
    Tensor a = analytic[i].defined() ? analytic[i] : zeros(inputs[i].shape(), DType::Float64);
    expect_close(a, numeric, rtol, atol, what + " gradient of input " + std::to_string(i));
  }
}

// Checks second derivatives: the gradient function itself passes gradcheck.
inline void gradgradcheck(const Fn& f, std::vector<Tensor> inputs, double eps = 1e-6,
                          double atol = 1e-4, double rtol = 1e-3, const std::string& what = "") {
  Tensor probe = f([&] {
    std::vector<Tensor> d;
    for (const Tensor& t : inputs) d.push_back(t.to(DType::Float64));
    return d;
  }());
  Tensor weights = random_tensor(probe.shape(), DType::Float64, -1, 1, 77);
  Fn first = [&](const std::vector<Tensor>& xs) {
    std::vector<Tensor> leaves;
    for (const Tensor& t : xs) {
      leaves.push_back(t.requires_grad() ? t : t.detach().set_requires_grad());
    }
    Tensor loss = sum(mul(f(leaves), weights));
    TensorList g = grad({loss}, leaves, {}, true, true, true);
    // Zero times the inputs keeps the result connected when the second derivative is 0.
    Tensor total = mul(sum(leaves[0]), 0.0);
    for (size_t i = 0; i < g.size(); ++i) {
      if (g[i].defined()) total = add(total, sum(mul(g[i], g[i])));
    }
    return total;
  };
  gradcheck(first, inputs, eps, atol, rtol, what + " (second order)");
}

// Expects `fn` to throw tessera::Error whose message contains `fragment`.
inline void expect_error(const std::function<void()>& fn, const std::string& fragment) {
  try {
    fn();
    ADD_FAILURE() << "expected an error containing '" << fragment << "'";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos)
        << "message was: " << e.what();
  }
}

}  // namespace tessera::testing
