#include "tessera/nn/callbacks.h"

#include <cmath>
#include <sstream>

#include "tessera/autodiff/autodiff.h"
#include "tessera/core/error.h"
#include "tessera/io/atomic_file.h"
#include "tessera/nn/checkpoint.h"
#include "tessera/nn/model.h"

namespace tessera::nn {
namespace {

double monitored(const Logs& logs, const std::string& monitor, const char* who) {
  auto it = logs.find(monitor);
  if (it != logs.end()) return it->second;
  std::string known;
  for (auto& [name, v] : logs) known += (known.empty() ? "" : ", ") + name;
  fail(who, "monitored value '", monitor, "' is not in the logs (", known, ")");
}

bool improved(double value, double best, bool maximize, double min_delta) {
  return maximize ? value > best + min_delta : value < best - min_delta;
}

}  // namespace

bool monitor_maximizes(const std::string& monitor, const std::string& mode) {
  if (mode == "max") return true;
  if (mode == "min") return false;
  check(mode == "auto", "callback", "mode must be min, max or auto, got ", mode);
  for (const char* word : {"acc", "auc", "f1", "precision", "recall"})
    if (monitor.find(word) != std::string::npos) return true;
  return false;
}

EarlyStopping::EarlyStopping(std::string monitor, int64_t patience, double min_delta,
                             std::string mode, bool restore)
    : monitor_(std::move(monitor)),
      patience_(patience),
      min_delta_(std::abs(min_delta)),
      maximize_(monitor_maximizes(monitor_, mode)),
      restore_(restore) {}

void EarlyStopping::on_train_begin(Model&) {
  seen_ = false;
  wait_ = 0;
  stopped_epoch_ = -1;
  best_state_.clear();
}

void EarlyStopping::on_epoch_end(Model& model, int64_t epoch, Logs& logs) {
  double value = monitored(logs, monitor_, "EarlyStopping");
  if (!seen_ || improved(value, best_, maximize_, min_delta_)) {
    seen_ = true;
    best_ = value;
    wait_ = 0;
    if (restore_) {
      NoGradGuard no_grad;
      best_state_.clear();
      for (auto& [name, t] : model.module().state_dict()) best_state_.emplace_back(name, t.clone());
    }
    return;
  }
  if (++wait_ > patience_) {
    model.stop_training = true;
    stopped_epoch_ = epoch;
    if (restore_ && !best_state_.empty()) model.module().load_state_dict(best_state_);
  }
}

ModelCheckpoint::ModelCheckpoint(std::string path, std::string monitor, bool best_only,
                                 std::string mode)
    : path_(std::move(path)),
      monitor_(std::move(monitor)),
      best_only_(best_only),
      maximize_(monitor_maximizes(monitor_, mode)) {}

void ModelCheckpoint::on_epoch_end(Model& model, int64_t epoch, Logs& logs) {
  if (!model.is_chief()) return;  // data-parallel: rank 0 writes, every rank can resume
  if (best_only_) {
    double value = monitored(logs, monitor_, "ModelCheckpoint");
    if (seen_ && !improved(value, best_, maximize_, 0.0)) return;
    seen_ = true;
    best_ = value;
  }
  std::string path = path_;
  auto at = path.find("{epoch}");
  if (at != std::string::npos) path.replace(at, 7, std::to_string(epoch + 1));
  Metadata meta{{"epoch", std::to_string(epoch + 1)}};
  for (auto& [name, value] : logs) {
    std::ostringstream os;
    os.precision(17);
    os << value;
    meta["log." + name] = os.str();
  }
  save_checkpoint(path, model.module(), model.optimizer_ptr().get(), meta);
}

void LearningRateScheduler::on_epoch_begin(Model& model, int64_t epoch) {
  model.optimizer().set_lr(schedule_(epoch, model.optimizer().lr()));
}

ReduceLROnPlateauCallback::ReduceLROnPlateauCallback(std::string monitor, double factor,
                                                     int64_t patience, std::string mode,
                                                     double min_delta, int64_t cooldown,
                                                     double min_lr)
    : monitor_(std::move(monitor)),
      factor_(factor),
      min_delta_(min_delta),
      min_lr_(min_lr),
      patience_(patience),
      cooldown_(cooldown),
      maximize_(monitor_maximizes(monitor_, mode)) {
  check(factor < 1, "ReduceLROnPlateau", "factor must be < 1, got ", factor);
}

void ReduceLROnPlateauCallback::on_epoch_end(Model& model, int64_t, Logs& logs) {
  double value = monitored(logs, monitor_, "ReduceLROnPlateau");
  if (cooldown_left_ > 0) {
    --cooldown_left_;
    wait_ = 0;
  }
  if (!seen_ || improved(value, best_, maximize_, min_delta_)) {
    seen_ = true;
    best_ = value;
    wait_ = 0;
  } else if (cooldown_left_ == 0 && ++wait_ >= patience_) {
    for (auto& g : model.optimizer().param_groups())
      g.options["lr"] = std::max(g.options["lr"] * factor_, min_lr_);
    cooldown_left_ = cooldown_;
    wait_ = 0;
  }
  logs["lr"] = model.optimizer().lr();
}

void CSVLogger::on_epoch_end(Model& model, int64_t epoch, Logs& logs) {
  if (!model.is_chief()) return;
  if (columns_.empty())
    for (auto& [name, v] : logs) columns_.push_back(name);
  std::ostringstream row;
  row.precision(8);
  row << epoch;
  for (auto& name : columns_) {
    row << ",";
    auto it = logs.find(name);
    if (it != logs.end()) row << it->second;
  }
  rows_.push_back(row.str());
  io::write_file_atomic(path_, [&](std::ostream& out) {
    out << "epoch";
    for (auto& name : columns_) out << "," << name;
    out << "\n";
    for (auto& r : rows_) out << r << "\n";
  });
}

void TerminateOnNaN::on_batch_end(Model& model, int64_t batch, Logs& logs) {
  auto it = logs.find("batch_loss");
  if (it != logs.end() && !std::isfinite(it->second)) {
    std::fprintf(stderr, "TerminateOnNaN: batch %lld has loss %f; stopping\n",
                 static_cast<long long>(batch), it->second);
    model.stop_training = true;
  }
}

}  // namespace tessera::nn
