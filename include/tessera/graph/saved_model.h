// Saved models: one flatbuffers file (schema: src/graph/schema/saved_model.fbs) holding
// named signatures (each a graph with typed inputs and outputs), their weights and a
// format version. C++ loads one and runs a signature without the code that defined it.
//
// Loading never trusts the file: the flatbuffer is verified, every index, size, op name,
// dtype and weight is checked, and each graph's shapes are inferred against its weights
// before the model is returned; any problem is a tessera::Error saying what and where.
#pragma once
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "tessera/graph/executor.h"

namespace tessera::graph {

// 2: fused_elementwise programs name their ops (version 1 stored enum positions; files of
// version 1 still load).
inline constexpr uint32_t kSavedModelVersion = 2;

struct SavedSignature {
  std::string name;
  std::shared_ptr<const Graph> graph;
};

// Writes the signatures atomically (temp file, fsync, rename). Weights used by several
// signatures are stored once.
void save_model(const std::string& path, const std::vector<SavedSignature>& signatures);
std::string serialize_model(const std::vector<SavedSignature>& signatures);

class SavedModel {
 public:
  static SavedModel load(const std::string& path);
  static SavedModel from_bytes(std::span<const uint8_t> bytes);

  std::vector<std::string> signature_names() const;
  const Graph& graph(const std::string& signature = "serve") const;
  // Runs a signature (the executor is made on first use and kept).
  TensorList run(const std::string& signature, const TensorList& inputs);
  TensorList run(const TensorList& inputs) { return run("serve", inputs); }
  Executor& executor(const std::string& signature = "serve");
  const std::vector<SavedSignature>& signatures() const { return signatures_; }

 private:
  std::vector<SavedSignature> signatures_;
  std::vector<std::shared_ptr<Executor>> executors_;
  size_t index_of(const std::string& signature) const;
};

}  // namespace tessera::graph
