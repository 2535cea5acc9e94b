// `tessera convert`: a saved model's signature to a lite model (.tlite).
#pragma once
#include <CLI/CLI.hpp>
#include <string>

namespace tessera::tools {

struct ConvertOptions {
  std::string model;
  std::string output;
  std::string signature = "serve";
  int64_t batch = 1;
  std::string quantize = "none";  // none, float16, dynamic_int8 or int8
  std::string calibration;        // folder of .npy files, one input batch each
};

CLI::App* add_convert_command(CLI::App& app, ConvertOptions& options);
int run_convert(const ConvertOptions& options);

}  // namespace tessera::tools
