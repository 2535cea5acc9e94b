// Fused ops that graph passes substitute for chains of primitives (see
// src/graph/passes/fusion.cc): linear and fused_elementwise. They have no gradient rule: graphs are
// differentiated when traced, before any pass runs.
#include <algorithm>
#include <vector>

#include "../kernels/cpu/simd.h"
#include "tessera/core/parallel.h"
#include "tessera/ops/elementwise.h"
#include "tessera/ops/fused.h"
#include "tessera/ops/op.h"
#include "tessera/ops/shape.h"

namespace tessera {
namespace {

// linear(x [..., in], w [out, in], b [out]?) = x @ w^T + b, then relu when asked: what a
// dense layer's matmul, bias add and activation compute, with bias and activation applied in
// one pass over the output while it is in cache.
MetaList infer_linear(const OpCall& c) {
  const char* op = "linear";
  const Tensor &x = c.in(0), &w = c.in(1);
  check(w.dim() == 2 && x.dim() >= 1 && x.shape()[x.dim() - 1] == w.shape()[1], op, "input ",
        x.shape(), " does not end in the weight's in_features (weight ", w.shape(), ")");
  check(x.dtype() == w.dtype() && (x.dtype() == DType::Float32 || x.dtype() == DType::Float64), op,
        "expects float32 or float64 inputs of one dtype, got ", dtype_name(x.dtype()), " and ",
        dtype_name(w.dtype()));
  if (c.inputs.size() > 2) {
    const Tensor& b = c.in(2);
    check(b.dim() == 1 && b.shape()[0] == w.shape()[0] && b.dtype() == x.dtype(), op, "bias ",
          b.shape(), " does not match ", w.shape()[0], " outputs");
  }
  const std::string& act = c.attrs.get<std::string>("activation");
  check(act.empty() || act == "relu", op, "unknown activation '", act, "'");
  Shape out = x.shape();
  out[out.size() - 1] = w.shape()[0];
  return {{out, x.dtype()}};
}

template <typename T>
void bias_and_activation(const Tensor& out, const Tensor& bias, bool relu) {
  T* y = out.data<T>();
  const int64_t n = out.shape()[out.dim() - 1], rows = n == 0 ? 0 : out.numel() / n;
  const Tensor dense_bias = bias.defined() ? bias.contiguous() : Tensor();  // kept alive
  const T* b = dense_bias.defined() ? dense_bias.data<T>() : nullptr;
  for (int64_t r = 0; r < rows; ++r) {
    T* row = y + r * n;
    if (b) {
      for (int64_t j = 0; j < n; ++j) row[j] += b[j];
    }
    if (relu) {
      for (int64_t j = 0; j < n; ++j) row[j] = std::max(row[j], T(0));
    }
  }
}

void cpu_linear(const OpCall& c, std::span<Tensor> outs) {
  const Tensor& w = c.in(1);
  // w^T as a view: the matmul kernel reads the transposed layout directly.
  Tensor wt =
      make_view(w, {w.shape()[1], w.shape()[0]}, {w.strides()[1], w.strides()[0]}, w.offset());
  TensorList ins{c.in(0), wt};
  Attrs threads;  // the plan's choice of threads, when it made one
  if (c.attrs.has("threads")) threads.set("threads", c.attrs.i("threads"));
  matmul_op().cpu(OpCall{ins, threads}, outs);
  Tensor bias = c.inputs.size() > 2 ? c.in(2) : Tensor();
  bool relu = c.attrs.get<std::string>("activation") == "relu";
  if (!bias.defined() && !relu) return;
  if (outs[0].dtype() == DType::Float32) {
    bias_and_activation<float>(outs[0], bias, relu);
  } else {
    bias_and_activation<double>(outs[0], bias, relu);
  }
}

constexpr OpDef kLinear{"linear", infer_linear, cpu_linear, nullptr, nullptr, kSaveNothing};
const OpRegistrar linear_registrar(kLinear);

// fused_elementwise(inputs...) runs a short program of float32 elementwise ops in one pass
// over memory, block by block, with the same SIMD kernels the single ops use (so results
// are bit-identical to the unfused chain). Attribute "program": 4 integers per instruction,
// (kind, code, a, b): kind 0 is a FastUnary on register a, kind 1 a FastBinary on registers
// a and b. Registers 0..k-1 are the inputs; each instruction writes the next register; the
// last one is the output. Inputs are the output's shape or single values (others are
// broadcast first).
constexpr int64_t kMaxInstructions = 32;
constexpr int64_t kBlock = 512;

struct Instruction {
  int64_t kind, code, a, b;
};

std::vector<Instruction> read_program(const OpCall& c) {
  const auto& p = c.attrs.ints("program");
  const char* op = "fused_elementwise";
  check(!p.empty() && p.size() % 4 == 0 && static_cast<int64_t>(p.size()) / 4 <= kMaxInstructions,
        op, "the program must hold 1 to ", kMaxInstructions, " instructions of 4 integers");
  std::vector<Instruction> prog;
  const int64_t inputs = static_cast<int64_t>(c.inputs.size());
  for (size_t i = 0; i < p.size(); i += 4) {
    Instruction in{p[i], p[i + 1], p[i + 2], p[i + 3]};
    int64_t registers = inputs + static_cast<int64_t>(prog.size());
    bool unary = in.kind == 0, binary = in.kind == 1;
    check((unary && in.code >= 0 && in.code <= static_cast<int64_t>(cpu::FastUnary::Silu)) ||
              (binary && in.code >= 0 &&
               in.code <= static_cast<int64_t>(cpu::FastBinary::ReluBackward)),
          op, "instruction ", prog.size(), " has an unknown operation");
    check(in.a >= 0 && in.a < registers && (unary || (in.b >= 0 && in.b < registers)), op,
          "instruction ", prog.size(), " reads a register that is not yet written");
    prog.push_back(in);
  }
  return prog;
}

MetaList infer_fused_elementwise(const OpCall& c) {
  read_program(c);
  check(!c.inputs.empty(), "fused_elementwise", "needs at least one input");
  Shape shape = c.in(0).shape();
  for (const Tensor& t : c.inputs) {
    check(t.dtype() == DType::Float32, "fused_elementwise", "inputs must be float32, got ",
          dtype_name(t.dtype()));
    shape = broadcast_shapes(shape, t.shape(), "fused_elementwise");
  }
  return {{shape, DType::Float32}};
}

void cpu_fused_elementwise(const OpCall& c, std::span<Tensor> outs) {
  const Tensor& out = outs[0];
  const int64_t n = out.numel();
  if (n == 0) return;
  std::vector<Instruction> prog = read_program(c);
  const size_t k = c.inputs.size();
  // Each input as a dense array of the output's size, or a single value.
  std::vector<Tensor> dense(k);
  std::vector<bool> scalar(k);
  for (size_t i = 0; i < k; ++i) {
    const Tensor& t = c.in(i);
    scalar[i] = t.numel() == 1;
    dense[i] = scalar[i] || (t.shape() == out.shape() && t.is_contiguous())
                   ? t.contiguous()
                   : expand(t, out.shape()).contiguous();
  }
  float* y = out.data<float>();
  parallel_for(0, (n + kBlock - 1) / kBlock, 8, [&](int64_t lo, int64_t hi) {
    std::vector<float> temps(prog.size() * kBlock);
    std::vector<const float*> reg(k + prog.size());
    std::vector<bool> reg_scalar(k + prog.size(), false);
    for (int64_t block = lo; block < hi; ++block) {
      const int64_t start = block * kBlock, len = std::min(kBlock, n - start);
      for (size_t i = 0; i < k; ++i) {
        const float* base = dense[i].data<float>();
        reg[i] = scalar[i] ? base : base + start;
        reg_scalar[i] = scalar[i];
      }
      for (size_t j = 0; j < prog.size(); ++j) {
        const Instruction& in = prog[j];
        // The last instruction writes the output directly.
        float* dst = j + 1 == prog.size() ? y + start : temps.data() + j * kBlock;
        if (in.kind == 0) {
          if (reg_scalar[in.a]) {  // a single value: apply once, then spread
            float v;
            cpu::simd().unary_f32(static_cast<cpu::FastUnary>(in.code), reg[in.a], &v, 1);
            std::fill(dst, dst + len, v);
          } else {
            cpu::simd().unary_f32(static_cast<cpu::FastUnary>(in.code), reg[in.a], dst, len);
          }
        } else {
          bool sa = reg_scalar[in.a], sb = reg_scalar[in.b];
          auto op = static_cast<cpu::FastBinary>(in.code);
          if (sa && sb) {
            float v;
            cpu::simd().binary_f32(op, reg[in.a], reg[in.b], &v, 1, cpu::Operand::Array);
            std::fill(dst, dst + len, v);
          } else {
            cpu::Operand mode = sa   ? cpu::Operand::ScalarA
                                : sb ? cpu::Operand::ScalarB
                                     : cpu::Operand::Array;
            cpu::simd().binary_f32(op, reg[in.a], reg[in.b], dst, len, mode);
          }
        }
        reg[k + j] = dst;
      }
    }
  });
}

constexpr OpDef kFusedElementwise{
    "fused_elementwise", infer_fused_elementwise, cpu_fused_elementwise, nullptr, nullptr,
    kSaveNothing};
const OpRegistrar fused_elementwise_registrar(kFusedElementwise);

Tensor run_instruction(const Instruction& in, const Tensor& a, const Tensor& b) {
  if (in.kind == 0) {
    switch (static_cast<cpu::FastUnary>(in.code)) {
      case cpu::FastUnary::Neg:
        return neg(a);
      case cpu::FastUnary::Abs:
        return abs(a);
      case cpu::FastUnary::Exp:
        return exp(a);
      case cpu::FastUnary::Tanh:
        return tanh(a);
      case cpu::FastUnary::Sigmoid:
        return sigmoid(a);
      case cpu::FastUnary::Relu:
        return relu(a);
      case cpu::FastUnary::Sqrt:
        return sqrt(a);
      case cpu::FastUnary::Square:
        return square(a);
      case cpu::FastUnary::Silu:
        return silu(a);
    }
  }
  switch (static_cast<cpu::FastBinary>(in.code)) {
    case cpu::FastBinary::Add:
      return add(a, b);
    case cpu::FastBinary::Sub:
      return sub(a, b);
    case cpu::FastBinary::Mul:
      return mul(a, b);
    case cpu::FastBinary::Div:
      return div(a, b);
    case cpu::FastBinary::Max:
      return maximum(a, b);
    case cpu::FastBinary::Min:
      return minimum(a, b);
    case cpu::FastBinary::ReluBackward:
      return relu_backward(a, b);
  }
  fail("fused_elementwise", "unknown instruction");
}

}  // namespace

const OpDef& linear_op() { return kLinear; }
const OpDef& fused_elementwise_op() { return kFusedElementwise; }

Tensor run_program_as_ops(const std::vector<int64_t>& program, const TensorList& inputs) {
  Attrs attrs{{"program", program}};
  std::vector<Instruction> prog = read_program(OpCall{inputs, attrs});
  check(!inputs.empty(), "fused_elementwise", "needs at least one input");
  TensorList regs = inputs;
  for (const Instruction& in : prog) {
    regs.push_back(run_instruction(in, regs[static_cast<size_t>(in.a)],
                                   in.kind == 1 ? regs[static_cast<size_t>(in.b)] : Tensor()));
  }
  return regs.back();
}

}  // namespace tessera
