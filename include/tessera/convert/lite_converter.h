// Lowering a graph (a saved model's signature) to a Tessera lite model
// (include/tessera/lite/lite.h). Sizes unknown in the graph (the batch) become
// `batch`; 4-d activations become NHWC inside the lite model, with transposes inserted
// only where an op needs the graph's NCHW order (flatten, permute), and model inputs and
// outputs keep the graph's layout, so callers feed the same arrays to both.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "tessera/graph/graph.h"

namespace tessera::convert {

enum class Quantization {
  none,  // float32 throughout
  // Weights of convolutions and fully connected layers stored as float16 (half the
  // bytes), or as int8 with one symmetric scale per output channel (a quarter): the lite
  // runtime expands them to float32 once, when it allocates, and computes in float32.
  float16,
  dynamic_int8,
  // Full integer: int8 activations (per tensor, asymmetric, ranges from the calibration
  // data), int8 weights (per output channel, symmetric), int32 biases, for convolutions,
  // fully connected layers and the pooling and data movement between them; other ops stay
  // float32, with quantize / dequantize at the borders.
  int8,
};

struct LiteOptions {
  int64_t batch = 1;  // the size of unknown dimensions
  Quantization quantization = Quantization::none;
  // Batches of representative inputs (one TensorList per call, in the graph's input order)
  // for Quantization::int8: every activation's range is measured on them.
  std::vector<TensorList> calibration;
  // Extra metadata entries (labels, normalization, ...).
  std::vector<std::pair<std::string, std::string>> metadata;
};

struct LiteModel {
  std::vector<uint8_t> bytes;  // the .tlite file
  int64_t operators = 0;
  int64_t transposes = 0;      // layout changes the converter had to insert
  int64_t int8_operators = 0;  // operators that run on int8 (or hold compressed weights)
};

// Runs graph::optimize_for_inference (freezing variables, folding batch norm, fusing
// activations), then lowers. Throws Error listing every node of the optimized graph that
// has no lite form (node index, op, types, reason).
LiteModel to_lite(const graph::Graph& graph, const LiteOptions& options = {});

// `tessera convert`: reads a saved model's signature, writes the lite model atomically,
// and returns a one-line report of sizes.
std::string convert_saved_model(const std::string& saved_model, const std::string& output,
                                const std::string& signature = "serve",
                                const LiteOptions& options = {});

}  // namespace tessera::convert
