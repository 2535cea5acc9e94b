// The graph IR: typed, shaped values and the op calls (nodes) that produce them, kept in
// topological order. Nodes name an OpDef from the op registry, so a graph runs the same
// kernels, shape inference and gradient rules as eager mode.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "tessera/ops/op.h"

namespace tessera::graph {

// A dimension known only when the graph runs (such as the batch).
inline constexpr int64_t kUnknownDim = -1;

// In node attributes, the size of unknown dimension `symbol` is written as a marker that
// the executor replaces with the size bound from the inputs at run time.
inline constexpr int64_t kDimMarkerBase = -(int64_t{1} << 40);
inline constexpr int64_t dim_marker(int symbol) { return kDimMarkerBase - symbol; }
inline constexpr bool is_dim_marker(int64_t v) {
  return v <= kDimMarkerBase && v > kDimMarkerBase - 4096;
}
inline constexpr int marker_symbol(int64_t v) { return static_cast<int>(kDimMarkerBase - v); }

enum class ValueKind : uint8_t { input, constant, variable, op_output };
const char* value_kind_name(ValueKind kind);

struct Value {
  ValueKind kind = ValueKind::op_output;
  DType dtype = DType::Float32;
  Dims shape;            // kUnknownDim where only known at run time
  int node = -1;         // the producing node (op outputs)
  int output_index = 0;  // which output of that node
  Tensor data;           // constants and variables (variables share the caller's tensor)
  std::string name;      // inputs, variables and constants; may be empty for op outputs
};

struct Node {
  const OpDef* def = nullptr;
  Attrs attrs;
  std::vector<int> inputs;   // value ids
  std::vector<int> outputs;  // value ids
  const char* op() const { return def->name; }
};

// An unknown dimension: its size is read from input `input`, axis `axis`.
struct Symbol {
  int input = 0;
  int axis = 0;
};
// Another input dimension that must equal unknown dimension `symbol` (the batch of a
// second input).
struct TiedDim {
  int input = 0;
  int axis = 0;
  int symbol = 0;
};

class Graph {
 public:
  std::vector<Value> values;
  std::vector<Node> nodes;
  std::vector<int> inputs;   // value ids, in call order
  std::vector<int> outputs;  // value ids, in return order
  std::vector<Symbol> symbols;
  std::vector<TiedDim> tied;
  // Nodes that write variables (assign): they run even though no output depends on them.
  std::vector<int> effects;

  int add_value(Value v);
  // Appends a node and one op-output value per meta; returns the node id.
  int add_node(const OpDef& def, Attrs attrs, std::vector<int> inputs, const MetaList& metas);

  // Checks ids, topological order and that every node's producer links agree; throws
  // Error naming the first problem (loaders call it on untrusted graphs).
  void validate() const;
  // For each value, whether an effect node writes it in place (assign, optimizer updates).
  std::vector<bool> written_values() const;
  // Number of elements in constants and variables.
  int64_t parameter_count() const;
  // A readable listing, one line per node: "%3 = conv2d(%0, %1) {stride=[1,1]} : f32[?,8,26,26]".
  std::string to_string() const;
  // Graphviz dot text.
  std::string to_dot() const;
};

// "f32[?,8,26,26]"
std::string format_type(DType dtype, const Dims& shape);
// "stride=[1,1], activation=relu"
std::string format_attrs(const Attrs& attrs);
// A stable pointer for an attribute name read from a file (Attrs keeps const char*).
const char* intern_name(const std::string& name);

}  // namespace tessera::graph
