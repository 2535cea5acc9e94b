// The graph executor (see executor.h).
#include "tessera/graph/executor.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <exception>

#include "tessera/autodiff/autodiff.h"
#include "tessera/core/allocator.h"
#include "tessera/core/parallel.h"
#include "tessera/core/storage.h"
#include "tessera/graph/memory_plan.h"
#include "tessera/graph/schedule.h"

namespace tessera::graph {

std::vector<int64_t> bind_symbols(const Graph& g, const std::vector<Dims>& input_shapes) {
  // The shapes come from callers (stats(), infer_values()) as well as from checked inputs.
  check(input_shapes.size() == g.inputs.size(), "graph", "expects ", g.inputs.size(),
        " input shapes, got ", input_shapes.size());
  for (size_t i = 0; i < input_shapes.size(); ++i) {
    const Dims& want = g.values[g.inputs[i]].shape;
    bool ok = input_shapes[i].size() == want.size();
    for (size_t a = 0; ok && a < want.size(); ++a) {
      ok = input_shapes[i][a] >= 0 && (want[a] == kUnknownDim || want[a] == input_shapes[i][a]);
    }
    if (!ok) fail("graph", "input shape ", i, " is ", input_shapes[i], ", expected ", want);
  }
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

// Ops whose output may take the head of a larger input's buffer (InPlace::head_of_input),
// after which only the output's bytes of it stay in use. They run on one thread when
// computing in place, so only inputs that would run on one thread anyway (or all runs use
// one) shrink.
bool shrinks_in_place(const OpDef& def, int64_t input_elements) {
  return def.in_place == InPlace::head_of_input &&
         (input_elements <= kParallelGrain || num_threads() == 1);
}

// Views share their base's buffer: the value each value's bytes belong to.
std::vector<int> view_roots(const Graph& g) {
  std::vector<int> root(g.values.size());
  for (size_t id = 0; id < root.size(); ++id) root[id] = static_cast<int>(id);
  for (const Node& node : g.nodes) {
    if (node.def->view) root[node.outputs[0]] = root[node.inputs[0]];
  }
  return root;
}

// When each node runs: its wave (schedule.h), -1 for views (they run at plan time).
struct NodeTimes {
  std::vector<int> time;    // per node
  std::vector<bool> alone;  // per node: the only step of its wave
  int end = 0;              // number of waves
};

// A buffer whose tail is free after some step (BufferRequest::bytes_after).
struct Shrink {
  int64_t bytes_after = -1;
  int at = 0;
};

// Lets outputs of in-place-safe nodes share the buffer of an input that dies at that node
// (same shape, float32, not a view) when nothing else runs in its wave, and outputs of
// shrinking nodes the head of such an input (at most one shrink per buffer); then
// recomputes buffer roots and lifetimes and fills `shrink` per root. Returns the bytes
// those outputs would have had of their own.
int64_t reuse_inputs_in_place(const Graph& g, const std::vector<Tensor>& shapes,
                              const NodeTimes& times, std::vector<int>& root,
                              std::vector<int>& last, std::vector<Shrink>& shrink) {
  const int nv = static_cast<int>(g.values.size()), end = static_cast<int>(g.nodes.size());
  std::vector<int> alias(nv, -1);
  shrink.assign(nv, Shrink{});
  auto base_of = [&](int id) {  // the buffer an aliased value ends up in
    while (alias[id] >= 0) id = alias[id];
    return id;
  };
  int64_t saved = 0;
  for (int n = 0; n < end; ++n) {
    const Node& node = g.nodes[n];
    if (node.outputs.size() != 1 || !times.alone[n]) continue;
    const bool same_shape = node.def->in_place == InPlace::same_shape;
    int o = node.outputs[0];
    for (int i : node.inputs) {
      ValueKind k = g.values[i].kind;
      bool buffer = k == ValueKind::input || k == ValueKind::op_output;
      // Sizes past 2^58 elements (hostile files) are left to memory_layout to report.
      if (!buffer || root[i] != i || last[i] != times.time[n] ||
          shapes[i].dtype() != DType::Float32 || shapes[o].dtype() != DType::Float32 ||
          shapes[o].numel() > (int64_t{1} << 58)) {
        continue;
      }
      const int64_t bytes = shapes[o].numel() * 4;
      if (same_shape && shapes[i].shape() == shapes[o].shape()) {
        alias[o] = i;
      } else if (shrinks_in_place(*node.def, shapes[i].numel()) &&
                 shapes[i].numel() >= shapes[o].numel() && shrink[base_of(i)].bytes_after < 0) {
        alias[o] = i;
        shrink[base_of(i)] = {bytes, times.time[n]};
      } else {
        continue;
      }
      saved = std::min(saved + bytes, int64_t{1} << 62);  // bytes <= 2^60: no overflow
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
    for (int id : g.nodes[n].inputs) last[root[id]] = std::max(last[root[id]], times.time[n]);
    for (int id : g.nodes[n].outputs) last[root[id]] = std::max(last[root[id]], times.time[n]);
  }
  for (int id : g.outputs) last[root[id]] = times.end;
  return saved;
}

// Dependencies between steps (non-view nodes, in graph order): a step waits for the
// producers of the buffers it reads and, where it writes a variable, for every other step
// that touches that variable earlier; later steps that touch it wait for the writer.
std::vector<Wave> schedule_steps(const Graph& g, const std::vector<int>& root,
                                 const std::vector<int>& step_of_node, int steps) {
  std::vector<std::vector<int>> after(steps), reads(steps);
  std::vector<std::vector<int>> touching(g.values.size());  // steps so far, per variable
  std::vector<int> writer(g.values.size(), -1);             // last step writing it
  auto wait = [](std::vector<int>& list, int t) {
    if (std::find(list.begin(), list.end(), t) == list.end()) list.push_back(t);
  };
  for (size_t n = 0; n < g.nodes.size(); ++n) {
    const int s = step_of_node[n];
    if (s < 0) continue;
    const Node& node = g.nodes[n];
    for (size_t i = 0; i < node.inputs.size(); ++i) {
      int base = root[node.inputs[i]];
      const Value& v = g.values[base];
      if (v.kind == ValueKind::op_output) {
        wait(after[s], step_of_node[v.node]);
        wait(reads[s], step_of_node[v.node]);
      }
      if (writer[base] >= 0 && writer[base] != s) wait(after[s], writer[base]);
      if (node.def->writes_input(i)) {
        for (int t : touching[base]) {
          if (t != s) wait(after[s], t);
        }
        writer[base] = s;
      }
      touching[base].push_back(s);
    }
  }
  return schedule_waves(after, reads);
}

// Kernel choices made so far in this process, by kernel call (choose_kernel_algorithms).
std::mutex& kernel_choice_mutex() {
  static std::mutex mutex;
  return mutex;
}
std::map<std::string, size_t>& kernel_choices() {
  static auto* choices = new std::map<std::string, size_t>();  // never freed: used at exit
  return *choices;
}

double median(std::vector<double> v) {
  std::nth_element(v.begin(), v.begin() + v.size() / 2, v.end());
  return v[v.size() / 2];
}

}  // namespace

struct Executor::Plan {
  struct Step {
    int node;
    const OpDef* def;
    Attrs attrs;
    TensorList inputs;
    TensorList outputs;
    void run() {
      OpCall call{inputs, attrs};
      def->cpu(call, outputs);
    }
  };
  std::shared_ptr<Storage> arena;
  TensorList values;
  std::vector<Step> steps;
  std::vector<Wave> waves;       // of indices into steps (schedule.h)
  std::vector<bool> concurrent;  // per wave: run its steps on several threads
  PlanStats stats;
};

namespace {

std::atomic<bool> inter_op_enabled{true};

// Runs the branches of a wave on the intra-op threads, one branch per thread (a kernel
// there runs single-threaded). Rethrows the first error once all have finished.
template <typename Steps>
void run_together(Steps& steps, const Wave& wave) {
  std::exception_ptr error;
  std::mutex error_mutex;
  parallel_for(0, static_cast<int64_t>(wave.branches.size()), 1, [&](int64_t lo, int64_t hi) {
    NoGradGuard no_grad;  // grad mode is per thread
    for (int64_t b = lo; b < hi; ++b) {
      try {
        for (int s : wave.branches[b]) steps[s].run();
      } catch (...) {
        std::lock_guard<std::mutex> lock(error_mutex);
        if (!error) error = std::current_exception();
      }
    }
  });
  if (error) std::rethrow_exception(error);
}

template <typename Steps>
void run_in_order(Steps& steps, const Wave& wave) {
  for (const std::vector<int>& branch : wave.branches) {
    for (int s : branch) steps[s].run();
  }
}

// Steps that are safe to run at plan time for timing: they only write their outputs.
bool timeable(const OpDef& def, const Attrs& attrs) {
  if (def.stateful() || def.draws_random) return false;  // a draw would advance the generator
  for (const auto& [name, value] : attrs.items()) {
    if (std::holds_alternative<SubgraphAttr>(value)) return false;  // may loop on zeros
  }
  return true;
}

}  // namespace

void set_inter_op_parallelism(bool enabled) { inter_op_enabled = enabled; }
bool inter_op_parallelism() { return inter_op_enabled; }

// Independent steps found by hazard analysis run together only where that is faster: two
// small kernels gain from a thread each, but a large one loses its intra-op threads. Each
// wave of more than one step is timed both ways when the plan is made (kernels on the
// zeroed arena, as for convolutions) and keeps the faster.
namespace {

template <typename Steps>
std::vector<StepAccess> step_accesses(const Steps& steps) {
  std::vector<StepAccess> access;
  for (const auto& step : steps) {
    StepAccess a;
    for (size_t i = 0; i < step.inputs.size(); ++i) {
      MemoryRegion r = region_of(step.inputs[i]);
      if (r.storage == nullptr) continue;
      a.reads.push_back(r);
      if (step.def->writes_input(i)) a.writes.push_back(r);
    }
    for (const Tensor& t : step.outputs) {
      MemoryRegion r = region_of(t);
      if (r.storage != nullptr) a.writes.push_back(r);
    }
    access.push_back(std::move(a));
  }
  return access;
}

// Whether no branch of the wave writes bytes another touches: a check of the schedule
// and the memory plan against the tensors the kernels will actually get.
bool hazard_free(const Wave& wave, const std::vector<StepAccess>& access) {
  for (size_t a = 0; a < wave.branches.size(); ++a) {
    for (size_t b = a + 1; b < wave.branches.size(); ++b) {
      for (int x : wave.branches[a]) {
        for (int y : wave.branches[b]) {
          if (!independent(access[x], access[y])) return false;
        }
      }
    }
  }
  return true;
}

}  // namespace

// Independent branches run together only where that is faster: two small kernels gain
// from a thread each, but a large one loses its intra-op threads. Each wave of several
// branches is timed both ways when the plan is made (kernels on the zeroed arena, as for
// convolutions) and keeps the faster. plan_for hands it only waves whose calls may run at
// plan time (no variable writes, random draws or control flow); the others run in order.
void Executor::choose_concurrency(Plan& plan) {
  std::vector<StepAccess> access = step_accesses(plan.steps);
  for (size_t w = 0; w < plan.waves.size(); ++w) {
    const Wave& wave = plan.waves[w];
    if (wave.branches.size() < 2 || !hazard_free(wave, access)) continue;
    auto time_us = [&](bool together) {
      double best = 1e300;
      for (int r = 0; r < 4; ++r) {  // the first is a warm-up
        auto start = std::chrono::steady_clock::now();
        if (together) {
          run_together(plan.steps, wave);
        } else {
          run_in_order(plan.steps, wave);
        }
        double us =
            std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start)
                .count();
        if (r > 0) best = std::min(best, us);
      }
      return best;
    };
    try {
      double apart = time_us(false), together = time_us(true);
      plan.concurrent[w] = together < 0.95 * apart;
    } catch (const Error&) {
      // A kernel that refuses the zeroed arena (an index check) simply runs in order.
    }
  }
  plan.stats.concurrent_waves =
      static_cast<int>(std::count(plan.concurrent.begin(), plan.concurrent.end(), true));
}

void Executor::confirm_concurrency(Plan& plan) {
  std::vector<StepAccess> access = step_accesses(plan.steps);
  for (size_t w = 0; w < plan.waves.size(); ++w) {
    plan.concurrent[w] = plan.waves[w].branches.size() > 1 && hazard_free(plan.waves[w], access);
  }
  plan.stats.concurrent_waves =
      static_cast<int>(std::count(plan.concurrent.begin(), plan.concurrent.end(), true));
}

void Executor::run_steps(Plan& plan) {
  const bool together = inter_op_enabled;
  for (size_t w = 0; w < plan.waves.size(); ++w) {
    if (together && plan.concurrent[w]) {
      run_together(plan.steps, plan.waves[w]);
    } else {
      run_in_order(plan.steps, plan.waves[w]);
    }
  }
}

// Kernel choices that depend on shapes (OpDef::tunable: convolution algorithm and layout,
// threads of float32 products), timed once per plan on the arena (zeroed) and the
// weights, keeping the faster; eager calls use fixed shape rules instead.
void Executor::choose_kernel_algorithms(Plan& plan) {
  for (Plan::Step& step : plan.steps) {
    if (step.def->stateful()) continue;
    std::vector<Attrs> choices;
    if (step.def->tunable) choices = step.def->tunable(step.outputs);
    if (choices.empty()) continue;
    auto apply = [&](const Attrs& choice) {
      for (const auto& [name, value] : choice.items()) step.attrs.set(name, value);
    };
    // The choices may sum in different orders, so a process decides once per kernel call
    // (op, attributes, operand shapes and strides, threads): every plan with that call,
    // a reloaded model's included, then computes the same bits.
    std::string key = str_cat(step.def->name, "|", num_threads(), "|", format_attrs(step.attrs));
    for (const Tensor& t : step.inputs) key += str_cat("|", t.shape(), t.strides());
    {
      std::lock_guard<std::mutex> lock(kernel_choice_mutex());
      auto known = kernel_choices().find(key);
      if (known != kernel_choices().end()) {
        apply(choices[known->second]);
        continue;
      }
    }
    // Rounds interleave the choices, so that a burst of load on this shared machine hits
    // all of them; the median of each decides. The first choice (one thread, direct,
    // plain) stays unless another is at least 10% faster: its timing is the steadier.
    std::vector<std::vector<double>> times(choices.size());
    for (int round = 0; round < 8; ++round) {
      for (size_t i = 0; i < choices.size(); ++i) {
        apply(choices[i]);
        OpCall call{step.inputs, step.attrs};
        if (round == 0) step.def->cpu(call, step.outputs);  // warm-up (builds primitives)
        auto start = std::chrono::steady_clock::now();
        step.def->cpu(call, step.outputs);
        times[i].push_back(
            std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start)
                .count());
      }
    }
    size_t winner = 0;
    double best = median(times[0]);
    for (size_t i = 1; i < choices.size(); ++i) {
      double us = median(times[i]);
      if (us < 0.9 * best) best = us, winner = i;
    }
    apply(choices[winner]);
    std::lock_guard<std::mutex> lock(kernel_choice_mutex());
    if (kernel_choices().size() > 4096) kernel_choices().clear();  // odd workloads: bounded
    kernel_choices().emplace(key, winner);
  }
}

Executor::Executor(std::shared_ptr<const Graph> graph) : graph_(std::move(graph)) {
  graph_->validate();
}
Executor::~Executor() = default;

namespace {

// Where each buffer lives for a schedule (see make_plan).
struct Layout {
  std::vector<int> root;        // per value: the value whose buffer it uses
  std::vector<int> request_of;  // per root value: its buffer request, -1 if not planned
  MemoryPlan memory;
  int64_t in_place_bytes = 0;  // bytes saved by computing in place
};

}  // namespace

Layout memory_layout(const Graph& g, const std::vector<Tensor>& shapes,
                     const std::vector<Wave>& waves) {
  const int nv = static_cast<int>(g.values.size());
  const int end = static_cast<int>(g.nodes.size());
  Layout out;
  std::vector<int>& root = out.root;
  root = view_roots(g);
  auto planned = [&](int id) {
    ValueKind k = g.values[root[id]].kind;
    return k == ValueKind::input || k == ValueKind::op_output;
  };
  // Lifetimes are counted in waves, so that buffers of branches that may run together
  // never share bytes.
  std::vector<int> node_of_step;
  for (int n = 0; n < end; ++n) {
    if (!g.nodes[n].def->view) node_of_step.push_back(n);
  }
  NodeTimes times{std::vector<int>(end, -1), std::vector<bool>(end, false),
                  static_cast<int>(waves.size())};
  for (size_t w = 0; w < waves.size(); ++w) {
    for (const std::vector<int>& branch : waves[w].branches) {
      for (int s : branch) {
        times.time[node_of_step[s]] = static_cast<int>(w);
        times.alone[node_of_step[s]] = waves[w].branches.size() == 1 && branch.size() == 1;
      }
    }
  }
  std::vector<int> first(nv, -1), last(nv, -1);
  for (int n = 0; n < end; ++n) {
    for (int id : g.nodes[n].inputs) last[root[id]] = std::max(last[root[id]], times.time[n]);
    for (int id : g.nodes[n].outputs) {
      if (root[id] == id) first[id] = times.time[n];
      last[root[id]] = std::max(last[root[id]], times.time[n]);
    }
  }
  for (int id : g.outputs) last[root[id]] = times.end;
  std::vector<Shrink> shrink;
  out.in_place_bytes = reuse_inputs_in_place(g, shapes, times, root, last, shrink);
  std::vector<BufferRequest> requests;
  out.request_of.assign(nv, -1);
  // Sizes from hostile files can overflow: the sum of all buffers bounds every offset the
  // planner computes, so it must stay well inside int64.
  int64_t total = 0;
  for (int id = 0; id < nv; ++id) {
    if (root[id] != id || !planned(id)) continue;
    out.request_of[id] = static_cast<int>(requests.size());
    const Tensor& t = shapes[id];
    int64_t bytes = 0;
    check(!__builtin_mul_overflow(t.numel(), static_cast<int64_t>(t.element_size()), &bytes) &&
              !__builtin_add_overflow(total, bytes, &total) && total <= (int64_t{1} << 60),
          "graph", "value ", id, " (shape ", t.shape(), ") takes the graph's buffers past ",
          "2^60 bytes");
    requests.push_back(
        {bytes, first[id], std::max(first[id], last[id]), shrink[id].bytes_after, shrink[id].at});
  }
  out.memory = plan_memory(requests);
  return out;
}

Executor::Plan& Executor::plan_for(const std::vector<Dims>& input_shapes) {
  std::vector<std::vector<int64_t>> key;
  for (const Dims& d : input_shapes) key.push_back(d.vec());
  auto it = plans_.find(key);
  if (it != plans_.end()) return *it->second;
  // A handful of shapes is the common case; a caller cycling through many shapes keeps
  // only the most recent plans.
  if (plans_.size() >= 8) plans_.erase(plans_.begin());
  const Graph& g = *graph_;
  const int end = static_cast<int>(g.nodes.size());
  std::vector<Tensor> shapes = infer_values(g, input_shapes);
  std::vector<int> step_of_node(end, -1);
  int steps = 0;
  for (int n = 0; n < end; ++n) {
    if (!g.nodes[n].def->view) step_of_node[n] = steps++;
  }
  std::vector<Wave> waves = schedule_steps(g, view_roots(g), step_of_node, steps);
  std::vector<int> node_of_step(steps);
  for (int n = 0; n < end; ++n) {
    if (step_of_node[n] >= 0) node_of_step[step_of_node[n]] = n;
  }
  // Waves of several branches that may be timed when the plan is made; the others are
  // laid out step by step.
  auto candidate = [&](const Wave& wave) {
    if (wave.branches.size() < 2) return false;
    for (const std::vector<int>& branch : wave.branches) {
      for (int s : branch) {
        const Node& node = g.nodes[node_of_step[s]];
        if (!timeable(*node.def, node.attrs)) return false;
      }
    }
    return true;
  };
  auto flatten_unless = [](const std::vector<Wave>& in, const std::vector<bool>& keep) {
    std::vector<Wave> out;
    for (size_t w = 0; w < in.size(); ++w) {
      if (keep[w]) {
        out.push_back(in[w]);
        continue;
      }
      for (const std::vector<int>& branch : in[w].branches) {
        for (int s : branch) out.push_back(Wave{{{s}}});
      }
    }
    return out;
  };
  std::vector<bool> candidates(waves.size());
  for (size_t w = 0; w < waves.size(); ++w) candidates[w] = candidate(waves[w]);
  const bool try_together = inter_op_enabled && num_threads() > 1 &&
                            std::count(candidates.begin(), candidates.end(), true) > 0;
  // The graph's own order, one step at a time: the plan unless branches run together.
  std::vector<Wave> in_order;
  for (int s = 0; s < steps; ++s) in_order.push_back(Wave{{{s}}});
  if (!try_together) {
    std::unique_ptr<Plan> plan = make_plan(g, shapes, input_shapes, std::move(in_order));
    choose_kernel_algorithms(*plan);
    // Timing left values all over the arena, also in bytes no run writes (between and
    // past buffers) that vector kernels load and ignore; zeroed again they hold no
    // denormals (the CNN's batch-1 inference measured 75-90 us instead of 46 us without).
    std::memset(plan->arena->data(), 0, plan->arena->nbytes());
    return *plans_.emplace(std::move(key), std::move(plan)).first->second;
  }
  // A trial plan whose candidate waves may run their branches together chooses the
  // kernels and which of those waves gain from it.
  std::vector<Attrs> chosen_attrs;
  std::vector<Wave> mixed;  // the waves that gained, the rest step by step
  int together = 0;
  {
    std::vector<Wave> trial_waves = flatten_unless(waves, candidates);
    std::unique_ptr<Plan> trial = make_plan(g, shapes, input_shapes, trial_waves);
    choose_kernel_algorithms(*trial);
    choose_concurrency(*trial);
    for (Plan::Step& step : trial->steps) chosen_attrs.push_back(std::move(step.attrs));
    together = trial->stats.concurrent_waves;
    mixed = flatten_unless(trial_waves, trial->concurrent);
  }
  // The trial's arena (and buffers its timing left in the allocator's cache) would
  // otherwise stay resident beside the final plan's arena.
  empty_host_cache();
  // Waves come in as-soon-as-possible order, which can keep buffers alive longer: keep
  // the graph's order unless running together costs little memory.
  std::vector<Wave>* final_waves = &in_order;
  if (together > 0) {
    int64_t mixed_bytes = memory_layout(g, shapes, mixed).memory.arena_bytes;
    int64_t in_order_bytes = memory_layout(g, shapes, in_order).memory.arena_bytes;
    if (mixed_bytes <= in_order_bytes + std::max<int64_t>(in_order_bytes / 10, 1 << 20)) {
      final_waves = &mixed;
    }
  }
  std::unique_ptr<Plan> plan = make_plan(g, shapes, input_shapes, std::move(*final_waves));
  for (size_t s = 0; s < plan->steps.size(); ++s) plan->steps[s].attrs = chosen_attrs[s];
  confirm_concurrency(*plan);
  return *plans_.emplace(std::move(key), std::move(plan)).first->second;
}

std::unique_ptr<Executor::Plan> Executor::make_plan(const Graph& g,
                                                    const std::vector<Tensor>& shapes,
                                                    const std::vector<Dims>& input_shapes,
                                                    std::vector<Wave> waves) {
  const int nv = static_cast<int>(g.values.size());
  const int end = static_cast<int>(g.nodes.size());
  Layout layout = memory_layout(g, shapes, waves);
  const std::vector<int>& root = layout.root;
  const std::vector<int>& request_of = layout.request_of;
  const MemoryPlan& mem = layout.memory;
  const int64_t shared_bytes = layout.in_place_bytes;
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
  plan->waves = std::move(waves);
  plan->concurrent.assign(plan->waves.size(), false);
  plan->stats.waves = static_cast<int>(plan->waves.size());
  return plan;
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
  run_steps(plan);
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
    // In wave order, one step at a time (buffers are planned for that order).
    for (const Wave& wave : plan.waves) {
      for (const std::vector<int>& branch : wave.branches) {
        for (int s : branch) {
          Plan::Step& step = plan.steps[s];
          auto start = std::chrono::steady_clock::now();
          step.run();
          times[step.node].push_back(
              std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start)
                  .count());
        }
      }
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
