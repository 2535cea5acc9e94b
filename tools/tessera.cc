// The `tessera` command: one binary, one subcommand per task.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdlib>
#include <iostream>

#include "convert_command.h"
#include "fine_tune_command.h"
#ifdef TESSERA_WITH_ONNX
#include "onnx_commands.h"
#endif
#include "model_commands.h"
#include "tessera/core/error.h"
#include "train_command.h"

namespace {

// OpenMP's workers sleep between parallel regions by default, and waking them costs more
// than the small ops of a training step (MLP training ran 94k images/s passive and 118k
// active on 2 cores). The runtime reads the policy when it loads, before main, so the
// command re-executes itself once with the policy set, unless the user chose one.
void prefer_active_waiting(char** argv) {
  if (std::getenv("OMP_WAIT_POLICY") != nullptr) return;
  setenv("OMP_WAIT_POLICY", "active", 1);
  execv("/proc/self/exe", argv);  // returns only on failure: then run as is
}

}  // namespace

int main(int argc, char** argv) {
  prefer_active_waiting(argv);
  CLI::App app{"Tessera: train, run and ship deep-learning models"};
  app.require_subcommand(1);
  tessera::tools::TrainOptions train;
  tessera::tools::add_train_command(app, train);
  tessera::tools::ModelOptions model;
  tessera::tools::ModelCommands model_commands = tessera::tools::add_model_commands(app, model);
  tessera::tools::ConvertOptions convert;
  CLI::App* convert_command = tessera::tools::add_convert_command(app, convert);
  tessera::tools::FineTuneOptions fine_tune;
  CLI::App* fine_tune_command = tessera::tools::add_fine_tune_command(app, fine_tune);
#ifdef TESSERA_WITH_ONNX
  tessera::tools::ImportOptions import_options;
  CLI::App* import_command = tessera::tools::add_import_command(app, import_options);
  tessera::tools::ExportOptions export_options;
  CLI::App* export_command = tessera::tools::add_export_command(app, export_options);
#endif
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    if (app.got_subcommand("train")) return tessera::tools::run_train(train);
    if (model_commands.run->parsed()) return tessera::tools::run_model(model);
    if (model_commands.inspect->parsed()) return tessera::tools::inspect_model(model);
    if (model_commands.graph->parsed()) return tessera::tools::print_graph(model);
    if (convert_command->parsed()) return tessera::tools::run_convert(convert);
    if (fine_tune_command->parsed()) return tessera::tools::run_fine_tune(fine_tune);
#ifdef TESSERA_WITH_ONNX
    if (import_command->parsed()) return tessera::tools::run_import(import_options);
    if (export_command->parsed()) return tessera::tools::run_export(export_options);
#endif
  } catch (const tessera::Error& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
