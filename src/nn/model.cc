#include "tessera/nn/model.h"

#include <chrono>
#include <cmath>
#include <iostream>

#include "tessera/autodiff/autodiff.h"
#include "tessera/core/error.h"
#include "tessera/nn/progress.h"
#include "tessera/ops/shape.h"

namespace tessera::nn {
namespace {

// The {input, target} pair of a batch, with a clear error for other shapes of element.
std::pair<Tensor, Tensor> split_batch(const data::Example& e, const char* where) {
  check(e.size() == 2, where, "dataset elements must be {input, target}, got ", e.size(),
        " components");
  return {e[0], e[1]};
}

int64_t batch_size(const Tensor& x) { return x.dim() == 0 ? 1 : x.size(0); }

}  // namespace

const std::vector<double>& History::operator[](const std::string& name) const {
  auto it = values.find(name);
  check(it != values.end(), "History", "no entry '", name, "'");
  return it->second;
}

void Model::compile(std::shared_ptr<Optimizer> optimizer, LossFn loss,
                    std::vector<MetricPtr> metrics) {
  check(optimizer != nullptr && loss != nullptr, "Model::compile",
        "an optimizer and a loss are required");
  optimizer_ = std::move(optimizer);
  loss_ = std::move(loss);
  metrics_ = std::move(metrics);
}

void Model::require_compiled(const char* what) const {
  check(optimizer_ != nullptr, what, "call compile() first");
}

Optimizer& Model::optimizer() {
  require_compiled("Model::optimizer");
  return *optimizer_;
}

Tensor Model::train_step(const Tensor& x, const Tensor& y) {
  require_compiled("Model::train_step");
  module_->train();
  optimizer_->zero_grad();
  Tensor prediction = (*module_)(x);
  Tensor loss = loss_(prediction, y);
  loss.backward();
  if (strategy_) strategy_->after_backward(*this);
  optimizer_->step();
  NoGradGuard no_grad;
  for (auto& m : metrics_) m->update(prediction.detach(), y);
  return loss.detach();
}

void Model::combine_over_ranks(double& loss_sum, int64_t& samples) {
  if (!strategy_) return;
  std::vector<double> values{loss_sum, static_cast<double>(samples)};
  std::vector<size_t> sizes;
  for (auto& m : metrics_) {
    std::vector<double> state = m->state();
    sizes.push_back(state.size());
    values.insert(values.end(), state.begin(), state.end());
  }
  strategy_->sum_over_ranks(values);
  loss_sum = values[0];
  samples = static_cast<int64_t>(values[1]);
  size_t at = 2;
  for (size_t i = 0; i < metrics_.size(); ++i) {
    metrics_[i]->load_state(
        std::vector<double>(values.begin() + static_cast<ptrdiff_t>(at),
                            values.begin() + static_cast<ptrdiff_t>(at + sizes[i])));
    at += sizes[i];
  }
}

History Model::fit(const data::Dataset& train, const FitOptions& options) {
  require_compiled("Model::fit");
  if (!strategy_) return fit_epochs(train, options);
  try {
    strategy_->on_train_begin(*this);
    FitOptions quiet = options;
    if (!strategy_->is_chief()) quiet.verbose = 0;
    return fit_epochs(train, quiet);
  } catch (const std::exception& e) {
    strategy_->report_failure(e.what());
    throw;
  }
}

History Model::fit_epochs(const data::Dataset& train, const FitOptions& options) {
  History history;
  stop_training = false;
  auto& callbacks = options.callbacks;
  for (auto& c : callbacks) c->on_train_begin(*this);
  bool terminal = options.verbose == 1 && ProgressBar::stdout_is_terminal();
  int64_t steps_known = train.cardinality();
  Logs logs;
  for (int64_t epoch = options.initial_epoch; epoch < options.epochs && !stop_training; ++epoch) {
    epoch_ = epoch;
    for (auto& c : callbacks) c->on_epoch_begin(*this, epoch);
    for (auto& m : metrics_) m->reset();
    if (options.verbose > 0) std::cout << "Epoch " << epoch + 1 << "/" << options.epochs << "\n";
    ProgressBar bar(steps_known >= 0 ? steps_known : -1, std::cout, terminal);
    auto start = std::chrono::steady_clock::now();
    double loss_sum = 0;
    int64_t samples = 0, step = 0;
    // Epoch e is pass e of the data pipeline, whatever ran before: a run resumed at
    // initial_epoch sees the same shuffle order as the uninterrupted one.
    train.set_next_pass(static_cast<uint64_t>(epoch));
    auto it = train.iterator();
    while (auto element = it->next()) {
      auto [x, y] = split_batch(*element, "Model::fit");
      for (auto& c : callbacks) c->on_batch_begin(*this, step);
      Tensor loss = train_step(x, y);
      int64_t n = batch_size(x);
      double loss_value = loss.item<double>();
      loss_sum += loss_value * static_cast<double>(n);
      samples += n;
      ++step;
      logs = {{"loss", loss_sum / static_cast<double>(samples)}};
      for (auto& m : metrics_) logs[m->name()] = m->result();
      Logs batch_logs = logs;
      batch_logs["batch_loss"] = loss_value;
      for (auto& c : callbacks) c->on_batch_end(*this, step - 1, batch_logs);
      if (options.verbose > 0) bar.update(step, samples, logs);
      if (stop_training) break;
    }
    double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (strategy_) {
      combine_over_ranks(loss_sum, samples);
      logs["loss"] = samples ? loss_sum / static_cast<double>(samples) : 0.0;
      for (auto& m : metrics_) logs[m->name()] = m->result();
    }
    // (Keras refuses this too: an epoch without a batch has no loss to report.)
    check(samples > 0 || stop_training, "Model::fit", "epoch ", epoch + 1,
          " saw no samples: the training dataset is empty");
    logs["samples_per_second"] = seconds > 0 ? static_cast<double>(samples) / seconds : 0.0;
    logs["lr"] = optimizer_->lr();
    if (options.validation) {
      for (auto& [name, value] : evaluate(*options.validation)) logs["val_" + name] = value;
    }
    for (auto& c : callbacks) c->on_epoch_end(*this, epoch, logs);
    if (options.verbose > 0) bar.finish(step, samples, logs);
    for (auto& [name, value] : logs) history.values[name].push_back(value);
  }
  for (auto& c : callbacks) c->on_train_end(*this, logs);
  return history;
}

Logs Model::evaluate(const data::Dataset& data, int verbose) {
  require_compiled("Model::evaluate");
  NoGradGuard no_grad;
  EvalModeScope eval_mode(*module_);  // (each module's own mode comes back, also on errors)
  for (auto& m : metrics_) m->reset();
  double loss_sum = 0;
  int64_t samples = 0;
  auto it = data.iterator();
  while (auto element = it->next()) {
    auto [x, y] = split_batch(*element, "Model::evaluate");
    Tensor prediction = (*module_)(x);
    int64_t n = batch_size(x);
    loss_sum += loss_(prediction, y).item<double>() * static_cast<double>(n);
    samples += n;
    for (auto& m : metrics_) m->update(prediction, y);
  }
  combine_over_ranks(loss_sum, samples);
  Logs logs{{"loss", samples ? loss_sum / static_cast<double>(samples) : 0.0}};
  for (auto& m : metrics_) logs[m->name()] = m->result();
  if (verbose > 0 && is_chief()) std::cout << "evaluate:" << format_logs(logs) << "\n";
  return logs;
}

Tensor Model::predict(const data::Dataset& data) {
  NoGradGuard no_grad;
  EvalModeScope eval_mode(*module_);  // (each module's own mode comes back, also on errors)
  std::vector<Tensor> outputs;
  auto it = data.iterator();
  while (auto element = it->next()) {
    check(!element->empty(), "Model::predict", "dataset elements are empty");
    outputs.push_back((*module_)((*element)[0]));
  }
  check(!outputs.empty(), "Model::predict", "the dataset is empty");
  return concat(outputs, 0);
}

Tensor Model::predict(const Tensor& inputs, int64_t batch_size) {
  check(batch_size >= 1, "Model::predict", "batch_size must be >= 1, got ", batch_size);
  NoGradGuard no_grad;
  EvalModeScope eval_mode(*module_);  // (each module's own mode comes back, also on errors)
  std::vector<Tensor> outputs;
  for (int64_t start = 0; start < inputs.size(0); start += batch_size)
    outputs.push_back(
        (*module_)(inputs.narrow(0, start, std::min(batch_size, inputs.size(0) - start))));
  check(!outputs.empty(), "Model::predict", "no inputs");
  return concat(outputs, 0);
}

}  // namespace tessera::nn
