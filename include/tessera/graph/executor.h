// The executor: runs a graph with the same kernels as eager mode. For each set of input
// shapes it makes a plan once (shapes of every value, one arena laid out by the memory
// planner, the views and kernel calls); later calls with those shapes only copy the
// inputs in and call the kernels, allocating nothing but the returned outputs.
#pragma once
#include <map>
#include <memory>
#include <mutex>

#include "tessera/graph/graph.h"
#include "tessera/graph/schedule.h"

namespace tessera::graph {

struct PlanStats {
  int64_t arena_bytes = 0;   // planned: buffers share bytes when their lifetimes do not overlap
  int64_t naive_bytes = 0;   // every intermediate buffer its own allocation
  int waves = 0;             // groups of kernel calls that may run together (schedule.h)
  int concurrent_waves = 0;  // of those, the ones run on several threads at once
};

// Whether executors run independent branches of a graph at the same time (TensorFlow's
// inter-op parallelism). On by default; a plan runs a group of independent kernel calls
// together only where that measured faster than one after another when it was made.
void set_inter_op_parallelism(bool enabled);
bool inter_op_parallelism();

// Concrete shapes of every value for these input shapes, by running each op's shape
// inference (no kernels); throws Error naming the node whose shapes disagree with the
// graph. Constants and variables come back as their data; other values are symbolic.
std::vector<Tensor> infer_values(const Graph& graph, const std::vector<Dims>& input_shapes);

// Sizes of a graph's unknown dimensions, read from input shapes.
std::vector<int64_t> bind_symbols(const Graph& graph, const std::vector<Dims>& input_shapes);
// Attributes with unknown-dimension markers replaced by those sizes.
Attrs bind_attrs(const Attrs& attrs, const std::vector<int64_t>& sizes);

class Executor {
 public:
  explicit Executor(std::shared_ptr<const Graph> graph);
  ~Executor();
  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;

  const Graph& graph() const { return *graph_; }
  // Runs the graph; inputs are checked against its signature. Thread-safe (calls queue).
  TensorList run(const TensorList& inputs);
  // Memory the plan for these input shapes uses (making the plan if needed).
  PlanStats stats(const std::vector<Dims>& input_shapes);
  // Median time of each node's kernel over `runs` runs on these inputs, in microseconds,
  // indexed by node (view nodes, which run at plan time, get 0).
  std::vector<double> profile(const TensorList& inputs, int runs);

 private:
  struct Plan;
  Plan& plan_for(const std::vector<Dims>& input_shapes);
  // Checks the inputs, finds (or makes) their plan and copies them in; the caller holds mutex_.
  Plan& load_inputs(const TensorList& inputs);
  static std::unique_ptr<Plan> make_plan(const Graph& g, const std::vector<Tensor>& shapes,
                                         const std::vector<Dims>& input_shapes,
                                         std::vector<Wave> waves);
  static void choose_kernel_algorithms(Plan& plan);
  static void choose_concurrency(Plan& plan);
  static void confirm_concurrency(Plan& plan);
  static void run_steps(Plan& plan);
  std::shared_ptr<const Graph> graph_;
  std::mutex mutex_;
  std::map<std::vector<std::vector<int64_t>>, std::unique_ptr<Plan>> plans_;
};

// Checks call inputs against a graph's inputs (count, dtype, rank, known sizes); names the
// input and what was expected.
void check_inputs(const Graph& graph, const TensorList& inputs, const char* who);

}  // namespace tessera::graph
