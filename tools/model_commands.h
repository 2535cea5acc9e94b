// `tessera run`, `tessera inspect` and `tessera graph`: saved models from the command line.
#pragma once
#include <CLI/CLI.hpp>
#include <string>
#include <vector>

namespace tessera::tools {

struct ModelOptions {
  std::string model;
  std::string signature = "serve";
  std::vector<std::string> inputs;   // .npy files, one per signature input
  std::vector<std::string> outputs;  // where to write the outputs (.npy); empty: print them
  bool dot = false;
  int64_t batch = 1;     // size given to unknown dimensions when inspect plans memory
  int profile_runs = 0;  // inspect: time each op over this many runs (0: do not)
};

// Adds the three subcommands; returns them so that main can tell which one ran.
struct ModelCommands {
  CLI::App* run;
  CLI::App* inspect;
  CLI::App* graph;
};
ModelCommands add_model_commands(CLI::App& app, ModelOptions& options);

int run_model(const ModelOptions& options);
int inspect_model(const ModelOptions& options);
int print_graph(const ModelOptions& options);

}  // namespace tessera::tools
