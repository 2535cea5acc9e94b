// What an export mapping sees: the Tessera graph being written and the ONNX graph being
// built. Each Tessera op maps to a short function (export_*.cc) that adds ONNX nodes for
// one graph node, reading its inputs and writing its outputs by name.
#pragma once
#include <onnx/onnx_pb.h>

#include <map>
#include <set>
#include <string>
#include <vector>

#include "tessera/graph/graph.h"
#include "tessera/io/onnx.h"

namespace tessera::onnx {

// A Tessera op (or one of its attributes or dtypes) that has no ONNX form here.
struct ExportUnsupported {
  std::string reason;
};

class ExportContext {
 public:
  ExportContext(const graph::Graph& graph, ::onnx::GraphProto& out);

  const graph::Graph& graph() const { return graph_; }
  const graph::Value& value(int id) const { return graph_.values[static_cast<size_t>(id)]; }
  const graph::Value& input_value(const graph::Node& n, size_t i) const;
  bool used(int value_id) const { return uses_[static_cast<size_t>(value_id)] > 0; }

  // The ONNX tensor names of a node's input and output values.
  std::string in(const graph::Node& n, size_t i) const;
  std::string out(const graph::Node& n, size_t i = 0) const;
  std::string name_of(int value_id) const { return names_[static_cast<size_t>(value_id)]; }

  // Adds a node; returns it for attributes.
  ::onnx::NodeProto& add(const std::string& op, const std::vector<std::string>& inputs,
                         const std::vector<std::string>& outputs);
  // Adds a one-output node writing a new tensor; returns that tensor's name.
  std::string add1(const std::string& op, const std::vector<std::string>& inputs);
  // A one-output node whose attributes are set by the caller through `node`.
  std::string add1(const std::string& op, const std::vector<std::string>& inputs,
                   ::onnx::NodeProto** node);

  // Initializers made for the mapping: a 1-d int64 tensor, a scalar of a dtype, a tensor.
  std::string ints(const std::vector<int64_t>& values);
  std::string scalar(double value, DType dtype);
  std::string initializer(const Tensor& t, const std::string& hint);

  // A 1-d int64 tensor of sizes that may hold unknown-dimension markers (graph::dim_marker):
  // a constant, or a Concat of constants and the sizes read from the graph's inputs.
  std::string sizes(const std::vector<int64_t>& dims);
  // One size (a marker or a plain value) as a 1-element int64 tensor.
  std::string size(int64_t dim);

  // A tensor name not used yet.
  std::string fresh(const std::string& hint);

  // Casts `name` (of dtype `from`) to `to` when they differ.
  std::string cast(const std::string& name, DType from, DType to);

 private:
  const graph::Graph& graph_;
  ::onnx::GraphProto& out_;
  std::vector<std::string> names_;  // per value
  std::vector<int> uses_;           // per value: node inputs and graph outputs reading it
  std::set<std::string> taken_;
  std::map<std::vector<int64_t>, std::string> int_constants_;
  std::map<int, std::string> symbol_sizes_;
  int counter_ = 0;
  void name_values();
};

// Attributes on an ONNX node.
void set_attr(::onnx::NodeProto& node, const char* name, int64_t value);
void set_attr(::onnx::NodeProto& node, const char* name, double value);
void set_attr(::onnx::NodeProto& node, const char* name, const std::vector<int64_t>& values);
void set_attr(::onnx::NodeProto& node, const char* name, const std::string& value);
void set_attr(::onnx::NodeProto& node, const char* name, const ::onnx::TensorProto& value);

// Writes a contiguous copy of `t` into `proto` (raw little-endian data).
void tensor_to_proto(const Tensor& t, const std::string& name, ::onnx::TensorProto& proto);

using ExportFn = void (*)(ExportContext&, const graph::Node&);
using ExportTable = std::map<std::string, ExportFn>;
void add_export_math(ExportTable& table);
void add_export_nn(ExportTable& table);
void add_export_shape(ExportTable& table);
const ExportTable& export_table();

}  // namespace tessera::onnx
