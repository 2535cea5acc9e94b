// Inference passes: freezing variables, folding batch norm (any per-channel affine chain)
// into the convolution before it, and fusing activations and biases into convolutions and
// dense layers. Each fusion turns the last node of a chain into the fused op (keeping its
// output, so consumers are untouched); the chain's other nodes become dead code.
#include <algorithm>
#include <cstring>

#include "rewrite.h"
#include "tessera/autodiff/autodiff.h"
#include "tessera/graph/passes.h"
#include "tessera/ops/creation.h"
#include "tessera/ops/elementwise.h"
#include "tessera/ops/fused.h"
#include "tessera/ops/shape.h"

namespace tessera::graph {
namespace {

bool is(const Node& n, const char* op) { return std::strcmp(n.op(), op) == 0; }

// How many times each value is read: by nodes, as a graph output, or written by an effect.
std::vector<int> use_counts(const Graph& g) {
  std::vector<int> uses(g.values.size(), 0);
  for (const Node& n : g.nodes) {
    for (int id : n.inputs) uses[id]++;
  }
  for (int id : g.outputs) uses[id]++;
  return uses;
}

// The single node reading `id`, if exactly one does (and it is not a graph output).
std::vector<int> single_consumer(const Graph& g, const std::vector<int>& uses) {
  std::vector<int> consumer(g.values.size(), -1);
  for (size_t n = 0; n < g.nodes.size(); ++n) {
    for (int id : g.nodes[n].inputs) {
      if (uses[id] == 1) consumer[id] = static_cast<int>(n);
    }
  }
  return consumer;
}

// The conv ops (by rank), plain and with fused relu.
const char* const kConvs[] = {"conv1d", "conv2d", "conv3d"};
const char* const kConvRelus[] = {"conv1d_relu", "conv2d_relu", "conv3d_relu"};
int conv_rank(const Node& n) {
  for (int d = 0; d < 3; ++d) {
    if (is(n, kConvs[d])) return d + 1;
  }
  return 0;
}

// A constant holding one value per channel of `like` ([N, C, ...]): shapes [], [C, 1..],
// [1, C, 1..]; returns the C values (as float64) or an empty tensor.
Tensor per_channel(const Graph& g, int id, const Value& like) {
  const Value& v = g.values[id];
  if (v.kind != ValueKind::constant || !is_floating(v.dtype) || like.shape.size() < 2) return {};
  const int64_t channels = like.shape[1];
  const int64_t rank = static_cast<int64_t>(like.shape.size());
  const Dims& s = v.shape;
  bool scalar = v.data.numel() == 1 && static_cast<int64_t>(s.size()) <= rank;
  bool channel_axis = false;
  for (int64_t lead : {int64_t{0}, int64_t{1}}) {  // [C,1..] (rank-1) or [1,C,1..] (rank)
    if (static_cast<int64_t>(s.size()) != rank - 1 + lead) continue;
    bool ok = lead == 0 || s[0] == 1;
    for (size_t a = lead; a < s.size(); ++a) ok = ok && s[a] == (a == size_t(lead) ? channels : 1);
    channel_axis = channel_axis || ok;
  }
  if (!scalar && !channel_axis) return {};
  NoGradGuard no_grad;
  Tensor c = v.data.to(DType::Float64).contiguous().reshape({-1});
  return scalar ? expand(c, {channels}).contiguous() : c;
}

}  // namespace

Graph freeze_variables(const Graph& g) {
  Graph out = g;
  std::vector<bool> written = g.written_values();
  NoGradGuard no_grad;
  for (size_t id = 0; id < out.values.size(); ++id) {
    Value& v = out.values[id];
    if (v.kind != ValueKind::variable || written[id]) continue;
    v.kind = ValueKind::constant;
    v.data = v.data.detach().clone();
  }
  return out;
}

Graph fold_batch_norm(const Graph& g) {
  Graph out = g;
  std::vector<int> uses = use_counts(out), consumer = single_consumer(out, uses);
  NoGradGuard no_grad;
  for (size_t c = 0; c < g.nodes.size(); ++c) {
    const Node conv = out.nodes[c];
    int rank = conv_rank(conv);
    if (rank == 0 || conv.inputs.size() < 2) continue;
    const Value weight = out.values[conv.inputs[1]];  // a copy: add_value below reallocates
    bool has_bias = conv.inputs.size() > 2;
    if (weight.kind != ValueKind::constant ||
        (has_bias && out.values[conv.inputs[2]].kind != ValueKind::constant)) {
      continue;
    }
    // Walk the chain of per-channel affine ops: y -> y * scale + shift.
    const Value conv_out = out.values[conv.outputs[0]];
    int64_t channels = conv_out.shape[1];
    Tensor scale = ones({channels}, DType::Float64), shift = zeros({channels}, DType::Float64);
    int v = conv.outputs[0], last = -1;
    while (consumer[v] >= 0) {
      const Node& n = out.nodes[consumer[v]];
      if (n.inputs.size() != 2 || out.values[n.outputs[0]].shape != conv_out.shape ||
          out.values[n.outputs[0]].dtype != conv_out.dtype) {
        break;
      }
      bool first = n.inputs[0] == v;
      Tensor k = per_channel(out, first ? n.inputs[1] : n.inputs[0], conv_out);
      if (!k.defined()) break;
      if (is(n, "add")) {
        shift = add(shift, k);
      } else if (is(n, "sub") && first) {
        shift = sub(shift, k);
      } else if (is(n, "mul")) {
        scale = mul(scale, k), shift = mul(shift, k);
      } else if (is(n, "div") && first) {
        scale = div(scale, k), shift = div(shift, k);
      } else {
        break;
      }
      last = consumer[v];
      v = n.outputs[0];
    }
    if (last < 0) continue;
    // w' = w * scale (per output channel), b' = b * scale + shift.
    Dims per_out(static_cast<size_t>(weight.shape.size()), 1);
    per_out[0] = channels;
    Tensor w = mul(weight.data.to(DType::Float64), reshape(scale, per_out)).to(weight.dtype);
    Tensor b = has_bias ? out.values[conv.inputs[2]].data.to(DType::Float64)
                        : zeros({channels}, DType::Float64);
    b = add(mul(b, scale), shift).to(weight.dtype);
    int w_id = out.add_value({.kind = ValueKind::constant,
                              .dtype = weight.dtype,
                              .shape = weight.shape,
                              .data = w,
                              .name = weight.name + ".folded"});
    int b_id = out.add_value({.kind = ValueKind::constant,
                              .dtype = weight.dtype,
                              .shape = Dims{channels},
                              .data = b,
                              .name = weight.name + ".folded_bias"});
    Node& fused = out.nodes[last];
    fused.def = conv.def;
    fused.attrs = conv.attrs;
    fused.inputs = {conv.inputs[0], w_id, b_id};
  }
  return eliminate_dead_code(out);
}

Graph fuse_activations(const Graph& g) {
  Graph out = g;
  std::vector<int> uses = use_counts(out), consumer = single_consumer(out, uses);
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const Node n = out.nodes[i];
    // conv -> relu: the conv op with the relu fused.
    if (int rank = conv_rank(n); rank > 0) {
      int r = consumer[n.outputs[0]];
      if (r < 0 || !is(out.nodes[r], "relu")) continue;
      const OpDef* fused = find_op(kConvRelus[rank - 1]);
      if (fused == nullptr) continue;
      out.nodes[r].def = fused;
      out.nodes[r].attrs = n.attrs;
      out.nodes[r].inputs = n.inputs;
      continue;
    }
    // matmul(x, permute(w, [1,0]) or a constant) [-> add(., b)] [-> relu]: linear(x, w, b).
    if (!is(n, "matmul") || n.inputs.size() != 2) continue;
    const Value t = out.values[n.inputs[1]];
    const Value y = out.values[n.outputs[0]];  // a copy: add_value below may reallocate
    if (t.shape.size() != 2 || t.dtype != y.dtype ||
        (y.dtype != DType::Float32 && y.dtype != DType::Float64)) {
      continue;
    }
    int w = -1;
    if (t.kind == ValueKind::op_output && is(out.nodes[t.node], "permute") &&
        out.nodes[t.node].attrs.ints("order") == std::vector<int64_t>{1, 0}) {
      w = out.nodes[t.node].inputs[0];
    } else if (t.kind == ValueKind::constant) {  // a frozen graph folded the transpose
      NoGradGuard no_grad;
      w = out.add_value({.kind = ValueKind::constant,
                         .dtype = t.dtype,
                         .shape = Dims{t.shape[1], t.shape[0]},
                         .data = t.data.t().contiguous(),
                         .name = t.name + ".T"});
    } else {
      continue;
    }
    std::vector<int> ins{n.inputs[0], w};
    int last = static_cast<int>(i), v = n.outputs[0];
    if (int a = consumer[v]; a >= 0 && is(out.nodes[a], "add")) {
      const Node& add_node = out.nodes[a];
      int b = add_node.inputs[0] == v ? add_node.inputs[1] : add_node.inputs[0];
      const Value& bias = out.values[b];
      if (bias.shape == Dims{t.shape[1]} && bias.dtype == y.dtype &&
          out.values[add_node.outputs[0]].shape == y.shape) {
        ins.push_back(b);
        last = a, v = add_node.outputs[0];
      }
    }
    std::string activation;
    if (int r = consumer[v]; r >= 0 && is(out.nodes[r], "relu")) {
      activation = "relu";
      last = r;
    }
    Node& fused = out.nodes[last];
    fused.def = &linear_op();
    fused.attrs = Attrs{{"activation", activation}};
    fused.inputs = ins;
  }
  return eliminate_dead_code(out);
}

namespace {

// Single float32 ops the fused_elementwise program can run (OpDef::pointwise).
bool fusable(const Node& n) {
  return n.outputs.size() == 1 && n.attrs.items().empty() && n.def->pointwise.arity > 0 &&
         static_cast<int>(n.inputs.size()) == n.def->pointwise.arity;
}

// Whether value `id` can feed a fused program producing `out`: float32 and either the
// output's shape or a single value.
bool fusable_operand(const Graph& g, int id, int out) {
  const Value &v = g.values[id], &o = g.values[out];
  return v.dtype == DType::Float32 &&
         (v.shape == o.shape ||
          (shape_numel(v.shape) == 1 && v.shape.size() <= o.shape.size() &&
           std::all_of(v.shape.begin(), v.shape.end(), [](int64_t d) { return d == 1; })));
}

}  // namespace

Graph fuse_elementwise(const Graph& g) {
  Graph out = g;
  std::vector<int> uses = use_counts(out), consumer = single_consumer(out, uses);
  // group[n]: the chain node n belongs to (the index of its first node), or -1.
  std::vector<int> group(out.nodes.size(), -1);
  std::vector<std::vector<int>> members(out.nodes.size());
  for (size_t i = 0; i < out.nodes.size(); ++i) {
    const Node& n = out.nodes[i];
    if (!fusable(n) || out.values[n.outputs[0]].dtype != DType::Float32) continue;
    bool operands_ok = true;
    for (int id : n.inputs) operands_ok = operands_ok && fusable_operand(out, id, n.outputs[0]);
    if (!operands_ok) continue;
    // Join the chains of inputs that only this node reads (merging them when two meet).
    int root = static_cast<int>(i);
    for (int id : n.inputs) {
      const Value& v = out.values[id];
      if (v.kind != ValueKind::op_output || group[v.node] < 0 ||
          consumer[id] != static_cast<int>(i) || v.shape != out.values[n.outputs[0]].shape) {
        continue;
      }
      int other = group[v.node];
      if (other == root || members[other].size() + members[root].size() >= 32) continue;
      if (root == static_cast<int>(i)) {
        root = other;
        continue;
      }
      for (int m : members[other]) group[m] = root;  // merge, keeping node order
      members[root].insert(members[root].end(), members[other].begin(), members[other].end());
      std::sort(members[root].begin(), members[root].end());
      members[other].clear();
    }
    group[i] = root;
    members[root].push_back(static_cast<int>(i));
  }
  for (size_t r = 0; r < members.size(); ++r) {
    const std::vector<int>& chain = members[r];
    if (chain.size() < 2) continue;
    // Registers: the chain's outside inputs first, then one per instruction.
    std::vector<int> inputs, reg_of(out.values.size(), -1);
    ElementwiseProgram program;
    auto reg = [&](int id) {
      if (reg_of[id] < 0) {
        reg_of[id] = static_cast<int>(inputs.size());
        inputs.push_back(id);
      }
      return reg_of[id];
    };
    for (int m : chain) {
      for (int id : out.nodes[m].inputs) {
        const Value& v = out.values[id];
        bool inside = v.kind == ValueKind::op_output && group[v.node] == static_cast<int>(r);
        if (!inside) reg(id);
      }
    }
    const int k = static_cast<int>(inputs.size());
    for (size_t j = 0; j < chain.size(); ++j) {
      const Node& n = out.nodes[chain[j]];
      program.ops.push_back(n.def);
      program.reads.push_back(
          {reg_of[n.inputs[0]], n.inputs.size() > 1 ? reg_of[n.inputs[1]] : -1});
      reg_of[n.outputs[0]] = k + static_cast<int>(j);
    }
    Node& last = out.nodes[chain.back()];
    last.def = &fused_elementwise_op();
    last.attrs = elementwise_program_attrs(program);
    last.inputs = inputs;
  }
  return eliminate_dead_code(out);
}

Graph optimize_for_inference(Graph g) {
  g = optimize(freeze_variables(split_training_fusions(g)));
  g = fuse_activations(fold_batch_norm(g));
  return fuse_elementwise(optimize(std::move(g)));
}

}  // namespace tessera::graph
