// ONNX shape, indexing and creation operators: Reshape, Slice, Gather*, Scatter*, Pad,
// Shape, Constant and friends. Arguments that ONNX passes as tensors (shapes, axes,
// pads, repeats) must be known at import time; NodeContext::ints says so otherwise.
#include <algorithm>
#include <limits>
#include <numeric>

#include "converter.h"
#include "tensor_proto.h"
#include "tessera/ops/creation.h"
#include "tessera/ops/elementwise.h"
#include "tessera/ops/index.h"
#include "tessera/ops/linalg.h"
#include "tessera/ops/nn.h"
#include "tessera/ops/reduce.h"
#include "tessera/ops/shape.h"

namespace tessera::onnx {
namespace {

Tensor int64s(const std::vector<int64_t>& v) {
  return from_vector<int64_t>(v, {static_cast<int64_t>(v.size())});
}

// Axes from the attribute (older opsets) or the input `index` (newer ones), if any.
std::vector<int64_t> axes_arg(const NodeContext& c, size_t index, int64_t since_opset) {
  if (c.opset() < since_opset) return c.attr_ints("axes");
  return c.has(index) ? c.ints(index) : std::vector<int64_t>{};
}

TensorList reshape_op(const NodeContext& c) {
  const Tensor& x = c.in(0);
  std::vector<int64_t> shape = c.opset() < 5 ? c.attr_ints("shape") : c.ints(1);
  bool allow_zero = c.attr_i("allowzero", 0) != 0;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == 0 && !allow_zero) {
      c.require(static_cast<int64_t>(i) < x.dim(), "shape entry ", i,
                " copies a dimension the input lacks");
      shape[i] = x.size(static_cast<int64_t>(i));
    }
  }
  return {reshape(x, Shape(shape))};
}

TensorList flatten_op(const NodeContext& c) {
  const Tensor& x = c.in(0);
  // Flatten's axis may equal the rank (all dims go to the first) and counts back from it.
  int64_t axis = c.attr_i("axis", 1);
  if (axis < 0) axis += x.dim();
  c.require(axis >= 0 && axis <= x.dim(), "axis ", c.attr_i("axis", 1),
            " is out of range for rank ", x.dim());
  if (axis == 0) return {unsqueeze(flatten(x), 0)};
  Tensor inner = axis == x.dim() ? unsqueeze(x, x.dim()) : flatten(x, axis, -1);
  return {flatten(inner, 0, axis - 1)};
}

TensorList squeeze_op(const NodeContext& c) {
  Tensor x = c.in(0);
  std::vector<int64_t> axes = axes_arg(c, 1, 13);
  if (axes.empty()) return {squeeze(x)};
  axes = normalize_axes(c, axes, x.dim());
  for (auto it = axes.rbegin(); it != axes.rend(); ++it) {
    c.require(x.size(*it) == 1, "cannot squeeze axis ", *it, " of shape ", x.shape());
    x = squeeze(x, *it);
  }
  return {x};
}

TensorList unsqueeze_op(const NodeContext& c) {
  Tensor x = c.in(0);
  std::vector<int64_t> axes = axes_arg(c, 1, 13);
  axes = normalize_axes(c, axes, x.dim() + static_cast<int64_t>(axes.size()));
  for (int64_t a : axes) x = unsqueeze(x, a);
  return {x};
}

TensorList transpose_op(const NodeContext& c) {
  const Tensor& x = c.in(0);
  std::vector<int64_t> perm = c.attr_ints("perm");
  if (perm.empty()) {
    for (int64_t i = x.dim() - 1; i >= 0; --i) perm.push_back(i);
  }
  return {permute(x, Dims(perm))};
}

TensorList concat_op(const NodeContext& c) {
  TensorList parts;
  for (size_t i = 0; i < c.num_inputs(); ++i) parts.push_back(c.in(i));
  int64_t axis = c.axis(c.attr_i("axis", 0), parts.at(0).dim());
  return {concat(parts, axis)};
}

TensorList split_op(const NodeContext& c) {
  const Tensor& x = c.in(0);
  int64_t axis = c.axis(c.attr_i("axis", 0), x.dim());
  std::vector<int64_t> sizes =
      c.opset() < 13 ? c.attr_ints("split") : (c.has(1) ? c.ints(1) : std::vector<int64_t>{});
  if (sizes.empty()) {
    auto n = static_cast<int64_t>(c.num_outputs());
    c.require(n > 0 && x.size(axis) % n == 0, "cannot split size ", x.size(axis), " into ", n,
              " equal parts");
    sizes.assign(static_cast<size_t>(n), x.size(axis) / n);
  }
  return split(x, sizes, axis);
}

// One axis of ONNX's Slice, with its clamping rules; negative steps read backwards.
Tensor slice_axis(const NodeContext& c, const Tensor& x, int64_t axis, int64_t start, int64_t end,
                  int64_t step) {
  c.require(step != 0, "slice step must not be 0");
  // One step past either end reads one element; keeps -step representable.
  step = std::max(step, -std::numeric_limits<int64_t>::max());
  const int64_t dim = x.size(axis);
  if (start < 0) start += dim;
  if (end < 0 && end > std::numeric_limits<int64_t>::min() / 2) end += dim;
  if (step > 0) {
    start = std::clamp<int64_t>(start, 0, dim);
    end = std::clamp<int64_t>(end, 0, dim);
    return slice(x, axis, start, std::max(start, end), step);
  }
  start = std::clamp<int64_t>(start, -1, dim - 1);
  end = std::clamp<int64_t>(end, -1, dim - 1);
  // Elements start, start + step, ... > end, read from the flipped axis.
  int64_t first = dim - 1 - start, stop = dim - 1 - end;
  if (start < 0) return slice(x, axis, 0, 0, 1);
  return slice(flip(x, {axis}), axis, first, std::max(first, stop), -step);
}

TensorList slice_op(const NodeContext& c) {
  Tensor x = c.in(0);
  std::vector<int64_t> starts, ends, axes, steps;
  if (c.opset() < 10) {
    starts = c.attr_ints("starts");
    ends = c.attr_ints("ends");
    axes = c.attr_ints("axes");
  } else {
    starts = c.ints(1);
    ends = c.ints(2);
    if (c.has(3)) axes = c.ints(3);
    if (c.has(4)) steps = c.ints(4);
  }
  c.require(starts.size() == ends.size(), "starts and ends differ in length");
  if (axes.empty()) {
    axes.resize(starts.size());
    std::iota(axes.begin(), axes.end(), 0);
  }
  if (steps.empty()) steps.assign(starts.size(), 1);
  c.require(axes.size() == starts.size() && steps.size() == starts.size(),
            "starts, ends, axes and steps differ in length");
  for (size_t i = 0; i < starts.size(); ++i) {
    x = slice_axis(c, x, c.axis(axes[i], x.dim()), starts[i], ends[i], steps[i]);
  }
  return {x};
}

TensorList gather_op(const NodeContext& c) {
  const Tensor& x = c.in(0);
  int64_t axis = c.axis(c.attr_i("axis", 0), x.dim());
  return {take(x, c.in(1), axis)};
}

TensorList gather_elements_op(const NodeContext& c) {
  const Tensor& x = c.in(0);
  int64_t axis = c.axis(c.attr_i("axis", 0), x.dim());
  return {gather(x, axis, wrap_negative_indices(c.in(1), x.size(axis)))};
}

// The flat position in x's dims [b, b + k) of each index tuple (indices' last axis), plus
// the batch offset: data is then read as [batch * prod(those dims), rest...].
Tensor nd_positions(const NodeContext& c, const Tensor& x, const Tensor& indices,
                    int64_t batch_dims) {
  int64_t k = indices.size(indices.dim() - 1);
  c.require(batch_dims + k <= x.dim(), "index tuples of length ", k, " with ", batch_dims,
            " batch dims exceed the data's rank ", x.dim());
  Tensor pos = zeros(Shape(indices.shape().begin(), indices.shape().end() - 1), DType::Int64);
  int64_t stride = 1;
  for (int64_t j = k - 1; j >= 0; --j) {
    int64_t size = x.size(batch_dims + j);
    Tensor idx = wrap_negative_indices(select(indices, indices.dim() - 1, j), size);
    pos = add(pos, mul(idx, scalar_tensor(stride, DType::Int64)));
    stride *= size;
  }
  if (batch_dims > 0) {
    int64_t batch = 1;
    for (int64_t d = 0; d < batch_dims; ++d) batch *= x.size(d);
    Shape offset_shape(x.shape().begin(), x.shape().begin() + batch_dims);
    offset_shape.resize(static_cast<size_t>(pos.dim()), 1);
    Tensor offsets = reshape(
        mul(arange(0, batch, 1, DType::Int64), scalar_tensor(stride, DType::Int64)), offset_shape);
    pos = add(pos, offsets);
  }
  return pos;
}

Tensor flatten_leading(const Tensor& x, int64_t count) {
  if (count == 0) return unsqueeze(x, 0);
  return count == 1 ? x : flatten(x, 0, count - 1);
}

TensorList gather_nd_op(const NodeContext& c) {
  const Tensor &x = c.in(0), &indices = c.in(1);
  int64_t b = c.attr_i("batch_dims", 0);
  int64_t k = indices.size(indices.dim() - 1);
  Tensor pos = nd_positions(c, x, indices, b);
  return {take(flatten_leading(x, b + k), pos, 0)};
}

TensorList scatter_nd_op(const NodeContext& c) {
  const Tensor &x = c.in(0), &indices = c.in(1), &updates = c.in(2);
  std::string reduction = c.attr_s("reduction", "none");
  int64_t k = indices.size(indices.dim() - 1);
  Tensor pos = flatten(nd_positions(c, x, indices, 0));
  Tensor flat = flatten_leading(x, k);
  int64_t m = pos.numel();
  Shape rest(flat.shape().begin() + 1, flat.shape().end());
  Shape upd_shape{m};
  for (int64_t d : rest) upd_shape.push_back(d);
  Tensor upd = reshape(updates, upd_shape);
  Shape idx_shape(upd_shape.size(), 1);
  idx_shape[0] = m;
  Tensor index = expand(reshape(pos, idx_shape), upd_shape);
  Tensor out;
  if (reduction == "none") {
    out = scatter(flat, 0, index, upd);
  } else if (reduction == "add") {
    out = scatter_add(flat, 0, index, upd);
  } else {
    c.unsupported("reduction '", reduction, "'");
  }
  return {reshape(out, x.shape())};
}

TensorList scatter_elements_op(const NodeContext& c) {
  const Tensor& x = c.in(0);
  int64_t axis = c.axis(c.attr_i("axis", 0), x.dim());
  Tensor index = wrap_negative_indices(c.in(1), x.size(axis));
  std::string reduction = c.attr_s("reduction", "none");
  if (reduction == "none") return {scatter(x, axis, index, c.in(2))};
  if (reduction == "add") return {scatter_add(x, axis, index, c.in(2))};
  c.unsupported("reduction '", reduction, "'");
}

TensorList tile_op(const NodeContext& c) { return {tile(c.in(0), c.ints(1))}; }

TensorList expand_op(const NodeContext& c) {
  const Tensor& x = c.in(0);
  std::vector<int64_t> shape = c.ints(1);
  // Bidirectional broadcasting: the result's rank is the larger one.
  size_t rank = std::max(shape.size(), static_cast<size_t>(x.dim()));
  Shape out(rank, 1);
  for (size_t i = 0; i < rank; ++i) {
    int64_t a = i + x.dim() >= rank ? x.size(static_cast<int64_t>(i + x.dim() - rank)) : 1;
    int64_t b = i + shape.size() >= rank ? shape[i + shape.size() - rank] : 1;
    c.require(a == b || a == 1 || b == 1, "cannot broadcast ", x.shape(), " to ", Shape(shape));
    out[i] = a == 1 ? b : a;
  }
  return {broadcast_to(x, out)};
}

// Sizes unknown until run time read as the sizes they are traced with: passed unchanged
// to a reshape, slice or expand they become that graph's unknown dimension; arithmetic on
// them is refused by the tracer, which names the op.
TensorList shape_op(const NodeContext& c) {
  const Tensor& x = c.in(0);
  int64_t rank = x.dim();
  int64_t start = c.attr_i("start", 0), end = c.attr_i("end", rank);
  if (start < 0) start += rank;
  if (end < 0) end += rank;
  start = std::clamp<int64_t>(start, 0, rank);
  end = std::clamp<int64_t>(end, start, rank);
  return {int64s(std::vector<int64_t>(x.shape().begin() + start, x.shape().begin() + end))};
}

TensorList size_op(const NodeContext& c) {
  const Tensor& x = c.in(0);
  if (has_unknown_dims(x))
    c.unsupported("the size of a tensor with dimensions unknown until run time");
  return {scalar_tensor(x.numel(), DType::Int64)};
}

TensorList constant_op(const NodeContext& c) {
  if (c.has_attr("value")) return {c.attr_tensor("value")};
  if (c.has_attr("value_float")) return {scalar_tensor(c.attr_f("value_float", 0), DType::Float32)};
  if (c.has_attr("value_int")) return {scalar_tensor(c.attr_i("value_int", 0), DType::Int64)};
  if (c.has_attr("value_floats")) {
    std::vector<double> v = c.attr_floats("value_floats");
    return {cast(from_vector<double>(v, {static_cast<int64_t>(v.size())}), DType::Float32)};
  }
  if (c.has_attr("value_ints")) return {int64s(c.attr_ints("value_ints"))};
  c.unsupported(
      "only tensor, float and int constants are supported (not strings or sparse tensors)");
}

TensorList constant_of_shape_op(const NodeContext& c) {
  std::vector<int64_t> shape = c.ints(0);
  for (int64_t d : shape) c.require(d >= 0, "negative dimension in shape ", Shape(shape));
  if (!c.has_attr("value")) return {zeros(Shape(shape), DType::Float32)};
  Tensor v = c.attr_tensor("value");
  c.require(v.numel() == 1, "value must hold one element");
  return {broadcast_to(reshape(v, {}), Shape(shape)).contiguous()};
}

TensorList range_op(const NodeContext& c) {
  DType dtype = c.in(0).dtype();
  if (is_floating(dtype)) return {arange(c.scalar(0), c.scalar(1), c.scalar(2), dtype)};
  auto start = static_cast<int64_t>(c.scalar(0)), limit = static_cast<int64_t>(c.scalar(1)),
       delta = static_cast<int64_t>(c.scalar(2));
  c.require(delta != 0, "delta must not be 0");
  return {arange(start, limit, delta, dtype)};
}

TensorList dropout_op(const NodeContext& c) {
  const Tensor& x = c.in(0);
  double ratio = c.opset() < 12 ? c.attr_f("ratio", 0.5) : (c.has(1) ? c.scalar(1) : 0.5);
  bool training = c.opset() >= 12 && c.has(2) && c.scalar(2) != 0;
  if (c.opset() < 7 && c.attr_i("is_test", 0) == 0) training = true;
  if (!training || ratio == 0) return {x, ones(x.shape(), DType::Bool)};
  Tensor y = dropout(x, ratio, true);
  return {y, ne(y, scalar_tensor(0, x.dtype()))};
}

TensorList eye_like_op(const NodeContext& c) {
  const Tensor& x = c.in(0);
  c.require(x.dim() == 2, "input must be 2-d, got shape ", x.shape());
  DType dtype = c.has_attr("dtype")
                    ? dtype_from_onnx(static_cast<int>(c.attr_i("dtype", 1)), c.where())
                    : x.dtype();
  int64_t k = c.attr_i("k", 0);
  Tensor rows = reshape(arange(0, x.size(0), 1, DType::Int64), {x.size(0), 1});
  Tensor cols = reshape(arange(0, x.size(1), 1, DType::Int64), {1, x.size(1)});
  return {cast(eq(sub(cols, rows), scalar_tensor(k, DType::Int64)), dtype)};
}

TensorList trilu_op(const NodeContext& c) {
  int64_t k = c.has(1) ? static_cast<int64_t>(c.scalar(1)) : 0;
  return {c.attr_i("upper", 1) != 0 ? triu(c.in(0), k) : tril(c.in(0), k)};
}

TensorList one_hot_op(const NodeContext& c) {
  const Tensor& indices = c.in(0);
  auto depth = static_cast<int64_t>(c.scalar(1));
  const Tensor& values = c.in(2);
  c.require(values.numel() == 2, "values must hold [off, on]");
  int64_t rank = indices.dim() + 1;
  int64_t axis = c.axis(c.attr_i("axis", -1), rank);
  Tensor idx = cast(indices, DType::Int64);
  if (is_floating(indices.dtype())) idx = cast(trunc(indices), DType::Int64);
  idx = wrap_negative_indices(idx, depth);
  Shape classes_shape(static_cast<size_t>(rank), 1);
  classes_shape[static_cast<size_t>(axis)] = depth;
  Tensor classes = reshape(arange(0, depth, 1, DType::Int64), classes_shape);
  Tensor hit = eq(unsqueeze(idx, axis), classes);
  return {where(hit, select(values, 0, 1), select(values, 0, 0))};
}

TensorList pad_op(const NodeContext& c) {
  const Tensor& x = c.in(0);
  std::string mode = c.attr_s("mode", "constant");
  std::vector<int64_t> pads;
  double value = 0;
  if (c.opset() < 11) {
    pads = c.attr_ints(c.opset() < 2 ? "paddings" : "pads");
    value = c.attr_f("value", 0.0);
  } else {
    pads = c.ints(1);
    if (c.has(2)) value = c.scalar(2);
  }
  int64_t rank = x.dim();
  std::vector<int64_t> axes(static_cast<size_t>(rank));
  std::iota(axes.begin(), axes.end(), 0);
  if (c.has(3)) axes = normalize_axes(c, c.ints(3), rank);
  c.require(pads.size() == 2 * axes.size(), "pads has ", pads.size(), " entries for ", axes.size(),
            " axes");
  // Tessera's pad takes (begin, end) pairs from the last dimension backwards.
  std::vector<int64_t> begin(static_cast<size_t>(rank), 0), end(static_cast<size_t>(rank), 0);
  for (size_t i = 0; i < axes.size(); ++i) {
    begin[static_cast<size_t>(axes[i])] = pads[i];
    end[static_cast<size_t>(axes[i])] = pads[i + axes.size()];
  }
  std::vector<int64_t> torch_pads;
  int64_t first = 0;
  while (first < rank && begin[first] == 0 && end[first] == 0) ++first;
  for (int64_t d = rank - 1; d >= first; --d) {
    torch_pads.push_back(begin[d]);
    torch_pads.push_back(end[d]);
  }
  if (torch_pads.empty()) return {x};
  if (mode == "edge") mode = "replicate";
  c.require(mode == "constant" || mode == "reflect" || mode == "replicate", "unknown mode '", mode,
            "'");
  return {pad(x, torch_pads, mode, value)};
}

TensorList depth_to_space_op(const NodeContext& c) {
  const Tensor& x = c.in(0);
  c.require(x.dim() == 4, "input must be NCHW, got shape ", x.shape());
  int64_t b = c.attr_i("blocksize", 0);
  c.require(b > 0, "blocksize must be positive");
  int64_t n = x.size(0), ch = x.size(1), h = x.size(2), w = x.size(3);
  c.require(ch % (b * b) == 0, "channels ", ch, " are not a multiple of blocksize^2");
  int64_t oc = ch / (b * b);
  if (c.attr_s("mode", "DCR") == "DCR") {
    Tensor t = permute(reshape(x, {n, b, b, oc, h, w}), {0, 3, 4, 1, 5, 2});
    return {reshape(t, {n, oc, h * b, w * b})};
  }
  Tensor t = permute(reshape(x, {n, oc, b, b, h, w}), {0, 1, 4, 2, 5, 3});
  return {reshape(t, {n, oc, h * b, w * b})};
}

TensorList space_to_depth_op(const NodeContext& c) {
  const Tensor& x = c.in(0);
  c.require(x.dim() == 4, "input must be NCHW, got shape ", x.shape());
  int64_t b = c.attr_i("blocksize", 0);
  c.require(b > 0 && x.size(2) % b == 0 && x.size(3) % b == 0, "blocksize ", b,
            " must divide the spatial dims of ", x.shape());
  int64_t n = x.size(0), ch = x.size(1), h = x.size(2) / b, w = x.size(3) / b;
  Tensor t = permute(reshape(x, {n, ch, h, b, w, b}), {0, 3, 5, 1, 2, 4});
  return {reshape(t, {n, ch * b * b, h, w})};
}

TensorList cumsum_op(const NodeContext& c) {
  Tensor x = c.in(0);
  int64_t axis = c.axis(static_cast<int64_t>(c.scalar(1)), x.dim());
  bool reverse = c.attr_i("reverse", 0) != 0, exclusive = c.attr_i("exclusive", 0) != 0;
  if (reverse) x = flip(x, {axis});
  Tensor y = cumsum(x, axis);
  if (y.dtype() != x.dtype()) y = cast(y, x.dtype());
  if (exclusive && x.size(axis) > 0) {
    y = concat({zeros_like(narrow(y, axis, 0, 1)), narrow(y, axis, 0, x.size(axis) - 1)}, axis);
  }
  if (reverse) y = flip(y, {axis});
  return {y};
}

TensorList top_k_op(const NodeContext& c) {
  const Tensor& x = c.in(0);
  int64_t axis = c.axis(c.attr_i("axis", -1), x.dim());
  auto k = c.opset() < 10 ? c.attr_i("k", 0) : static_cast<int64_t>(c.scalar(1));
  c.require(k >= 0 && k <= x.size(axis), "k = ", k, " is out of range for axis size ",
            x.size(axis));
  bool largest = c.attr_i("largest", 1) != 0;
  Tensor order = narrow(argsort(x, axis, largest, true), axis, 0, k);
  return {take_along_axis(x, order, axis), order};
}

TensorList non_zero_op(const NodeContext& c) {
  // The output's size depends on the input's values: they must be known at import.
  Tensor x = c.value(0);
  c.require(x.dim() > 0, "0-d inputs are not supported");
  return {transpose(nonzero(x), 0, 1).contiguous()};
}

TensorList compress_op(const NodeContext& c) {
  Tensor x = c.in(0);
  int64_t axis = 0;
  if (c.has_attr("axis")) {
    axis = c.axis(c.attr_i("axis", 0), x.dim());
  } else {
    x = flatten(x);
  }
  // The output's size depends on the condition's values: they must be known at import.
  Tensor cond = c.value(1);
  c.require(cond.dim() == 1 && cond.size(0) <= x.size(axis), "condition of shape ", cond.shape(),
            " does not fit axis size ", x.size(axis));
  Tensor picked = select(nonzero(cond), 1, 0);
  return {index_select(x, axis, picked)};
}

TensorList einsum_op(const NodeContext& c) {
  std::string eq = c.attr_s("equation", "");
  eq.erase(std::remove(eq.begin(), eq.end(), ' '), eq.end());
  return {einsum(eq, c.inputs())};
}

TensorList matmul_op(const NodeContext& c) { return {matmul(c.in(0), c.in(1))}; }

TensorList gemm_op(const NodeContext& c) {
  Tensor a = c.in(0), b = c.in(1);
  if (c.attr_i("transA", 0) != 0) a = transpose(a, 0, 1);
  if (c.attr_i("transB", 0) != 0) b = transpose(b, 0, 1);
  Tensor y = matmul(a, b);
  double alpha = c.attr_f("alpha", 1.0), beta = c.attr_f("beta", 1.0);
  if (alpha != 1.0) y = mul(y, scalar_tensor(alpha, y.dtype()));
  if (c.has(2) && beta != 0.0) {
    Tensor bias = c.in(2);
    if (beta != 1.0) bias = mul(bias, scalar_tensor(beta, bias.dtype()));
    y = add(y, bias);
  }
  return {y};
}

TensorList max_unpool_op(const NodeContext& c) {
  const Tensor &x = c.in(0), &indices = c.in(1);
  c.require(x.dim() >= 3 && indices.shape() == x.shape(), "X ", x.shape(), " and indices ",
            indices.shape(), " must match and be at least 3-d");
  const auto n = static_cast<size_t>(x.dim() - 2);
  std::vector<int64_t> kernel = c.attr_ints("kernel_shape");
  std::vector<int64_t> stride = c.attr_ints("strides", std::vector<int64_t>(n, 1));
  std::vector<int64_t> pads = c.attr_ints("pads", std::vector<int64_t>(2 * n, 0));
  c.require(kernel.size() == n && stride.size() == n && pads.size() == 2 * n,
            "kernel_shape, strides and pads must match ", n, " spatial dims");
  Shape inferred{x.size(0), x.size(1)};
  for (size_t d = 0; d < n; ++d) {
    inferred.push_back((x.size(static_cast<int64_t>(d) + 2) - 1) * stride[d] + kernel[d] - pads[d] -
                       pads[d + n]);
  }
  Shape out = inferred;
  if (c.has(2)) {
    std::vector<int64_t> given = c.ints(2);
    c.require(given.size() == static_cast<size_t>(x.dim()), "output_shape must have rank ",
              x.dim());
    out = Shape(given);
  }
  // The indices are flat positions in the whole inferred output (MaxPool's second output);
  // a given output_shape keeps each value at its coordinates.
  Tensor idx = flatten(cast(indices, DType::Int64));
  if (out != inferred) {
    Tensor rest = idx, moved = zeros_like(idx);
    int64_t stride_out = 1;
    for (int64_t d = x.dim() - 1; d >= 0; --d) {
      Tensor size = scalar_tensor(inferred[d], DType::Int64);
      Tensor coord = d == 0 ? rest : mod(rest, size);
      rest = floor_div(rest, size);
      moved = add(moved, mul(coord, scalar_tensor(stride_out, DType::Int64)));
      stride_out *= out[d];
    }
    idx = moved;
  }
  Tensor flat = zeros({shape_numel(out)}, x.dtype());
  Tensor filled = scatter(flat, 0, idx, flatten(x));
  return {reshape(filled, out)};
}

TensorList reverse_sequence_op(const NodeContext& c) {
  const Tensor& x = c.in(0);
  int64_t time_axis = c.axis(c.attr_i("time_axis", 0), x.dim());
  int64_t batch_axis = c.axis(c.attr_i("batch_axis", 1), x.dim());
  c.require(time_axis != batch_axis && (time_axis <= 1 && batch_axis <= 1),
            "time_axis and batch_axis must be 0 and 1");
  Shape len_shape(static_cast<size_t>(x.dim()), 1), time_shape(static_cast<size_t>(x.dim()), 1);
  len_shape[static_cast<size_t>(batch_axis)] = x.size(batch_axis);
  time_shape[static_cast<size_t>(time_axis)] = x.size(time_axis);
  Tensor lens = reshape(cast(c.in(1), DType::Int64), len_shape);
  Tensor t = reshape(arange(0, x.size(time_axis), 1, DType::Int64), time_shape);
  // Within its length each sequence reads backwards; past it, in place.
  Tensor src = where(lt(t, lens), sub(sub(lens, scalar_tensor(1, DType::Int64)), t), t);
  return {gather(x, time_axis, expand(src, x.shape()))};
}

}  // namespace

bool has_unknown_dims(const Tensor& x) {
  OpTracer* tracer = active_tracer();
  return tracer != nullptr && tracer->has_unknown_dim(x.shape());
}

void add_shape_ops(OpTable& t) {
  t["Reshape"] = {reshape_op};
  t["Flatten"] = {flatten_op};
  t["Squeeze"] = {squeeze_op};
  t["Unsqueeze"] = {unsqueeze_op};
  t["Transpose"] = {transpose_op};
  t["Concat"] = {concat_op};
  t["Split"] = {split_op};
  t["Slice"] = {slice_op};
  t["Gather"] = {gather_op};
  t["GatherElements"] = {gather_elements_op};
  t["GatherND"] = {gather_nd_op};
  t["ScatterND"] = {scatter_nd_op};
  t["ScatterElements"] = {scatter_elements_op};
  t["Scatter"] = {scatter_elements_op};
  t["Tile"] = {tile_op};
  t["Expand"] = {expand_op};
  t["Shape"] = {shape_op};
  t["Size"] = {size_op};
  t["Constant"] = {constant_op};
  t["ConstantOfShape"] = {constant_of_shape_op};
  t["Range"] = {range_op};
  t["Dropout"] = {dropout_op, true};
  t["EyeLike"] = {eye_like_op};
  t["Trilu"] = {trilu_op};
  t["OneHot"] = {one_hot_op};
  t["Pad"] = {pad_op};
  t["DepthToSpace"] = {depth_to_space_op};
  t["SpaceToDepth"] = {space_to_depth_op};
  t["CumSum"] = {cumsum_op};
  t["TopK"] = {top_k_op};
  t["NonZero"] = {non_zero_op};
  t["Compress"] = {compress_op};
  t["Einsum"] = {einsum_op};
  t["MatMul"] = {matmul_op};
  t["Gemm"] = {gemm_op};
  t["MaxUnpool"] = {max_unpool_op};
  t["ReverseSequence"] = {reverse_sequence_op};
}

}  // namespace tessera::onnx
