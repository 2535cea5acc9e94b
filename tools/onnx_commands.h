// `tessera import`: an ONNX model to a saved model (.tsm) that `tessera run`, `inspect`,
// `convert` and C++ programs load without the ONNX file. `tessera export`: a saved model's
// signature to an ONNX model for other runtimes.
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

struct ExportOptions {
  std::string model;
  std::string output;
  std::string signature = "serve";
};

CLI::App* add_export_command(CLI::App& app, ExportOptions& options);
int run_export(const ExportOptions& options);

}  // namespace tessera::tools
