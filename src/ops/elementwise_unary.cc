// Unary elementwise ops. Each op is one struct: its name, the dtypes it accepts,
// the scalar function, an optional SIMD fast path, and its gradient rule.
#include <cmath>
#include <numbers>

#include "../kernels/cpu/copy.h"
#include "../kernels/cpu/loops.h"
#include "../kernels/cpu/simd.h"
#include "../kernels/cpu/wrapping.h"
#include "samples.h"
#include "tessera/ops/creation.h"
#include "tessera/ops/elementwise.h"
#include "tessera/ops/op.h"

namespace tessera {
namespace {

using cpu::Geometry;
using cpu::make_geometry;
using cpu::parallel_runs;

enum class Domain {
  kNumeric,    // any non-bool dtype, result of the same dtype
  kFloat,      // result floating; integer inputs compute in float32
  kPredicate,  // any dtype, result bool
  kIntegral,   // integers and bool only, same dtype
  kBool,       // any dtype read as bool, result bool
};

struct Params {
  double alpha = 0.0, beta = 0.0;
};

constexpr double kSqrt2 = std::numbers::sqrt2;
constexpr double kSeluAlpha = 1.6732632423543772848170429916717;
constexpr double kSeluScale = 1.0507009873554804934193349852946;

DType unary_result(Domain domain, DType in) {
  switch (domain) {
    case Domain::kFloat:
      return is_floating(in) ? in : DType::Float32;
    case Domain::kPredicate:
    case Domain::kBool:
      return DType::Bool;
    default:
      return in;
  }
}

template <typename Op>
MetaList infer_unary(const OpCall& c) {
  const Tensor& x = c.in(0);
  if constexpr (Op::domain == Domain::kNumeric) {
    check(x.dtype() != DType::Bool, Op::name, "not defined for bool tensors");
  }
  if constexpr (Op::domain == Domain::kIntegral) {
    check(!is_floating(x.dtype()), Op::name, "needs an integer or bool tensor, got ",
          dtype_name(x.dtype()));
  }
  return {{x.shape(), unary_result(Op::domain, x.dtype())}};
}

Params read_params(const Attrs& attrs) {
  Params p;
  if (attrs.has("alpha")) p.alpha = attrs.f("alpha");
  if (attrs.has("beta")) p.beta = attrs.f("beta");
  return p;
}

template <typename Op, typename In, typename Out>
void unary_loop(const Tensor& x, const Tensor& out, const Params& p) {
  using C = typename ComputeType<In>::type;
  Geometry<2> g = make_geometry<2>(out.shape(), {out.strides(), x.strides()});
  parallel_runs<2>(g, {static_cast<char*>(out.data_ptr()), static_cast<char*>(x.data_ptr())},
                   {sizeof(Out), sizeof(In)},
                   [&](std::array<char*, 2> ptr, int64_t n, const std::array<int64_t, 2>& st) {
                     Out* y = reinterpret_cast<Out*>(ptr[0]);
                     const char* in = ptr[1];
                     for (int64_t i = 0; i < n; ++i) {
                       C v = static_cast<C>(*reinterpret_cast<const In*>(in + i * st[1]));
                       y[i] = cpu::convert<Out>(Op::f(v, p));
                     }
                   });
}

template <typename Op>
void cpu_unary(const OpCall& c, std::span<Tensor> outs) {
  const Tensor& out = outs[0];
  Tensor x = c.in(0);
  if (out.numel() == 0) return;
  if constexpr (Op::domain == Domain::kFloat) x = x.to(out.dtype());
  if constexpr (requires { Op::fast; }) {
    if (x.dtype() == DType::Float32 && x.is_contiguous()) {
      const float* src = x.data<float>();
      float* dst = out.data<float>();
      parallel_for(0, x.numel(), kParallelGrain, [&](int64_t lo, int64_t hi) {
        cpu::simd().unary_f32(Op::fast, src + lo, dst + lo, hi - lo);
      });
      return;
    }
  }
  Params p = read_params(c.attrs);
  visit_dtype(x.dtype(), [&](auto in_tag) {
    using In = decltype(in_tag);
    if constexpr (Op::domain == Domain::kPredicate || Op::domain == Domain::kBool) {
      unary_loop<Op, In, bool>(x, out, p);
    } else {
      unary_loop<Op, In, In>(x, out, p);
    }
  });
}

template <typename Op>
TensorList grad_unary(const GradCall& g) {
  return {Op::grad(g)};
}

// The op's float32 SIMD kernel as an instruction of a fused elementwise program.
template <cpu::FastUnary F>
void pointwise_unary(const float* x, const float*, float* y, int64_t n, PointwiseOperands) {
  cpu::simd().unary_f32(F, x, y, n);
}

// Every shape of samples::elementwise_shapes, with values in the op's domain
// (Op::sample_lo/sample_hi, default [-2, 2)) and the attributes it needs.
template <typename Op>
std::vector<OpSample> unary_samples() {
  double lo = -2, hi = 2;
  if constexpr (requires { Op::sample_lo; }) lo = Op::sample_lo, hi = Op::sample_hi;
  Attrs attrs;
  if constexpr (requires { Op::sample_attrs(); }) attrs = Op::sample_attrs();
  std::vector<OpSample> out;
  uint64_t seed = 1;
  for (const Shape& s : samples::elementwise_shapes()) {
    out.push_back({{samples::values(s, lo, hi, seed++)}, attrs});
  }
  return out;
}

template <typename Op>
constexpr OpDef make_unary() {
  OpDef def{Op::name, infer_unary<Op>, cpu_unary<Op>};
  if constexpr (requires(const GradCall& g) { Op::grad(g); }) def.grad = grad_unary<Op>;
  def.saves = Op::saves;
  def.samples = unary_samples<Op>;
  // Ops with a float32 SIMD kernel read element i before writing it, and fuse.
  if constexpr (requires { Op::fast; }) {
    def.in_place = InPlace::same_shape;
    def.pointwise = {1, pointwise_unary<Op::fast>};
  }
  return def;
}

Tensor x_of(const GradCall& g) { return g.in(0); }
double alpha_of(const GradCall& g) { return g.attrs.f("alpha"); }

// Zero gradient for piecewise-constant functions (as PyTorch returns).
Tensor zero_grad(const GradCall& g) { return zeros_like(g.gout()); }

// --------------------------------------------------------------- the ops
#define UNARY(NAME, DOMAIN, SAVES)                 \
  static constexpr const char* name = NAME;        \
  static constexpr Domain domain = Domain::DOMAIN; \
  static constexpr uint8_t saves = SAVES;

struct Neg {
  UNARY("neg", kNumeric, kSaveNothing)
  static constexpr cpu::FastUnary fast = cpu::FastUnary::Neg;
  template <typename C>
  static C f(C x, const Params&) {
    return cpu::wrapping_neg(x);
  }
  static Tensor grad(const GradCall& g) { return neg(g.gout()); }
};
struct Abs {
  UNARY("abs", kNumeric, kSaveInputs)
  static constexpr cpu::FastUnary fast = cpu::FastUnary::Abs;
  template <typename C>
  static C f(C x, const Params&) {
    return x < C(0) ? cpu::wrapping_neg(x) : x;
  }
  static Tensor grad(const GradCall& g) { return mul(g.gout(), sign(x_of(g))); }
};
struct Sign {
  UNARY("sign", kNumeric, kSaveNothing)
  template <typename C>
  static C f(C x, const Params&) {
    if constexpr (std::is_floating_point_v<C>) {
      if (x != x) return x;
    }
    return x > C(0) ? C(1) : (x < C(0) ? C(-1) : C(0));
  }
  static Tensor grad(const GradCall& g) { return zero_grad(g); }
};
struct Exp {
  UNARY("exp", kFloat, kSaveOutputs)
  static constexpr cpu::FastUnary fast = cpu::FastUnary::Exp;
  template <typename C>
  static C f(C x, const Params&) {
    return std::exp(x);
  }
  static Tensor grad(const GradCall& g) { return mul(g.gout(), g.out()); }
};
struct Expm1 {
  UNARY("expm1", kFloat, kSaveOutputs)
  template <typename C>
  static C f(C x, const Params&) {
    return std::expm1(x);
  }
  static Tensor grad(const GradCall& g) { return mul(g.gout(), add(g.out(), 1)); }
};
struct Log {
  UNARY("log", kFloat, kSaveInputs)
  static constexpr double sample_lo = 0.25, sample_hi = 2;
  template <typename C>
  static C f(C x, const Params&) {
    return std::log(x);
  }
  static Tensor grad(const GradCall& g) { return div(g.gout(), x_of(g)); }
};
struct Log1p {
  UNARY("log1p", kFloat, kSaveInputs)
  static constexpr double sample_lo = -0.5, sample_hi = 2;
  template <typename C>
  static C f(C x, const Params&) {
    return std::log1p(x);
  }
  static Tensor grad(const GradCall& g) { return div(g.gout(), add(x_of(g), 1)); }
};
struct Log2 {
  UNARY("log2", kFloat, kSaveInputs)
  static constexpr double sample_lo = 0.25, sample_hi = 2;
  template <typename C>
  static C f(C x, const Params&) {
    return std::log2(x);
  }
  static Tensor grad(const GradCall& g) { return div(g.gout(), mul(x_of(g), std::numbers::ln2)); }
};
struct Sqrt {
  UNARY("sqrt", kFloat, kSaveOutputs)
  static constexpr double sample_lo = 0.25, sample_hi = 2;
  static constexpr cpu::FastUnary fast = cpu::FastUnary::Sqrt;
  template <typename C>
  static C f(C x, const Params&) {
    return std::sqrt(x);
  }
  static Tensor grad(const GradCall& g) { return div(g.gout(), mul(g.out(), 2)); }
};
struct Rsqrt {
  UNARY("rsqrt", kFloat, kSaveOutputs)
  static constexpr double sample_lo = 0.25, sample_hi = 2;
  template <typename C>
  static C f(C x, const Params&) {
    return C(1) / std::sqrt(x);
  }
  static Tensor grad(const GradCall& g) {
    const Tensor& y = g.out();
    return mul(g.gout(), mul(mul(y, y), mul(y, -0.5)));
  }
};
struct Square {
  UNARY("square", kNumeric, kSaveInputs)
  static constexpr cpu::FastUnary fast = cpu::FastUnary::Square;
  template <typename C>
  static C f(C x, const Params&) {
    if constexpr (std::is_same_v<C, bool>)
      return x;
    else
      return static_cast<C>(x * x);
  }
  static Tensor grad(const GradCall& g) { return mul(g.gout(), mul(x_of(g), 2)); }
};
struct Reciprocal {
  UNARY("reciprocal", kFloat, kSaveOutputs)
  static constexpr double sample_lo = 0.25, sample_hi = 2;
  template <typename C>
  static C f(C x, const Params&) {
    return C(1) / x;
  }
  static Tensor grad(const GradCall& g) { return neg(mul(g.gout(), square(g.out()))); }
};
struct Sin {
  UNARY("sin", kFloat, kSaveInputs)
  template <typename C>
  static C f(C x, const Params&) {
    return std::sin(x);
  }
  static Tensor grad(const GradCall& g) { return mul(g.gout(), cos(x_of(g))); }
};
struct Cos {
  UNARY("cos", kFloat, kSaveInputs)
  template <typename C>
  static C f(C x, const Params&) {
    return std::cos(x);
  }
  static Tensor grad(const GradCall& g) { return neg(mul(g.gout(), sin(x_of(g)))); }
};
struct Tan {
  UNARY("tan", kFloat, kSaveOutputs)
  static constexpr double sample_lo = -1.2, sample_hi = 1.2;
  template <typename C>
  static C f(C x, const Params&) {
    return std::tan(x);
  }
  static Tensor grad(const GradCall& g) { return mul(g.gout(), add(square(g.out()), 1)); }
};
struct Asin {
  UNARY("asin", kFloat, kSaveInputs)
  static constexpr double sample_lo = -0.9, sample_hi = 0.9;
  template <typename C>
  static C f(C x, const Params&) {
    return std::asin(x);
  }
  static Tensor grad(const GradCall& g) {
    return mul(g.gout(), rsqrt(sub(wrap_scalar(1, x_of(g)), square(x_of(g)))));
  }
};
struct Acos {
  UNARY("acos", kFloat, kSaveInputs)
  static constexpr double sample_lo = -0.9, sample_hi = 0.9;
  template <typename C>
  static C f(C x, const Params&) {
    return std::acos(x);
  }
  static Tensor grad(const GradCall& g) {
    return neg(mul(g.gout(), rsqrt(sub(wrap_scalar(1, x_of(g)), square(x_of(g))))));
  }
};
struct Atan {
  UNARY("atan", kFloat, kSaveInputs)
  template <typename C>
  static C f(C x, const Params&) {
    return std::atan(x);
  }
  static Tensor grad(const GradCall& g) { return div(g.gout(), add(square(x_of(g)), 1)); }
};
struct Sinh {
  UNARY("sinh", kFloat, kSaveInputs)
  template <typename C>
  static C f(C x, const Params&) {
    return std::sinh(x);
  }
  static Tensor grad(const GradCall& g) { return mul(g.gout(), cosh(x_of(g))); }
};
struct Cosh {
  UNARY("cosh", kFloat, kSaveInputs)
  template <typename C>
  static C f(C x, const Params&) {
    return std::cosh(x);
  }
  static Tensor grad(const GradCall& g) { return mul(g.gout(), sinh(x_of(g))); }
};
struct Tanh {
  UNARY("tanh", kFloat, kSaveOutputs)
  static constexpr cpu::FastUnary fast = cpu::FastUnary::Tanh;
  template <typename C>
  static C f(C x, const Params&) {
    return std::tanh(x);
  }
  static Tensor grad(const GradCall& g) {
    return mul(g.gout(), sub(wrap_scalar(1, g.out()), square(g.out())));
  }
};
struct Sigmoid {
  UNARY("sigmoid", kFloat, kSaveOutputs)
  static constexpr cpu::FastUnary fast = cpu::FastUnary::Sigmoid;
  template <typename C>
  static C f(C x, const Params&) {
    return C(1) / (C(1) + std::exp(-x));
  }
  static Tensor grad(const GradCall& g) {
    return mul(g.gout(), mul(g.out(), sub(wrap_scalar(1, g.out()), g.out())));
  }
};
struct Relu {
  UNARY("relu", kNumeric, kSaveOutputs)
  static constexpr cpu::FastUnary fast = cpu::FastUnary::Relu;
  template <typename C>
  static C f(C x, const Params&) {
    return x > C(0) ? x : C(0);
  }
  static Tensor grad(const GradCall& g) { return relu_backward(g.gout(), g.out()); }
};
struct Relu6 {
  UNARY("relu6", kNumeric, kSaveInputs)
  template <typename C>
  static C f(C x, const Params&) {
    return x > C(0) ? (x < C(6) ? x : C(6)) : C(0);
  }
  static Tensor grad(const GradCall& g) {
    const Tensor& x = x_of(g);
    return mul(g.gout(), logical_and(gt(x, wrap_scalar(0, x)), lt(x, wrap_scalar(6, x))));
  }
};
struct LeakyRelu {
  UNARY("leaky_relu", kFloat, kSaveInputs)
  static Attrs sample_attrs() { return {{"alpha", 0.1}}; }
  template <typename C>
  static C f(C x, const Params& p) {
    return x > C(0) ? x : static_cast<C>(x * p.alpha);
  }
  static Tensor grad(const GradCall& g) {
    const Tensor& x = x_of(g);
    Tensor slope =
        where(gt(x, wrap_scalar(0, x)), wrap_scalar(1.0, x), wrap_scalar(alpha_of(g), x));
    return mul(g.gout(), slope);
  }
};
struct Elu {
  UNARY("elu", kFloat, kSaveInputs)
  static Attrs sample_attrs() { return {{"alpha", 1.3}}; }
  template <typename C>
  static C f(C x, const Params& p) {
    return x > C(0) ? x : static_cast<C>(p.alpha * std::expm1(x));
  }
  static Tensor grad(const GradCall& g) {
    const Tensor& x = x_of(g);
    return mul(g.gout(),
               where(gt(x, wrap_scalar(0, x)), wrap_scalar(1.0, x), mul(exp(x), alpha_of(g))));
  }
};
struct Selu {
  UNARY("selu", kFloat, kSaveInputs)
  template <typename C>
  static C f(C x, const Params&) {
    return static_cast<C>(kSeluScale * (x > C(0) ? x : kSeluAlpha * std::expm1(x)));
  }
  static Tensor grad(const GradCall& g) {
    const Tensor& x = x_of(g);
    return mul(g.gout(), where(gt(x, wrap_scalar(0, x)), wrap_scalar(kSeluScale, x),
                               mul(exp(x), kSeluScale * kSeluAlpha)));
  }
};
struct GeluExact {
  UNARY("gelu", kFloat, kSaveInputs)
  template <typename C>
  static C f(C x, const Params&) {
    return static_cast<C>(0.5 * x * (1.0 + std::erf(x / kSqrt2)));
  }
  static Tensor grad(const GradCall& g) {
    const Tensor& x = x_of(g);
    Tensor cdf = mul(add(erf(mul(x, 1.0 / kSqrt2)), 1), 0.5);
    Tensor pdf = mul(exp(mul(square(x), -0.5)), 1.0 / std::sqrt(2.0 * std::numbers::pi));
    return mul(g.gout(), add(cdf, mul(x, pdf)));
  }
};
struct GeluTanh {
  UNARY("gelu_tanh", kFloat, kSaveInputs)
  static constexpr double k = 0.7978845608028654;  // sqrt(2/pi)
  template <typename C>
  static C f(C x, const Params&) {
    double v = x;
    return static_cast<C>(0.5 * v * (1.0 + std::tanh(k * (v + 0.044715 * v * v * v))));
  }
  static Tensor grad(const GradCall& g) {
    const Tensor& x = x_of(g);
    Tensor x2 = square(x);
    Tensor inner = mul(mul(x, add(mul(x2, 0.044715), 1)), k);
    Tensor t = tanh(inner);
    Tensor dinner = mul(add(mul(x2, 3 * 0.044715), 1), k);
    Tensor left = mul(add(t, 1), 0.5);
    Tensor right = mul(mul(mul(x, 0.5), sub(wrap_scalar(1, t), square(t))), dinner);
    return mul(g.gout(), add(left, right));
  }
};
struct Silu {
  UNARY("silu", kFloat, kSaveInputs)
  static constexpr cpu::FastUnary fast = cpu::FastUnary::Silu;
  template <typename C>
  static C f(C x, const Params&) {
    return x / (C(1) + std::exp(-x));
  }
  static Tensor grad(const GradCall& g) {
    const Tensor& x = x_of(g);
    Tensor s = sigmoid(x);
    return mul(g.gout(), mul(s, add(mul(x, sub(wrap_scalar(1, s), s)), 1)));
  }
};
struct Softplus {
  UNARY("softplus", kFloat, kSaveInputs)
  static Attrs sample_attrs() { return {{"alpha", 1.5}, {"beta", 20.0}}; }  // beta, threshold
  template <typename C>
  static C f(C x, const Params& p) {
    double bx = p.alpha * x;  // alpha = beta, beta = threshold
    return bx > p.beta ? x : static_cast<C>(std::log1p(std::exp(bx)) / p.alpha);
  }
  static Tensor grad(const GradCall& g) {
    const Tensor& x = x_of(g);
    double beta = g.attrs.f("alpha"), threshold = g.attrs.f("beta");
    Tensor bx = mul(x, beta);
    return mul(g.gout(),
               where(gt(bx, wrap_scalar(threshold, bx)), wrap_scalar(1.0, x), sigmoid(bx)));
  }
};
struct Softsign {
  UNARY("softsign", kFloat, kSaveInputs)
  template <typename C>
  static C f(C x, const Params&) {
    return x / (C(1) + (x < C(0) ? C(-x) : x));
  }
  static Tensor grad(const GradCall& g) { return div(g.gout(), square(add(abs(x_of(g)), 1))); }
};
struct HardSigmoid {
  UNARY("hard_sigmoid", kFloat, kSaveInputs)
  template <typename C>
  static C f(C x, const Params&) {
    C v = x / C(6) + C(0.5);
    return v < C(0) ? C(0) : (v > C(1) ? C(1) : v);
  }
  static Tensor grad(const GradCall& g) {
    const Tensor& x = x_of(g);
    Tensor inside = logical_and(gt(x, wrap_scalar(-3, x)), lt(x, wrap_scalar(3, x)));
    return mul(mul(g.gout(), inside), 1.0 / 6.0);
  }
};
struct HardSwish {
  UNARY("hard_swish", kFloat, kSaveInputs)
  template <typename C>
  static C f(C x, const Params&) {
    C r = x + C(3);
    r = r < C(0) ? C(0) : (r > C(6) ? C(6) : r);
    return x * r / C(6);
  }
  static Tensor grad(const GradCall& g) {
    const Tensor& x = x_of(g);
    Tensor mid = add(mul(x, 1.0 / 3.0), 0.5);
    Tensor d = where(lt(x, wrap_scalar(-3, x)), wrap_scalar(0.0, x),
                     where(gt(x, wrap_scalar(3, x)), wrap_scalar(1.0, x), mid));
    return mul(g.gout(), d);
  }
};
struct Erf {
  UNARY("erf", kFloat, kSaveInputs)
  template <typename C>
  static C f(C x, const Params&) {
    return std::erf(x);
  }
  static Tensor grad(const GradCall& g) {
    const Tensor& x = x_of(g);
    return mul(g.gout(), mul(exp(neg(square(x))), 2.0 / std::sqrt(std::numbers::pi)));
  }
};
struct Floor {
  UNARY("floor", kNumeric, kSaveNothing)
  template <typename C>
  static C f(C x, const Params&) {
    if constexpr (std::is_floating_point_v<C>)
      return std::floor(x);
    else
      return x;
  }
  static Tensor grad(const GradCall& g) { return zero_grad(g); }
};
struct Ceil {
  UNARY("ceil", kNumeric, kSaveNothing)
  template <typename C>
  static C f(C x, const Params&) {
    if constexpr (std::is_floating_point_v<C>)
      return std::ceil(x);
    else
      return x;
  }
  static Tensor grad(const GradCall& g) { return zero_grad(g); }
};
struct Round {
  UNARY("round", kNumeric, kSaveNothing)
  template <typename C>
  static C f(C x, const Params&) {
    if constexpr (std::is_floating_point_v<C>)
      return std::nearbyint(x);
    else
      return x;
  }
  static Tensor grad(const GradCall& g) { return zero_grad(g); }
};
struct Trunc {
  UNARY("trunc", kNumeric, kSaveNothing)
  template <typename C>
  static C f(C x, const Params&) {
    if constexpr (std::is_floating_point_v<C>)
      return std::trunc(x);
    else
      return x;
  }
  static Tensor grad(const GradCall& g) { return zero_grad(g); }
};
struct IsNan {
  UNARY("isnan", kPredicate, kSaveNothing)
  template <typename C>
  static bool f(C x, const Params&) {
    return x != x;
  }
};
struct IsInf {
  UNARY("isinf", kPredicate, kSaveNothing)
  template <typename C>
  static bool f(C x, const Params&) {
    if constexpr (std::is_floating_point_v<C>)
      return std::isinf(x);
    else
      return false;
  }
};
struct IsFinite {
  UNARY("isfinite", kPredicate, kSaveNothing)
  template <typename C>
  static bool f(C x, const Params&) {
    if constexpr (std::is_floating_point_v<C>)
      return std::isfinite(x);
    else
      return true;
  }
};
struct LogicalNot {
  UNARY("logical_not", kBool, kSaveNothing)
  template <typename C>
  static bool f(C x, const Params&) {
    return !(x != C(0));
  }
};
struct BitwiseNot {
  UNARY("bitwise_not", kIntegral, kSaveNothing)
  template <typename C>
  static C f(C x, const Params&) {
    if constexpr (std::is_same_v<C, bool>) {
      return !x;
    } else if constexpr (std::is_integral_v<C>) {
      return static_cast<C>(~x);
    } else {
      return x;  // floats are rejected by inference
    }
  }
};
struct Clamp {
  UNARY("clamp", kNumeric, kSaveInputs)
  static Attrs sample_attrs() { return {{"alpha", -0.5}, {"beta", 0.7}}; }  // min, max
  template <typename C>
  static C f(C x, const Params& p) {
    if constexpr (std::is_floating_point_v<C>) {
      if (x != x) return x;
    }
    double v = static_cast<double>(x);
    return v < p.alpha ? static_cast<C>(p.alpha) : (v > p.beta ? static_cast<C>(p.beta) : x);
  }
  static Tensor grad(const GradCall& g) {
    const Tensor& x = x_of(g);
    Tensor inside = logical_and(ge(x, wrap_scalar(g.attrs.f("alpha"), x)),
                                le(x, wrap_scalar(g.attrs.f("beta"), x)));
    return mul(g.gout(), inside);
  }
};
#undef UNARY

#define DEFINE(OP, VAR)                   \
  constexpr OpDef VAR = make_unary<OP>(); \
  const OpRegistrar VAR##_registrar(VAR);
DEFINE(Neg, kNeg)
DEFINE(Abs, kAbs)
DEFINE(Sign, kSign)
DEFINE(Exp, kExp)
DEFINE(Expm1, kExpm1)
DEFINE(Log, kLog)
DEFINE(Log1p, kLog1p)
DEFINE(Log2, kLog2)
DEFINE(Sqrt, kSqrt)
DEFINE(Rsqrt, kRsqrt)
DEFINE(Square, kSquare)
DEFINE(Reciprocal, kReciprocal)
DEFINE(Sin, kSin)
DEFINE(Cos, kCos)
DEFINE(Tan, kTan)
DEFINE(Asin, kAsin)
DEFINE(Acos, kAcos)
DEFINE(Atan, kAtan)
DEFINE(Sinh, kSinh)
DEFINE(Cosh, kCosh)
DEFINE(Tanh, kTanh)
DEFINE(Sigmoid, kSigmoid)
DEFINE(Relu, kRelu)
DEFINE(Relu6, kRelu6)
DEFINE(LeakyRelu, kLeakyRelu)
DEFINE(Elu, kElu)
DEFINE(Selu, kSelu)
DEFINE(GeluExact, kGelu)
DEFINE(GeluTanh, kGeluTanh)
DEFINE(Silu, kSilu)
DEFINE(Softplus, kSoftplus)
DEFINE(Softsign, kSoftsign)
DEFINE(HardSigmoid, kHardSigmoid)
DEFINE(HardSwish, kHardSwish)
DEFINE(Erf, kErf)
DEFINE(Floor, kFloor)
DEFINE(Ceil, kCeil)
DEFINE(Round, kRound)
DEFINE(Trunc, kTrunc)
DEFINE(IsNan, kIsNan)
DEFINE(IsInf, kIsInf)
DEFINE(IsFinite, kIsFinite)
DEFINE(LogicalNot, kLogicalNot)
DEFINE(BitwiseNot, kBitwiseNot)
DEFINE(Clamp, kClamp)
#undef DEFINE

Tensor run1(const OpDef& def, const Tensor& x, const Attrs& attrs = {}) {
  return run_op1(def, {x}, attrs);
}

}  // namespace

Tensor neg(const Tensor& x) { return run1(kNeg, x); }
Tensor abs(const Tensor& x) { return run1(kAbs, x); }
Tensor sign(const Tensor& x) { return run1(kSign, x); }
Tensor exp(const Tensor& x) { return run1(kExp, x); }
Tensor expm1(const Tensor& x) { return run1(kExpm1, x); }
Tensor log(const Tensor& x) { return run1(kLog, x); }
Tensor log1p(const Tensor& x) { return run1(kLog1p, x); }
Tensor log2(const Tensor& x) { return run1(kLog2, x); }
Tensor sqrt(const Tensor& x) { return run1(kSqrt, x); }
Tensor rsqrt(const Tensor& x) { return run1(kRsqrt, x); }
Tensor square(const Tensor& x) { return run1(kSquare, x); }
Tensor reciprocal(const Tensor& x) { return run1(kReciprocal, x); }
Tensor sin(const Tensor& x) { return run1(kSin, x); }
Tensor cos(const Tensor& x) { return run1(kCos, x); }
Tensor tan(const Tensor& x) { return run1(kTan, x); }
Tensor asin(const Tensor& x) { return run1(kAsin, x); }
Tensor acos(const Tensor& x) { return run1(kAcos, x); }
Tensor atan(const Tensor& x) { return run1(kAtan, x); }
Tensor sinh(const Tensor& x) { return run1(kSinh, x); }
Tensor cosh(const Tensor& x) { return run1(kCosh, x); }
Tensor tanh(const Tensor& x) { return run1(kTanh, x); }
Tensor sigmoid(const Tensor& x) { return run1(kSigmoid, x); }
Tensor relu(const Tensor& x) { return run1(kRelu, x); }
Tensor relu6(const Tensor& x) { return run1(kRelu6, x); }
Tensor leaky_relu(const Tensor& x, double slope) { return run1(kLeakyRelu, x, {{"alpha", slope}}); }
Tensor elu(const Tensor& x, double alpha) { return run1(kElu, x, {{"alpha", alpha}}); }
Tensor selu(const Tensor& x) { return run1(kSelu, x); }
Tensor gelu(const Tensor& x, bool tanh_approximation) {
  return run1(tanh_approximation ? kGeluTanh : kGelu, x);
}
Tensor silu(const Tensor& x) { return run1(kSilu, x); }
Tensor softplus(const Tensor& x, double beta, double threshold) {
  check(beta != 0, "softplus", "beta must be nonzero");
  return run1(kSoftplus, x, {{"alpha", beta}, {"beta", threshold}});
}
Tensor softsign(const Tensor& x) { return run1(kSoftsign, x); }
Tensor hard_sigmoid(const Tensor& x) { return run1(kHardSigmoid, x); }
Tensor hard_swish(const Tensor& x) { return run1(kHardSwish, x); }
Tensor erf(const Tensor& x) { return run1(kErf, x); }
Tensor floor(const Tensor& x) { return run1(kFloor, x); }
Tensor ceil(const Tensor& x) { return run1(kCeil, x); }
Tensor round(const Tensor& x) { return run1(kRound, x); }
Tensor trunc(const Tensor& x) { return run1(kTrunc, x); }
Tensor isnan(const Tensor& x) { return run1(kIsNan, x); }
Tensor isinf(const Tensor& x) { return run1(kIsInf, x); }
Tensor isfinite(const Tensor& x) { return run1(kIsFinite, x); }
Tensor logical_not(const Tensor& x) { return run1(kLogicalNot, x); }
Tensor bitwise_not(const Tensor& x) { return run1(kBitwiseNot, x); }

Tensor clamp(const Tensor& x, const Scalar& min, const Scalar& max) {
  check(min.to_double() <= max.to_double(), "clamp", "min (", min.to_double(),
        ") must not exceed max (", max.to_double(), ")");
  return run1(kClamp, x, {{"alpha", min.to_double()}, {"beta", max.to_double()}});
}
Tensor clamp_min(const Tensor& x, const Scalar& min) { return clamp(x, min, INFINITY); }
Tensor clamp_max(const Tensor& x, const Scalar& max) { return clamp(x, -INFINITY, max); }

}  // namespace tessera
