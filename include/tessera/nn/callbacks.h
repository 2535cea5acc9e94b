// Callbacks for Model::fit, as in Keras: hooks at train, epoch and batch boundaries
// that read the logs ("loss", metric names, "val_..." entries, "lr") and may stop
// training or change the learning rate.
#pragma once
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "tessera/nn/module.h"

namespace tessera::nn {

class Model;
using Logs = std::map<std::string, double>;

class Callback {
 public:
  virtual ~Callback() = default;
  virtual void on_train_begin(Model&) {}
  virtual void on_train_end(Model&, const Logs&) {}
  virtual void on_epoch_begin(Model&, int64_t /*epoch*/) {}
  virtual void on_epoch_end(Model&, int64_t /*epoch*/, Logs&) {}
  virtual void on_batch_begin(Model&, int64_t /*batch*/) {}
  virtual void on_batch_end(Model&, int64_t /*batch*/, Logs&) {}
};
using CallbackPtr = std::shared_ptr<Callback>;

// "min", "max", or "auto" (max for names containing "acc", "auc", "f1", "precision" or
// "recall", min otherwise).
bool monitor_maximizes(const std::string& monitor, const std::string& mode);

// Stops when `monitor` has not improved by min_delta for `patience` epochs; optionally
// restores the weights of the best epoch.
class EarlyStopping : public Callback {
 public:
  explicit EarlyStopping(std::string monitor = "val_loss", int64_t patience = 0,
                         double min_delta = 0.0, std::string mode = "auto",
                         bool restore_best_weights = false);
  void on_train_begin(Model&) override;
  void on_epoch_end(Model&, int64_t epoch, Logs& logs) override;
  int64_t stopped_epoch() const { return stopped_epoch_; }

 private:
  std::string monitor_;
  int64_t patience_;
  double min_delta_;
  bool maximize_, restore_;
  double best_ = 0;
  int64_t wait_ = 0, stopped_epoch_ = -1;
  bool seen_ = false;
  NamedTensors best_state_;
};

// Saves a checkpoint (weights and optimizer state) after each epoch, or only when
// `monitor` improves (save_best_only). "{epoch}" in the path is replaced by the epoch.
class ModelCheckpoint : public Callback {
 public:
  explicit ModelCheckpoint(std::string path, std::string monitor = "val_loss",
                           bool save_best_only = false, std::string mode = "auto");
  void on_epoch_end(Model&, int64_t epoch, Logs& logs) override;

 private:
  std::string path_, monitor_;
  bool best_only_, maximize_;
  bool seen_ = false;
  double best_ = 0;
};

// Sets the lr at each epoch's start to schedule(epoch, current lr).
class LearningRateScheduler : public Callback {
 public:
  explicit LearningRateScheduler(std::function<double(int64_t, double)> schedule)
      : schedule_(std::move(schedule)) {}
  void on_epoch_begin(Model&, int64_t epoch) override;

 private:
  std::function<double(int64_t, double)> schedule_;
};

// Keras' ReduceLROnPlateau over a monitored log entry.
class ReduceLROnPlateauCallback : public Callback {
 public:
  explicit ReduceLROnPlateauCallback(std::string monitor = "val_loss", double factor = 0.1,
                                     int64_t patience = 10, std::string mode = "auto",
                                     double min_delta = 1e-4, int64_t cooldown = 0,
                                     double min_lr = 0.0);
  void on_epoch_end(Model&, int64_t epoch, Logs& logs) override;

 private:
  std::string monitor_;
  double factor_, min_delta_, min_lr_;
  int64_t patience_, cooldown_, wait_ = 0, cooldown_left_ = 0;
  bool maximize_, seen_ = false;
  double best_ = 0;
};

// Writes one CSV row per epoch (epoch, then the log entries in name order); the file is
// rewritten atomically each epoch, so it is never left half-written.
class CSVLogger : public Callback {
 public:
  explicit CSVLogger(std::string path) : path_(std::move(path)) {}
  void on_train_begin(Model&) override { rows_.clear(); }
  void on_epoch_end(Model&, int64_t epoch, Logs& logs) override;

 private:
  std::string path_;
  std::vector<std::string> columns_;
  std::vector<std::string> rows_;
};

// Stops training as soon as a batch loss is NaN or infinite.
class TerminateOnNaN : public Callback {
 public:
  void on_batch_end(Model&, int64_t batch, Logs& logs) override;
};

// Any of the hooks as plain functions.
class LambdaCallback : public Callback {
 public:
  std::function<void(Model&, int64_t)> epoch_begin, batch_begin;
  std::function<void(Model&, int64_t, Logs&)> epoch_end, batch_end;
  void on_epoch_begin(Model& m, int64_t e) override {
    if (epoch_begin) epoch_begin(m, e);
  }
  void on_epoch_end(Model& m, int64_t e, Logs& l) override {
    if (epoch_end) epoch_end(m, e, l);
  }
  void on_batch_begin(Model& m, int64_t b) override {
    if (batch_begin) batch_begin(m, b);
  }
  void on_batch_end(Model& m, int64_t b, Logs& l) override {
    if (batch_end) batch_end(m, b, l);
  }
};

}  // namespace tessera::nn
