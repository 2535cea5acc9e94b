// Fused ops that graph passes substitute for chains of primitives (see
// src/graph/passes/fusion.cc). They have no gradient rule: graphs are differentiated when
// traced, before any pass runs.
#include <algorithm>

#include "tessera/ops/op.h"

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
  const T* b = bias.defined() ? bias.contiguous().data<T>() : nullptr;
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
  static const OpDef* matmul = find_op("matmul");
  const Tensor& w = c.in(1);
  // w^T as a view: the matmul kernel reads the transposed layout directly.
  Tensor wt =
      make_view(w, {w.shape()[1], w.shape()[0]}, {w.strides()[1], w.strides()[0]}, w.offset());
  TensorList ins{c.in(0), wt};
  Attrs none;
  matmul->cpu(OpCall{ins, none}, outs);
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

}  // namespace
}  // namespace tessera
