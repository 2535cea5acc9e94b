// Saved-model subcommands of the `tessera` tool.
#include "model_commands.h"

#include <cstdio>
#include <filesystem>
#include <iostream>
#include <map>

#include "lite_run.h"
#include "tessera/graph/saved_model.h"
#include "tessera/io/npy.h"
#include "tessera/ops/creation.h"

namespace tessera::tools {

using graph::SavedModel;

ModelCommands add_model_commands(CLI::App& app, ModelOptions& o) {
  ModelCommands c{};
  c.run = app.add_subcommand("run", "Run a saved model's signature or a lite model on NPY inputs");
  c.run->add_option("model", o.model, "Saved model (.tsm) or lite model (.tlite)")
      ->required()
      ->check(CLI::ExistingFile);
  c.run->add_option("--input,-i", o.inputs, "Input .npy file, one per signature input, in order")
      ->required();
  c.run->add_option("--output,-o", o.outputs,
                    "Where to write each output (.npy); without it outputs are printed");
  c.run->add_option("--signature,-s", o.signature, "Which signature to run")->capture_default_str();

  c.inspect = app.add_subcommand(
      "inspect", "Show a saved model: signatures, ops, shapes, parameters, size, planned memory");
  c.inspect->add_option("model", o.model, "Saved model (.tsm)")
      ->required()
      ->check(CLI::ExistingFile);
  c.inspect->add_option("--batch", o.batch, "Size of unknown dimensions when planning memory")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  c.inspect
      ->add_option("--profile", o.profile_runs,
                   "Run each signature on zeros this many times and print each op's median time")
      ->check(CLI::NonNegativeNumber);

  c.graph = app.add_subcommand("graph", "Print a signature's graph (text, or Graphviz with --dot)");
  c.graph->add_option("model", o.model, "Saved model (.tsm)")->required()->check(CLI::ExistingFile);
  c.graph->add_flag("--dot", o.dot, "Graphviz dot output (render with: dot -Tsvg)");
  c.graph->add_option("--signature,-s", o.signature, "Which signature")->capture_default_str();
  return c;
}

int run_model(const ModelOptions& o) {
  TensorList inputs;
  for (const std::string& path : o.inputs) inputs.push_back(io::read_npy(path));
  TensorList outputs = is_lite_model(o.model) ? run_lite_model(o.model, inputs)
                                              : SavedModel::load(o.model).run(o.signature, inputs);
  check(o.outputs.empty() || o.outputs.size() == outputs.size(), "run", "the signature has ",
        outputs.size(), " outputs but ", o.outputs.size(), " --output paths were given");
  for (size_t i = 0; i < outputs.size(); ++i) {
    if (o.outputs.empty()) {
      std::cout << "output " << i << ": " << outputs[i] << "\n";
    } else {
      io::write_npy(o.outputs[i], outputs[i]);
      std::cout << "output " << i << " (" << dtype_name(outputs[i].dtype()) << " "
                << outputs[i].shape() << ") written to " << o.outputs[i] << "\n";
    }
  }
  return 0;
}

static std::string kib(int64_t bytes) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.1f KiB", static_cast<double>(bytes) / 1024.0);
  return buf;
}

int inspect_model(const ModelOptions& o) {
  SavedModel model = SavedModel::load(o.model);
  std::printf("%s: %s on disk\n", o.model.c_str(),
              kib(static_cast<int64_t>(std::filesystem::file_size(o.model))).c_str());
  for (const graph::SavedSignature& s : model.signatures()) {
    const graph::Graph& g = *s.graph;
    std::printf("\nsignature '%s': %zu ops, %lld parameters\n", s.name.c_str(), g.nodes.size(),
                static_cast<long long>(g.parameter_count()));
    for (int id : g.inputs) {
      const graph::Value& v = g.values[id];
      std::printf("  input  %-12s %s\n", v.name.c_str(),
                  graph::format_type(v.dtype, v.shape).c_str());
    }
    for (size_t i = 0; i < g.outputs.size(); ++i) {
      const graph::Value& v = g.values[g.outputs[i]];
      std::printf("  output %-12zu %s\n", i, graph::format_type(v.dtype, v.shape).c_str());
    }
    std::map<std::string, int> counts;
    for (const graph::Node& n : g.nodes) counts[n.op()]++;
    std::printf("  ops:");
    for (const auto& [op, n] : counts) std::printf(" %s x%d", op.c_str(), n);
    std::printf("\n");
    std::vector<Dims> shapes;
    for (int id : g.inputs) {
      Dims d = g.values[id].shape;
      for (int64_t& x : d) x = x == graph::kUnknownDim ? o.batch : x;
      shapes.push_back(d);
    }
    graph::PlanStats stats = model.executor(s.name).stats(shapes);
    std::printf("  planned memory (unknown sizes = %lld): %s, against %s without reuse (%.2fx)\n",
                static_cast<long long>(o.batch), kib(stats.arena_bytes).c_str(),
                kib(stats.naive_bytes).c_str(),
                stats.naive_bytes ? static_cast<double>(stats.arena_bytes) /
                                        static_cast<double>(stats.naive_bytes)
                                  : 0.0);
    std::printf("  schedule: %d waves of kernel calls, %d of them run as concurrent branches\n",
                stats.waves, stats.concurrent_waves);
    if (o.profile_runs > 0) {
      TensorList inputs;
      for (size_t i = 0; i < shapes.size(); ++i) {
        inputs.push_back(zeros(shapes[i], g.values[g.inputs[i]].dtype));
      }
      std::vector<double> us = model.executor(s.name).profile(inputs, o.profile_runs);
      double total = 0;
      for (double t : us) total += t;
      std::printf("  median time per op over %d runs (total %.1f us):\n", o.profile_runs, total);
      for (size_t n = 0; n < g.nodes.size(); ++n) {
        if (g.nodes[n].def->view) continue;
        const graph::Value& out = g.values[g.nodes[n].outputs[0]];
        std::printf("    %3zu %-22s %-22s %9.1f us\n", n, g.nodes[n].op(),
                    graph::format_type(out.dtype, out.shape).c_str(), us[n]);
      }
    }
  }
  return 0;
}

int print_graph(const ModelOptions& o) {
  SavedModel model = SavedModel::load(o.model);
  const graph::Graph& g = model.graph(o.signature);
  std::cout << (o.dot ? g.to_dot() : g.to_string());
  return 0;
}

}  // namespace tessera::tools
