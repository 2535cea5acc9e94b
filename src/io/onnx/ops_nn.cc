// ONNX neural-network operators: convolutions, pooling, normalizations, LRN and Resize.
// ONNX pads may differ at the two ends of a dimension; where Tessera's ops take one
// padding per dimension, the input is padded explicitly first.
#include <array>
#include <cmath>
#include <functional>
#include <limits>

#include "converter.h"
#include "tessera/ops/creation.h"
#include "tessera/ops/elementwise.h"
#include "tessera/ops/index.h"
#include "tessera/ops/nn.h"
#include "tessera/ops/reduce.h"
#include "tessera/ops/shape.h"

namespace tessera::onnx {
namespace {

// Spatial geometry of a conv or pool node: per spatial dimension.
struct Window {
  std::vector<int64_t> kernel, stride, dilation, begin, end;
  bool symmetric() const { return begin == end; }
};

Window window(const NodeContext& c, const Tensor& x, std::vector<int64_t> kernel,
              int64_t default_stride_one) {
  const auto n = static_cast<size_t>(x.dim() - 2);
  Window w;
  w.kernel = std::move(kernel);
  c.require(w.kernel.size() == n, "kernel has ", w.kernel.size(), " dims for ", n, " spatial dims");
  w.stride = c.attr_ints("strides", std::vector<int64_t>(n, default_stride_one));
  w.dilation = c.attr_ints("dilations", std::vector<int64_t>(n, 1));
  c.require(w.stride.size() == n && w.dilation.size() == n, "strides and dilations need ", n,
            " entries");
  std::vector<int64_t> pads = c.attr_ints("pads", std::vector<int64_t>(2 * n, 0));
  c.require(pads.size() == 2 * n, "pads needs ", 2 * n, " entries");
  w.begin.assign(pads.begin(), pads.begin() + static_cast<int64_t>(n));
  w.end.assign(pads.begin() + static_cast<int64_t>(n), pads.end());
  std::string auto_pad = c.attr_s("auto_pad", "NOTSET");
  if (auto_pad == "VALID") {
    w.begin.assign(n, 0);
    w.end.assign(n, 0);
  } else if (auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") {
    for (size_t d = 0; d < n; ++d) {
      int64_t in = x.size(static_cast<int64_t>(d) + 2);
      int64_t out = (in + w.stride[d] - 1) / w.stride[d];
      int64_t total = std::max<int64_t>(
          0, (out - 1) * w.stride[d] + (w.kernel[d] - 1) * w.dilation[d] + 1 - in);
      int64_t small = total / 2;
      w.begin[d] = auto_pad == "SAME_UPPER" ? small : total - small;
      w.end[d] = total - w.begin[d];
    }
  } else {
    c.require(auto_pad == "NOTSET", "unknown auto_pad '", auto_pad, "'");
  }
  for (size_t d = 0; d < n; ++d) {
    c.require(
        w.stride[d] > 0 && w.dilation[d] > 0 && w.kernel[d] > 0 && w.begin[d] >= 0 && w.end[d] >= 0,
        "kernel, strides and dilations must be positive and pads non-negative");
  }
  return w;
}

// Pads the spatial dims of x explicitly (Tessera's pad: last dimension first).
Tensor pad_spatial(const Tensor& x, const std::vector<int64_t>& begin,
                   const std::vector<int64_t>& end, double value) {
  std::vector<int64_t> pads;
  for (size_t d = begin.size(); d-- > 0;) {
    pads.push_back(begin[d]);
    pads.push_back(end[d]);
  }
  return pad(x, pads, "constant", value);
}

}  // namespace

Tensor conv_nd(const NodeContext& c, Tensor x, const Tensor& weight, const Tensor& bias) {
  c.require(x.dim() >= 3 && x.dim() <= 5, "input must be 3-d to 5-d, got shape ", x.shape());
  c.require(weight.dim() == x.dim(), "weight rank ", weight.dim(), " differs from the input's ",
            x.dim());
  Window w = window(c, x,
                    c.attr_ints("kernel_shape", std::vector<int64_t>(weight.shape().begin() + 2,
                                                                     weight.shape().end())),
                    1);
  std::vector<int64_t> padding = w.begin;
  if (!w.symmetric()) {
    x = pad_spatial(x, w.begin, w.end, 0.0);
    padding.assign(w.begin.size(), 0);
  }
  int64_t groups = c.attr_i("group", 1);
  switch (x.dim()) {
    case 3:
      return conv1d(x, weight, bias, w.stride, padding, w.dilation, groups);
    case 4:
      return conv2d(x, weight, bias, w.stride, padding, w.dilation, groups);
    default:
      return conv3d(x, weight, bias, w.stride, padding, w.dilation, groups);
  }
}

namespace {

TensorList conv_op(const NodeContext& c) {
  return {conv_nd(c, c.in(0), c.in(1), c.has(2) ? c.in(2) : Tensor())};
}

// The full transposed convolution (no padding), then the output padding appended and the
// pads cropped, then the bias: every ONNX combination of pads, output_padding,
// output_shape and auto_pad in one path.
TensorList conv_transpose_op(const NodeContext& c) {
  const Tensor& x = c.in(0);
  const Tensor& weight = c.in(1);
  c.require(x.dim() >= 3 && x.dim() <= 5, "input must be 3-d to 5-d, got shape ", x.shape());
  c.require(weight.dim() == x.dim(), "weight rank ", weight.dim(), " differs from the input's ",
            x.dim());
  const auto n = static_cast<size_t>(x.dim() - 2);
  std::vector<int64_t> kernel = c.attr_ints(
      "kernel_shape", std::vector<int64_t>(weight.shape().begin() + 2, weight.shape().end()));
  std::vector<int64_t> stride = c.attr_ints("strides", std::vector<int64_t>(n, 1));
  std::vector<int64_t> dilation = c.attr_ints("dilations", std::vector<int64_t>(n, 1));
  std::vector<int64_t> out_pad = c.attr_ints("output_padding", std::vector<int64_t>(n, 0));
  std::vector<int64_t> pads = c.attr_ints("pads", std::vector<int64_t>(2 * n, 0));
  c.require(kernel.size() == n && stride.size() == n && dilation.size() == n &&
                out_pad.size() == n && pads.size() == 2 * n,
            "kernel_shape, strides, dilations, output_padding and pads must match ", n,
            " spatial dims");
  std::vector<int64_t> begin(pads.begin(), pads.begin() + static_cast<int64_t>(n));
  std::vector<int64_t> end(pads.begin() + static_cast<int64_t>(n), pads.end());
  std::vector<int64_t> full(n);
  for (size_t d = 0; d < n; ++d) {
    full[d] =
        (x.size(static_cast<int64_t>(d) + 2) - 1) * stride[d] + (kernel[d] - 1) * dilation[d] + 1;
  }
  std::vector<int64_t> output_shape = c.attr_ints("output_shape");
  std::string auto_pad = c.attr_s("auto_pad", "NOTSET");
  if (!output_shape.empty() || auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") {
    if (output_shape.size() == n + 2)
      output_shape.erase(output_shape.begin(), output_shape.begin() + 2);
    for (size_t d = 0; d < n; ++d) {
      int64_t target = output_shape.empty() ? x.size(static_cast<int64_t>(d) + 2) * stride[d]
                                            : output_shape.at(d);
      int64_t total = full[d] + out_pad[d] - target;
      bool upper = auto_pad != "SAME_LOWER";
      begin[d] = upper ? total / 2 : total - total / 2;
      end[d] = total - begin[d];
    }
  } else if (auto_pad == "VALID") {
    begin.assign(n, 0);
    end.assign(n, 0);
  }
  int64_t groups = c.attr_i("group", 1);
  Tensor y;
  switch (x.dim()) {
    case 3:
      y = conv_transpose1d(x, weight, Tensor(), stride, 0, 0, groups, dilation);
      break;
    case 4:
      y = conv_transpose2d(x, weight, Tensor(), stride, 0, 0, groups, dilation);
      break;
    default:
      y = conv_transpose3d(x, weight, Tensor(), stride, 0, 0, groups, dilation);
      break;
  }
  std::vector<int64_t> crop_begin(n), crop_end(n);
  bool any = false;
  for (size_t d = 0; d < n; ++d) {
    crop_begin[d] = -begin[d];
    crop_end[d] = out_pad[d] - end[d];
    any = any || crop_begin[d] != 0 || crop_end[d] != 0;
  }
  if (any) y = pad_spatial(y, crop_begin, crop_end, 0.0);
  if (c.has(2)) {
    Shape bias_shape(static_cast<size_t>(y.dim()), 1);
    bias_shape[1] = c.in(2).numel();
    y = add(y, reshape(c.in(2), bias_shape));
  }
  return {y};
}

// Window fits Tessera's pooling padding: symmetric and at most half the kernel.
bool native_padding(const Window& w) {
  if (!w.symmetric()) return false;
  for (size_t d = 0; d < w.begin.size(); ++d) {
    if (2 * w.begin[d] > w.kernel[d]) return false;
  }
  return true;
}

// Pools over one or two spatial dims: f(x, kernel, stride, padding, dilation).
using PoolFn = std::function<Tensor(const Tensor&, std::vector<int64_t>, std::vector<int64_t>,
                                    std::vector<int64_t>, std::vector<int64_t>)>;

std::vector<int64_t> pick(const std::vector<int64_t>& v, size_t first, size_t count) {
  return {v.begin() + static_cast<int64_t>(first), v.begin() + static_cast<int64_t>(first + count)};
}

// Max and average pooling over a box are separable: a 3-d window is a 2-d pool over
// (H, W) followed by a 1-d pool over D.
Tensor pool(const Tensor& x, const Window& w, const std::vector<int64_t>& padding,
            const PoolFn& pool1, const PoolFn& pool2) {
  if (x.dim() == 3) return pool1(x, w.kernel, w.stride, padding, w.dilation);
  if (x.dim() == 4) return pool2(x, w.kernel, w.stride, padding, w.dilation);
  const int64_t n = x.size(0), ch = x.size(1), d = x.size(2);
  Tensor planes = pool2(reshape(x, {n, ch * d, x.size(3), x.size(4)}), pick(w.kernel, 1, 2),
                        pick(w.stride, 1, 2), pick(padding, 1, 2), pick(w.dilation, 1, 2));
  const int64_t h = planes.size(2), wd = planes.size(3);
  Tensor rows =
      reshape(permute(reshape(planes, {n, ch, d, h, wd}), {0, 1, 3, 4, 2}), {n, ch * h * wd, d});
  Tensor pooled = pool1(rows, pick(w.kernel, 0, 1), pick(w.stride, 0, 1), pick(padding, 0, 1),
                        pick(w.dilation, 0, 1));
  return permute(reshape(pooled, {n, ch, h, wd, pooled.size(2)}), {0, 1, 4, 2, 3});
}

TensorList max_pool_op(const NodeContext& c) {
  Tensor x = c.in(0);
  c.require(x.dim() >= 3 && x.dim() <= 5, "input must be 3-d to 5-d, got shape ", x.shape());
  Window w = window(c, x, c.attr_ints("kernel_shape"), 1);
  bool ceil_mode = c.attr_i("ceil_mode", 0) != 0;
  if (c.wants_output(1)) {
    c.require(native_padding(w) && x.dim() <= 4,
              "indices need 1-d or 2-d pooling with symmetric padding");
    auto [y, idx] =
        x.dim() == 3
            ? max_pool1d_with_indices(x, w.kernel, w.stride, w.begin, w.dilation, ceil_mode)
            : max_pool2d_with_indices(x, w.kernel, w.stride, w.begin, w.dilation, ceil_mode);
    // ONNX's indices count over the whole tensor, Tessera's within each plane.
    int64_t plane = 1;
    for (int64_t d = 2; d < x.dim(); ++d) plane *= x.size(d);
    Shape offset_shape(static_cast<size_t>(x.dim()), 1);
    offset_shape[0] = x.size(0);
    offset_shape[1] = x.size(1);
    Tensor offsets = reshape(
        mul(arange(0, x.size(0) * x.size(1), 1, DType::Int64), scalar_tensor(plane, DType::Int64)),
        offset_shape);
    if (c.attr_i("storage_order", 0) == 1 && x.dim() == 4) {
      // Column-major positions within the plane: w * H + h.
      Tensor width = scalar_tensor(x.size(3), DType::Int64),
             height = scalar_tensor(x.size(2), DType::Int64);
      idx = add(mul(mod(idx, width), height), floor_div(idx, width));
    }
    return {y, add(idx, offsets)};
  }
  std::vector<int64_t> padding = w.begin;
  if (!native_padding(w)) {
    x = pad_spatial(x, w.begin, w.end, -std::numeric_limits<double>::infinity());
    padding.assign(w.begin.size(), 0);
  }
  auto pool1 = [&](const Tensor& t, auto k, auto s, auto p, auto d) {
    return max_pool1d(t, k, s, p, d, ceil_mode);
  };
  auto pool2 = [&](const Tensor& t, auto k, auto s, auto p, auto d) {
    return max_pool2d(t, k, s, p, d, ceil_mode);
  };
  return {pool(x, w, padding, pool1, pool2)};
}

Tensor avg_pool(const Tensor& x, const Window& w, const std::vector<int64_t>& padding,
                bool ceil_mode, bool count_pad) {
  auto pool1 = [&](const Tensor& t, auto k, auto s, auto p, auto) {
    return avg_pool1d(t, k, s, p, ceil_mode, count_pad);
  };
  auto pool2 = [&](const Tensor& t, auto k, auto s, auto p, auto) {
    return avg_pool2d(t, k, s, p, ceil_mode, count_pad);
  };
  return pool(x, w, padding, pool1, pool2);
}

TensorList average_pool_op(const NodeContext& c) {
  const Tensor& x = c.in(0);
  c.require(x.dim() >= 3 && x.dim() <= 5, "input must be 3-d to 5-d, got shape ", x.shape());
  Window w = window(c, x, c.attr_ints("kernel_shape"), 1);
  for (int64_t d : w.dilation) c.require(d == 1, "dilated average pooling is not supported");
  bool ceil_mode = c.attr_i("ceil_mode", 0) != 0;
  bool count_pad = c.attr_i("count_include_pad", 0) != 0;
  if (native_padding(w)) return {avg_pool(x, w, w.begin, ceil_mode, count_pad)};
  // Pad explicitly; without count_include_pad divide by the pooled count of real inputs.
  std::vector<int64_t> none(w.begin.size(), 0);
  Tensor sums = avg_pool(pad_spatial(x, w.begin, w.end, 0.0), w, none, ceil_mode, true);
  if (count_pad) return {sums};
  Tensor counts =
      avg_pool(pad_spatial(ones_like(x), w.begin, w.end, 0.0), w, none, ceil_mode, true);
  return {div(sums, counts)};
}

Axes spatial_axes(const Tensor& x) {
  Axes axes;
  for (int64_t d = 2; d < x.dim(); ++d) axes.push_back(d);
  return axes;
}
TensorList global_average_pool_op(const NodeContext& c) {
  return {mean(c.in(0), spatial_axes(c.in(0)), true)};
}
TensorList global_max_pool_op(const NodeContext& c) {
  return {amax(c.in(0), spatial_axes(c.in(0)), true)};
}

TensorList batch_norm_op(const NodeContext& c) {
  bool training = c.opset() >= 14
                      ? c.attr_i("training_mode", 0) != 0
                      : (c.opset() < 7 ? c.attr_i("is_test", 0) == 0 : c.num_outputs() > 1);
  c.require(c.attr_i("spatial", 1) == 1, "spatial=0 is not supported");
  const Tensor& x = c.in(0);
  double eps = c.attr_f("epsilon", 1e-5);
  if (!training) return {batch_norm(x, c.in(3), c.in(4), c.in(1), c.in(2), false, 0.1, eps)};
  if (c.opset() < 14)
    c.unsupported("training mode before opset 14 (saved mean and variance outputs)");
  // Batch statistics (biased variance); ONNX's momentum weighs the old running value.
  Axes axes{0};
  for (int64_t d = 2; d < x.dim(); ++d) axes.push_back(d);
  Tensor mu = mean(x, axes), v = var(x, axes, 0);
  Shape per_channel(static_cast<size_t>(x.dim()), 1);
  per_channel[1] = x.size(1);
  auto bc = [&](const Tensor& t) { return reshape(t, per_channel); };
  Tensor y = mul(div(sub(x, bc(mu)), sqrt(add(bc(v), scalar_tensor(eps, x.dtype())))), bc(c.in(1)));
  y = add(y, bc(c.in(2)));
  Tensor m = scalar_tensor(c.attr_f("momentum", 0.9), x.dtype()),
         rest = scalar_tensor(1 - c.attr_f("momentum", 0.9), x.dtype());
  return {y, add(mul(c.in(3), m), mul(mu, rest)), add(mul(c.in(4), m), mul(v, rest))};
}

TensorList instance_norm_op(const NodeContext& c) {
  return {instance_norm(c.in(0), c.in(1), c.in(2), c.attr_f("epsilon", 1e-5))};
}

TensorList layer_norm_op(const NodeContext& c) {
  const Tensor& x = c.in(0);
  int64_t axis = c.axis(c.attr_i("axis", -1), x.dim());
  double eps = c.attr_f("epsilon", 1e-5);
  Axes axes;
  for (int64_t d = axis; d < x.dim(); ++d) axes.push_back(d);
  // Statistics in float32 at least (stash_type 1), like ONNX's reference.
  DType stat = x.dtype() == DType::Float64 ? DType::Float64 : DType::Float32;
  Tensor xs = cast(x, stat);
  Tensor mu = mean(xs, axes, true);
  Tensor centered = sub(xs, mu);
  Tensor inv_std = rsqrt(add(mean(mul(centered, centered), axes, true), scalar_tensor(eps, stat)));
  Tensor y = cast(mul(centered, inv_std), x.dtype());
  y = mul(y, c.in(1));
  if (c.has(2)) y = add(y, c.in(2));
  return {y, mu, inv_std};
}

TensorList lrn_op(const NodeContext& c) {
  const Tensor& x = c.in(0);
  int64_t size = c.attr_i("size", 0);
  c.require(size > 0 && x.dim() >= 3, "size must be positive and the input at least 3-d");
  double alpha = c.attr_f("alpha", 1e-4), beta = c.attr_f("beta", 0.75),
         bias = c.attr_f("bias", 1.0);
  int64_t before = (size - 1) / 2, after = size - 1 - before;
  Tensor sq = mul(x, x);
  // Zero-pad the channel axis and sum `size` shifted slices.
  std::vector<int64_t> pads(static_cast<size_t>(2 * (x.dim() - 2)), 0);
  pads.push_back(before);
  pads.push_back(after);
  Tensor padded = pad(sq, pads);
  Tensor total = narrow(padded, 1, 0, x.size(1));
  for (int64_t i = 1; i < size; ++i) total = add(total, narrow(padded, 1, i, x.size(1)));
  Tensor denom =
      pow(add(mul(total, scalar_tensor(alpha / size, x.dtype())), scalar_tensor(bias, x.dtype())),
          scalar_tensor(beta, x.dtype()));
  return {div(x, denom)};
}

TensorList lp_norm_op(const NodeContext& c) {
  const Tensor& x = c.in(0);
  int64_t axis = c.axis(c.attr_i("axis", -1), x.dim());
  int64_t p = c.attr_i("p", 2);
  c.require(p == 1 || p == 2, "p must be 1 or 2, got ", p);
  Tensor n = p == 1 ? sum(abs(x), {axis}, true) : sqrt(sum(mul(x, x), {axis}, true));
  return {div(x, n)};
}

TensorList mvn_op(const NodeContext& c) {
  const Tensor& x = c.in(0);
  std::vector<int64_t> axes = normalize_axes(c, c.attr_ints("axes", {0, 2, 3}), x.dim());
  Axes ax(axes.begin(), axes.end());
  Tensor centered = sub(x, mean(x, ax, true));
  Tensor var = mean(mul(centered, centered), ax, true);
  return {div(centered, add(sqrt(var), scalar_tensor(1e-9, x.dtype())))};
}

// ------------------------------------------------------------------ Resize

// Source coordinate of output position o along one axis (ONNX's coordinate modes).
// `out` is the output length before rounding down (in * scale), as ONNX's reference uses.
double source_coord(const std::string& mode, int64_t o, int64_t in, double out, double scale) {
  if (mode == "asymmetric") return o / scale;
  if (mode == "align_corners") return out <= 1 ? 0.0 : o * double(in - 1) / (out - 1);
  if (mode == "pytorch_half_pixel") return out > 1 ? (o + 0.5) / scale - 0.5 : 0.0;
  if (mode == "tf_half_pixel_for_nn") return (o + 0.5) / scale;
  return (o + 0.5) / scale - 0.5;  // half_pixel
}

int64_t nearest_index(const std::string& mode, double x) {
  if (mode == "floor") return static_cast<int64_t>(std::floor(x));
  if (mode == "ceil") return static_cast<int64_t>(std::ceil(x));
  if (mode == "round_prefer_ceil") return static_cast<int64_t>(std::floor(x + 0.5));
  // round_prefer_floor: halves go down.
  return static_cast<int64_t>(std::ceil(x - 0.5));
}

// Cubic convolution weights (Keys, coefficient a) for a fractional offset t.
std::array<double, 4> cubic_weights(double t, double a) {
  auto w = [a](double d) {
    d = std::fabs(d);
    if (d <= 1) return ((a + 2) * d - (a + 3)) * d * d + 1;
    if (d < 2) return ((a * d - 5 * a) * d + 8 * a) * d - 4 * a;
    return 0.0;
  };
  return {w(1 + t), w(t), w(1 - t), w(2 - t)};
}

// Resizes one axis: each output is a weighted sum of input samples along it, with the
// sample positions and weights computed here (shapes are known at import time).
Tensor resize_axis(const NodeContext& c, const Tensor& x, int64_t axis, int64_t out, double scale,
                   double exact_out) {
  const int64_t in = x.size(axis);
  std::string mode = c.attr_s("mode", "nearest");
  std::string coord = c.attr_s("coordinate_transformation_mode", "half_pixel");
  if (coord == "tf_crop_and_resize")
    c.unsupported("coordinate_transformation_mode tf_crop_and_resize");
  if (mode == "nearest") {
    std::string nearest = c.attr_s("nearest_mode", "round_prefer_floor");
    std::vector<int64_t> idx(static_cast<size_t>(out));
    for (int64_t o = 0; o < out; ++o) {
      idx[o] = std::clamp<int64_t>(
          nearest_index(nearest, source_coord(coord, o, in, exact_out, scale)), 0, in - 1);
    }
    return take(x, from_vector<int64_t>(idx, {out}), axis);
  }
  int taps = mode == "linear" ? 2 : 4;
  c.require(mode == "linear" || mode == "cubic", "unknown mode '", mode, "'");
  double a = c.attr_f("cubic_coeff_a", -0.75);
  bool exclude_outside = c.attr_i("exclude_outside", 0) != 0;
  std::vector<int64_t> idx(static_cast<size_t>(out * taps));
  std::vector<double> weight(static_cast<size_t>(out * taps));
  for (int64_t o = 0; o < out; ++o) {
    double src = source_coord(coord, o, in, exact_out, scale);
    if (taps == 2) src = std::clamp(src, 0.0, double(in - 1));
    double base = std::floor(src), t = src - base;
    std::array<double, 4> w{};
    if (taps == 2) {
      w = {1 - t, t, 0, 0};
    } else {
      w = cubic_weights(t, a);
    }
    int64_t first = static_cast<int64_t>(base) - (taps == 4 ? 1 : 0);
    double total = 0;
    for (int k = 0; k < taps; ++k) {
      int64_t i = first + k;
      if (exclude_outside && (i < 0 || i >= in)) w[k] = 0;
      total += w[k];
    }
    for (int k = 0; k < taps; ++k) {
      idx[o * taps + k] = std::clamp<int64_t>(first + k, 0, in - 1);
      weight[o * taps + k] = exclude_outside && total != 0 ? w[k] / total : w[k];
    }
  }
  // Gather the taps into a new axis after `axis`, weight them and sum it away.
  Tensor picked = take(x, from_vector<int64_t>(idx, {out, taps}), axis);
  Shape wshape(static_cast<size_t>(picked.dim()), 1);
  wshape[axis] = out;
  wshape[axis + 1] = taps;
  Tensor w = cast(from_vector<double>(weight, wshape), x.dtype());
  return sum(mul(picked, w), {axis + 1});
}

TensorList resize_op(const NodeContext& c) {
  const Tensor& x = c.in(0);
  std::vector<double> scales;
  std::vector<int64_t> sizes;
  bool upsample = c.node().op_type() == "Upsample";
  if (upsample) {
    scales = c.opset() < 9 ? c.attr_floats("scales") : c.doubles(1);
  } else if (c.opset() < 11) {
    scales = c.doubles(1);
  } else {
    if (c.has(2) && c.value(2).numel() > 0) scales = c.doubles(2);
    if (c.has(3) && c.value(3).numel() > 0) sizes = c.ints(3);
    if (c.has(1) && c.value(1).numel() > 0 &&
        c.attr_s("coordinate_transformation_mode", "") == "tf_crop_and_resize") {
      c.unsupported("regions of interest (tf_crop_and_resize)");
    }
  }
  std::vector<int64_t> axes = c.attr_ints("axes");
  if (axes.empty()) {
    for (int64_t d = 0; d < x.dim(); ++d) axes.push_back(d);
  }
  c.require(!scales.empty() || !sizes.empty(), "needs scales or sizes");
  c.require((scales.empty() || scales.size() == axes.size()) &&
                (sizes.empty() || sizes.size() == axes.size()),
            "scales or sizes do not match the input's rank ", x.dim());
  std::string aspect = c.attr_s("keep_aspect_ratio_policy", "stretch");
  if (!sizes.empty() && aspect != "stretch") {
    double s = aspect == "not_larger" ? 1e300 : 0;
    for (size_t i = 0; i < axes.size(); ++i) {
      double r = double(sizes[i]) / double(x.size(axes[i]));
      s = aspect == "not_larger" ? std::min(s, r) : std::max(s, r);
    }
    for (size_t i = 0; i < axes.size(); ++i) {
      sizes[i] = static_cast<int64_t>(std::floor(s * double(x.size(axes[i])) + 0.5));
    }
    scales.assign(axes.size(), s);
  }
  Tensor y = x;
  for (size_t i = 0; i < axes.size(); ++i) {
    int64_t axis = c.axis(axes[i], x.dim());
    int64_t in = x.size(axis);
    int64_t out = 0;
    double scale = 0, exact_out = 0;
    if (!sizes.empty()) {
      out = sizes[i];
      // An empty axis stays empty whatever the scale (0 / 0 is not one).
      scale = !scales.empty() ? scales[i]
              : in > 0        ? double(out) / double(in)
              : out == 0      ? 1.0
                              : 0.0;
      exact_out = scales.empty() ? double(out) : double(in) * scale;
    } else {
      scale = scales[i];
      exact_out = double(in) * scale;
      out = static_cast<int64_t>(std::floor(exact_out));
    }
    c.require(out >= 0 && scale > 0, "invalid output size ", out, " or scale ", scale);
    if (out == in && scale == 1.0) continue;
    y = resize_axis(c, y, axis, out, scale, exact_out);
  }
  return {y};
}

}  // namespace

void add_nn_ops(OpTable& t) {
  t["Conv"] = {conv_op};
  t["ConvTranspose"] = {conv_transpose_op};
  t["MaxPool"] = {max_pool_op};
  t["AveragePool"] = {average_pool_op};
  t["GlobalAveragePool"] = {global_average_pool_op};
  t["GlobalMaxPool"] = {global_max_pool_op};
  t["BatchNormalization"] = {batch_norm_op};
  t["InstanceNormalization"] = {instance_norm_op};
  t["LayerNormalization"] = {layer_norm_op};
  t["LRN"] = {lrn_op};
  t["LpNormalization"] = {lp_norm_op};
  t["MeanVarianceNormalization"] = {mvn_op};
  t["Resize"] = {resize_op};
  t["Upsample"] = {resize_op};
}

}  // namespace tessera::onnx
