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

struct LiteOptions {
  int64_t batch = 1;  // the size of unknown dimensions
  // Extra metadata entries (labels, normalization, ...).
  std::vector<std::pair<std::string, std::string>> metadata;
};

struct LiteModel {
  std::vector<uint8_t> bytes;  // the .tlite file
  int64_t operators = 0;
  int64_t transposes = 0;  // layout changes the converter had to insert
};

// Throws Error listing every node that has no lite form (node index, op, types, reason).
LiteModel to_lite(const graph::Graph& graph, const LiteOptions& options = {});

// `tessera convert`: reads a saved model's signature, writes the lite model atomically,
// and returns a one-line report of sizes.
std::string convert_saved_model(const std::string& saved_model, const std::string& output,
                                const std::string& signature = "serve",
                                const LiteOptions& options = {});

}  // namespace tessera::convert
