#include "convert_command.h"

#include <algorithm>
#include <filesystem>
#include <iostream>

#include "tessera/convert/lite_converter.h"
#include "tessera/io/npy.h"

namespace tessera::tools {

CLI::App* add_convert_command(CLI::App& app, ConvertOptions& o) {
  CLI::App* cmd = app.add_subcommand(
      "convert", "Convert a saved model to a lite model for the tessera_lite runtime (float32)");
  cmd->add_option("model", o.model, "Saved model (.tsm)")->required()->check(CLI::ExistingFile);
  cmd->add_option("--output,-o", o.output, "Where to write the lite model (.tlite)")->required();
  cmd->add_option("--signature,-s", o.signature, "Which signature")->capture_default_str();
  cmd->add_option("--batch", o.batch, "Size of the unknown (batch) dimension in the lite model")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_option("--quantize", o.quantize,
                  "none (float32); float16 or dynamic_int8 (weights only, computed in float32); "
                  "int8 (int8 weights and activations; needs --calibration)")
      ->check(CLI::IsMember({"none", "float16", "dynamic_int8", "int8"}))
      ->capture_default_str();
  cmd->add_option("--calibration", o.calibration,
                  "Folder of .npy files, each a batch of representative inputs (a model with "
                  "one input), for --quantize int8")
      ->check(CLI::ExistingDirectory);
  return cmd;
}

int run_convert(const ConvertOptions& o) {
  convert::LiteOptions options;
  options.batch = o.batch;
  if (o.quantize == "float16") options.quantization = convert::Quantization::float16;
  if (o.quantize == "dynamic_int8") options.quantization = convert::Quantization::dynamic_int8;
  if (o.quantize == "int8") {
    check(!o.calibration.empty(), "convert", "--quantize int8 needs --calibration DIR");
    std::vector<std::filesystem::path> files;
    for (const auto& entry : std::filesystem::directory_iterator(o.calibration)) {
      if (entry.path().extension() == ".npy") files.push_back(entry.path());
    }
    check(!files.empty(), "convert", "no .npy files in ", o.calibration);
    std::sort(files.begin(), files.end());
    for (const auto& f : files) options.calibration.push_back({io::read_npy(f.string())});
    options.quantization = convert::Quantization::int8;
  }
  std::cout << convert::convert_saved_model(o.model, o.output, o.signature, options) << "\n";
  return 0;
}

}  // namespace tessera::tools
