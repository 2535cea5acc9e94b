// `tessera import`: an ONNX model to a saved model (.tsm) that `tessera run`, `inspect`,
// `convert` and C++ programs load without the ONNX file.
#pragma once
#include <CLI/CLI.hpp>
#include <string>
#include <vector>

namespace tessera::tools {

struct ImportOptions {
  std::string model;
  std::string output;
  std::vector<std::string> input_shapes;  // "name=1,3,224,224"
  bool trainable = false;
};

CLI::App* add_import_command(CLI::App& app, ImportOptions& options);
int run_import(const ImportOptions& options);

}  // namespace tessera::tools
