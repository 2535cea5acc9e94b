// libFuzzer target for the ONNX importer: any bytes must import, or fail with a
// tessera::Error; an imported model must run on small zero inputs or fail the same way.
// External data is looked up in a folder made once per process, which holds a weights
// file, a sub-folder, a FIFO and links out of the folder to a file of marker bytes: a
// model whose constants hold the marker has read outside its folder, and aborts.
// Build and run: bash scripts/fuzz.sh [seconds] onnx_model
#include <sys/stat.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

#include "tessera/graph/executor.h"
#include "tessera/io/onnx.h"
#include "tessera/ops/creation.h"

namespace {

constexpr char kMarker[] = "OUTSIDE-THE-FOLDER";

// model/{weights.bin, sub/, fifo, out.bin -> ../secret.bin, up -> ..}, secret.bin.
std::string model_folder() {
  namespace fs = std::filesystem;
  static const std::string folder = [] {
    fs::path top = fs::temp_directory_path() / ("tessera_fuzz_onnx_" + std::to_string(::getpid()));
    fs::remove_all(top);
    fs::create_directories(top / "model" / "sub");
    {
      std::ofstream secret(top / "secret.bin", std::ios::binary);
      for (int i = 0; i < 64; ++i) secret << kMarker;
    }
    std::ofstream(top / "model" / "weights.bin", std::ios::binary) << std::string(4096, '\x01');
    ::mkfifo((top / "model" / "fifo").c_str(), 0600);
    fs::create_symlink("../secret.bin", top / "model" / "out.bin");
    fs::create_symlink("..", top / "model" / "up");
    return (top / "model").string();
  }();
  return folder;
}

bool holds_marker(const tessera::Tensor& t) {
  if (!t.defined() || t.numel() == 0) return false;
  tessera::Tensor c = t.contiguous();
  const char* bytes = static_cast<const char*>(c.data_ptr());
  size_t n = static_cast<size_t>(c.numel() * c.element_size());
  return memmem(bytes, n, kMarker, 8) != nullptr;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tessera;
  try {
    // A small limit on any one tensor keeps hostile sizes from being the slow part.
    onnx::ImportOptions options;
    options.max_bytes = int64_t{1} << 24;
    onnx::ImportedModel model = onnx::load_bytes({data, size}, options, model_folder());
    // The fuzzer learns the marker from the comparison and may write it into the model
    // itself (raw data): only a marker the model does not hold came from outside.
    const bool model_holds_marker = memmem(data, size, kMarker, 8) != nullptr;
    for (const graph::Value& v : model.graph.values) {
      if (!model_holds_marker && holds_marker(v.data)) {
        std::fprintf(stderr, "a constant holds bytes from outside the model's folder\n");
        std::abort();
      }
    }
    TensorList inputs;
    int64_t elements = 0;
    for (int id : model.graph.inputs) {
      Dims shape = model.graph.values[id].shape;
      for (int64_t& d : shape) d = d < 0 ? 2 : d;
      elements += shape_numel(shape);
      inputs.push_back(zeros(shape, model.graph.values[id].dtype));
    }
    if (elements > (int64_t{1} << 20)) return 0;
    // A small model may compute huge values (Tile, Expand): legitimate, but past the
    // fuzzer's memory limit. Run only those whose every value stays small.
    std::vector<Dims> shapes;
    for (const Tensor& t : inputs) shapes.push_back(t.shape());
    for (const Tensor& v : graph::infer_values(model.graph, shapes)) {
      if (v.defined() && v.numel() > (int64_t{1} << 24)) return 0;
    }
    graph::Executor executor(std::make_shared<graph::Graph>(std::move(model.graph)));
    executor.run(inputs);
  } catch (const Error&) {
  }
  return 0;
}
