// Neural-network ops: convolution, pooling, normalization, dropout, embedding,
// padding and interpolation. Layouts follow PyTorch: NCL for 1-d, NCHW for 2-d and
// NCDHW for 3-d inputs (always batched; the batch may be empty); convolution
// weights are [out_channels, in_channels / groups, *kernel], transposed-convolution
// weights [in_channels, out_channels / groups, *kernel].
//
// Every op here is differentiable to any order: convolution, pooling, embedding,
// padding and interpolation are primitives whose gradient rules are written with
// ops, the rest are composites of existing ops.
#pragma once
#include <concepts>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

#include "tessera/core/random.h"
#include "tessera/core/tensor.h"

namespace tessera {

// An integer per spatial dimension: one value for all of them (`2`) or one each
// (`{2, 1}`). Where a default of "none" makes sense (pooling stride) it is empty.
struct SpatialArg {
  SpatialArg() = default;
  template <std::integral I>
  SpatialArg(I v) : values{static_cast<int64_t>(v)} {}
  SpatialArg(std::initializer_list<int64_t> v) : values(v) {}
  SpatialArg(std::vector<int64_t> v) : values(std::move(v)) {}
  std::vector<int64_t> values;
};

// Convolution padding: numbers like SpatialArg (the same on both sides of each
// dimension), or "valid" (no padding) or "same" (output size = input size; stride 1
// only; when the dilated kernel size is even the extra padding goes after, like PyTorch).
struct ConvPadding {
  template <std::integral I>
  ConvPadding(I v) : values{static_cast<int64_t>(v)} {}
  ConvPadding(std::initializer_list<int64_t> v) : values(v) {}
  ConvPadding(std::vector<int64_t> v) : values(std::move(v)) {}
  ConvPadding(const char* m) : mode(m) {}
  ConvPadding(std::string m) : mode(std::move(m)) {}
  std::vector<int64_t> values;
  std::string mode;  // empty when given as numbers
};

// ------------------------------------------------------------------ convolution
// y = cross-correlation of x with weight (+ bias[out_channels]), PyTorch's conv semantics:
// output size per dimension = (in + 2 * padding - dilation * (kernel - 1) - 1) / stride + 1.
// groups splits the channels into independent groups (groups == in_channels with
// weight [C * m, 1, ...] is a depthwise convolution). Floating-point inputs only;
// input, weight and bias must share a dtype. activation = relu returns relu(conv(...))
// computed in one pass (ops conv1d_relu/conv2d_relu/conv3d_relu), which saves a pass over
// the output forward and keeps no pre-activation tensor for the backward.
enum class FusedActivation { none, relu };
Tensor conv1d(const Tensor& input, const Tensor& weight, const Tensor& bias = Tensor(),
              const SpatialArg& stride = 1, const ConvPadding& padding = 0,
              const SpatialArg& dilation = 1, int64_t groups = 1,
              FusedActivation activation = FusedActivation::none);
Tensor conv2d(const Tensor& input, const Tensor& weight, const Tensor& bias = Tensor(),
              const SpatialArg& stride = 1, const ConvPadding& padding = 0,
              const SpatialArg& dilation = 1, int64_t groups = 1,
              FusedActivation activation = FusedActivation::none);
Tensor conv3d(const Tensor& input, const Tensor& weight, const Tensor& bias = Tensor(),
              const SpatialArg& stride = 1, const ConvPadding& padding = 0,
              const SpatialArg& dilation = 1, int64_t groups = 1,
              FusedActivation activation = FusedActivation::none);

// max_pool2d(conv2d(input, weight, bias, 1, 1, 1, 1, FusedActivation::relu), 2) as one op
// for float32 input [N, C, H, W] and weight [O, C, 3, 3]: the full-size convolution output
// and, in training, its full-size gradient are never stored in the caller's layout
// (src/ops/conv_pool.cc). Other shapes and dtypes run the two ops. Sequential uses it for a
// Conv2d with relu followed by MaxPool2d(2) while training.
Tensor conv2d_relu_max_pool2d(const Tensor& input, const Tensor& weight,
                              const Tensor& bias = Tensor());

// Transposed convolution (the gradient of conv with respect to its input), with PyTorch's
// argument order. weight is [in_channels, out_channels / groups, *kernel]; output size
// per dimension = (in - 1) * stride - 2 * padding + dilation * (kernel - 1) +
// output_padding + 1, and output_padding must be smaller than stride or dilation.
Tensor conv_transpose1d(const Tensor& input, const Tensor& weight, const Tensor& bias = Tensor(),
                        const SpatialArg& stride = 1, const SpatialArg& padding = 0,
                        const SpatialArg& output_padding = 0, int64_t groups = 1,
                        const SpatialArg& dilation = 1);
Tensor conv_transpose2d(const Tensor& input, const Tensor& weight, const Tensor& bias = Tensor(),
                        const SpatialArg& stride = 1, const SpatialArg& padding = 0,
                        const SpatialArg& output_padding = 0, int64_t groups = 1,
                        const SpatialArg& dilation = 1);
Tensor conv_transpose3d(const Tensor& input, const Tensor& weight, const Tensor& bias = Tensor(),
                        const SpatialArg& stride = 1, const SpatialArg& padding = 0,
                        const SpatialArg& output_padding = 0, int64_t groups = 1,
                        const SpatialArg& dilation = 1);

// ------------------------------------------------------------------ pooling
// Pooling over the trailing 1 or 2 dimensions of [N, C, L] / [N, C, H, W] inputs.
// stride defaults (empty) to kernel_size; padding must be at most half the kernel size. ceil_mode
// rounds the output size up, but a window never starts in the trailing padding. Output size =
// floor_or_ceil((in + 2 * padding - dilation * (kernel - 1) - 1) / stride) + 1.

// Max pooling; padded positions never win, a NaN in a window wins. The indices (int64)
// are flat positions within each input plane (h * W + w), like PyTorch's.
Tensor max_pool1d(const Tensor& input, const SpatialArg& kernel_size, const SpatialArg& stride = {},
                  const SpatialArg& padding = 0, const SpatialArg& dilation = 1,
                  bool ceil_mode = false);
Tensor max_pool2d(const Tensor& input, const SpatialArg& kernel_size, const SpatialArg& stride = {},
                  const SpatialArg& padding = 0, const SpatialArg& dilation = 1,
                  bool ceil_mode = false);
std::pair<Tensor, Tensor> max_pool1d_with_indices(
    const Tensor& input, const SpatialArg& kernel_size, const SpatialArg& stride = {},
    const SpatialArg& padding = 0, const SpatialArg& dilation = 1, bool ceil_mode = false);
std::pair<Tensor, Tensor> max_pool2d_with_indices(
    const Tensor& input, const SpatialArg& kernel_size, const SpatialArg& stride = {},
    const SpatialArg& padding = 0, const SpatialArg& dilation = 1, bool ceil_mode = false);

// Average pooling (floating-point inputs). With count_include_pad the divisor counts
// padded positions (but not the part of a ceil_mode window past the padding), otherwise
// only the input positions in the window.
Tensor avg_pool1d(const Tensor& input, const SpatialArg& kernel_size, const SpatialArg& stride = {},
                  const SpatialArg& padding = 0, bool ceil_mode = false,
                  bool count_include_pad = true);
Tensor avg_pool2d(const Tensor& input, const SpatialArg& kernel_size, const SpatialArg& stride = {},
                  const SpatialArg& padding = 0, bool ceil_mode = false,
                  bool count_include_pad = true);

// Adaptive pooling to a given output size: output o of a dimension of size L pools
// inputs [floor(o * L / out), ceil((o + 1) * L / out)).
Tensor adaptive_avg_pool1d(const Tensor& input, const SpatialArg& output_size);
Tensor adaptive_avg_pool2d(const Tensor& input, const SpatialArg& output_size);
Tensor adaptive_max_pool1d(const Tensor& input, const SpatialArg& output_size);
Tensor adaptive_max_pool2d(const Tensor& input, const SpatialArg& output_size);
std::pair<Tensor, Tensor> adaptive_max_pool1d_with_indices(const Tensor& input,
                                                           const SpatialArg& output_size);
std::pair<Tensor, Tensor> adaptive_max_pool2d_with_indices(const Tensor& input,
                                                           const SpatialArg& output_size);

// ------------------------------------------------------------------ normalization
// softmax and log_softmax along one axis, shifted by the maximum for stability (a row of
// all -inf gives NaN, like PyTorch). Floating-point inputs only.
Tensor softmax(const Tensor& x, int64_t axis = -1);
Tensor log_softmax(const Tensor& x, int64_t axis = -1);

// Batch normalization of [N, C, ...] over every axis but 1. In training mode it uses the
// batch's mean and biased variance, and when running_mean / running_var are given it
// updates them in place: running = (1 - momentum) * running + momentum * batch_stat, with
// the unbiased batch variance for running_var (PyTorch's rule). In inference mode it
// normalizes with the running statistics, which are then required. weight and bias
// ([C]) are optional.
Tensor batch_norm(const Tensor& x, const Tensor& running_mean, const Tensor& running_var,
                  const Tensor& weight = Tensor(), const Tensor& bias = Tensor(),
                  bool training = false, double momentum = 0.1, double eps = 1e-5);
// Normalizes over the trailing dimensions given by normalized_shape; weight and bias
// (optional) have that shape.
Tensor layer_norm(const Tensor& x, const Shape& normalized_shape, const Tensor& weight = Tensor(),
                  const Tensor& bias = Tensor(), double eps = 1e-5);
// Normalizes [N, C, ...] over each group of C / num_groups channels (and all spatial
// positions); weight and bias ([C], optional) are per channel.
Tensor group_norm(const Tensor& x, int64_t num_groups, const Tensor& weight = Tensor(),
                  const Tensor& bias = Tensor(), double eps = 1e-5);
// Normalizes [N, C, ...] (at least one spatial axis) over the spatial axes of each sample
// and channel, with the instance's own statistics; weight and bias ([C]) are optional.
Tensor instance_norm(const Tensor& x, const Tensor& weight = Tensor(),
                     const Tensor& bias = Tensor(), double eps = 1e-5);

// ------------------------------------------------------------------ misc
// Inverted dropout: in training, zeroes each element with probability p (the mask is
// tessera::bernoulli from `gen`, the default generator when null) and scales the rest by
// 1 / (1 - p). Outside training, or with p == 0, returns x itself.
Tensor dropout(const Tensor& x, double p = 0.5, bool training = true, Generator* gen = nullptr);

// Rows of weight [num_embeddings, dim] picked by integer indices of any shape: the result
// is [*indices.shape, dim]. The gradient to weight is a scatter-add of the output
// gradient into the picked rows; the row padding_idx (when >= 0) gets no gradient.
Tensor embedding(const Tensor& weight, const Tensor& indices, int64_t padding_idx = -1);

// ------------------------------------------------------------------ recurrence
// One direction of one LSTM layer over a sequence (PyTorch's equations and gate order i, f,
// g, o): x [T, N, I], states h0, c0 [N, H], weights w_ih [4H, I], w_hh [4H, H], biases
// [4H] (both or neither). Returns every h_t and every c_t, each [T, N, H] indexed by time;
// reverse runs from t = T - 1 down to 0. nn::LSTM is built on it.
std::pair<Tensor, Tensor> lstm_sequence(const Tensor& x, const Tensor& h0, const Tensor& c0,
                                        const Tensor& w_ih, const Tensor& w_hh, const Tensor& b_ih,
                                        const Tensor& b_hh, bool reverse);

// Pads x; pads are PyTorch-style, last dimension first: {left, right, top, bottom, ...}
// (an even count, at most 2 per dimension). mode "constant" fills `value` (negative pads
// crop), "reflect" mirrors without repeating the edge (pads must be smaller than the
// dimension), "replicate" repeats the edge.
Tensor pad(const Tensor& x, const std::vector<int64_t>& pads, const std::string& mode = "constant",
           double value = 0.0);

// Resizes the spatial dims of a 4-d NCHW tensor, like PyTorch's F.interpolate. With an
// output size {H, W} the step between sampled input positions is in / out; with scale
// factors the output size is floor(in * scale) and the step is 1 / scale (PyTorch without
// recompute_scale_factor). mode "nearest" reads input floor(o * step); "bilinear" blends
// the two nearest inputs around (o + 0.5) * step - 0.5 (clamped at 0), or with
// align_corners around o * (in - 1) / (out - 1), which maps corner pixels onto each other.
// Note: a braced single value, interpolate(x, {2}), picks the scale-factor overload.
Tensor interpolate(const Tensor& x, const std::vector<int64_t>& size,
                   const std::string& mode = "nearest", bool align_corners = false);
Tensor interpolate(const Tensor& x, double scale_factor, const std::string& mode = "nearest",
                   bool align_corners = false);
Tensor interpolate(const Tensor& x, double scale_h, double scale_w, const std::string& mode,
                   bool align_corners = false);

}  // namespace tessera
