// tessera::function: signature cache, tracing and execution (see function.h).
#include "tessera/graph/function.h"

#include <cstdio>
#include <sstream>

#include "tessera/graph/passes.h"

namespace tessera {

using graph::TensorSpec;

namespace {

bool matches(const std::vector<TensorSpec>& sig, const TensorList& inputs) {
  if (sig.size() != inputs.size()) return false;
  for (size_t i = 0; i < sig.size(); ++i) {
    const Tensor& t = inputs[i];
    if (!t.defined() || t.dtype() != sig[i].dtype ||
        t.dim() != static_cast<int64_t>(sig[i].shape.size())) {
      return false;
    }
    for (size_t a = 0; a < sig[i].shape.size(); ++a) {
      if (sig[i].shape[a] >= 0 && sig[i].shape[a] != t.shape()[a]) return false;
    }
  }
  return true;
}

std::string describe(const TensorList& inputs) {
  std::ostringstream os;
  os << "(";
  for (size_t i = 0; i < inputs.size(); ++i) {
    os << (i ? ", " : "")
       << (inputs[i].defined() ? graph::format_type(inputs[i].dtype(), inputs[i].shape())
                               : "undefined");
  }
  os << ")";
  return os.str();
}

std::string describe(const std::vector<TensorSpec>& sig) {
  std::ostringstream os;
  os << "(";
  for (size_t i = 0; i < sig.size(); ++i) {
    os << (i ? ", " : "") << graph::format_type(sig[i].dtype, sig[i].shape);
  }
  os << ")";
  return os.str();
}

}  // namespace

Function::Function(graph::GraphFn fn, FunctionOptions options)
    : fn_(std::move(fn)), options_(std::move(options)) {}

Function function(graph::GraphFn fn, FunctionOptions options) {
  return Function(std::move(fn), std::move(options));
}

graph::Executor& Function::concrete_for(const TensorList& inputs) {
  std::lock_guard<std::mutex> lock(*mutex_);
  for (Concrete& c : traced_) {
    if (matches(c.signature, inputs)) return *c.executor;
  }
  std::vector<TensorSpec> sig;
  if (!options_.signature.empty()) {
    check(matches(options_.signature, inputs), options_.name, "inputs ", describe(inputs),
          " do not match the function's signature ", describe(options_.signature));
    sig = options_.signature;
    last_reason_ = "first call";
  } else {
    for (const Tensor& t : inputs) {
      check(t.defined(), options_.name, "an input is undefined");
      sig.push_back(TensorSpec{t.shape(), t.dtype(), ""});
    }
    last_reason_ = traced_.empty() ? "first call"
                                   : str_cat("inputs ", describe(inputs), " match none of the ",
                                             traced_.size(), " traced signatures (last ",
                                             describe(traced_.back().signature), ")");
  }
  ++trace_count_;
  if (options_.log_retracing) {
    std::fprintf(stderr, "tessera::function '%s': tracing #%d for %s: %s\n", options_.name.c_str(),
                 trace_count_, describe(sig).c_str(), last_reason_.c_str());
  }
  graph::Graph g = graph::trace(fn_, sig, {options_.variables});
  if (options_.optimize) g = graph::optimize(std::move(g));
  traced_.push_back(
      {sig, std::make_unique<graph::Executor>(std::make_shared<graph::Graph>(std::move(g)))});
  return *traced_.back().executor;
}

const graph::Graph& Function::graph_for(const TensorList& inputs) {
  return concrete_for(inputs).graph();
}

graph::Executor& Function::executor_for(const TensorList& inputs) { return concrete_for(inputs); }

TensorList Function::operator()(const TensorList& inputs) {
  // Inside another trace, the callable is simply inlined into the outer graph.
  if (active_tracer() != nullptr) return fn_(inputs);
  return concrete_for(inputs).run(inputs);
}

}  // namespace tessera
