#include "convert_command.h"

#include <iostream>

#include "tessera/convert/lite_converter.h"

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
  return cmd;
}

int run_convert(const ConvertOptions& o) {
  convert::LiteOptions options;
  options.batch = o.batch;
  std::cout << convert::convert_saved_model(o.model, o.output, o.signature, options) << "\n";
  return 0;
}

}  // namespace tessera::tools
