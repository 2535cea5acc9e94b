// ONNX import and export. Import: an ONNX model (protobuf, opsets 7 to 17 of the default domain)
// becomes a Tessera graph, which runs with the executor, saves as a saved model, fine-tunes (with
// trainable initializers) or converts to a lite model. Each ONNX node maps to Tessera ops
// (src/io/onnx/ops_*.cc); nodes whose inputs are all known at import time (shape
// arithmetic, constants) are computed then and enter the graph as constants.
//
// Loading never trusts the file: sizes, dims, data lengths, external-data paths and the
// graph's references are checked, and every problem is a tessera::Error naming the node.
//
// Export writes a Tessera graph (a saved model's signature, an imported model) as an ONNX
// model of opset 17 (src/io/onnx/export*.cc), with unknown dimensions as symbolic dims.
//
// The library is tessera_onnx (it links Debian's libprotobuf and libonnx_proto).
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "tessera/graph/graph.h"

namespace tessera::onnx {

// ONNX operators that have no mapping (or an attribute or dtype the mapping lacks). One
// error lists every unsupported node of the model, with its name, op and opset.
// On export: Tessera ops that have no ONNX form here, every one listed in one error.
class UnsupportedError : public Error {
 public:
  explicit UnsupportedError(const std::string& message, const char* context = "onnx import")
      : Error(context, message) {}
};

// An op needed the value of a tensor only known when the graph runs (the shape given to
// Reshape, computed from an input). `input` names the graph input it is, if it is one:
// ImportOptions::constant_inputs can fix it.
class NeedsValueError : public Error {
 public:
  NeedsValueError(const std::string& message, std::string input)
      : Error("onnx import", message), input_(std::move(input)) {}
  const std::string& input() const { return input_; }

 private:
  std::string input_;
};

struct ImportOptions {
  // Floating-point initializers become named variables (fine-tuning); otherwise constants.
  bool trainable = false;
  // Shapes for graph inputs, replacing those the model declares (by input name). Dims the
  // model leaves symbolic (dim_param) and not fixed here stay unknown in the graph.
  std::vector<std::pair<std::string, Dims>> input_shapes;
  // Graph inputs whose values are fixed at import time; they leave the signature.
  std::vector<std::pair<std::string, Tensor>> constant_inputs;
  // Limit on the model file and on any one tensor (bytes).
  int64_t max_bytes = int64_t{4} << 30;
  // Limit on all the external data a model reads (bytes; 0: this machine's physical
  // memory). Tensors may name the same bytes of one file many times over.
  int64_t max_external_bytes = 0;
};

struct ImportedModel {
  graph::Graph graph;
  std::vector<std::string> input_names;   // graph inputs, in signature order
  std::vector<std::string> output_names;  // graph outputs, in order
  int64_t opset = 0;                      // of the default domain
};

// Reads model.onnx (external data files are looked up beside it).
ImportedModel load(const std::string& path, const ImportOptions& options = {});
// From bytes in memory; external data is looked up in `base_dir` (empty: refused).
ImportedModel load_bytes(std::span<const uint8_t> bytes, const ImportOptions& options = {},
                         const std::string& base_dir = "");

// The opset export writes (default domain).
inline constexpr int64_t kExportOpset = 17;

// Writes `graph` as an ONNX model, atomically (temp file, fsync, rename). Inputs keep their
// names; outputs are "output", "output_1" ...; constants and variables become initializers
// named after them. Graphs that write variables (training steps) and control flow (cond,
// while_loop) are refused, as is any node without an ONNX mapping (UnsupportedError lists
// them all).
void save(const graph::Graph& graph, const std::string& path);
std::string to_bytes(const graph::Graph& graph);

// An ONNX TensorProto file (the backend test suite's input_0.pb) as a tensor.
Tensor read_tensor_file(const std::string& path);

}  // namespace tessera::onnx
