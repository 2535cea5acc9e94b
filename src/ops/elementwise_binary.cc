// Binary elementwise ops with NumPy broadcasting and PyTorch type promotion, plus
// where, lerp and cast. Each op is one struct: name, dtype rule, scalar function,
// optional SIMD fast path, gradient rule.
#include <cmath>
#include <type_traits>

#include "../kernels/cpu/copy.h"
#include "../kernels/cpu/loops.h"
#include "../kernels/cpu/simd.h"
#include "../kernels/cpu/wrapping.h"
#include "samples.h"
#include "tessera/ops/creation.h"
#include "tessera/ops/elementwise.h"
#include "tessera/ops/op.h"
#include "tessera/ops/reduce.h"

namespace tessera {
namespace {

using cpu::Geometry;
using cpu::make_geometry;
using cpu::parallel_runs;

enum class Kind {
  kArith,    // result = promoted dtype; bool allowed only where noted
  kTrueDiv,  // promoted, integers divide in float32
  kFloatFn,  // promoted, integers compute in float32 (atan2)
  kCompare,  // compute in promoted dtype, result bool
  kLogical,  // operands read as bool, result bool
  kBitwise,  // integers or bool only
};

struct BinaryDtypes {
  DType compute;
  DType result;
};

template <typename Op>
BinaryDtypes binary_dtypes(DType a, DType b) {
  DType p = promote_types(a, b);
  switch (Op::kind) {
    case Kind::kTrueDiv:
    case Kind::kFloatFn: {
      DType f = is_floating(p) ? p : DType::Float32;
      return {f, f};
    }
    case Kind::kCompare:
      return {p, DType::Bool};
    case Kind::kLogical:
      return {DType::Bool, DType::Bool};
    default:
      return {p, p};
  }
}

template <typename Op>
constexpr bool allows_bool() {
  if constexpr (requires { Op::allows_bool; }) return Op::allows_bool;
  return false;
}
template <typename Op>
constexpr bool checks_zero() {
  if constexpr (requires { Op::checks_zero; }) return Op::checks_zero;
  return false;
}

template <typename Op>
MetaList infer_binary(const OpCall& c) {
  const Tensor &a = c.in(0), &b = c.in(1);
  Shape shape = broadcast_shapes(a.shape(), b.shape(), Op::name);
  BinaryDtypes d = binary_dtypes<Op>(a.dtype(), b.dtype());
  if constexpr (Op::kind == Kind::kBitwise) {
    check(!is_floating(d.compute), Op::name, "needs integer or bool tensors, got ",
          dtype_name(a.dtype()), " and ", dtype_name(b.dtype()));
  }
  if constexpr (Op::kind == Kind::kArith && !allows_bool<Op>()) {
    check(d.compute != DType::Bool, Op::name, "not defined for two bool tensors");
  }
  return {{shape, d.result}};
}

// One float32 run of a broadcast binary op through the ISA's vector loop, where the output
// is dense and each operand is dense or one repeated value. False where it is not.
bool vector_run(cpu::FastBinary op, std::array<char*, 3> p, int64_t n,
                const std::array<int64_t, 3>& st) {
  constexpr int64_t kF = sizeof(float);
  if (st[0] != kF || !((st[1] == kF || st[1] == 0) && (st[2] == kF || st[2] == 0))) return false;
  if (st[1] == 0 && st[2] == 0) return false;
  cpu::Operand mode = st[1] == 0   ? cpu::Operand::ScalarA
                      : st[2] == 0 ? cpu::Operand::ScalarB
                                   : cpu::Operand::Array;
  cpu::simd().binary_f32(op, reinterpret_cast<const float*>(p[1]),
                         reinterpret_cast<const float*>(p[2]), reinterpret_cast<float*>(p[0]), n,
                         mode);
  return true;
}

template <typename Op, typename C, typename Out>
void binary_loop(const Tensor& a, const Tensor& b, const Tensor& out) {
  Geometry<3> g =
      make_geometry<3>(out.shape(), {out.strides(), cpu::broadcast_strides(a, out.shape()),
                                     cpu::broadcast_strides(b, out.shape())});
  parallel_runs<3>(g,
                   {static_cast<char*>(out.data_ptr()), static_cast<char*>(a.data_ptr()),
                    static_cast<char*>(b.data_ptr())},
                   {sizeof(Out), sizeof(C), sizeof(C)},
                   [](std::array<char*, 3> p, int64_t n, const std::array<int64_t, 3>& st) {
                     using M = typename ComputeType<C>::type;
                     Out* y = reinterpret_cast<Out*>(p[0]);
                     if constexpr (requires { Op::fast; } && std::is_same_v<C, float> &&
                                   std::is_same_v<Out, float>) {
                       // Broadcasts whose runs are rows or one value of an operand (a bias
                       // added to every row, a per-row scale) take the vector loop.
                       if (vector_run(Op::fast, p, n, st)) return;
                     }
                     for (int64_t i = 0; i < n; ++i) {
                       M u = static_cast<M>(*reinterpret_cast<const C*>(p[1] + i * st[1]));
                       M v = static_cast<M>(*reinterpret_cast<const C*>(p[2] + i * st[2]));
                       y[i] = cpu::convert<Out>(Op::f(u, v));
                     }
                   });
}

// Integer division or modulo by zero is an error, not undefined behaviour.
void check_no_zero_divisor(const Tensor& b, const char* op) {
  if (is_floating(b.dtype()) || b.numel() == 0) return;
  for (int64_t v : b.to_vector<int64_t>()) {
    check(v != 0, op, "integer division by zero");
  }
}

template <typename Op>
void cpu_binary(const OpCall& c, std::span<Tensor> outs) {
  const Tensor& out = outs[0];
  if (out.numel() == 0) return;
  BinaryDtypes d = binary_dtypes<Op>(c.in(0).dtype(), c.in(1).dtype());
  Tensor a = c.in(0).to(d.compute), b = c.in(1).to(d.compute);
  if constexpr (checks_zero<Op>()) check_no_zero_divisor(b, Op::name);
  if constexpr (requires { Op::fast; }) {
    if (d.compute == DType::Float32 && a.is_contiguous() && b.is_contiguous()) {
      cpu::Operand mode = a.numel() == b.numel() && a.shape() == b.shape() ? cpu::Operand::Array
                          : b.numel() == 1 && a.shape() == out.shape()     ? cpu::Operand::ScalarB
                          : a.numel() == 1 && b.shape() == out.shape()     ? cpu::Operand::ScalarA
                                                                           : cpu::Operand(255);
      if (mode != cpu::Operand(255)) {
        const float *pa = a.data<float>(), *pb = b.data<float>();
        float* py = out.data<float>();
        parallel_for(0, out.numel(), kParallelGrain, [&](int64_t lo, int64_t hi) {
          cpu::simd().binary_f32(Op::fast, mode == cpu::Operand::ScalarA ? pa : pa + lo,
                                 mode == cpu::Operand::ScalarB ? pb : pb + lo, py + lo, hi - lo,
                                 mode);
        });
        return;
      }
    }
  }
  visit_dtype(d.compute, [&](auto tag) {
    using C = decltype(tag);
    if constexpr (Op::kind == Kind::kBitwise && !std::is_integral_v<C>) {
      // rejected by inference
    } else if constexpr (Op::kind == Kind::kCompare || Op::kind == Kind::kLogical) {
      binary_loop<Op, C, bool>(a, b, out);
    } else {
      binary_loop<Op, C, C>(a, b, out);
    }
  });
}

template <typename Op>
TensorList grad_binary(const GradCall& g) {
  auto [ga, gb] = Op::grad(g);
  TensorList out(2);
  if (g.needs(0) && ga.defined()) out[0] = sum_to(ga, g.in_shape(0));
  if (g.needs(1) && gb.defined()) out[1] = sum_to(gb, g.in_shape(1));
  return out;
}

// The op's float32 SIMD kernel as an instruction of a fused elementwise program.
template <cpu::FastBinary F>
void pointwise_binary(const float* a, const float* b, float* y, int64_t n,
                      PointwiseOperands operands) {
  const cpu::Operand mode = operands == PointwiseOperands::a_scalar   ? cpu::Operand::ScalarA
                            : operands == PointwiseOperands::b_scalar ? cpu::Operand::ScalarB
                                                                      : cpu::Operand::Array;
  cpu::simd().binary_f32(F, a, b, y, n, mode);
}

// Every pair of samples::broadcast_shapes with values in the op's domain (Op::sample_lo/hi
// for a, Op::sample_b_lo/hi for b, default [-2, 2)), and one where only a's dtype is swept
// against a float32 b (type promotion).
template <typename Op>
std::vector<OpSample> binary_samples() {
  double lo = -2, hi = 2, b_lo = -2, b_hi = 2;
  if constexpr (requires { Op::sample_lo; }) lo = Op::sample_lo, hi = Op::sample_hi;
  if constexpr (requires { Op::sample_b_lo; }) b_lo = Op::sample_b_lo, b_hi = Op::sample_b_hi;
  std::vector<OpSample> out;
  uint64_t seed = 1;
  for (const auto& [sa, sb] : samples::broadcast_shapes()) {
    out.push_back({{samples::values(sa, lo, hi, seed), samples::values(sb, b_lo, b_hi, seed + 1)}});
    seed += 2;
  }
  out.push_back({{samples::values({3, 4}, lo, hi, seed),
                  samples::values({3, 4}, b_lo, b_hi, seed + 1).to(DType::Float32)},
                 {},
                 1u});
  return out;
}

template <typename Op>
constexpr OpDef make_binary() {
  OpDef def{Op::name, infer_binary<Op>, cpu_binary<Op>};
  if constexpr (requires(const GradCall& g) { Op::grad(g); }) def.grad = grad_binary<Op>;
  def.saves = Op::saves;
  def.samples = binary_samples<Op>;
  // Ops with a float32 SIMD kernel read element i of both inputs before writing it, and
  // fuse.
  if constexpr (requires { Op::fast; }) {
    def.in_place = InPlace::same_shape;
    def.pointwise = {2, pointwise_binary<Op::fast>};
  }
  return def;
}

using Grads = std::pair<Tensor, Tensor>;

#define BINARY(NAME, KIND, SAVES)           \
  static constexpr const char* name = NAME; \
  static constexpr Kind kind = Kind::KIND;  \
  static constexpr uint8_t saves = SAVES;

template <typename M>
M nan_max(M u, M v) {
  if constexpr (std::is_floating_point_v<M>) {
    if (u != u) return u;
    if (v != v) return v;
  }
  return u > v ? u : v;
}
template <typename M>
M nan_min(M u, M v) {
  if constexpr (std::is_floating_point_v<M>) {
    if (u != u) return u;
    if (v != v) return v;
  }
  return u < v ? u : v;
}

struct Add {
  BINARY("add", kArith, kSaveNothing)
  static constexpr bool allows_bool = true;  // logical or, like PyTorch
  static constexpr cpu::FastBinary fast = cpu::FastBinary::Add;
  template <typename M>
  static M f(M u, M v) {
    if constexpr (std::is_same_v<M, bool>)
      return u || v;
    else
      return cpu::wrapping_add(u, v);
  }
  static Grads grad(const GradCall& g) { return {g.gout(), g.gout()}; }
};
struct Sub {
  BINARY("sub", kArith, kSaveNothing)
  static constexpr cpu::FastBinary fast = cpu::FastBinary::Sub;
  template <typename M>
  static M f(M u, M v) {
    return cpu::wrapping_sub(u, v);
  }
  static Grads grad(const GradCall& g) { return {g.gout(), neg(g.gout())}; }
};
struct Mul {
  BINARY("mul", kArith, kSaveInputs)
  static constexpr bool allows_bool = true;  // logical and, like PyTorch
  static constexpr cpu::FastBinary fast = cpu::FastBinary::Mul;
  template <typename M>
  static M f(M u, M v) {
    if constexpr (std::is_same_v<M, bool>)
      return u && v;
    else
      return cpu::wrapping_mul(u, v);
  }
  static Grads grad(const GradCall& g) {
    return {g.needs(0) ? mul(g.gout(), g.in(1)) : Tensor(),
            g.needs(1) ? mul(g.gout(), g.in(0)) : Tensor()};
  }
};
struct Div {
  BINARY("div", kTrueDiv, kSaveInputs)
  static constexpr double sample_b_lo = 0.5, sample_b_hi = 2;  // away from 0
  static constexpr cpu::FastBinary fast = cpu::FastBinary::Div;
  template <typename M>
  static M f(M u, M v) {
    return u / v;
  }
  static Grads grad(const GradCall& g) {
    const Tensor &a = g.in(0), &b = g.in(1);
    return {g.needs(0) ? div(g.gout(), b) : Tensor(),
            g.needs(1) ? neg(div(mul(g.gout(), a), square(b))) : Tensor()};
  }
};
struct FloorDiv {
  BINARY("floor_div", kArith, kSaveNothing)
  static constexpr double sample_b_lo = 0.5, sample_b_hi = 2;  // away from 0
  static constexpr bool checks_zero = true;
  template <typename M>
  static M f(M u, M v) {
    if constexpr (std::is_floating_point_v<M>) {
      return std::floor(u / v);
    } else if constexpr (std::is_same_v<M, bool>) {
      return u;  // bool is rejected by inference
    } else {
      if constexpr (std::is_signed_v<M>) {
        // INT_MIN / -1 overflows: negate in unsigned arithmetic, which wraps as PyTorch does.
        using U = std::make_unsigned_t<M>;
        if (v == M(-1)) return static_cast<M>(U(0) - static_cast<U>(u));
      }
      M q = u / v;
      if ((u % v != 0) && ((u < 0) != (v < 0))) --q;
      return q;
    }
  }
  static Grads grad(const GradCall& g) { return {zeros_like(g.gout()), zeros_like(g.gout())}; }
};
struct Mod {
  BINARY("mod", kArith, kSaveInputs)
  static constexpr double sample_b_lo = 0.5, sample_b_hi = 2;  // away from 0
  static constexpr bool checks_zero = true;
  template <typename M>
  static M f(M u, M v) {
    if constexpr (std::is_floating_point_v<M>) {
      M r = std::fmod(u, v);
      if (r != 0 && ((r < 0) != (v < 0))) r += v;
      return r;
    } else if constexpr (std::is_same_v<M, bool>) {
      return u;  // bool is rejected by inference
    } else {
      if constexpr (std::is_signed_v<M>) {
        if (v == M(-1)) return M(0);
      }
      M r = u % v;
      if (r != 0 && ((r < 0) != (v < 0))) r += v;
      return r;
    }
  }
  static Grads grad(const GradCall& g) {
    // d/da = 1, d/db = -floor(a / b)
    return {g.gout(), g.needs(1) ? neg(mul(g.gout(), floor_div(g.in(0), g.in(1)))) : Tensor()};
  }
};
struct Pow {
  BINARY("pow", kArith, kSaveInputs | kSaveOutputs)
  static constexpr double sample_lo = 0.5, sample_hi = 2;  // positive bases
  template <typename M>
  static M f(M u, M v) {
    if constexpr (std::is_floating_point_v<M>) {
      return std::pow(u, v);
    } else if constexpr (std::is_same_v<M, bool>) {
      return u || !v;
    } else {
      // Products wrap on overflow, as PyTorch's do: multiplied in unsigned arithmetic
      // (unsigned int, not a narrower type that would promote back to signed int).
      using U = std::common_type_t<std::make_unsigned_t<M>, unsigned>;
      if constexpr (std::is_signed_v<M>) {
        // Negative exponents: PyTorch's integer results (1 / u^-v truncated toward zero).
        if (v < 0) return u == 1 ? M(1) : u == -1 ? (v % 2 == 0 ? M(1) : M(-1)) : M(0);
      }
      U result = 1, base = static_cast<U>(u);
      for (M e = v; e > 0; e >>= 1) {
        if (e & 1) result *= base;
        base *= base;
      }
      return static_cast<M>(result);
    }
  }
  static Grads grad(const GradCall& g) {
    const Tensor &a = g.in(0), &b = g.in(1);
    Tensor ga, gb;
    if (g.needs(0)) {
      Tensor d = mul(b, pow(a, sub(b, wrap_scalar(1, b))));
      ga = mul(g.gout(), where(eq(b, wrap_scalar(0, b)), zeros_like(d), d));
    }
    if (g.needs(1)) {
      // a^b * log(a), taken as 0 where a == 0 and b >= 0 (PyTorch's convention).
      Tensor d = mul(g.out(), log(a));
      Tensor zero_base = logical_and(eq(a, wrap_scalar(0, a)), ge(b, wrap_scalar(0, b)));
      gb = mul(g.gout(), where(zero_base, zeros_like(d), d));
    }
    return {ga, gb};
  }
};
struct Maximum {
  BINARY("maximum", kArith, kSaveInputs)
  static constexpr bool allows_bool = true;
  static constexpr cpu::FastBinary fast = cpu::FastBinary::Max;
  template <typename M>
  static M f(M u, M v) {
    return nan_max(u, v);
  }
  static Grads grad(const GradCall& g) {
    // Ties share the gradient equally, like PyTorch.
    const Tensor &a = g.in(0), &b = g.in(1);
    Tensor share = add(gt(a, b), mul(cast(eq(a, b), g.gout().dtype()), 0.5));
    return {mul(g.gout(), share), mul(g.gout(), sub(wrap_scalar(1, share), share))};
  }
};
struct Minimum {
  BINARY("minimum", kArith, kSaveInputs)
  static constexpr bool allows_bool = true;
  static constexpr cpu::FastBinary fast = cpu::FastBinary::Min;
  template <typename M>
  static M f(M u, M v) {
    return nan_min(u, v);
  }
  static Grads grad(const GradCall& g) {
    const Tensor &a = g.in(0), &b = g.in(1);
    Tensor share = add(lt(a, b), mul(cast(eq(a, b), g.gout().dtype()), 0.5));
    return {mul(g.gout(), share), mul(g.gout(), sub(wrap_scalar(1, share), share))};
  }
};
struct Atan2 {
  BINARY("atan2", kFloatFn, kSaveInputs)
  template <typename M>
  static M f(M u, M v) {
    return std::atan2(u, v);
  }
  static Grads grad(const GradCall& g) {
    const Tensor &a = g.in(0), &b = g.in(1);
    Tensor denom = add(square(a), square(b));
    return {mul(g.gout(), div(b, denom)), neg(mul(g.gout(), div(a, denom)))};
  }
};

#define COMPARE(STRUCT, NAME, EXPR)      \
  struct STRUCT {                        \
    BINARY(NAME, kCompare, kSaveNothing) \
    template <typename M>                \
    static bool f(M u, M v) {            \
      return EXPR;                       \
    }                                    \
  };
COMPARE(Eq, "eq", u == v)
COMPARE(Ne, "ne", u != v)
COMPARE(Lt, "lt", u < v)
COMPARE(Le, "le", u <= v)
COMPARE(Gt, "gt", u > v)
COMPARE(Ge, "ge", u >= v)
#undef COMPARE

#define LOGICAL(STRUCT, NAME, KIND, EXPR) \
  struct STRUCT {                         \
    BINARY(NAME, KIND, kSaveNothing)      \
    template <typename M>                 \
    static M f(M u, M v) {                \
      return EXPR;                        \
    }                                     \
  };
LOGICAL(LogicalAnd, "logical_and", kLogical, u&& v)
LOGICAL(LogicalOr, "logical_or", kLogical, u || v)
LOGICAL(LogicalXor, "logical_xor", kLogical, u != v)
LOGICAL(BitwiseAnd, "bitwise_and", kBitwise, static_cast<M>(u& v))
LOGICAL(BitwiseOr, "bitwise_or", kBitwise, static_cast<M>(u | v))
LOGICAL(BitwiseXor, "bitwise_xor", kBitwise, static_cast<M>(u ^ v))
#undef LOGICAL

template <typename M>
M shift_amount_ok(M v) {
  return v >= M(0) && v < static_cast<M>(sizeof(M) * 8) ? v : static_cast<M>(sizeof(M) * 8);
}
struct LeftShift {
  BINARY("left_shift", kBitwise, kSaveNothing)
  template <typename M>
  static M f(M u, M v) {
    if constexpr (std::is_same_v<M, bool>) {
      return v ? false : u;
    } else {
      M s = shift_amount_ok(v);
      using U = std::make_unsigned_t<M>;
      return s >= static_cast<M>(sizeof(M) * 8) ? M(0) : static_cast<M>(static_cast<U>(u) << s);
    }
  }
};
struct RightShift {
  BINARY("right_shift", kBitwise, kSaveNothing)
  template <typename M>
  static M f(M u, M v) {
    if constexpr (std::is_same_v<M, bool>) {
      return v ? false : u;
    } else {
      M s = shift_amount_ok(v);
      if (s >= static_cast<M>(sizeof(M) * 8)) return u < M(0) ? M(-1) : M(0);
      return static_cast<M>(u >> s);
    }
  }
};
// grad where output > 0, else 0: relu's gradient in one pass instead of a comparison, a
// cast and a product. Its own gradient is relu_backward of the incoming gradient (and
// zero with respect to the output, a step function).
struct ReluBackward {
  BINARY("relu_backward", kArith, kSaveInputs)
  static constexpr cpu::FastBinary fast = cpu::FastBinary::ReluBackward;
  template <typename M>
  static M f(M g, M y) {
    return y > M(0) ? g : M(0);
  }
  static Grads grad(const GradCall& g) { return {relu_backward(g.gout(), g.in(1)), Tensor()}; }
};
#undef BINARY

#define DEFINE(OP, VAR)                    \
  constexpr OpDef VAR = make_binary<OP>(); \
  const OpRegistrar VAR##_registrar(VAR);
DEFINE(Add, kAdd)
DEFINE(Sub, kSub)
DEFINE(Mul, kMul)
DEFINE(Div, kDiv)
DEFINE(FloorDiv, kFloorDiv)
DEFINE(Mod, kMod)
DEFINE(Pow, kPow)
DEFINE(Maximum, kMaximum)
DEFINE(ReluBackward, kReluBackward)
DEFINE(Minimum, kMinimum)
DEFINE(Atan2, kAtan2)
DEFINE(Eq, kEq)
DEFINE(Ne, kNe)
DEFINE(Lt, kLt)
DEFINE(Le, kLe)
DEFINE(Gt, kGt)
DEFINE(Ge, kGe)
DEFINE(LogicalAnd, kLogicalAnd)
DEFINE(LogicalOr, kLogicalOr)
DEFINE(LogicalXor, kLogicalXor)
DEFINE(BitwiseAnd, kBitwiseAnd)
DEFINE(BitwiseOr, kBitwiseOr)
DEFINE(BitwiseXor, kBitwiseXor)
DEFINE(LeftShift, kLeftShift)
DEFINE(RightShift, kRightShift)
#undef DEFINE

Tensor run2(const OpDef& def, const Tensor& a, const Tensor& b) { return run_op1(def, {a, b}); }

// ------------------------------------------------------------------ where, cast

MetaList infer_where(const OpCall& c) {
  const Tensor &cond = c.in(0), &a = c.in(1), &b = c.in(2);
  check(cond.dtype() == DType::Bool, "where", "condition must be bool, got ",
        dtype_name(cond.dtype()));
  Shape s =
      broadcast_shapes(broadcast_shapes(cond.shape(), a.shape(), "where"), b.shape(), "where");
  return {{s, promote_types(a.dtype(), b.dtype())}};
}

void cpu_where(const OpCall& c, std::span<Tensor> outs) {
  const Tensor& out = outs[0];
  if (out.numel() == 0) return;
  Tensor a = c.in(1).to(out.dtype()), b = c.in(2).to(out.dtype());
  const Tensor& cond = c.in(0);
  Geometry<4> g =
      make_geometry<4>(out.shape(), {out.strides(), cpu::broadcast_strides(cond, out.shape()),
                                     cpu::broadcast_strides(a, out.shape()),
                                     cpu::broadcast_strides(b, out.shape())});
  visit_dtype(out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    parallel_runs<4>(g,
                     {static_cast<char*>(out.data_ptr()), static_cast<char*>(cond.data_ptr()),
                      static_cast<char*>(a.data_ptr()), static_cast<char*>(b.data_ptr())},
                     {sizeof(T), 1, sizeof(T), sizeof(T)},
                     [](std::array<char*, 4> p, int64_t n, const std::array<int64_t, 4>& st) {
                       T* y = reinterpret_cast<T*>(p[0]);
                       for (int64_t i = 0; i < n; ++i) {
                         bool k = *reinterpret_cast<const bool*>(p[1] + i * st[1]);
                         y[i] =
                             *reinterpret_cast<const T*>(k ? p[2] + i * st[2] : p[3] + i * st[3]);
                       }
                     });
  });
}

TensorList grad_where(const GradCall& g) {
  const Tensor& cond = g.in(0);
  Tensor zero = zeros({}, g.gout().dtype());
  TensorList out(3);
  if (g.needs(1)) out[1] = sum_to(where(cond, g.gout(), zero), g.in_shape(1));
  if (g.needs(2)) out[2] = sum_to(where(cond, zero, g.gout()), g.in_shape(2));
  return out;
}

// A bool condition (not swept) choosing between two broadcast operands of each dtype.
std::vector<OpSample> where_samples() {
  std::vector<OpSample> out;
  uint64_t seed = 1;
  for (const auto& [sa, sb] : samples::broadcast_shapes()) {
    Tensor condition = gt(samples::values(sa, -1, 1, seed), zeros({}, DType::Float64));
    out.push_back(
        {{condition, samples::values(sa, -2, 2, seed + 1), samples::values(sb, -2, 2, seed + 2)},
         {},
         0b110u});
    seed += 3;
  }
  return out;
}

constexpr OpDef kWhere = [] {
  OpDef def{"where", infer_where, cpu_where, nullptr, grad_where};
  def.samples = where_samples;
  return def;
}();
const OpRegistrar kWhere_registrar(kWhere);

MetaList infer_cast(const OpCall& c) { return {{c.in(0).shape(), c.attrs.get<DType>("dtype")}}; }
void cpu_cast(const OpCall& c, std::span<Tensor> outs) { cpu::copy_into(c.in(0), outs[0]); }
TensorList grad_cast(const GradCall& g) { return {cast(g.gout(), g.input_metas[0].dtype)}; }
// To each dtype, from each (the input is swept).
std::vector<OpSample> cast_samples() {
  std::vector<OpSample> out;
  for (DType to : {DType::Bool, DType::UInt8, DType::Int32, DType::Int64, DType::Float16,
                   DType::BFloat16, DType::Float32, DType::Float64}) {
    out.push_back({{samples::values({2, 37}, -2, 2, 1)}, {{"dtype", to}}});
  }
  out.push_back({{samples::values({4, 0, 3}, -2, 2, 2)}, {{"dtype", DType::Int32}}});
  return out;
}

constexpr OpDef kCast = [] {
  OpDef def{"cast", infer_cast, cpu_cast, nullptr, grad_cast, kSaveNothing};
  def.samples = cast_samples;
  return def;
}();
const OpRegistrar kCast_registrar(kCast);

}  // namespace

Tensor add(const Tensor& a, const Tensor& b) { return run2(kAdd, a, b); }
Tensor sub(const Tensor& a, const Tensor& b) {
  check(a.dtype() != DType::Bool || b.dtype() != DType::Bool, "sub",
        "subtracting bool tensors is not supported; use logical_xor");
  return run2(kSub, a, b);
}
Tensor mul(const Tensor& a, const Tensor& b) { return run2(kMul, a, b); }
Tensor div(const Tensor& a, const Tensor& b) { return run2(kDiv, a, b); }
Tensor floor_div(const Tensor& a, const Tensor& b) { return run2(kFloorDiv, a, b); }
Tensor mod(const Tensor& a, const Tensor& b) { return run2(kMod, a, b); }
Tensor pow(const Tensor& a, const Tensor& b) {
  if (is_integral(promote_types(a.dtype(), b.dtype())) && b.numel() > 0) {
    for (int64_t v : b.to_vector<int64_t>()) {
      check(v >= 0, "pow", "integers to negative integer powers are not allowed");
    }
  }
  return run2(kPow, a, b);
}
Tensor maximum(const Tensor& a, const Tensor& b) { return run2(kMaximum, a, b); }
Tensor relu_backward(const Tensor& grad, const Tensor& output) {
  return run2(kReluBackward, grad, output);
}
Tensor minimum(const Tensor& a, const Tensor& b) { return run2(kMinimum, a, b); }
Tensor atan2(const Tensor& a, const Tensor& b) { return run2(kAtan2, a, b); }
Tensor eq(const Tensor& a, const Tensor& b) { return run2(kEq, a, b); }
Tensor ne(const Tensor& a, const Tensor& b) { return run2(kNe, a, b); }
Tensor lt(const Tensor& a, const Tensor& b) { return run2(kLt, a, b); }
Tensor le(const Tensor& a, const Tensor& b) { return run2(kLe, a, b); }
Tensor gt(const Tensor& a, const Tensor& b) { return run2(kGt, a, b); }
Tensor ge(const Tensor& a, const Tensor& b) { return run2(kGe, a, b); }
Tensor logical_and(const Tensor& a, const Tensor& b) { return run2(kLogicalAnd, a, b); }
Tensor logical_or(const Tensor& a, const Tensor& b) { return run2(kLogicalOr, a, b); }
Tensor logical_xor(const Tensor& a, const Tensor& b) { return run2(kLogicalXor, a, b); }
Tensor bitwise_and(const Tensor& a, const Tensor& b) { return run2(kBitwiseAnd, a, b); }
Tensor bitwise_or(const Tensor& a, const Tensor& b) { return run2(kBitwiseOr, a, b); }
Tensor bitwise_xor(const Tensor& a, const Tensor& b) { return run2(kBitwiseXor, a, b); }
Tensor left_shift(const Tensor& a, const Tensor& b) { return run2(kLeftShift, a, b); }
Tensor right_shift(const Tensor& a, const Tensor& b) { return run2(kRightShift, a, b); }

Tensor wrap_scalar(const Scalar& value, const Tensor& like) {
  DType t = like.dtype();
  DType s = value.default_dtype();
  // Same kind (bool / integer / float): the tensor's dtype wins; a higher kind gives the default.
  auto kind = [](DType d) { return d == DType::Bool ? 0 : is_floating(d) ? 2 : 1; };
  DType dtype = kind(s) > kind(t) ? s : t;
  return scalar_tensor(value, dtype);
}

Tensor add(const Tensor& a, const Scalar& b) { return add(a, wrap_scalar(b, a)); }
Tensor sub(const Tensor& a, const Scalar& b) { return sub(a, wrap_scalar(b, a)); }
Tensor mul(const Tensor& a, const Scalar& b) { return mul(a, wrap_scalar(b, a)); }
Tensor div(const Tensor& a, const Scalar& b) { return div(a, wrap_scalar(b, a)); }
Tensor pow(const Tensor& a, const Scalar& b) { return pow(a, wrap_scalar(b, a)); }
Tensor maximum(const Tensor& a, const Scalar& b) { return maximum(a, wrap_scalar(b, a)); }
Tensor minimum(const Tensor& a, const Scalar& b) { return minimum(a, wrap_scalar(b, a)); }

Tensor where(const Tensor& condition, const Tensor& a, const Tensor& b) {
  return run_op1(kWhere, {condition, a, b});
}

Tensor lerp(const Tensor& start, const Tensor& end, const Tensor& weight) {
  return add(start, mul(weight, sub(end, start)));
}

Tensor cast(const Tensor& x, DType dtype) { return run_op1(kCast, {x}, {{"dtype", dtype}}); }

}  // namespace tessera
