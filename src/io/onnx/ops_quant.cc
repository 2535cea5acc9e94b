// ONNX's quantization operators: QuantizeLinear, DequantizeLinear, DynamicQuantizeLinear
// and the integer ops (ConvInteger, MatMulInteger, QLinearMatMul, QLinearConv). The integer
// arithmetic runs in float64, where every int8/uint8 product sum is exact.
#include <cmath>

#include "converter.h"
#include "tessera/ops/creation.h"
#include "tessera/ops/elementwise.h"
#include "tessera/ops/linalg.h"
#include "tessera/ops/reduce.h"
#include "tessera/ops/shape.h"

namespace tessera::onnx {
namespace {

Tensor f64(const Tensor& t) { return cast(t, DType::Float64); }

// A per-axis parameter ([C]) shaped to broadcast along `axis` of a rank-`rank` tensor;
// scalars stay as they are.
Tensor along_axis(const NodeContext& c, const Tensor& p, int64_t axis, int64_t rank) {
  if (p.dim() == 0 || p.numel() == 1) return reshape(p, {});
  axis = c.axis(axis, rank);
  Shape shape(static_cast<size_t>(rank), 1);
  shape[static_cast<size_t>(axis)] = p.numel();
  return reshape(p, shape);
}

// round-half-even(v) + zero point, saturated to the zero point's dtype.
Tensor saturate(const NodeContext& c, const Tensor& v, DType dtype) {
  double lo = 0, hi = 255;
  if (dtype == DType::Int8) {
    lo = -128;
    hi = 127;
  } else if (dtype == DType::Int32) {
    lo = -2147483648.0;
    hi = 2147483647.0;
  } else if (dtype != DType::UInt8) {
    c.unsupported("quantized dtype ", dtype_name(dtype));
  }
  return cast(minimum(maximum(round(v), scalar_tensor(lo, DType::Float64)),
                      scalar_tensor(hi, DType::Float64)),
              dtype);
}

TensorList quantize_linear_op(const NodeContext& c) {
  const Tensor& x = c.in(0);
  int64_t axis = c.attr_i("axis", 1);
  // x / scale in x's own precision, as ONNX's reference divides.
  Tensor scale = along_axis(c, cast(c.in(1), x.dtype()), axis, x.dim());
  DType dtype = c.has(2) ? c.in(2).dtype() : DType::UInt8;
  Tensor zero =
      c.has(2) ? along_axis(c, f64(c.in(2)), axis, x.dim()) : scalar_tensor(0.0, DType::Float64);
  return {saturate(c, add(f64(round(div(x, scale))), zero), dtype)};
}

TensorList dequantize_linear_op(const NodeContext& c) {
  const Tensor& x = c.in(0);
  int64_t axis = c.attr_i("axis", 1);
  Tensor scale = c.in(1);
  Tensor v = f64(x);
  if (c.has(2)) v = sub(v, along_axis(c, f64(c.in(2)), axis, x.dim()));
  return {cast(mul(v, along_axis(c, f64(scale), axis, x.dim())), scale.dtype())};
}

TensorList dynamic_quantize_linear_op(const NodeContext& c) {
  // In float32 like ONNX's reference, so that halves round the same way.
  Tensor x = cast(c.in(0), DType::Float32);
  Tensor zero = scalar_tensor(0.0, DType::Float32);
  Tensor hi = maximum(amax(x), zero), lo = minimum(amin(x), zero);
  Tensor scale = div(sub(hi, lo), scalar_tensor(255.0, DType::Float32));
  Tensor zp = saturate(c, f64(sub(zero, div(lo, scale))), DType::UInt8);
  Tensor y = saturate(c, add(f64(round(div(x, scale))), f64(zp)), DType::UInt8);
  return {y, scale, zp};
}

TensorList matmul_integer_op(const NodeContext& c) {
  Tensor a = f64(c.in(0)), b = f64(c.in(1));
  if (c.has(2))
    a = sub(a, c.in(2).numel() == 1 ? reshape(f64(c.in(2)), {}) : unsqueeze(f64(c.in(2)), -1));
  if (c.has(3))
    b = sub(b, reshape(f64(c.in(3)), c.in(3).numel() == 1 ? Shape{} : Shape{c.in(3).numel()}));
  return {cast(matmul(a, b), DType::Int32)};
}

TensorList conv_integer_op(const NodeContext& c) {
  Tensor x = f64(c.in(0)), w = f64(c.in(1));
  if (c.has(2)) x = sub(x, reshape(f64(c.in(2)), {}));
  if (c.has(3)) w = sub(w, along_axis(c, f64(c.in(3)), 0, w.dim()));
  return {cast(conv_nd(c, x, w, Tensor()), DType::Int32)};
}

TensorList qlinear_matmul_op(const NodeContext& c) {
  Tensor a = sub(f64(c.in(0)), reshape(f64(c.in(2)), {}));
  Tensor b = sub(f64(c.in(3)), reshape(f64(c.in(5)), {}));
  Tensor real = mul(matmul(a, b), mul(reshape(f64(c.in(1)), {}), reshape(f64(c.in(4)), {})));
  Tensor y = add(round(div(real, reshape(f64(c.in(6)), {}))), reshape(f64(c.in(7)), {}));
  return {saturate(c, y, c.in(7).dtype())};
}

TensorList qlinear_conv_op(const NodeContext& c) {
  Tensor x = sub(f64(c.in(0)), reshape(f64(c.in(2)), {}));
  Tensor w = sub(f64(c.in(3)), along_axis(c, f64(c.in(5)), 0, c.in(3).dim()));
  Tensor acc = conv_nd(c, x, w, c.has(8) ? f64(c.in(8)) : Tensor());
  Tensor scale = mul(reshape(f64(c.in(1)), {}), along_axis(c, f64(c.in(4)), 1, acc.dim()));
  Tensor y = add(round(div(mul(acc, scale), reshape(f64(c.in(6)), {}))), reshape(f64(c.in(7)), {}));
  return {saturate(c, y, c.in(7).dtype())};
}

}  // namespace

void add_quant_ops(OpTable& t) {
  t["QuantizeLinear"] = {quantize_linear_op};
  t["DequantizeLinear"] = {dequantize_linear_op};
  t["DynamicQuantizeLinear"] = {dynamic_quantize_linear_op};
  t["MatMulInteger"] = {matmul_integer_op};
  t["ConvInteger"] = {conv_integer_op};
  t["QLinearMatMul"] = {qlinear_matmul_op};
  t["QLinearConv"] = {qlinear_conv_op};
}

}  // namespace tessera::onnx
