#include "tessera/nn/init.h"

#include <cmath>
#include <vector>

#include "tessera/autodiff/autodiff.h"
#include "tessera/core/error.h"
#include "tessera/ops/creation.h"

namespace tessera::nn::init {
namespace {

// Writes `values` (any dtype) into t without recording gradients.
Tensor& assign(Tensor& t, const Tensor& values) {
  NoGradGuard no_grad;
  t.copy_(values);
  return t;
}

double fan(const Tensor& t, const std::string& mode) {
  auto [in, out] = fans(t);
  check(mode == "fan_in" || mode == "fan_out", "init", "mode must be fan_in or fan_out, got ",
        mode);
  return static_cast<double>(mode == "fan_in" ? in : out);
}

}  // namespace

std::pair<int64_t, int64_t> fans(const Tensor& w) {
  check(w.dim() >= 1, "init", "fans need at least 1 dimension, got shape ", w.shape());
  if (w.dim() == 1) return {w.size(0), w.size(0)};
  int64_t receptive = 1;
  for (int64_t i = 2; i < w.dim(); ++i) receptive *= w.size(i);
  return {w.size(1) * receptive, w.size(0) * receptive};
}

double calculate_gain(const std::string& nl, double param) {
  if (nl == "linear" || nl == "conv" || nl == "conv1d" || nl == "conv2d" || nl == "conv3d" ||
      nl == "sigmoid")
    return 1.0;
  if (nl == "tanh") return 5.0 / 3.0;
  if (nl == "relu") return std::sqrt(2.0);
  if (nl == "leaky_relu") return std::sqrt(2.0 / (1.0 + param * param));
  if (nl == "selu") return 0.75;
  fail("calculate_gain", "unknown nonlinearity '", nl, "'");
}

Tensor& zeros_(Tensor& t) { return constant_(t, 0.0); }
Tensor& ones_(Tensor& t) { return constant_(t, 1.0); }
Tensor& constant_(Tensor& t, double value) {
  NoGradGuard no_grad;
  t.fill_(value);
  return t;
}

Tensor& uniform_(Tensor& t, double low, double high, Generator* gen) {
  return assign(t, uniform(t.shape(), low, high, t.dtype(), gen));
}

Tensor& normal_(Tensor& t, double mean, double stddev, Generator* gen) {
  return assign(t, normal(t.shape(), mean, stddev, t.dtype(), gen));
}

Tensor& trunc_normal_(Tensor& t, double mean, double stddev, double a, double b, Generator* gen) {
  // truncated_normal takes bounds in standard deviations around the mean.
  return assign(t, truncated_normal(t.shape(), mean, stddev, (a - mean) / stddev,
                                    (b - mean) / stddev, t.dtype(), gen));
}

Tensor& xavier_uniform_(Tensor& t, double gain, Generator* gen) {
  auto [in, out] = fans(t);
  double bound = gain * std::sqrt(6.0 / static_cast<double>(in + out));
  return uniform_(t, -bound, bound, gen);
}

Tensor& xavier_normal_(Tensor& t, double gain, Generator* gen) {
  auto [in, out] = fans(t);
  return normal_(t, 0.0, gain * std::sqrt(2.0 / static_cast<double>(in + out)), gen);
}

Tensor& kaiming_uniform_(Tensor& t, double a, const std::string& mode, const std::string& nl,
                         Generator* gen) {
  double bound = calculate_gain(nl, a) * std::sqrt(3.0 / fan(t, mode));
  return uniform_(t, -bound, bound, gen);
}

Tensor& kaiming_normal_(Tensor& t, double a, const std::string& mode, const std::string& nl,
                        Generator* gen) {
  return normal_(t, 0.0, calculate_gain(nl, a) / std::sqrt(fan(t, mode)), gen);
}

Tensor& lecun_uniform_(Tensor& t, Generator* gen) {
  double bound = std::sqrt(3.0 / fan(t, "fan_in"));
  return uniform_(t, -bound, bound, gen);
}

Tensor& lecun_normal_(Tensor& t, Generator* gen) {
  // Keras draws from a normal truncated at 2 stddevs, rescaled so the variance is 1/fan_in.
  double stddev = std::sqrt(1.0 / fan(t, "fan_in")) / 0.87962566103423978;
  return trunc_normal_(t, 0.0, stddev, -2.0 * stddev, 2.0 * stddev, gen);
}

Tensor fan_in_uniform(const Shape& shape, int64_t fan_in, DType dtype, Generator* gen) {
  double bound = fan_in > 0 ? 1.0 / std::sqrt(static_cast<double>(fan_in)) : 0.0;
  return uniform(shape, -bound, bound, dtype, gen);
}

Tensor& orthogonal_(Tensor& t, double gain, Generator* gen) {
  check(t.dim() >= 2, "orthogonal_", "needs at least 2 dimensions, got shape ", t.shape());
  int64_t rows = t.size(0), cols = t.numel() / std::max<int64_t>(rows, 1);
  if (t.numel() == 0) return t;
  // QR of a Gaussian matrix by modified Gram-Schmidt on the columns of the tall
  // orientation, with R's diagonal signs folded in so the result is uniformly distributed.
  bool wide = rows < cols;
  int64_t m = wide ? cols : rows, n = wide ? rows : cols;  // m >= n
  std::vector<double> a = randn({m, n}, DType::Float64, gen).to_vector<double>();
  for (int64_t j = 0; j < n; ++j) {
    for (int64_t k = 0; k < j; ++k) {
      double d = 0;
      for (int64_t i = 0; i < m; ++i) d += a[i * n + k] * a[i * n + j];
      for (int64_t i = 0; i < m; ++i) a[i * n + j] -= d * a[i * n + k];
    }
    double norm = 0;
    for (int64_t i = 0; i < m; ++i) norm += a[i * n + j] * a[i * n + j];
    norm = std::sqrt(norm);
    check(norm > 1e-12, "orthogonal_", "degenerate random matrix; try another seed");
    for (int64_t i = 0; i < m; ++i) a[i * n + j] /= norm;
  }
  std::vector<double> q(static_cast<size_t>(rows * cols));
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double v = gain * a[i * n + j];
      if (wide)
        q[j * cols + i] = v;
      else
        q[i * cols + j] = v;
    }
  return assign(t, from_vector(q, t.shape()));
}

}  // namespace tessera::nn::init
