// The graph executor (see executor.h).
#include "tessera/graph/executor.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <set>
#include <string_view>

#include "tessera/autodiff/autodiff.h"
#include "tessera/core/storage.h"
#include "tessera/graph/memory_plan.h"

namespace tessera::graph {

std::vector<int64_t> bind_symbols(const Graph& g, const std::vector<Dims>& input_shapes) {
  std::vector<int64_t> sizes;
  for (const Symbol& s : g.symbols) sizes.push_back(input_shapes[s.input][s.axis]);
  return sizes;
}

namespace {
int64_t bind(int64_t v, const std::vector<int64_t>& sizes) {
  if (!is_dim_marker(v)) return v;
  int s = marker_symbol(v);
  check(s < static_cast<int>(sizes.size()), "graph", "attribute refers to unknown dimension ", s,
        ", but the graph has ", sizes.size());
  return sizes[s];
}
}  // namespace

Attrs bind_attrs(const Attrs& attrs, const std::vector<int64_t>& sizes) {
  Attrs out = attrs;
  for (const auto& [name, value] : attrs.items()) {
    if (const auto* i = std::get_if<int64_t>(&value)) {
      if (is_dim_marker(*i)) out.set(name, bind(*i, sizes));
    } else if (const auto* v = std::get_if<std::vector<int64_t>>(&value)) {
      std::vector<int64_t> bound = *v;
      for (int64_t& x : bound) x = bind(x, sizes);
      out.set(name, std::move(bound));
    }
  }
  return out;
}

namespace {
std::string describe(const Graph& g, size_t n) {
  return str_cat("node ", n, " (", g.nodes[n].op(), ")");
}

// A contiguous tensor at `offset` bytes into the arena.
Tensor arena_tensor(const std::shared_ptr<Storage>& arena, int64_t offset, const Shape& shape,
                    DType dtype) {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = arena;
  impl->shape = shape;
  impl->strides = contiguous_strides(shape);
  impl->dtype = dtype;
  impl->offset = offset / static_cast<int64_t>(dtype_size(dtype));
  return Tensor(std::move(impl));
}

}  // namespace

void check_inputs(const Graph& graph, const TensorList& inputs, const char* who) {
  check(inputs.size() == graph.inputs.size(), who, "expects ", graph.inputs.size(), " inputs, got ",
        inputs.size());
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Value& v = graph.values[graph.inputs[i]];
    const Tensor& t = inputs[i];
    check(t.defined(), who, "input ", i, " ('", v.name, "') is undefined");
    bool ok = t.dtype() == v.dtype && t.dim() == static_cast<int64_t>(v.shape.size());
    for (size_t a = 0; ok && a < v.shape.size(); ++a) {
      ok = v.shape[a] == kUnknownDim || v.shape[a] == t.shape()[a];
    }
    check(ok, who, "input ", i, " ('", v.name, "') is ", format_type(t.dtype(), t.shape()),
          ", expected ", format_type(v.dtype, v.shape));
  }
  for (const TiedDim& d : graph.tied) {
    const Symbol& s = graph.symbols[d.symbol];
    int64_t want = inputs[s.input].shape()[s.axis], got = inputs[d.input].shape()[d.axis];
    check(got == want, who, "input ", d.input, " has size ", got, " on axis ", d.axis,
          ", but input ", s.input, " has ", want, " on axis ", s.axis,
          " and the signature says they are the same size");
  }
}

std::vector<Tensor> infer_values(const Graph& g, const std::vector<Dims>& input_shapes) {
  std::vector<int64_t> sizes = bind_symbols(g, input_shapes);
  std::vector<Tensor> vals(g.values.size());
  for (size_t i = 0; i < g.inputs.size(); ++i) {
    vals[g.inputs[i]] = Tensor::symbolic(input_shapes[i], g.values[g.inputs[i]].dtype);
  }
  for (size_t id = 0; id < g.values.size(); ++id) {
    const Value& v = g.values[id];
    if (v.kind == ValueKind::constant || v.kind == ValueKind::variable) vals[id] = v.data;
  }
  NoGradGuard no_grad;
  for (size_t n = 0; n < g.nodes.size(); ++n) {
    const Node& node = g.nodes[n];
    TensorList ins;
    for (int id : node.inputs) ins.push_back(vals[id]);
    Attrs attrs = bind_attrs(node.attrs, sizes);
    OpCall call{ins, attrs};
    TensorList outs;
    try {
      if (node.def->view) {
        outs.push_back(node.def->view(call));
      } else {
        for (const TensorMeta& m : node.def->infer(call)) {
          outs.push_back(Tensor::symbolic(m.shape, m.dtype));
        }
      }
    } catch (const Error& e) {
      fail("graph", describe(g, n), ": ", e.what());
    }
    check(outs.size() == node.outputs.size(), "graph", describe(g, n), " makes ", outs.size(),
          " outputs, the graph lists ", node.outputs.size());
    for (size_t i = 0; i < outs.size(); ++i) {
      const Value& v = g.values[node.outputs[i]];
      bool ok = outs[i].dtype() == v.dtype && outs[i].dim() == static_cast<int64_t>(v.shape.size());
      for (size_t a = 0; ok && a < v.shape.size(); ++a) {
        ok = v.shape[a] == kUnknownDim || v.shape[a] == outs[i].shape()[a];
      }
      check(ok, "graph", describe(g, n), " computes output ", i, " as ",
            format_type(outs[i].dtype(), outs[i].shape()), ", but the graph declares ",
            format_type(v.dtype, v.shape));
      vals[node.outputs[i]] = outs[i];
    }
  }
  return vals;
}

namespace {

// Elementwise ops whose kernels read element i of each input before writing element i of
// the output, so the output may take the buffer of a same-shaped input they use last.
bool in_place_safe(const OpDef& def) {
  static const std::set<std::string_view> ops = {
      "add", "sub", "mul", "div",     "maximum", "minimum", "relu",   "relu_backward",
      "neg", "exp", "abs", "sigmoid", "tanh",    "sqrt",    "square", "fused_elementwise"};
  return ops.count(def.name) != 0;
}

// Lets outputs of in-place-safe nodes share the buffer of an input that dies at that node
// (same shape, float32, not a view), then recomputes buffer roots and lifetimes. Returns
// the bytes those outputs would have had of their own.
int64_t reuse_inputs_in_place(const Graph& g, const std::vector<Tensor>& shapes,
                              std::vector<int>& root, std::vector<int>& last) {
  const int nv = static_cast<int>(g.values.size()), end = static_cast<int>(g.nodes.size());
  std::vector<int> alias(nv, -1);
  int64_t saved = 0;
  for (int n = 0; n < end; ++n) {
    const Node& node = g.nodes[n];
    if (!in_place_safe(*node.def) || node.outputs.size() != 1) continue;
    int o = node.outputs[0];
    for (int i : node.inputs) {
      ValueKind k = g.values[i].kind;
      bool buffer = k == ValueKind::input || k == ValueKind::op_output;
      if (!buffer || root[i] != i || last[i] != n || shapes[i].dtype() != DType::Float32 ||
          shapes[o].dtype() != DType::Float32 || shapes[i].shape() != shapes[o].shape()) {
        continue;
      }
      alias[o] = i;
      saved += shapes[o].numel() * 4;
      break;
    }
  }
  for (int id = 0; id < nv; ++id) root[id] = id;
  for (const Node& node : g.nodes) {
    if (node.def->view) root[node.outputs[0]] = root[node.inputs[0]];
    for (int o : node.outputs) {
      if (alias[o] >= 0) root[o] = root[alias[o]];
    }
  }
  std::fill(last.begin(), last.end(), -1);
  for (int n = 0; n < end; ++n) {
    for (int id : g.nodes[n].inputs) last[root[id]] = std::max(last[root[id]], n);
    for (int id : g.nodes[n].outputs) last[root[id]] = std::max(last[root[id]], n);
  }
  for (int id : g.outputs) last[root[id]] = end;
  return saved;
}

double min_time_us(const OpDef& def, const OpCall& call, std::span<Tensor> outputs) {
  def.cpu(call, outputs);  // warm-up (builds the library's primitive)
  double best = 1e300;
  for (int r = 0; r < 3; ++r) {
    auto start = std::chrono::steady_clock::now();
    def.cpu(call, outputs);
    best = std::min(
        best, std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start)
                  .count());
  }
  return best;
}

}  // namespace

struct Executor::Plan {
  struct Step {
    int node;
    const OpDef* def;
    Attrs attrs;
    TensorList inputs;
    TensorList outputs;
  };
  std::shared_ptr<Storage> arena;
  TensorList values;
  std::vector<Step> steps;
  PlanStats stats;
};

// Convolutions: Winograd wins at large batches and loses at small ones (a 32->64 3x3 conv
// on 14x14: 55 us Winograd, 40 us direct at batch 1). Plans know their shapes, so each
// convolution is timed both ways once, on the arena (zeroed) and the weights, and keeps the
// faster. Eager calls use the shape rule instead (conv_onednn.cc).
void Executor::choose_conv_algorithms(Plan& plan) {
  for (Plan::Step& step : plan.steps) {
    std::string_view op = step.def->name;
    if (op.substr(0, 4) != "conv" || !step.attrs.has("groups") || step.def->stateful()) continue;
    double best = 1e300;
    int64_t best_algorithm = 0;
    for (int64_t algorithm : {1, 2}) {
      step.attrs.set("algorithm", algorithm);
      OpCall call{step.inputs, step.attrs};
      double us = min_time_us(*step.def, call, step.outputs);
      if (us < best) best = us, best_algorithm = algorithm;
    }
    step.attrs.set("algorithm", best_algorithm);
  }
}

Executor::Executor(std::shared_ptr<const Graph> graph) : graph_(std::move(graph)) {
  graph_->validate();
}
Executor::~Executor() = default;

Executor::Plan& Executor::plan_for(const std::vector<Dims>& input_shapes) {
  std::vector<std::vector<int64_t>> key;
  for (const Dims& d : input_shapes) key.push_back(d.vec());
  auto it = plans_.find(key);
  if (it != plans_.end()) return *it->second;
  // A handful of shapes is the common case; a caller cycling through many shapes keeps
  // only the most recent plans.
  if (plans_.size() >= 8) plans_.erase(plans_.begin());
  const Graph& g = *graph_;
  const int nv = static_cast<int>(g.values.size());
  const int end = static_cast<int>(g.nodes.size());
  std::vector<Tensor> shapes = infer_values(g, input_shapes);

  // Views share their base's buffer: a buffer lives until the last use of any view of it.
  std::vector<int> root(nv);
  for (int id = 0; id < nv; ++id) root[id] = id;
  for (const Node& node : g.nodes) {
    if (node.def->view) root[node.outputs[0]] = root[node.inputs[0]];
  }
  auto planned = [&](int id) {
    ValueKind k = g.values[root[id]].kind;
    return k == ValueKind::input || k == ValueKind::op_output;
  };
  std::vector<int> first(nv, -1), last(nv, -1);
  for (int n = 0; n < end; ++n) {
    for (int id : g.nodes[n].inputs) last[root[id]] = std::max(last[root[id]], n);
    for (int id : g.nodes[n].outputs) {
      if (root[id] == id) first[id] = n;
      last[root[id]] = std::max(last[root[id]], n);
    }
  }
  for (int id : g.outputs) last[root[id]] = end;
  int64_t shared_bytes = reuse_inputs_in_place(g, shapes, root, last);
  std::vector<BufferRequest> requests;
  std::vector<int> request_of(nv, -1);
  for (int id = 0; id < nv; ++id) {
    if (root[id] != id || !planned(id)) continue;
    request_of[id] = static_cast<int>(requests.size());
    const Tensor& t = shapes[id];
    requests.push_back({t.numel() * static_cast<int64_t>(t.element_size()), first[id],
                        std::max(first[id], last[id])});
  }
  MemoryPlan mem = plan_memory(requests);

  auto plan = std::make_unique<Plan>();
  plan->arena =
      std::make_shared<Storage>(static_cast<size_t>(std::max<int64_t>(mem.arena_bytes, 1)));
  // Zeroed once, so that timing kernels on it at plan time reads no denormals or NaNs.
  std::memset(plan->arena->data(), 0, plan->arena->nbytes());
  plan->stats = {mem.arena_bytes, mem.naive_bytes + shared_bytes};
  plan->values.resize(nv);
  for (int id = 0; id < nv; ++id) {
    const Value& v = g.values[id];
    if (v.kind == ValueKind::constant || v.kind == ValueKind::variable) {
      plan->values[id] = v.data;
    } else if (request_of[root[id]] >= 0 &&
               !(v.kind == ValueKind::op_output && g.nodes[v.node].def->view)) {
      // Its own buffer, or (computed in place) the buffer of the input it overwrites.
      plan->values[id] = arena_tensor(plan->arena, mem.offsets[request_of[root[id]]],
                                      shapes[id].shape(), shapes[id].dtype());
    }
  }
  // Views now point into the arena (or at weights); their geometry is fixed per plan.
  NoGradGuard no_grad;
  for (int n = 0; n < end; ++n) {
    const Node& node = g.nodes[n];
    Plan::Step step{n, node.def, bind_attrs(node.attrs, bind_symbols(g, input_shapes)), {}, {}};
    for (int id : node.inputs) step.inputs.push_back(plan->values[id]);
    if (node.def->view) {
      OpCall call{step.inputs, step.attrs};
      plan->values[node.outputs[0]] = node.def->view(call);
      continue;
    }
    for (int id : node.outputs) step.outputs.push_back(plan->values[id]);
    plan->steps.push_back(std::move(step));
  }
  choose_conv_algorithms(*plan);
  return *plans_.emplace(std::move(key), std::move(plan)).first->second;
}

Executor::Plan& Executor::load_inputs(const TensorList& inputs) {
  const Graph& g = *graph_;
  check_inputs(g, inputs, "graph");
  std::vector<Dims> shapes;
  for (const Tensor& t : inputs) shapes.push_back(t.shape());
  Plan& plan = plan_for(shapes);
  NoGradGuard no_grad;
  for (size_t i = 0; i < inputs.size(); ++i) plan.values[g.inputs[i]].copy_(inputs[i]);
  return plan;
}

TensorList Executor::run(const TensorList& inputs) {
  const Graph& g = *graph_;
  std::lock_guard<std::mutex> lock(mutex_);
  Plan& plan = load_inputs(inputs);
  NoGradGuard no_grad;
  for (Plan::Step& step : plan.steps) {
    OpCall call{step.inputs, step.attrs};
    step.def->cpu(call, step.outputs);
  }
  TensorList outputs;
  for (int id : g.outputs) outputs.push_back(plan.values[id].clone());
  return outputs;
}

std::vector<double> Executor::profile(const TensorList& inputs, int runs) {
  const Graph& g = *graph_;
  std::lock_guard<std::mutex> lock(mutex_);
  NoGradGuard no_grad;
  std::vector<std::vector<double>> times(g.nodes.size());
  for (int r = 0; r < runs; ++r) {
    Plan& plan = load_inputs(inputs);
    for (Plan::Step& step : plan.steps) {
      auto start = std::chrono::steady_clock::now();
      OpCall call{step.inputs, step.attrs};
      step.def->cpu(call, step.outputs);
      times[step.node].push_back(
          std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start)
              .count());
    }
  }
  std::vector<double> medians(g.nodes.size(), 0.0);
  for (size_t n = 0; n < times.size(); ++n) {
    if (times[n].empty()) continue;
    std::nth_element(times[n].begin(), times[n].begin() + times[n].size() / 2, times[n].end());
    medians[n] = times[n][times[n].size() / 2];
  }
  return medians;
}

PlanStats Executor::stats(const std::vector<Dims>& input_shapes) {
  std::lock_guard<std::mutex> lock(mutex_);
  return plan_for(input_shapes).stats;
}

}  // namespace tessera::graph
