// Tracing: an OpTracer that records each op call on symbolic tensors into a Graph.
//
// Unknown dimensions are traced as large primes (1000003, ...), so shape inference runs
// unchanged; a shape or attribute equal to one is rewritten as unknown, and one that is a
// multiple of it (arithmetic on the batch size) is reported, since the graph could not
// recompute it for another size.
#include "tessera/graph/trace.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <unordered_map>

#include "tessera/autodiff/autodiff.h"

namespace tessera::graph {
namespace {

constexpr int64_t kTraceSizes[] = {1000003, 1000033, 1000037, 1000039, 1000081, 1000099,
                                   1000117, 1000121, 1000133, 1000151, 1000159, 1000171,
                                   1000183, 1000187, 1000193, 1000199};
constexpr int kMaxSymbols = static_cast<int>(std::size(kTraceSizes));

class Tracer : public OpTracer {
 public:
  Tracer(Graph& graph, const TraceOptions& options) : graph_(graph) {
    for (const auto& [name, t] : options.variables) {
      if (t.defined()) variable_names_.emplace(t.impl(), name);
    }
  }
  // A body traced for a control-flow op: captured tensors become extra inputs, and sizes
  // unknown in the enclosing trace (if any) stay unknown.
  struct Body {};
  Tracer(Graph& graph, Body)
      : graph_(graph), body_(true), inside_trace_(active_tracer() != nullptr) {}

  Tensor add_input(const TensorSpec& spec, int index) {
    Dims traced = spec.shape, stored = spec.shape;
    for (size_t axis = 0; axis < traced.size(); ++axis) {
      int64_t code = traced[axis];
      if (code >= 0) continue;
      check(code >= -kMaxSymbols, "trace", "input ", index, " has dimension ", code,
            "; use -1 (the batch), -2, -3 ... for sizes unknown until the call");
      auto known = symbol_of_code_.find(code);
      int axis_i = static_cast<int>(axis);
      if (known == symbol_of_code_.end()) {
        int symbol = static_cast<int>(graph_.symbols.size());
        graph_.symbols.push_back(Symbol{index, axis_i});
        primes_.push_back(kTraceSizes[symbol]);
        known = symbol_of_code_.emplace(code, symbol).first;
      } else {
        graph_.tied.push_back(TiedDim{index, axis_i, known->second});
      }
      traced[axis] = primes_[known->second];
      stored[axis] = kUnknownDim;
    }
    Tensor t = Tensor::symbolic(traced, spec.dtype);
    std::string name = spec.name.empty() ? str_cat("input_", index) : spec.name;
    int id = graph_.add_value(
        Value{.kind = ValueKind::input, .dtype = spec.dtype, .shape = stored, .name = name});
    graph_.inputs.push_back(id);
    remember(t, id);
    return t;
  }

  // A body input shaped like `like` (an operand of the control-flow op, or a tensor the
  // body captures): sizes unknown in the enclosing trace become this graph's unknowns.
  Tensor add_body_input(const Tensor& like) {
    int index = static_cast<int>(graph_.inputs.size());
    Dims stored = like.shape();
    for (size_t axis = 0; axis < stored.size(); ++axis) {
      int64_t size = stored[axis];
      if (!from_enclosing_unknown(size)) continue;
      int axis_i = static_cast<int>(axis);
      auto known = std::find(primes_.begin(), primes_.end(), size);
      if (known == primes_.end()) {
        graph_.symbols.push_back(Symbol{index, axis_i});
        primes_.push_back(size);
      } else {
        graph_.tied.push_back(TiedDim{index, axis_i, static_cast<int>(known - primes_.begin())});
      }
      stored[axis] = kUnknownDim;
    }
    Tensor t = Tensor::symbolic(like.shape(), like.dtype());
    int id = graph_.add_value(Value{.kind = ValueKind::input,
                                    .dtype = like.dtype(),
                                    .shape = stored,
                                    .name = str_cat("input_", index)});
    graph_.inputs.push_back(id);
    remember(t, id);
    return t;
  }
  const TensorList& captures() const { return captures_; }

  // The graph value for a tensor the traced code hands to an op or returns.
  int value_of(const Tensor& t, const char* op) {
    auto it = ids_.find(t.impl());
    if (it != ids_.end()) return it->second;
    if (t.impl()->trace_key >= 0 && (t.impl()->trace_key >> 32) == serial_) {
      return static_cast<int>(t.impl()->trace_key & 0xffffffff);  // a detached copy
    }
    if (body_) {
      // Whatever a body captures (weights, tensors of the enclosing trace) is passed in.
      Tensor input = add_body_input(t);
      int id = ids_[input.impl()];
      ids_[t.impl()] = id;  // not remember(): t's trace key belongs to the enclosing trace
      alive_.push_back(t);
      captures_.push_back(t);
      return id;
    }
    check(!t.is_symbolic(), op,
          "got a symbolic tensor from another trace (a tensor made while tracing a "
          "different function was kept and used here)");
    check(!has_unknown_dim(t.shape()), op,
          "got a tensor made outside ops whose shape depends on an unknown dimension, ", t.shape(),
          "; create it with ops on the inputs (zeros_like, full) instead");
    check_not_from_unknown_dim(t, op);
    Value v{.dtype = t.dtype(), .shape = t.shape()};
    auto named = variable_names_.find(t.impl());
    if (named != variable_names_.end()) {
      v.kind = ValueKind::variable;
      v.name = named->second;
      v.data = t;
    } else if (t.requires_grad() && t.is_leaf()) {
      v.kind = ValueKind::variable;
      v.name = str_cat("var_", unnamed_variables_++);
      v.data = t;
    } else {
      // A constant, copied when the trace ends (finish), unless the traced code assigns
      // to it (optimizer state): then it is a variable.
      v.kind = ValueKind::constant;
      v.data = t;
    }
    int id = graph_.add_value(std::move(v));
    remember(t, id);
    return id;
  }

  TensorList record(const OpDef& def, std::span<const Tensor> inputs, const Attrs& attrs) override {
    check(!(body_ && def.stateful()), def.name,
          "writes a variable inside a cond branch or while_loop body, which graphs do not "
          "support; return the new value from the body and assign it outside");
    std::vector<int> input_ids;
    input_ids.reserve(inputs.size());
    for (const Tensor& t : inputs) input_ids.push_back(value_of(t, def.name));
    OpCall call{inputs, attrs};
    TensorList outputs;
    MetaList metas;
    if (def.view) {
      outputs.push_back(def.view(call));
      metas.push_back({outputs[0].shape(), outputs[0].dtype()});
    } else {
      metas = def.infer(call);
      for (const TensorMeta& m : metas) outputs.push_back(Tensor::symbolic(m.shape, m.dtype));
    }
    MetaList stored = metas;
    for (TensorMeta& m : stored) {
      for (int64_t& d : m.shape) {
        if (is_unknown_size(d)) d = kUnknownDim;
      }
    }
    int node = graph_.add_node(def, mark_unknown_dims(def, attrs), std::move(input_ids), stored);
    for (size_t i = 0; i < outputs.size(); ++i) remember(outputs[i], graph_.nodes[node].outputs[i]);
    if (def.stateful()) {
      // Later reads of the written variable see the new value: the node's output.
      graph_.effects.push_back(node);
      remember(inputs[0], graph_.nodes[node].outputs[0]);
      return outputs;
    }
    // The tape is recorded too, so that gradients taken inside the traced code (a training
    // step) run the gradient rules through this tracer and become graph nodes.
    bool track = false;
    for (const Tensor& t : inputs) track = track || t.requires_grad();
    if (track && grad_enabled()) autodiff::record(def, inputs, outputs, attrs);
    return outputs;
  }

  // Settles captured tensors: assigned ones become variables ("state_N"), the others
  // constants copied now, as TensorFlow captures by value (later writes to the tensor do
  // not change the graph).
  void finish() {
    std::vector<bool> assigned = graph_.written_values();
    NoGradGuard no_grad;
    TracerScope untraced(nullptr);
    int states = 0;
    for (size_t id = 0; id < graph_.values.size(); ++id) {
      Value& v = graph_.values[id];
      if (v.kind != ValueKind::constant) continue;
      if (assigned[id]) {
        v.kind = ValueKind::variable;
        v.name = str_cat("state_", states++);
      } else {
        v.name = str_cat("const_", constants_++);
        v.data = v.data.clone();
      }
    }
  }

  bool has_unknown_dim(const Shape& shape) const override {
    for (int64_t d : shape) {
      if (is_unknown_size(d)) return true;
    }
    return false;
  }

 private:
  // A small constant made from a traced size (a count of batch elements computed on the
  // host) would freeze that size into the graph: refuse it, naming the op.
  void check_not_from_unknown_dim(const Tensor& t, const char* op) const {
    if (primes_.empty() || t.numel() > 16 || t.dtype() == DType::Bool) return;
    NoGradGuard no_grad;
    TracerScope untraced(nullptr);
    for (double v : t.to_vector<double>()) {
      if (v != std::floor(v) || std::fabs(v) > 9.0e15) continue;
      int s = symbol_of(static_cast<int64_t>(v));
      check(s < 0, op, "got a constant (", v, ") computed from unknown dimension ", s,
            " while tracing; compute it with ops on the tensor (reduction_size, shape ops) ",
            "or give that dimension a fixed size in the signature");
    }
  }

  // |v| without overflow (values read from files may be INT64_MIN).
  static uint64_t magnitude(int64_t v) {
    return v < 0 ? uint64_t{0} - static_cast<uint64_t>(v) : static_cast<uint64_t>(v);
  }
  // The unknown dimension a traced size derives from (-1 if none): equal to its traced
  // size, or a multiple of it.
  int symbol_of(int64_t size) const {
    if (size == 0) return -1;
    const int n = static_cast<int>(primes_.size());
    for (int s = 0; s < n; ++s) {
      if (size == primes_[s]) return s;
    }
    for (int s = 0; s < n; ++s) {
      if (magnitude(size) % static_cast<uint64_t>(primes_[s]) == 0) return s;
    }
    return -1;
  }
  // A size of the enclosing trace: a multiple of one of the primes traces use.
  bool from_enclosing_unknown(int64_t size) const {
    if (!inside_trace_ || size == 0) return false;
    for (int64_t p : kTraceSizes) {
      if (magnitude(size) % static_cast<uint64_t>(p) == 0) return true;
    }
    return false;
  }
  bool is_unknown_size(int64_t size) const {
    return symbol_of(size) >= 0 || from_enclosing_unknown(size);
  }

  int64_t mark(const OpDef& def, const char* attr, int64_t v) const {
    int s = symbol_of(v);
    check(s >= 0 || !from_enclosing_unknown(v), def.name, "attribute '", attr, "' (", v,
          ") is an unknown size of the enclosing graph that none of this branch's or loop "
          "body's inputs has; pass a tensor of that size into the body");
    if (s < 0) return v;
    check(v == primes_[s], def.name, "attribute '", attr, "' (", v,
          ") is computed from unknown dimension ", s,
          ", which the graph cannot redo for "
          "another size; pass -1 to reshape, or give that dimension a fixed size in the "
          "signature");
    return dim_marker(s);
  }

  Attrs mark_unknown_dims(const OpDef& def, const Attrs& attrs) const {
    Attrs out = attrs;
    if (primes_.empty() && !inside_trace_) return out;
    for (const auto& [name, value] : attrs.items()) {
      if (const auto* i = std::get_if<int64_t>(&value)) {
        out.set(name, mark(def, name, *i));
      } else if (const auto* v = std::get_if<std::vector<int64_t>>(&value)) {
        std::vector<int64_t> marked = *v;
        for (int64_t& x : marked) x = mark(def, name, x);
        out.set(name, std::move(marked));
      }
    }
    return out;
  }

  void remember(const Tensor& t, int id) {
    ids_[t.impl()] = id;
    t.impl()->trace_key = (serial_ << 32) | id;
    alive_.push_back(t);  // keeps the address unique for the whole trace
  }

  Graph& graph_;
  const bool body_ = false;          // tracing a control-flow body
  const bool inside_trace_ = false;  // ... within an enclosing trace
  std::vector<int64_t> primes_;      // traced size of each unknown dimension
  TensorList captures_;              // bodies: captured tensors, one per extra input
  std::unordered_map<const TensorImpl*, int> ids_;
  std::unordered_map<const TensorImpl*, std::string> variable_names_;
  std::unordered_map<int64_t, int> symbol_of_code_;  // -1, -2 ... in signatures
  const int64_t serial_ = next_serial();
  static int64_t next_serial() {
    static std::atomic<int64_t> serial{0};
    return ++serial;
  }
  std::vector<Tensor> alive_;
  int unnamed_variables_ = 0;
  int constants_ = 0;
};

}  // namespace

Graph trace(const GraphFn& fn, const std::vector<TensorSpec>& signature,
            const TraceOptions& options) {
  Graph graph;
  Tracer tracer(graph, options);
  TensorList inputs;
  for (size_t i = 0; i < signature.size(); ++i) {
    inputs.push_back(tracer.add_input(signature[i], static_cast<int>(i)));
  }
  TensorList outputs;
  {
    TracerScope scope(&tracer);
    outputs = fn(inputs);
  }
  for (const Tensor& t : outputs) {
    check(t.defined(), "trace", "the traced function returned an undefined tensor");
    graph.outputs.push_back(tracer.value_of(t, "trace"));
  }
  tracer.finish();
  graph.validate();
  return graph;
}

TracedBody trace_body(const GraphFn& fn, const TensorList& like) {
  TracedBody body;
  Tracer tracer(body.graph, Tracer::Body{});
  TensorList inputs;
  for (const Tensor& t : like) inputs.push_back(tracer.add_body_input(t));
  TensorList outputs;
  {
    TracerScope scope(&tracer);
    outputs = fn(inputs);
  }
  for (const Tensor& t : outputs) {
    check(t.defined(), "trace", "a cond branch or loop body returned an undefined tensor");
    body.graph.outputs.push_back(tracer.value_of(t, "trace"));
  }
  body.captures = tracer.captures();
  body.graph.validate();
  return body;
}

}  // namespace tessera::graph
