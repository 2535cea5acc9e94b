// tessera::function: TensorFlow's tf.function for C++. Wraps a callable; the first call
// with a new input signature traces it into a graph, optimizes the graph and runs it with
// the executor; later calls with that signature run the cached graph. Retracing is
// visible (trace_count(), last_trace_reason(), an optional log line) and avoidable: a
// fixed signature with unknown dimensions (-1) serves every size of those dimensions.
#pragma once
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "tessera/graph/executor.h"
#include "tessera/graph/trace.h"

namespace tessera {

struct FunctionOptions {
  std::string name = "function";
  // When set, every call must match it and never retraces; -1 marks unknown sizes.
  std::vector<graph::TensorSpec> signature;
  // Captured tensors kept as named variables (see TraceOptions).
  graph::NamedTensorList variables;
  bool optimize = true;        // run the graph passes after tracing
  bool log_retracing = false;  // print a line to stderr on every trace, saying why
};

class Function {
 public:
  Function(graph::GraphFn fn, FunctionOptions options = {});

  TensorList operator()(const TensorList& inputs);
  // The graph for these inputs' signature, tracing it if needed.
  const graph::Graph& graph_for(const TensorList& inputs);
  graph::Executor& executor_for(const TensorList& inputs);

  int trace_count() const { return trace_count_; }
  const std::string& last_trace_reason() const { return last_reason_; }
  const FunctionOptions& options() const { return options_; }

 private:
  struct Concrete {
    std::vector<graph::TensorSpec> signature;
    std::unique_ptr<graph::Executor> executor;
  };
  // The executor for these inputs' signature (tracing if needed). Executors live on the
  // heap, so the reference stays valid while other threads add traces.
  graph::Executor& concrete_for(const TensorList& inputs);

  graph::GraphFn fn_;
  FunctionOptions options_;
  // Guards the trace cache, so that threads may call one Function at once (each graph's
  // executor serializes its own runs). A pointer keeps Function movable.
  std::unique_ptr<std::mutex> mutex_ = std::make_unique<std::mutex>();
  std::vector<Concrete> traced_;
  int trace_count_ = 0;
  std::string last_reason_;
};

Function function(graph::GraphFn fn, FunctionOptions options = {});

}  // namespace tessera
