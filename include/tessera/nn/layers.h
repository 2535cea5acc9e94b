// Core layers: dense, bilinear, reshaping, dropout, embedding, resizing and padding.
// Each is a thin module over a functional op. Default initializations follow PyTorch:
// Linear and Bilinear draw weight and bias from U(-1/sqrt(fan_in), 1/sqrt(fan_in))
// (kaiming_uniform_ with a = sqrt(5)); Embedding draws from N(0, 1).
#pragma once
#include <string>
#include <vector>

#include "tessera/nn/module.h"
#include "tessera/ops/nn.h"

namespace tessera::nn {

// y = x W^T + b over the last axis; weight [out, in], bias [out].
class Linear : public Module {
 public:
  Linear(int64_t in_features, int64_t out_features, bool bias = true);
  Tensor forward(const Tensor& input) override;
  Tensor weight, bias;
};

// y[o] = x1^T W[o] x2 + b[o]; weight [out, in1, in2].
class Bilinear : public Module {
 public:
  Bilinear(int64_t in1_features, int64_t in2_features, int64_t out_features, bool bias = true);
  Tensor forward(const Tensor& input1, const Tensor& input2);
  Tensor weight, bias;
};

// Flattens axes start..end (default: everything but the batch).
class Flatten : public Module {
 public:
  explicit Flatten(int64_t start_axis = 1, int64_t end_axis = -1)
      : Module("Flatten"), start_(start_axis), end_(end_axis) {}
  Tensor forward(const Tensor& input) override;

 private:
  int64_t start_, end_;
};

// Splits one axis into `sizes` (one entry may be -1).
class Unflatten : public Module {
 public:
  Unflatten(int64_t axis, Shape sizes) : Module("Unflatten"), axis_(axis), sizes_(sizes) {}
  Tensor forward(const Tensor& input) override;

 private:
  int64_t axis_;
  Shape sizes_;
};

// Reshapes every sample to `shape` (the batch axis is kept, as Keras' Reshape).
class Reshape : public Module {
 public:
  explicit Reshape(Shape shape) : Module("Reshape"), shape_(shape) {}
  Tensor forward(const Tensor& input) override;

 private:
  Shape shape_;
};

// Inverted dropout in training mode, identity in eval mode.
class Dropout : public Module {
 public:
  explicit Dropout(double p = 0.5);
  Tensor forward(const Tensor& input) override;

 private:
  double p_;
};

// Zeroes whole channels of [N, C, ...] inputs (scaling the rest by 1 / (1 - p)).
class Dropout2d : public Module {
 public:
  explicit Dropout2d(double p = 0.5);
  Tensor forward(const Tensor& input) override;

 private:
  double p_;
};

// Rows of weight [num_embeddings, dim] picked by integer indices; the padding row (when
// padding_idx >= 0) starts at zero and gets no gradient.
class Embedding : public Module {
 public:
  Embedding(int64_t num_embeddings, int64_t embedding_dim, int64_t padding_idx = -1);
  Tensor forward(const Tensor& indices) override;
  Tensor weight;

 private:
  int64_t padding_idx_;
};

// Resizes NCHW inputs by a scale factor or to a size ("nearest" or "bilinear").
class Upsample : public Module {
 public:
  explicit Upsample(double scale_factor, std::string mode = "nearest", bool align_corners = false);
  explicit Upsample(std::vector<int64_t> size, std::string mode = "nearest",
                    bool align_corners = false);
  Tensor forward(const Tensor& input) override;

 private:
  double scale_ = 0;
  std::vector<int64_t> size_;
  std::string mode_;
  bool align_corners_;
};

// Zero padding of NCHW inputs: one value for all sides or {left, right, top, bottom}.
class ZeroPad2d : public Module {
 public:
  explicit ZeroPad2d(int64_t padding) : ZeroPad2d({padding, padding, padding, padding}) {}
  explicit ZeroPad2d(std::vector<int64_t> pads);
  Tensor forward(const Tensor& input) override;

 private:
  std::vector<int64_t> pads_;
};

}  // namespace tessera::nn
