// Fused ops that graph passes substitute for chains of primitives (see
// src/graph/passes/fusion.cc): linear and fused_elementwise. They have no gradient rule: graphs are
// differentiated when traced, before any pass runs; each states its decomposition, which
// graphs replayed through eager ops run instead.
#include <algorithm>
#include <vector>

#include "samples.h"
#include "tessera/core/parallel.h"
#include "tessera/ops/elementwise.h"
#include "tessera/ops/fused.h"
#include "tessera/ops/linalg.h"
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

// What linear stands for: the dense layer's matmul, bias add and relu.
TensorList decompose_linear(std::span<const Tensor> inputs, const Attrs& attrs) {
  check(inputs.size() >= 2, "linear", "needs an input and a weight");
  Tensor y = matmul(inputs[0], inputs[1].t());
  if (inputs.size() > 2) y = add(y, inputs[2]);
  if (attrs.get<std::string>("activation") == "relu") y = relu(y);
  return {y};
}

// With and without bias and relu, on a batch of rows and on a 3-d input.
std::vector<OpSample> linear_samples() {
  Tensor w = samples::values({5, 7}, -1, 1, 1), b = samples::values({5}, -1, 1, 2);
  Tensor x = samples::values({4, 7}, -1, 1, 3), x3 = samples::values({2, 3, 7}, -1, 1, 4);
  return {{{x, w, b}, {{"activation", std::string()}}, ~0u, 8},
          {{x, w, b}, {{"activation", std::string("relu")}}, ~0u, 8},
          {{x3, w}, {{"activation", std::string("relu")}}, ~0u, 8},
          {{samples::values({0, 7}, -1, 1, 5), w, b}, {{"activation", std::string()}}}};
}

constexpr OpDef kLinear = [] {
  OpDef def{"linear", infer_linear, cpu_linear, nullptr, nullptr, kSaveNothing};
  def.tunable = product_thread_choices;
  def.decompose = decompose_linear;
  def.samples = linear_samples;
  return def;
}();
const OpRegistrar linear_registrar(kLinear);

// fused_elementwise(inputs...) runs a short program of float32 pointwise ops in one pass
// over memory, block by block, with each op's own SIMD kernel (OpDef::pointwise), so
// results are bit-identical to the unfused chain. Attributes: "ops", the instructions' op
// names separated by spaces, and "registers", two per instruction: the registers it reads
// (the second -1 for unary ops). Registers 0..k-1 are the inputs; each instruction writes
// the next register; the last one is the output. Inputs are the output's shape or single
// values (others are broadcast first).
constexpr int64_t kMaxInstructions = 32;
constexpr int64_t kBlock = 512;

MetaList infer_fused_elementwise(const OpCall& c) {
  const char* op = "fused_elementwise";
  const ElementwiseProgram prog = read_elementwise_program(c.attrs, c.inputs.size());
  check(!c.inputs.empty(), op, "needs at least one input");
  Shape shape = c.in(0).shape();
  for (const Tensor& t : c.inputs) {
    check(t.dtype() == DType::Float32, op, "inputs must be float32, got ", dtype_name(t.dtype()));
    shape = broadcast_shapes(shape, t.shape(), op);
  }
  // As the fusion pass makes programs: each input has the output's shape or is one value,
  // and the result reads an input of the output's shape, so that the single ops the
  // program stands for give the output's shape too.
  std::vector<bool> full;
  for (const Tensor& t : c.inputs) {
    check(t.shape() == shape || t.numel() == 1, op, "input ", full.size(), " ", t.shape(),
          " is neither the output's shape ", shape, " nor one value");
    full.push_back(t.shape() == shape);
  }
  for (size_t j = 0; j < prog.ops.size(); ++j) {
    const auto [a, b] = prog.reads[j];
    full.push_back(full[static_cast<size_t>(a)] || (b >= 0 && full[static_cast<size_t>(b)]));
  }
  check(full.back(), op, "the program's result reads no input of the output's shape ", shape);
  return {{shape, DType::Float32}};
}

void cpu_fused_elementwise(const OpCall& c, std::span<Tensor> outs) {
  const Tensor& out = outs[0];
  const int64_t n = out.numel();
  if (n == 0) return;
  const ElementwiseProgram prog = read_elementwise_program(c.attrs, c.inputs.size());
  const size_t k = c.inputs.size(), steps = prog.ops.size();
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
    std::vector<float> temps(steps * kBlock);
    std::vector<const float*> reg(k + steps);
    std::vector<bool> reg_scalar(k + steps, false);
    for (int64_t block = lo; block < hi; ++block) {
      const int64_t start = block * kBlock, len = std::min(kBlock, n - start);
      for (size_t i = 0; i < k; ++i) {
        const float* base = dense[i].data<float>();
        reg[i] = scalar[i] ? base : base + start;
        reg_scalar[i] = scalar[i];
      }
      for (size_t j = 0; j < steps; ++j) {
        const Pointwise& f = prog.ops[j]->pointwise;
        const int64_t ra = prog.reads[j][0], rb = prog.reads[j][1];
        const float* a = reg[ra];
        const float* b = f.arity == 2 ? reg[rb] : nullptr;
        const bool sa = reg_scalar[ra], sb = f.arity == 2 && reg_scalar[rb];
        // The last instruction writes the output directly.
        float* dst = j + 1 == steps ? y + start : temps.data() + j * kBlock;
        if (sa && (f.arity == 1 || sb)) {  // single values: compute once, then spread
          float v;
          f.f32(a, b, &v, 1, PointwiseOperands::arrays);
          std::fill(dst, dst + len, v);
        } else {
          PointwiseOperands mode = sa   ? PointwiseOperands::a_scalar
                                   : sb ? PointwiseOperands::b_scalar
                                        : PointwiseOperands::arrays;
          f.f32(a, b, dst, len, mode);
        }
        reg[k + j] = dst;
      }
    }
  });
}

// The program run as the single ops it fuses (neg, add, ...): the same values, and
// differentiable, for training a graph that passes have already fused.
TensorList decompose_fused_elementwise(std::span<const Tensor> inputs, const Attrs& attrs) {
  const ElementwiseProgram prog = read_elementwise_program(attrs, inputs.size());
  check(!inputs.empty(), "fused_elementwise", "needs at least one input");
  TensorList regs(inputs.begin(), inputs.end());
  for (size_t j = 0; j < prog.ops.size(); ++j) {
    const Tensor& a = regs[static_cast<size_t>(prog.reads[j][0])];
    Tensor r = prog.ops[j]->pointwise.arity == 1
                   ? run_op1(*prog.ops[j], {a})
                   : run_op1(*prog.ops[j], {a, regs[static_cast<size_t>(prog.reads[j][1])]});
    regs.push_back(r);
  }
  return {regs.back()};
}

// Programs with unary and binary instructions, a single-value operand, a register read
// twice.
std::vector<OpSample> fused_elementwise_samples() {
  Tensor a = samples::values({2, 37}, -2, 2, 1), b = samples::values({2, 37}, -2, 2, 2);
  Tensor one = samples::values({1}, -2, 2, 3);
  return {{{a, b},
           {{"ops", std::string("neg exp mul add")},
            {"registers", std::vector<int64_t>{0, -1, 2, -1, 3, 1, 4, 0}}}},
          {{a, one},
           {{"ops", std::string("sub relu square")},
            {"registers", std::vector<int64_t>{0, 1, 2, -1, 3, -1}}}},
          {{a},
           {{"ops", std::string("tanh sigmoid maximum")},
            {"registers", std::vector<int64_t>{0, -1, 1, -1, 1, 2}}}}};
}

constexpr OpDef kFusedElementwise = [] {
  OpDef def{"fused_elementwise", infer_fused_elementwise, cpu_fused_elementwise, nullptr, nullptr,
            kSaveNothing};
  def.in_place = InPlace::same_shape;
  def.decompose = decompose_fused_elementwise;
  def.samples = fused_elementwise_samples;
  return def;
}();
const OpRegistrar fused_elementwise_registrar(kFusedElementwise);

}  // namespace

const OpDef& linear_op() { return kLinear; }
const OpDef& fused_elementwise_op() { return kFusedElementwise; }

ElementwiseProgram read_elementwise_program(const Attrs& attrs, size_t inputs) {
  const char* op = "fused_elementwise";
  check(attrs.has("ops") && attrs.has("registers"), op,
        "needs the attributes 'ops' and 'registers'");
  const std::string& names = attrs.get<std::string>("ops");
  const std::vector<int64_t>& registers = attrs.ints("registers");
  ElementwiseProgram prog;
  // Plans call the kernel with the same attributes on every run: the last names read on
  // this thread are looked up once.
  thread_local std::string cached_names;
  thread_local std::vector<const OpDef*> cached_ops;
  if (!cached_ops.empty() && names == cached_names) {
    prog.ops = cached_ops;
  } else {
    // Every space ends a name, so a trailing one leaves an empty name, which is refused.
    size_t start = 0;
    while (start <= names.size() && static_cast<int64_t>(prog.ops.size()) <= kMaxInstructions) {
      size_t end = std::min(names.find(' ', start), names.size());
      std::string name = names.substr(start, end - start);
      const OpDef* def = find_op(name);
      check(def != nullptr && (def->pointwise.arity == 1 || def->pointwise.arity == 2) &&
                def->pointwise.f32 != nullptr,
            op, "instruction ", prog.ops.size(), " runs '", name.substr(0, 64),
            "', which is not a pointwise op");
      prog.ops.push_back(def);
      start = end + 1;
    }
    if (static_cast<int64_t>(prog.ops.size()) <= kMaxInstructions) {
      cached_names = names;
      cached_ops = prog.ops;
    }
  }
  const auto steps = static_cast<int64_t>(prog.ops.size());
  check(steps >= 1 && steps <= kMaxInstructions, op, "the program must hold 1 to ",
        kMaxInstructions, " instructions");
  check(static_cast<int64_t>(registers.size()) == 2 * steps, op, "'registers' holds ",
        registers.size(), " values for ", steps, " instructions (2 each)");
  for (int64_t j = 0; j < steps; ++j) {
    const int64_t written = static_cast<int64_t>(inputs) + j, a = registers[2 * j],
                  b = registers[2 * j + 1];
    const bool binary = prog.ops[j]->pointwise.arity == 2;
    check(a >= 0 && a < written && (binary ? b >= 0 && b < written : b == -1), op, "instruction ",
          j, " (", prog.ops[j]->name,
          ") reads a register that is not yet written (or gives a unary op a second one)");
    prog.reads.push_back({a, b});
  }
  return prog;
}

Attrs elementwise_program_attrs(const ElementwiseProgram& program) {
  std::string names;
  std::vector<int64_t> registers;
  for (size_t j = 0; j < program.ops.size(); ++j) {
    if (j > 0) names += ' ';
    names += program.ops[j]->name;
    registers.insert(registers.end(), program.reads[j].begin(), program.reads[j].end());
  }
  return Attrs{{"ops", names}, {"registers", registers}};
}

}  // namespace tessera
