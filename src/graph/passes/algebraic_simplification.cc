// Algebraic simplification: identities that leave a value unchanged, and chains of view
// ops collapsed into one.
#include <cstring>

#include "rewrite.h"
#include "tessera/autodiff/autodiff.h"
#include "tessera/graph/passes.h"
#include "tessera/ops/reduce.h"

namespace tessera::graph {
namespace {

bool is(const Node& n, const char* op) { return std::strcmp(n.op(), op) == 0; }

// Whether value `id` is a constant whose every element equals `x`.
bool constant_equal_to(const Graph& g, int id, double x) {
  const Value& v = g.values[id];
  if (v.kind != ValueKind::constant || v.data.numel() == 0) return false;
  NoGradGuard no_grad;
  Tensor d = v.data.to(DType::Float64);
  return amin(d).item<double>() == x && amax(d).item<double>() == x;
}

// Whether the node's output has exactly the type of value `id` (so broadcasting against
// the constant and type promotion changed nothing).
bool same_type(const Graph& g, int out, int id) {
  const Value &a = g.values[out], &b = g.values[id];
  return a.dtype == b.dtype && a.shape == b.shape;
}

// The operand that the node passes through unchanged, or -1.
int identity_operand(const Graph& g, const Node& n) {
  if (n.outputs.size() != 1) return -1;
  int out = n.outputs[0];
  if (n.inputs.size() == 2) {
    int a = n.inputs[0], b = n.inputs[1];
    bool add = is(n, "add"), mul = is(n, "mul");
    if ((add || is(n, "sub")) && constant_equal_to(g, b, 0) && same_type(g, out, a)) return a;
    if (add && constant_equal_to(g, a, 0) && same_type(g, out, b)) return b;
    if ((mul || is(n, "div")) && constant_equal_to(g, b, 1) && same_type(g, out, a)) return a;
    if (mul && constant_equal_to(g, a, 1) && same_type(g, out, b)) return b;
    return -1;
  }
  if (n.inputs.size() != 1) return -1;
  int x = n.inputs[0];
  if (is(n, "cast") && same_type(g, out, x)) return x;
  // A reshape to the same fully known shape.
  if (is(n, "reshape") && same_type(g, out, x)) {
    for (int64_t d : g.values[x].shape) {
      if (d == kUnknownDim) return -1;
    }
    return x;
  }
  if (is(n, "permute")) {
    const auto& order = n.attrs.ints("order");
    for (size_t i = 0; i < order.size(); ++i) {
      if (order[i] != static_cast<int64_t>(i)) return -1;
    }
    return x;
  }
  return -1;
}

// The node producing `id` when it is an op `op` with one input, else null.
const Node* producer(const Graph& g, int id, const char* op) {
  const Value& v = g.values[id];
  if (v.kind != ValueKind::op_output) return nullptr;
  const Node& n = g.nodes[v.node];
  return is(n, op) && n.inputs.size() == 1 ? &n : nullptr;
}

bool contiguous_buffer(const Graph& g, int id) {
  const Value& v = g.values[id];
  return v.kind != ValueKind::op_output || g.nodes[v.node].def->view == nullptr;
}

}  // namespace

Graph simplify_algebra(const Graph& g) {
  Graph out = g;
  // Collapse chains first (in node order, so a chain of three folds completely).
  for (Node& n : out.nodes) {
    if (n.inputs.size() != 1) continue;
    if (is(n, "permute")) {
      const Node* inner = producer(out, n.inputs[0], "permute");
      if (inner == nullptr) continue;
      const auto& outer_order = n.attrs.ints("order");
      const auto& inner_order = inner->attrs.ints("order");
      if (outer_order.size() != inner_order.size()) continue;
      std::vector<int64_t> composed;
      int64_t rank = static_cast<int64_t>(inner_order.size());
      for (int64_t a : outer_order) {
        int64_t i = a < 0 ? a + rank : a;
        int64_t j = inner_order[i];
        composed.push_back(j < 0 ? j + rank : j);
      }
      n.attrs.set("order", composed);
      n.inputs[0] = inner->inputs[0];
    } else if (is(n, "reshape")) {
      // A reshape of a reshape views the original directly when that one is a
      // contiguous buffer (always viewable).
      const Node* inner = producer(out, n.inputs[0], "reshape");
      if (inner == nullptr || !contiguous_buffer(out, inner->inputs[0])) continue;
      n.inputs[0] = inner->inputs[0];
    }
  }
  // A variable that the graph writes is not forwarded in place of a copy of it: the copy
  // holds the value from before the write.
  std::vector<bool> written = out.written_values();
  std::vector<int> replacement = no_replacements(out);
  for (const Node& n : out.nodes) {
    int keep = identity_operand(out, n);
    if (keep >= 0 && !written[keep]) replacement[n.outputs[0]] = keep;
  }
  return replace_and_compact(out, replacement);
}

}  // namespace tessera::graph
