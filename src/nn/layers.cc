#include "tessera/nn/layers.h"

#include <cmath>

#include "tessera/core/error.h"
#include "tessera/nn/init.h"
#include "tessera/ops/creation.h"
#include "tessera/ops/elementwise.h"
#include "tessera/ops/linalg.h"
#include "tessera/ops/reduce.h"
#include "tessera/ops/shape.h"

namespace tessera::nn {
Linear::Linear(int64_t in, int64_t out, bool has_bias) : Module("Linear") {
  check(in >= 0 && out >= 0, "Linear", "feature counts must be >= 0, got ", in, " and ", out);
  weight = register_parameter("weight", init::fan_in_uniform({out, in}, in));
  if (has_bias) bias = register_parameter("bias", init::fan_in_uniform({out}, in));
}

Tensor Linear::forward(const Tensor& x) {
  check(x.dim() >= 1 && x.size(-1) == weight.size(1), "Linear", "input shape ", x.shape(),
        " does not end in in_features = ", weight.size(1));
  Tensor y = matmul(x, weight.t());
  return bias.defined() ? y + bias : y;
}

Bilinear::Bilinear(int64_t in1, int64_t in2, int64_t out, bool has_bias) : Module("Bilinear") {
  weight = register_parameter("weight", init::fan_in_uniform({out, in1, in2}, in1));
  if (has_bias) bias = register_parameter("bias", init::fan_in_uniform({out}, in1));
}

Tensor Bilinear::forward(const Tensor& x1, const Tensor& x2) {
  check(x1.dim() == 2 && x2.dim() == 2 && x1.size(0) == x2.size(0) &&
            x1.size(1) == weight.size(1) && x2.size(1) == weight.size(2),
        "Bilinear", "inputs ", x1.shape(), " and ", x2.shape(), " do not match weight ",
        weight.shape(), " (expected [N, in1] and [N, in2])");
  Tensor t = einsum("bi,oij->boj", {x1, weight});  // [N, out, in2]
  Tensor y = sum(t * unsqueeze(x2, 1), {-1});
  return bias.defined() ? y + bias : y;
}

Tensor Flatten::forward(const Tensor& x) { return flatten(x, start_, end_); }

Tensor Unflatten::forward(const Tensor& x) {
  int64_t axis = axis_ < 0 ? axis_ + x.dim() : axis_;
  check(axis >= 0 && axis < x.dim(), "Unflatten", "axis ", axis_, " out of range for shape ",
        x.shape());
  int64_t known = 1, unknown = 0;  // (one size may be -1, as in PyTorch)
  for (int64_t v : sizes_) {
    if (v == -1) {
      ++unknown;
    } else if (v < 0 || __builtin_mul_overflow(known, v, &known)) {
      known = -1;
      break;
    }
  }
  const int64_t n = x.size(axis);
  if (known < 0 || unknown > 1 || (unknown == 0 ? known != n : known == 0 || n % known != 0)) {
    fail("Unflatten", "sizes ", sizes_, " do not split axis ", axis, " of size ", n, " (input ",
         x.shape(), ")");
  }
  Shape s;
  for (int64_t i = 0; i < axis; ++i) s.push_back(x.size(i));
  for (int64_t v : sizes_) s.push_back(v == -1 ? n / known : v);
  for (int64_t i = axis + 1; i < x.dim(); ++i) s.push_back(x.size(i));
  return reshape(x, s);
}

Tensor Reshape::forward(const Tensor& x) {
  check(x.dim() >= 1, "Reshape", "input needs a batch axis, got shape ", x.shape());
  Shape s{x.size(0)};
  for (int64_t v : shape_) s.push_back(v);
  return reshape(x, s);
}

Dropout::Dropout(double p) : Module("Dropout"), p_(p) {
  check(p >= 0 && p < 1, "Dropout", "p must be in [0, 1), got ", p);
}

Tensor Dropout::forward(const Tensor& x) { return dropout(x, p_, is_training()); }

Dropout2d::Dropout2d(double p) : Module("Dropout2d"), p_(p) {
  check(p >= 0 && p < 1, "Dropout2d", "p must be in [0, 1), got ", p);
}

Tensor Dropout2d::forward(const Tensor& x) {
  if (!is_training() || p_ == 0) return x;
  check(x.dim() >= 3, "Dropout2d", "expected [N, C, ...] input, got shape ", x.shape());
  Shape mask_shape{x.size(0), x.size(1)};
  for (int64_t i = 2; i < x.dim(); ++i) mask_shape.push_back(1);
  Tensor keep = bernoulli(mask_shape, 1.0 - p_, x.dtype());
  return x * (keep * (1.0 / (1.0 - p_)));
}

Embedding::Embedding(int64_t num, int64_t dim, int64_t padding_idx)
    : Module("Embedding"), padding_idx_(padding_idx) {
  check(num >= 0 && dim >= 0, "Embedding", "sizes must be non-negative, got ", num,
        " embeddings of ", dim);
  check(padding_idx < num, "Embedding", "padding_idx ", padding_idx, " out of range for ", num,
        " embeddings");
  Tensor w = randn({num, dim});
  if (padding_idx >= 0) w.select(0, padding_idx).zero_();
  weight = register_parameter("weight", w);
}

Tensor Embedding::forward(const Tensor& indices) {
  return embedding(weight, indices, padding_idx_);
}

Upsample::Upsample(double scale, std::string mode, bool align_corners)
    : Module("Upsample"), scale_(scale), mode_(std::move(mode)), align_corners_(align_corners) {}

Upsample::Upsample(std::vector<int64_t> size, std::string mode, bool align_corners)
    : Module("Upsample"),
      size_(std::move(size)),
      mode_(std::move(mode)),
      align_corners_(align_corners) {}

Tensor Upsample::forward(const Tensor& x) {
  return size_.empty() ? interpolate(x, scale_, mode_, align_corners_)
                       : interpolate(x, size_, mode_, align_corners_);
}

ZeroPad2d::ZeroPad2d(std::vector<int64_t> pads) : Module("ZeroPad2d"), pads_(std::move(pads)) {
  check(pads_.size() == 4, "ZeroPad2d", "expected {left, right, top, bottom}, got ", pads_.size(),
        " values");
}

Tensor ZeroPad2d::forward(const Tensor& x) { return pad(x, pads_); }

}  // namespace tessera::nn
