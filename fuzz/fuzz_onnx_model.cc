// libFuzzer target for the ONNX importer: any bytes must import, or fail with a
// tessera::Error; an imported model must run on small zero inputs or fail the same way.
// Build and run: bash scripts/fuzz.sh [seconds] onnx_model
#include <cstddef>
#include <cstdint>

#include "tessera/graph/executor.h"
#include "tessera/io/onnx.h"
#include "tessera/ops/creation.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tessera;
  try {
    // A small limit on any one tensor keeps hostile sizes from being the slow part.
    onnx::ImportOptions options;
    options.max_bytes = int64_t{1} << 24;
    onnx::ImportedModel model = onnx::load_bytes({data, size}, options);
    TensorList inputs;
    int64_t elements = 0;
    for (int id : model.graph.inputs) {
      Dims shape = model.graph.values[id].shape;
      for (int64_t& d : shape) d = d < 0 ? 2 : d;
      elements += shape_numel(shape);
      inputs.push_back(zeros(shape, model.graph.values[id].dtype));
    }
    if (elements > (int64_t{1} << 20)) return 0;
    graph::Executor executor(std::make_shared<graph::Graph>(std::move(model.graph)));
    executor.run(inputs);
  } catch (const Error&) {
  }
  return 0;
}
