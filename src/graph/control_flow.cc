// cond and while_loop: the eager forms, the graph ops and their gradients (see
// control_flow.h).
//
// Node inputs, in groups:
//   cond:            pred, operands, then-branch captures, else-branch captures
//   while_loop:      loop vars, cond captures, body captures
//   while_loop_grad: history of each loop var, iteration count, body captures, output
//                    gradients, captures of the gradient body
// Each subgraph takes its operands followed by its own captures.
#include "tessera/graph/control_flow.h"

#include "tessera/autodiff/autodiff.h"
#include "tessera/graph/passes.h"
#include "tessera/ops/creation.h"
#include "tessera/ops/elementwise.h"

namespace tessera {
namespace graph {

Subgraph::Subgraph(Graph g) : graph(std::move(g)) { graph.validate(); }

TensorList Subgraph::run(const TensorList& inputs) const {
  std::call_once(made_, [&] {
    executor_ = std::make_unique<Executor>(std::make_shared<Graph>(optimize(graph)));
  });
  return executor_->run(inputs);
}

MetaList Subgraph::infer(std::span<const Tensor> inputs, const char* op) const {
  TensorList list(inputs.begin(), inputs.end());
  check_inputs(graph, list, op);
  std::vector<Dims> shapes;
  for (const Tensor& t : list) shapes.push_back(t.shape());
  std::vector<Tensor> values = infer_values(graph, shapes);
  MetaList out;
  for (int id : graph.outputs) out.push_back({values[id].shape(), values[id].dtype()});
  return out;
}

// One node through the eager ops. Fused ops and lighter forms (which passes make and which
// have no gradient rule) run as their decompositions, so that autodiff reaches through
// them.
static TensorList replay_node(const Node& node, const TensorList& ins, const Attrs& attrs) {
  if (node.def->decompose && !node.def->grad) return node.def->decompose(ins, attrs);
  return run_op(*node.def, ins, attrs);
}

TensorList replay(const Graph& g, const TensorList& inputs) {
  check(inputs.size() == g.inputs.size(), "replay", "the graph takes ", g.inputs.size(),
        " inputs, got ", inputs.size());
  std::vector<Dims> shapes;
  for (const Tensor& t : inputs) shapes.push_back(t.shape());
  std::vector<int64_t> sizes = bind_symbols(g, shapes);
  TensorList values(g.values.size());
  for (size_t i = 0; i < inputs.size(); ++i) values[g.inputs[i]] = inputs[i];
  for (size_t id = 0; id < g.values.size(); ++id) {
    const Value& v = g.values[id];
    if (v.kind == ValueKind::constant || v.kind == ValueKind::variable) values[id] = v.data;
  }
  for (const Node& node : g.nodes) {
    TensorList ins;
    for (int id : node.inputs) ins.push_back(values[id]);
    TensorList outs = replay_node(node, ins, bind_attrs(node.attrs, sizes));
    for (size_t i = 0; i < outs.size() && i < node.outputs.size(); ++i)
      values[node.outputs[i]] = outs[i];
  }
  TensorList outputs;
  for (int id : g.outputs) outputs.push_back(values[id]);
  return outputs;
}

namespace {

const Subgraph& subgraph(const Attrs& attrs, const char* name, const char* op) {
  const SubgraphAttr& s = attrs.get<SubgraphAttr>(name);
  check(s != nullptr, op, "attribute '", name, "' holds no graph");
  return *s;
}

int64_t count_attr(const Attrs& attrs, const char* name, const char* op, size_t most) {
  int64_t v = attrs.i(name);
  check(v >= 0 && static_cast<size_t>(v) <= most, op, "attribute '", name, "' is ", v,
        ", but the node has ", most, " such inputs");
  return v;
}

bool truthy(const Tensor& pred) { return pred.reshape({1}).to_vector<double>()[0] != 0.0; }

TensorList slice(std::span<const Tensor> all, size_t start, size_t count) {
  return TensorList(all.begin() + start, all.begin() + start + count);
}
TensorList concat_lists(std::initializer_list<const TensorList*> lists) {
  TensorList out;
  for (const TensorList* l : lists) out.insert(out.end(), l->begin(), l->end());
  return out;
}

std::string type_of(const TensorMeta& m) { return format_type(m.dtype, m.shape); }
std::string type_of(const Tensor& t) { return format_type(t.dtype(), t.shape()); }

// The gradient of `forward` as a traced body. It takes `like`: num_x forward-side tensors
// (those at `feed` are the forward graph's inputs, in order) followed by one gradient per
// forward output; it returns the gradient of each of the num_x tensors (zeros where none
// flows, integers included, so that every branch returns the same list).
TracedBody gradient_body(const Graph& forward, const TensorList& like,
                         const std::vector<size_t>& feed, size_t num_x) {
  return trace_body(
      [&](const TensorList& in) {
        GradModeGuard grad_mode(true);  // gradient rules run with it off (no create_graph)
        TensorList xs(in.begin(), in.begin() + static_cast<std::ptrdiff_t>(num_x));
        for (Tensor& x : xs) {
          if (is_floating(x.dtype())) x.set_requires_grad(true);
        }
        TensorList fed;
        for (size_t i : feed) fed.push_back(xs[i]);
        TensorList ys = replay(forward, fed);
        TensorList diff_ys, diff_gys, wrt;
        for (size_t j = 0; j < ys.size(); ++j) {
          if (!ys[j].requires_grad()) continue;
          diff_ys.push_back(ys[j]);
          diff_gys.push_back(in[num_x + j]);
        }
        std::vector<size_t> wrt_index;
        for (size_t i : feed) {
          if (xs[i].requires_grad()) wrt.push_back(xs[i]), wrt_index.push_back(i);
        }
        TensorList grads(num_x);
        if (!diff_ys.empty() && !wrt.empty()) {
          TensorList g = tessera::grad(diff_ys, wrt, diff_gys, false, false, true);
          for (size_t k = 0; k < g.size(); ++k) {
            if (g[k].defined()) grads[wrt_index[k]] = g[k];
          }
        }
        for (size_t i = 0; i < num_x; ++i) {
          if (!grads[i].defined()) grads[i] = zeros_like(xs[i]);
        }
        return grads;
      },
      like);
}

// Gradients of an op's inputs from the gradient of each: undefined for integer inputs.
TensorList only_floating(TensorList grads, std::span<const Tensor> inputs, size_t first) {
  for (size_t i = 0; i < grads.size(); ++i) {
    if (!is_floating(inputs[first + i].dtype())) grads[i] = Tensor();
  }
  return grads;
}

// ------------------------------------------------------------------ cond

struct CondGroups {
  size_t operands, then_captures, else_captures;
};

CondGroups cond_groups(const OpCall& c) {
  const Subgraph& then_g = subgraph(c.attrs, "then_branch", "cond");
  const Subgraph& else_g = subgraph(c.attrs, "else_branch", "cond");
  check(!c.inputs.empty(), "cond", "takes a predicate");
  const size_t rest = c.inputs.size() - 1;
  size_t k1 = static_cast<size_t>(count_attr(c.attrs, "then_captures", "cond", rest));
  check(then_g.graph.inputs.size() >= k1 && then_g.graph.inputs.size() - k1 <= rest - k1, "cond",
        "the then branch takes ", then_g.graph.inputs.size(), " inputs, ", k1,
        " of them captures, but the node has ", rest, " inputs besides the predicate");
  size_t n = then_g.graph.inputs.size() - k1;
  size_t k2 = rest - n - k1;
  check(else_g.graph.inputs.size() == n + k2, "cond", "the else branch takes ",
        else_g.graph.inputs.size(), " inputs, expected ", n, " operands and ", k2, " captures");
  return {n, k1, k2};
}

MetaList cond_infer(const OpCall& c) {
  CondGroups g = cond_groups(c);
  check(c.in(0).numel() == 1, "cond", "the predicate must have one element, got shape ",
        c.in(0).shape());
  TensorList operands = slice(c.inputs, 1, g.operands);
  TensorList then_caps = slice(c.inputs, 1 + g.operands, g.then_captures);
  TensorList else_caps = slice(c.inputs, 1 + g.operands + g.then_captures, g.else_captures);
  MetaList a = subgraph(c.attrs, "then_branch", "cond")
                   .infer(concat_lists({&operands, &then_caps}), "cond (then branch)");
  MetaList b = subgraph(c.attrs, "else_branch", "cond")
                   .infer(concat_lists({&operands, &else_caps}), "cond (else branch)");
  check(a.size() == b.size(), "cond", "the then branch returns ", a.size(),
        " tensors and the else branch ", b.size(), "; both must return the same");
  for (size_t i = 0; i < a.size(); ++i) {
    check(a[i].dtype == b[i].dtype && a[i].shape == b[i].shape, "cond", "output ", i,
          ": the then branch returns ", type_of(a[i]), " and the else branch ", type_of(b[i]),
          "; both must return the same dtype and shape");
  }
  return a;
}

void cond_cpu(const OpCall& c, std::span<Tensor> outs) {
  TracerScope untraced(nullptr);
  CondGroups g = cond_groups(c);
  bool taken = truthy(c.in(0));
  TensorList ins = slice(c.inputs, 1, g.operands);
  TensorList caps = taken ? slice(c.inputs, 1 + g.operands, g.then_captures)
                          : slice(c.inputs, 1 + g.operands + g.then_captures, g.else_captures);
  ins.insert(ins.end(), caps.begin(), caps.end());
  TensorList results = subgraph(c.attrs, taken ? "then_branch" : "else_branch", "cond").run(ins);
  for (size_t i = 0; i < outs.size(); ++i) outs[i].copy_(results[i]);
}

TensorList cond_grad(const GradCall& g);

const OpDef kCond{
    .name = "cond", .infer = cond_infer, .cpu = cond_cpu, .grad = cond_grad, .saves = kSaveInputs};
const OpRegistrar register_cond(kCond);

// The gradient is a cond on the same predicate whose branches are the gradients of the
// forward branches (recomputing the branch's forward ops): both take every forward input
// but the predicate, then the output gradients, and return a gradient for each of those
// inputs (zeros for the other branch's captures).
TensorList cond_grad(const GradCall& g) {
  OpCall call{g.inputs, g.attrs};
  CondGroups groups = cond_groups(call);
  const size_t n = groups.operands, k1 = groups.then_captures, k2 = groups.else_captures;
  const size_t num_x = n + k1 + k2;
  TensorList like = slice(g.inputs, 1, num_x);
  like.insert(like.end(), g.grad_outputs.begin(), g.grad_outputs.end());
  std::vector<size_t> then_feed, else_feed;
  for (size_t i = 0; i < n; ++i) then_feed.push_back(i), else_feed.push_back(i);
  for (size_t i = 0; i < k1; ++i) then_feed.push_back(n + i);
  for (size_t i = 0; i < k2; ++i) else_feed.push_back(n + k1 + i);
  TracedBody then_grad =
      gradient_body(subgraph(g.attrs, "then_branch", "cond").graph, like, then_feed, num_x);
  TracedBody else_grad =
      gradient_body(subgraph(g.attrs, "else_branch", "cond").graph, like, else_feed, num_x);
  TensorList inputs = {g.in(0)};
  inputs.insert(inputs.end(), like.begin(), like.end());
  inputs.insert(inputs.end(), then_grad.captures.begin(), then_grad.captures.end());
  inputs.insert(inputs.end(), else_grad.captures.begin(), else_grad.captures.end());
  Attrs attrs{{"then_branch", std::make_shared<const Subgraph>(std::move(then_grad.graph))},
              {"else_branch", std::make_shared<const Subgraph>(std::move(else_grad.graph))},
              {"then_captures", static_cast<int64_t>(then_grad.captures.size())}};
  TensorList grads = only_floating(run_op(kCond, inputs, attrs), g.inputs, 1);
  grads.insert(grads.begin(), Tensor());  // the predicate
  return grads;
}

// ------------------------------------------------------------------ while_loop

struct LoopGroups {
  size_t vars, cond_captures, body_captures;
  int64_t max_iterations;
  bool history;
};

LoopGroups loop_groups(const OpCall& c) {
  const Subgraph& cond_g = subgraph(c.attrs, "cond", "while_loop");
  const Subgraph& body_g = subgraph(c.attrs, "body", "while_loop");
  size_t n = body_g.graph.outputs.size();
  check(n <= c.inputs.size(), "while_loop", "the body returns ", n,
        " loop variables, but the node has ", c.inputs.size(), " inputs");
  size_t k1 =
      static_cast<size_t>(count_attr(c.attrs, "cond_captures", "while_loop", c.inputs.size() - n));
  size_t k2 = c.inputs.size() - n - k1;
  check(cond_g.graph.inputs.size() == n + k1 && body_g.graph.inputs.size() == n + k2, "while_loop",
        "the condition takes ", cond_g.graph.inputs.size(), " inputs and the body ",
        body_g.graph.inputs.size(), ", expected ", n + k1, " and ", n + k2, " (", n,
        " loop variables, then captures)");
  int64_t m = c.attrs.i("maximum_iterations");
  check(m >= -1, "while_loop", "maximum_iterations is ", m);
  bool history = c.attrs.b("keep_history");
  check(!history || m >= 0, "while_loop", "keeping history needs maximum_iterations");
  return {n, k1, k2, m, history};
}

MetaList loop_infer(const OpCall& c) {
  LoopGroups g = loop_groups(c);
  TensorList vars = slice(c.inputs, 0, g.vars);
  TensorList cond_caps = slice(c.inputs, g.vars, g.cond_captures);
  TensorList body_caps = slice(c.inputs, g.vars + g.cond_captures, g.body_captures);
  MetaList p = subgraph(c.attrs, "cond", "while_loop")
                   .infer(concat_lists({&vars, &cond_caps}), "while_loop (condition)");
  check(p.size() == 1 && shape_numel(p[0].shape) == 1, "while_loop",
        "the condition must return one one-element tensor");
  MetaList next = subgraph(c.attrs, "body", "while_loop")
                      .infer(concat_lists({&vars, &body_caps}), "while_loop (body)");
  MetaList out;
  for (size_t i = 0; i < g.vars; ++i) {
    check(next[i].dtype == vars[i].dtype() && next[i].shape == vars[i].shape(), "while_loop",
          "the body turns loop variable ", i, " from ", type_of(vars[i]), " into ",
          type_of(next[i]), "; loop variables keep their dtype and shape");
    out.push_back(next[i]);
  }
  if (g.history) {
    out.push_back({Shape{}, DType::Int64});
    for (size_t i = 0; i < g.vars; ++i) {
      Dims rows = vars[i].shape();
      rows.insert(0, g.max_iterations);
      out.push_back({rows, vars[i].dtype()});
    }
  }
  return out;
}

void loop_cpu(const OpCall& c, std::span<Tensor> outs) {
  TracerScope untraced(nullptr);
  NoGradGuard no_grad;
  LoopGroups g = loop_groups(c);
  const Subgraph& cond_g = subgraph(c.attrs, "cond", "while_loop");
  const Subgraph& body_g = subgraph(c.attrs, "body", "while_loop");
  TensorList vars = slice(c.inputs, 0, g.vars);
  TensorList cond_caps = slice(c.inputs, g.vars, g.cond_captures);
  TensorList body_caps = slice(c.inputs, g.vars + g.cond_captures, g.body_captures);
  int64_t count = 0;
  while (g.max_iterations < 0 || count < g.max_iterations) {
    if (!truthy(cond_g.run(concat_lists({&vars, &cond_caps}))[0])) break;
    if (g.history) {
      for (size_t i = 0; i < g.vars; ++i) outs[g.vars + 1 + i].select(0, count).copy_(vars[i]);
    }
    vars = body_g.run(concat_lists({&vars, &body_caps}));
    ++count;
  }
  for (size_t i = 0; i < g.vars; ++i) outs[i].copy_(vars[i]);
  if (g.history) outs[g.vars].fill_(count);
}

TensorList loop_grad(const GradCall& g);

const OpDef kWhileLoop{.name = "while_loop",
                       .infer = loop_infer,
                       .cpu = loop_cpu,
                       .grad = loop_grad,
                       .saves = kSaveInputs | kSaveOutputs};
const OpRegistrar register_while_loop(kWhileLoop);

// ------------------------------------------------------------------ while_loop_grad

struct LoopGradGroups {
  size_t vars, captures, grad_captures;
};

LoopGradGroups loop_grad_groups(const OpCall& c) {
  const Subgraph& body = subgraph(c.attrs, "body_grad", "while_loop_grad");
  size_t n =
      static_cast<size_t>(count_attr(c.attrs, "loop_vars", "while_loop_grad", c.inputs.size()));
  size_t k =
      static_cast<size_t>(count_attr(c.attrs, "captures", "while_loop_grad", c.inputs.size()));
  check(2 * n + k + 1 <= c.inputs.size(), "while_loop_grad", "has ", c.inputs.size(),
        " inputs, fewer than ", 2 * n + k + 1);
  size_t d = c.inputs.size() - (2 * n + k + 1);
  check(body.graph.inputs.size() == 2 * n + k + d && body.graph.outputs.size() == n + k,
        "while_loop_grad", "the gradient body takes ", body.graph.inputs.size(),
        " inputs and returns ", body.graph.outputs.size(), ", expected ", 2 * n + k + d, " and ",
        n + k);
  return {n, k, d};
}

MetaList loop_grad_infer(const OpCall& c) {
  LoopGradGroups g = loop_grad_groups(c);
  check(c.in(g.vars).numel() == 1 && c.in(g.vars).dtype() == DType::Int64, "while_loop_grad",
        "the iteration count must be one int64, got ", type_of(c.in(g.vars)));
  TensorList ins;
  for (size_t i = 0; i < g.vars; ++i) {
    const Tensor& h = c.in(i);
    check(h.dim() >= 1, "while_loop_grad", "history ", i, " has no iteration axis");
    ins.push_back(Tensor::symbolic(Dims(h.shape().begin() + 1, h.shape().end()), h.dtype()));
  }
  TensorList rest = slice(c.inputs, g.vars + 1, c.inputs.size() - g.vars - 1);
  ins.insert(ins.end(), rest.begin(), rest.end());
  MetaList out = subgraph(c.attrs, "body_grad", "while_loop_grad").infer(ins, "while_loop_grad");
  for (size_t i = 0; i < g.vars; ++i) {
    const Tensor& dy = c.in(g.vars + 1 + g.captures + i);
    check(out[i].dtype == dy.dtype() && out[i].shape == dy.shape(), "while_loop_grad",
          "the gradient body returns ", type_of(out[i]), " for loop variable ", i, ", expected ",
          type_of(dy));
  }
  return out;
}

void loop_grad_cpu(const OpCall& c, std::span<Tensor> outs) {
  TracerScope untraced(nullptr);
  NoGradGuard no_grad;
  LoopGradGroups g = loop_grad_groups(c);
  const Subgraph& body = subgraph(c.attrs, "body_grad", "while_loop_grad");
  const int64_t count = c.in(g.vars).reshape({1}).to_vector<int64_t>()[0];
  const int64_t rows = c.in(0).dim() >= 1 && g.vars > 0 ? c.in(0).shape()[0] : 0;
  check(count >= 0 && count <= rows, "while_loop_grad", "iteration count ", count,
        " is outside the history's ", rows, " rows");
  TensorList caps = slice(c.inputs, g.vars + 1, g.captures);
  TensorList grads = slice(c.inputs, g.vars + 1 + g.captures, g.vars);
  TensorList grad_caps = slice(c.inputs, 2 * g.vars + 1 + g.captures, g.grad_captures);
  for (size_t j = 0; j < g.captures; ++j) outs[g.vars + j].zero_();
  for (int64_t k = count - 1; k >= 0; --k) {
    TensorList state;
    for (size_t i = 0; i < g.vars; ++i) state.push_back(c.in(i).select(0, k));
    TensorList r = body.run(concat_lists({&state, &caps, &grads, &grad_caps}));
    grads = slice(r, 0, g.vars);
    for (size_t j = 0; j < g.captures; ++j) {
      outs[g.vars + j].copy_(add(outs[g.vars + j], r[g.vars + j]));
    }
  }
  for (size_t i = 0; i < g.vars; ++i) outs[i].copy_(grads[i]);
}

const OpDef kWhileLoopGrad{.name = "while_loop_grad",
                           .infer = loop_grad_infer,
                           .cpu = loop_grad_cpu,
                           .saves = kSaveNothing};
const OpRegistrar register_while_loop_grad(kWhileLoopGrad);

// Runs the body's gradient backwards over the iterations the forward loop kept.
TensorList loop_grad(const GradCall& g) {
  OpCall call{g.inputs, g.attrs};
  LoopGroups groups = loop_groups(call);
  const size_t n = groups.vars, k1 = groups.cond_captures, k2 = groups.body_captures;
  check(groups.history, "while_loop",
        "gradients through a traced while_loop need maximum_iterations (the loop then keeps "
        "each iteration's variables for the backward pass)");
  TensorList like = slice(g.inputs, 0, n);
  TensorList body_caps = slice(g.inputs, n + k1, k2);
  like.insert(like.end(), body_caps.begin(), body_caps.end());
  TensorList dys = slice(g.grad_outputs, 0, n);
  like.insert(like.end(), dys.begin(), dys.end());
  std::vector<size_t> feed;
  for (size_t i = 0; i < n + k2; ++i) feed.push_back(i);
  TracedBody body_grad =
      gradient_body(subgraph(g.attrs, "body", "while_loop").graph, like, feed, n + k2);
  TensorList inputs = slice(g.outputs, n + 1, n);  // the history
  inputs.push_back(g.out(n));                      // the iteration count
  inputs.insert(inputs.end(), body_caps.begin(), body_caps.end());
  inputs.insert(inputs.end(), dys.begin(), dys.end());
  inputs.insert(inputs.end(), body_grad.captures.begin(), body_grad.captures.end());
  Attrs attrs{{"body_grad", std::make_shared<const Subgraph>(std::move(body_grad.graph))},
              {"loop_vars", static_cast<int64_t>(n)},
              {"captures", static_cast<int64_t>(k2)}};
  TensorList d = run_op(kWhileLoopGrad, inputs, attrs);
  TensorList grads = only_floating(slice(d, 0, n), g.inputs, 0);
  grads.resize(n + k1);  // the condition's captures get none
  TensorList dcaps = only_floating(slice(d, n, k2), g.inputs, n + k1);
  grads.insert(grads.end(), dcaps.begin(), dcaps.end());
  return grads;
}

}  // namespace
}  // namespace graph

// ------------------------------------------------------------------ the user-facing calls

TensorList cond(const Tensor& pred, const graph::GraphFn& then_fn, const graph::GraphFn& else_fn,
                const TensorList& operands) {
  check_defined(pred, "cond", "pred");
  if (active_tracer() == nullptr || !pred.is_symbolic()) {
    // Eager, or a predicate known while tracing: only the branch taken runs (is traced).
    check(pred.numel() == 1, "cond", "the predicate must have one element, got shape ",
          pred.shape());
    bool taken;
    {
      TracerScope untraced(nullptr);
      taken = graph::truthy(pred);
    }
    return taken ? then_fn(operands) : else_fn(operands);
  }
  graph::TracedBody then_b = graph::trace_body(then_fn, operands);
  graph::TracedBody else_b = graph::trace_body(else_fn, operands);
  TensorList inputs = {pred};
  inputs.insert(inputs.end(), operands.begin(), operands.end());
  inputs.insert(inputs.end(), then_b.captures.begin(), then_b.captures.end());
  inputs.insert(inputs.end(), else_b.captures.begin(), else_b.captures.end());
  Attrs attrs{{"then_branch", std::make_shared<const graph::Subgraph>(std::move(then_b.graph))},
              {"else_branch", std::make_shared<const graph::Subgraph>(std::move(else_b.graph))},
              {"then_captures", static_cast<int64_t>(then_b.captures.size())}};
  return run_op(graph::kCond, inputs, attrs);
}

TensorList while_loop(const graph::GraphFn& cond_fn, const graph::GraphFn& body_fn,
                      const TensorList& loop_vars, int64_t maximum_iterations) {
  check(maximum_iterations >= -1, "while_loop", "maximum_iterations is ", maximum_iterations,
        "; use -1 for no limit");
  for (const Tensor& t : loop_vars) check_defined(t, "while_loop", "loop_vars");
  if (active_tracer() == nullptr) {
    TensorList vars = loop_vars;
    for (int64_t count = 0; maximum_iterations < 0 || count < maximum_iterations; ++count) {
      TensorList p = cond_fn(vars);
      check(p.size() == 1 && p[0].defined() && p[0].numel() == 1, "while_loop",
            "the condition must return one one-element tensor");
      if (!graph::truthy(p[0])) break;
      TensorList next = body_fn(vars);
      check(next.size() == vars.size(), "while_loop", "the body returns ", next.size(),
            " tensors for ", vars.size(), " loop variables");
      for (size_t i = 0; i < vars.size(); ++i) {
        check(next[i].dtype() == vars[i].dtype() && next[i].shape() == vars[i].shape(),
              "while_loop", "the body turns loop variable ", i, " from ", graph::type_of(vars[i]),
              " into ", graph::type_of(next[i]), "; loop variables keep their dtype and shape");
      }
      vars = std::move(next);
    }
    return vars;
  }
  graph::TracedBody cond_b = graph::trace_body(cond_fn, loop_vars);
  graph::TracedBody body_b = graph::trace_body(body_fn, loop_vars);
  check(body_b.graph.outputs.size() == loop_vars.size(), "while_loop", "the body returns ",
        body_b.graph.outputs.size(), " tensors for ", loop_vars.size(), " loop variables");
  bool differentiable = false;
  for (const TensorList* list : {&loop_vars, static_cast<const TensorList*>(&body_b.captures)}) {
    for (const Tensor& t : *list) differentiable = differentiable || t.requires_grad();
  }
  bool history = maximum_iterations >= 0 && differentiable && grad_enabled();
  TensorList inputs = loop_vars;
  inputs.insert(inputs.end(), cond_b.captures.begin(), cond_b.captures.end());
  inputs.insert(inputs.end(), body_b.captures.begin(), body_b.captures.end());
  Attrs attrs{{"cond", std::make_shared<const graph::Subgraph>(std::move(cond_b.graph))},
              {"body", std::make_shared<const graph::Subgraph>(std::move(body_b.graph))},
              {"cond_captures", static_cast<int64_t>(cond_b.captures.size())},
              {"maximum_iterations", maximum_iterations},
              {"keep_history", history}};
  TensorList outputs = run_op(graph::kWhileLoop, inputs, attrs);
  outputs.resize(loop_vars.size());
  return outputs;
}

}  // namespace tessera
