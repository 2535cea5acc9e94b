// ONNX reductions (ReduceSum ... ReduceLogSumExp), ArgMax/ArgMin, and the softmax family.
#include "converter.h"
#include "tessera/ops/creation.h"
#include "tessera/ops/elementwise.h"
#include "tessera/ops/nn.h"
#include "tessera/ops/reduce.h"
#include "tessera/ops/shape.h"

namespace tessera::onnx {
namespace {

using ReduceFn = Tensor (*)(const Tensor& x, const Axes& axes, bool keepdim);

Tensor sum_of(const Tensor& x, const Axes& axes, bool keepdim) {
  Tensor y = sum(x, axes, keepdim);
  return y.dtype() == x.dtype() ? y : cast(y, x.dtype());  // integer sums stay in their type
}
Tensor prod_of(const Tensor& x, const Axes& axes, bool keepdim) {
  Tensor y = prod(x, axes, keepdim);
  return y.dtype() == x.dtype() ? y : cast(y, x.dtype());
}
Tensor l1_of(const Tensor& x, const Axes& axes, bool keepdim) {
  return sum_of(abs(x), axes, keepdim);
}
Tensor l2_of(const Tensor& x, const Axes& axes, bool keepdim) {
  return sqrt(sum_of(mul(x, x), axes, keepdim));
}
Tensor log_sum_of(const Tensor& x, const Axes& axes, bool keepdim) {
  return log(sum_of(x, axes, keepdim));
}
Tensor sum_square_of(const Tensor& x, const Axes& axes, bool keepdim) {
  return sum_of(mul(x, x), axes, keepdim);
}

// Axes come from the attribute, or (ReduceSum from opset 13) from input 1; none means all
// axes, unless noop_with_empty_axes asks for the input unchanged.
template <ReduceFn F>
TensorList reduce(const NodeContext& c) {
  const Tensor& x = c.in(0);
  std::vector<int64_t> axes;
  bool from_input = c.node().op_type() == "ReduceSum" && c.opset() >= 13;
  if (from_input) {
    if (c.has(1)) axes = c.ints(1);
  } else {
    axes = c.attr_ints("axes");
  }
  bool keepdim = c.attr_i("keepdims", 1) != 0;
  if (axes.empty()) {
    if (c.attr_i("noop_with_empty_axes", 0) != 0) return {x};
    for (int64_t a = 0; a < x.dim(); ++a) axes.push_back(a);
  }
  axes = normalize_axes(c, axes, x.dim());
  if (x.dim() == 0) return {F(x, {}, keepdim)};
  return {F(x, Axes(axes.begin(), axes.end()), keepdim)};
}

template <Tensor (*Arg)(const Tensor&, int64_t, bool)>
TensorList arg_reduce(const NodeContext& c) {
  const Tensor& x = c.in(0);
  int64_t axis = c.axis(c.attr_i("axis", 0), x.dim());
  bool keepdim = c.attr_i("keepdims", 1) != 0;
  if (c.attr_i("select_last_index", 0) == 0) return {Arg(x, axis, keepdim)};
  // The last of equal extremes: the first one on the flipped axis, mapped back.
  Tensor first = Arg(flip(x, {axis}), axis, keepdim);
  return {sub(scalar_tensor(x.size(axis) - 1, DType::Int64), first)};
}

// Before opset 13 softmax treats the input as 2-d: [prod(dims < axis), prod(dims >= axis)].
template <Tensor (*F)(const Tensor&, int64_t)>
TensorList softmax_like(const NodeContext& c) {
  const Tensor& x = c.in(0);
  if (c.opset() >= 13) return {F(x, c.axis(c.attr_i("axis", -1), x.dim()))};
  int64_t axis = c.axis(c.attr_i("axis", 1), x.dim());
  Tensor flat = axis == 0 ? unsqueeze(flatten(x), 0) : flatten(flatten(x, axis, -1), 0, axis - 1);
  return {reshape(F(flat, 1), x.shape())};
}

Tensor hardmax_along(const Tensor& x, int64_t axis) {
  Tensor best = argmax(x, axis, true);
  Shape classes_shape(static_cast<size_t>(x.dim()), 1);
  classes_shape[static_cast<size_t>(axis)] = x.size(axis);
  Tensor classes = reshape(arange(0, x.size(axis), 1, DType::Int64), classes_shape);
  return cast(eq(classes, best), x.dtype());
}

Tensor softmax_along(const Tensor& x, int64_t axis) { return softmax(x, axis); }
Tensor log_softmax_along(const Tensor& x, int64_t axis) { return log_softmax(x, axis); }
Tensor argmax_of(const Tensor& x, int64_t axis, bool keepdim) { return argmax(x, axis, keepdim); }
Tensor argmin_of(const Tensor& x, int64_t axis, bool keepdim) { return argmin(x, axis, keepdim); }

}  // namespace

void add_reduce_ops(OpTable& t) {
  t["ReduceSum"] = {reduce<sum_of>};
  t["ReduceMean"] = {reduce<mean>};
  t["ReduceMax"] = {reduce<amax>};
  t["ReduceMin"] = {reduce<amin>};
  t["ReduceProd"] = {reduce<prod_of>};
  t["ReduceL1"] = {reduce<l1_of>};
  t["ReduceL2"] = {reduce<l2_of>};
  t["ReduceLogSum"] = {reduce<log_sum_of>};
  t["ReduceLogSumExp"] = {reduce<logsumexp>};
  t["ReduceSumSquare"] = {reduce<sum_square_of>};
  t["ArgMax"] = {arg_reduce<argmax_of>};
  t["ArgMin"] = {arg_reduce<argmin_of>};
  t["Softmax"] = {softmax_like<softmax_along>};
  t["LogSoftmax"] = {softmax_like<log_softmax_along>};
  t["Hardmax"] = {softmax_like<hardmax_along>};
}

}  // namespace tessera::onnx
