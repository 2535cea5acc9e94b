// ONNX elementwise operators: unary math and activations, broadcasting binary ops,
// comparisons and logic, variadic Sum/Mean/Max/Min, Where, Clip and Cast.
#include <cmath>
#include <limits>

#include "converter.h"
#include "tensor_proto.h"
#include "tessera/ops/creation.h"
#include "tessera/ops/elementwise.h"
#include "tessera/ops/nn.h"
#include "tessera/ops/shape.h"

namespace tessera::onnx {
namespace {

// A 0-d tensor of x's dtype: binary ops with it keep x's dtype, as ONNX requires.
Tensor like(const Tensor& x, double v) { return scalar_tensor(Scalar(v), x.dtype()); }

template <Tensor (*F)(const Tensor&)>
TensorList unary(const NodeContext& c) {
  return {F(c.in(0))};
}
template <Tensor (*F)(const Tensor&, const Tensor&)>
TensorList binary(const NodeContext& c) {
  return {F(c.in(0), c.in(1))};
}

TensorList identity(const NodeContext& c) { return {c.in(0)}; }

Tensor asinh_of(const Tensor& x) { return log(add(x, sqrt(add(square(x), like(x, 1))))); }
Tensor acosh_of(const Tensor& x) { return log(add(x, sqrt(sub(square(x), like(x, 1))))); }
Tensor atanh_of(const Tensor& x) {
  return mul(log(div(add(like(x, 1), x), sub(like(x, 1), x))), like(x, 0.5));
}

TensorList elu_op(const NodeContext& c) { return {elu(c.in(0), c.attr_f("alpha", 1.0))}; }
TensorList selu_op(const NodeContext& c) {
  const Tensor& x = c.in(0);
  double alpha = c.attr_f("alpha", 1.67326319217681884765625);
  double gamma = c.attr_f("gamma", 1.05070102214813232421875);
  return {mul(elu(x, alpha), like(x, gamma))};
}
TensorList leaky_relu_op(const NodeContext& c) {
  return {leaky_relu(c.in(0), c.attr_f("alpha", 0.01))};
}
TensorList hard_sigmoid_op(const NodeContext& c) {
  const Tensor& x = c.in(0);
  Tensor y = add(mul(x, like(x, c.attr_f("alpha", 0.2))), like(x, c.attr_f("beta", 0.5)));
  return {minimum(maximum(y, like(x, 0)), like(x, 1))};
}
TensorList thresholded_relu_op(const NodeContext& c) {
  const Tensor& x = c.in(0);
  return {where(gt(x, like(x, c.attr_f("alpha", 1.0))), x, like(x, 0))};
}
TensorList celu_op(const NodeContext& c) {
  const Tensor& x = c.in(0);
  double alpha = c.attr_f("alpha", 1.0);
  Tensor neg_part = mul(expm1(div(x, like(x, alpha))), like(x, alpha));
  return {add(maximum(x, like(x, 0)), minimum(neg_part, like(x, 0)))};
}
TensorList shrink_op(const NodeContext& c) {
  const Tensor& x = c.in(0);
  double lambd = c.attr_f("lambd", 0.5), bias = c.attr_f("bias", 0.0);
  Tensor below = lt(x, like(x, -lambd)), above = gt(x, like(x, lambd));
  return {where(below, add(x, like(x, bias)), where(above, sub(x, like(x, bias)), like(x, 0)))};
}
TensorList prelu_op(const NodeContext& c) {
  const Tensor& x = c.in(0);
  Tensor slope = c.in(1);
  // Opsets before 7 broadcast a slope [C] over [N, C, ...] (PyTorch's exports still do);
  // later ones broadcast numpy-style.
  if (slope.dim() == 1 && x.dim() >= 3 && slope.size(0) == x.size(1) &&
      slope.size(0) != x.size(-1)) {
    Shape per_channel(static_cast<size_t>(x.dim() - 1), 1);
    per_channel[0] = slope.size(0);
    slope = reshape(slope, per_channel);
  }
  return {where(lt(x, like(x, 0)), mul(x, slope), x)};
}
TensorList softplus_op(const NodeContext& c) { return {softplus(c.in(0), 1.0, 1e30)}; }
TensorList is_inf_op(const NodeContext& c) {
  const Tensor& x = c.in(0);
  bool neg = c.attr_i("detect_negative", 1) != 0, pos = c.attr_i("detect_positive", 1) != 0;
  Tensor inf = isinf(x);
  if (neg && pos) return {inf};
  if (!neg && !pos) return {logical_and(inf, like(inf, 0))};
  return {logical_and(inf, pos ? gt(x, like(x, 0)) : lt(x, like(x, 0)))};
}

// Integer division truncates toward zero in ONNX (C semantics).
TensorList div_op(const NodeContext& c) {
  const Tensor &a = c.in(0), &b = c.in(1);
  if (is_floating(a.dtype()) || is_floating(b.dtype())) return {div(a, b)};
  Tensor q = trunc(div(cast(a, DType::Float64), cast(b, DType::Float64)));
  return {cast(q, promote_types(a.dtype(), b.dtype()))};
}
TensorList mod_op(const NodeContext& c) {
  const Tensor &a = c.in(0), &b = c.in(1);
  if (c.attr_i("fmod", 0) == 0) {
    c.require(!is_floating(a.dtype()), "fmod=0 is for integers; floating-point inputs need fmod=1");
    return {mod(a, b)};
  }
  // C's fmod: the sign follows the dividend.
  if (is_floating(a.dtype())) return {sub(a, mul(b, trunc(div(a, b))))};
  Tensor q = cast(trunc(div(cast(a, DType::Float64), cast(b, DType::Float64))), a.dtype());
  return {sub(a, mul(b, q))};
}
// The result has the base's dtype, whatever the exponent's.
TensorList pow_op(const NodeContext& c) {
  const Tensor &a = c.in(0), &b = c.in(1);
  if (is_floating(a.dtype())) return {pow(a, cast(b, a.dtype()))};
  Tensor r = pow(cast(a, DType::Float64), cast(b, DType::Float64));
  return {cast(round(r), a.dtype())};
}
TensorList bit_shift_op(const NodeContext& c) {
  std::string direction = c.attr_s("direction", "");
  if (direction == "LEFT") return {left_shift(c.in(0), c.in(1))};
  c.require(direction == "RIGHT", "direction must be LEFT or RIGHT, got '", direction, "'");
  return {right_shift(c.in(0), c.in(1))};
}

template <Tensor (*F)(const Tensor&, const Tensor&)>
TensorList variadic(const NodeContext& c) {
  Tensor acc = c.in(0);
  for (size_t i = 1; i < c.num_inputs(); ++i) acc = F(acc, c.in(i));
  return {acc};
}
TensorList mean_op(const NodeContext& c) {
  Tensor acc = variadic<add>(c)[0];
  return {div(acc, like(acc, static_cast<double>(c.num_inputs())))};
}
TensorList where_op(const NodeContext& c) { return {where(c.in(0), c.in(1), c.in(2))}; }

TensorList clip_op(const NodeContext& c) {
  Tensor x = c.in(0);
  if (c.opset() < 11) {
    double lo = c.attr_f("min", -std::numeric_limits<double>::infinity());
    double hi = c.attr_f("max", std::numeric_limits<double>::infinity());
    return {minimum(maximum(x, like(x, lo)), like(x, hi))};
  }
  if (c.has(1)) x = maximum(x, cast(c.in(1), x.dtype()));
  if (c.has(2)) x = minimum(x, cast(c.in(2), x.dtype()));
  return {x};
}

TensorList cast_op(const NodeContext& c) {
  return {cast(c.in(0), dtype_from_onnx(static_cast<int>(c.attr_i("to", 0)), c.where()))};
}
TensorList cast_like_op(const NodeContext& c) { return {cast(c.in(0), c.in(1).dtype())}; }

}  // namespace

void add_elementwise_ops(OpTable& t) {
  t["Identity"] = {identity};
  t["Abs"] = {unary<abs>};
  t["Neg"] = {unary<neg>};
  t["Sign"] = {unary<sign>};
  t["Exp"] = {unary<exp>};
  t["Log"] = {unary<log>};
  t["Sqrt"] = {unary<sqrt>};
  t["Reciprocal"] = {unary<reciprocal>};
  t["Sin"] = {unary<sin>};
  t["Cos"] = {unary<cos>};
  t["Tan"] = {unary<tan>};
  t["Asin"] = {unary<asin>};
  t["Acos"] = {unary<acos>};
  t["Atan"] = {unary<atan>};
  t["Sinh"] = {unary<sinh>};
  t["Cosh"] = {unary<cosh>};
  t["Asinh"] = {unary<asinh_of>};
  t["Acosh"] = {unary<acosh_of>};
  t["Atanh"] = {unary<atanh_of>};
  t["Tanh"] = {unary<tanh>};
  t["Sigmoid"] = {unary<sigmoid>};
  t["Relu"] = {unary<relu>};
  t["Erf"] = {unary<erf>};
  t["Floor"] = {unary<floor>};
  t["Ceil"] = {unary<ceil>};
  t["Round"] = {unary<round>};
  t["Softsign"] = {unary<softsign>};
  t["HardSwish"] = {unary<hard_swish>};
  t["IsNaN"] = {unary<isnan>};
  t["Not"] = {unary<logical_not>};
  t["Softplus"] = {softplus_op};
  t["Elu"] = {elu_op};
  t["Selu"] = {selu_op};
  t["LeakyRelu"] = {leaky_relu_op};
  t["HardSigmoid"] = {hard_sigmoid_op};
  t["ThresholdedRelu"] = {thresholded_relu_op};
  t["Celu"] = {celu_op};
  t["Shrink"] = {shrink_op};
  t["PRelu"] = {prelu_op};
  t["IsInf"] = {is_inf_op};
  t["Add"] = {binary<add>};
  t["Sub"] = {binary<sub>};
  t["Mul"] = {binary<mul>};
  t["Div"] = {div_op};
  t["Mod"] = {mod_op};
  t["Pow"] = {pow_op};
  t["BitShift"] = {bit_shift_op};
  t["Equal"] = {binary<eq>};
  t["Less"] = {binary<lt>};
  t["LessOrEqual"] = {binary<le>};
  t["Greater"] = {binary<gt>};
  t["GreaterOrEqual"] = {binary<ge>};
  t["And"] = {binary<logical_and>};
  t["Or"] = {binary<logical_or>};
  t["Xor"] = {binary<logical_xor>};
  t["Sum"] = {variadic<add>};
  t["Max"] = {variadic<maximum>};
  t["Min"] = {variadic<minimum>};
  t["Mean"] = {mean_op};
  t["Where"] = {where_op};
  t["Clip"] = {clip_op};
  t["Cast"] = {cast_op};
  t["CastLike"] = {cast_like_op};
}

}  // namespace tessera::onnx
