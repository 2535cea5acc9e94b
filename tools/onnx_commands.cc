#include "onnx_commands.h"

#include <iostream>

#include "tessera/graph/saved_model.h"
#include "tessera/io/onnx.h"

namespace tessera::tools {

CLI::App* add_import_command(CLI::App& app, ImportOptions& o) {
  CLI::App* cmd =
      app.add_subcommand("import", "Import an ONNX model (opsets 7 to 17) as a saved model");
  cmd->add_option("model", o.model, "ONNX model (.onnx)")->required()->check(CLI::ExistingFile);
  cmd->add_option("--output,-o", o.output, "Where to write the saved model (.tsm)")->required();
  cmd->add_option("--input-shape", o.input_shapes,
                  "Fixed shape of an input, NAME=D0,D1,... (for dims the model leaves symbolic "
                  "and shape computations need); repeatable");
  cmd->add_flag("--trainable", o.trainable,
                "Keep floating-point initializers as variables (for fine-tuning)");
  return cmd;
}

int run_import(const ImportOptions& o) {
  onnx::ImportOptions options;
  options.trainable = o.trainable;
  for (const std::string& spec : o.input_shapes) {
    size_t eq = spec.find('=');
    check(eq != std::string::npos && eq > 0, "import", "--input-shape wants NAME=D0,D1,..., got '",
          spec, "'");
    Dims dims;
    std::string rest = spec.substr(eq + 1);
    size_t start = 0;
    while (start <= rest.size() && !rest.empty()) {
      size_t comma = rest.find(',', start);
      std::string part =
          rest.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
      try {
        dims.push_back(std::stoll(part));
      } catch (const std::logic_error&) {
        fail("import", "--input-shape: '", part, "' is not a dimension in '", spec, "'");
      }
      if (comma == std::string::npos) break;
      start = comma + 1;
    }
    options.input_shapes.emplace_back(spec.substr(0, eq), dims);
  }
  onnx::ImportedModel imported = onnx::load(o.model, options);
  auto graph = std::make_shared<graph::Graph>(std::move(imported.graph));
  graph::save_model(o.output, {{"serve", graph}});
  std::cout << "imported " << o.model << " (opset " << imported.opset
            << "): " << graph->nodes.size() << " nodes, " << graph->parameter_count()
            << " parameters, inputs";
  for (const auto& name : imported.input_names) std::cout << " " << name;
  std::cout << "; wrote " << o.output << "\n";
  return 0;
}

CLI::App* add_export_command(CLI::App& app, ExportOptions& o) {
  CLI::App* cmd =
      app.add_subcommand("export", "Export a saved model's signature as an ONNX model (opset 17)");
  cmd->add_option("model", o.model, "Saved model (.tsm)")->required()->check(CLI::ExistingFile);
  cmd->add_option("--output,-o", o.output, "Where to write the ONNX model (.onnx)")->required();
  cmd->add_option("--signature", o.signature, "Which signature to export")->capture_default_str();
  return cmd;
}

int run_export(const ExportOptions& o) {
  graph::SavedModel model = graph::SavedModel::load(o.model);
  const graph::Graph& g = model.graph(o.signature);
  onnx::save(g, o.output);
  std::cout << "exported signature '" << o.signature << "' of " << o.model << ": " << g.nodes.size()
            << " nodes, " << g.parameter_count() << " parameters; wrote " << o.output
            << " (ONNX opset " << onnx::kExportOpset << ")\n";
  return 0;
}

}  // namespace tessera::tools
