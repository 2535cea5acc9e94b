// What an ONNX op mapping sees: the node, its inputs as tensors (symbolic while the graph
// is traced, concrete when known at import time) and typed attribute access. Mappings are
// plain functions registered by name (ops_*.cc); each returns the node's outputs.
#pragma once
#include <onnx/onnx_pb.h>

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "tessera/core/tensor.h"
#include "tessera/io/onnx.h"
#include "tessera/ops/op.h"

namespace tessera::onnx {

class NodeContext {
 public:
  NodeContext(const ::onnx::NodeProto& node, int64_t opset, TensorList inputs,
              std::function<std::string(const Tensor&)> input_name_of);

  const ::onnx::NodeProto& node() const { return node_; }
  int64_t opset() const { return opset_; }
  // "node 'conv1' (Conv)": how errors name the node.
  std::string where() const;

  // Inputs: absent and omitted ("") optional inputs are undefined tensors.
  size_t num_inputs() const { return inputs_.size(); }
  bool has(size_t i) const { return i < inputs_.size() && inputs_[i].defined(); }
  const Tensor& in(size_t i) const;
  const TensorList& inputs() const { return inputs_; }
  // Number of outputs the node names (some ops have optional outputs).
  size_t num_outputs() const { return static_cast<size_t>(node_.output_size()); }
  bool wants_output(size_t i) const {
    return static_cast<int>(i) < node_.output_size() && !node_.output(static_cast<int>(i)).empty();
  }

  // The values of an input that must be known at import time (a shape, axes, pads): an
  // error naming the node when it is only known at run time.
  Tensor value(size_t i) const;
  std::vector<int64_t> ints(size_t i) const;
  std::vector<double> doubles(size_t i) const;
  double scalar(size_t i) const;

  // Attributes, with defaults.
  bool has_attr(const char* name) const { return find(name) != nullptr; }
  int64_t attr_i(const char* name, int64_t fallback) const;
  double attr_f(const char* name, double fallback) const;
  std::string attr_s(const char* name, const std::string& fallback) const;
  std::vector<int64_t> attr_ints(const char* name, std::vector<int64_t> fallback = {}) const;
  std::vector<double> attr_floats(const char* name, std::vector<double> fallback = {}) const;
  Tensor attr_tensor(const char* name) const;
  const ::onnx::AttributeProto* find(const char* name) const;

  // An axis in [-rank, rank) as a non-negative axis; an error naming the node otherwise.
  int64_t axis(int64_t axis, int64_t rank) const;

  template <typename... Parts>
  [[noreturn]] void unsupported(const Parts&... parts) const {
    throw UnsupportedError(str_cat(where(), ": ", parts...));
  }
  template <typename... Parts>
  void require(bool condition, const Parts&... parts) const {
    if (!condition) fail(where(), parts...);
  }

 private:
  const ::onnx::NodeProto& node_;
  int64_t opset_;
  TensorList inputs_;
  std::function<std::string(const Tensor&)> input_name_of_;
};

using Converter = TensorList (*)(const NodeContext&);

struct OpMapping {
  Converter convert = nullptr;
  // Draws random numbers: never computed at import time, even on known inputs.
  bool random = false;
};
// Keyed by op type for the default domain, "domain:op type" for others.
using OpTable = std::map<std::string, OpMapping>;

// Whether x, a tensor being traced, has sizes unknown until the graph runs.
bool has_unknown_dims(const Tensor& x);
std::string op_key(const ::onnx::NodeProto& node);

// The mappings of each family (ops_*.cc), and all of them.
void add_elementwise_ops(OpTable& table);
void add_shape_ops(OpTable& table);
void add_reduce_ops(OpTable& table);
void add_nn_ops(OpTable& table);
void add_loss_ops(OpTable& table);
void add_quant_ops(OpTable& table);
void add_recurrent_ops(OpTable& table);
void add_signal_ops(OpTable& table);
void add_value_dependent_ops(OpTable& table);
void add_training_ops(OpTable& table);
void add_grid_sample_ops(OpTable& table);
const OpTable& op_table();

// Helpers shared by the families.
// ONNX axes (possibly negative) as sorted non-negative ones.
std::vector<int64_t> normalize_axes(const NodeContext& c, std::vector<int64_t> axes, int64_t rank);
// ONNX's Conv (1-d to 3-d, any pads, auto_pad, groups) of x with weight (+ bias), reading the
// node's attributes; ConvInteger and QLinearConv reuse it.
Tensor conv_nd(const NodeContext& c, Tensor x, const Tensor& weight, const Tensor& bias);
// Integer indices with negative entries counted from the end of a dimension of `size`.
Tensor wrap_negative_indices(const Tensor& indices, int64_t size);

}  // namespace tessera::onnx
