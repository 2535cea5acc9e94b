// The `tessera` command: one binary, one subcommand per task.
#include <CLI/CLI.hpp>
#include <iostream>

#include "tessera/core/error.h"
#include "train_command.h"

int main(int argc, char** argv) {
  CLI::App app{"Tessera: train, run and ship deep-learning models"};
  app.require_subcommand(1);
  tessera::tools::TrainOptions train;
  tessera::tools::add_train_command(app, train);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    if (app.got_subcommand("train")) return tessera::tools::run_train(train);
  } catch (const tessera::Error& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
