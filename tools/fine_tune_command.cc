#include "fine_tune_command.h"

#include <cstdio>

#include "tessera/graph/saved_model.h"
#include "tessera/io/npy.h"
#include "tessera/nn/nn.h"

namespace tessera::tools {

CLI::App* add_fine_tune_command(CLI::App& app, FineTuneOptions& o) {
  CLI::App* cmd = app.add_subcommand(
      "fine-tune", "Train a saved model's variables on NPY examples and save the result");
  cmd->add_option("model", o.model, "Saved model (.tsm) with variables")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("--output,-o", o.output, "Where to write the fine-tuned model (.tsm)")
      ->required();
  cmd->add_option("--inputs", o.inputs, "Examples (.npy), one per row of the first axis")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("--labels", o.labels,
                  "Targets (.npy): integer class ids (cross-entropy on the output's logits) or "
                  "floats shaped like the output (mean squared error)")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("--signature,-s", o.signature, "Which signature")->capture_default_str();
  cmd->add_option("--steps", o.steps, "Optimizer steps")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_option("--batch-size", o.batch_size, "Examples per step")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_option("--lr", o.lr, "Learning rate")->capture_default_str();
  cmd->add_option("--optimizer", o.optimizer, "adam or sgd (momentum 0.9)")
      ->check(CLI::IsMember({"adam", "sgd"}))
      ->capture_default_str();
  return cmd;
}

int run_fine_tune(const FineTuneOptions& o) {
  graph::SavedModel saved = graph::SavedModel::load(o.model);
  auto g = std::make_shared<graph::Graph>(saved.graph(o.signature));
  auto module = std::make_shared<nn::GraphModule>(g);
  Tensor inputs = io::read_npy(o.inputs), labels = io::read_npy(o.labels);
  const int64_t n = inputs.dim() > 0 ? inputs.shape()[0] : 0;
  check(n > 0 && labels.dim() > 0 && labels.shape()[0] == n, "fine-tune", "--inputs ",
        inputs.shape(), " and --labels ", labels.shape(),
        " must hold the same number (> 0) of rows");
  const bool classes = !is_floating(labels.dtype());
  if (classes) labels = labels.to(DType::Int64);
  std::unique_ptr<nn::Optimizer> optimizer;
  if (o.optimizer == "sgd") {
    optimizer = std::make_unique<nn::SGD>(module->parameters(), o.lr, 0.9);
  } else {
    optimizer = std::make_unique<nn::Adam>(module->parameters(), o.lr);
  }
  auto loss_of = [&](const Tensor& out, const Tensor& target) {
    return classes ? nn::cross_entropy(out, target) : nn::mse_loss(out, target);
  };
  const int64_t batch = std::min(o.batch_size, n);
  std::printf("fine-tuning %lld parameters of '%s' on %lld examples (%s, lr %g)\n",
              static_cast<long long>(module->num_parameters()), o.signature.c_str(),
              static_cast<long long>(n), o.optimizer.c_str(), o.lr);
  for (int64_t step = 0; step < o.steps; ++step) {
    // Consecutive batches, wrapping around the examples.
    int64_t start = (step * batch) % n, stop = std::min(start + batch, n);
    Tensor x = inputs.slice(0, start, stop), y = labels.slice(0, start, stop);
    optimizer->zero_grad();
    Tensor loss = loss_of(module->forward(x), y);
    loss.backward();
    optimizer->step();
    std::printf("step %lld: loss %.6f\n", static_cast<long long>(step + 1), loss.item<double>());
  }
  // Every signature is kept; the trained one holds the new weights.
  std::vector<graph::SavedSignature> signatures = saved.signatures();
  for (graph::SavedSignature& s : signatures) {
    if (s.name == o.signature) s.graph = g;
  }
  graph::save_model(o.output, signatures);
  std::printf("wrote %s\n", o.output.c_str());
  return 0;
}

}  // namespace tessera::tools
