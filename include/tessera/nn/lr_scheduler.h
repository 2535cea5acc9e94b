// Learning-rate schedules, with PyTorch's formulas. A scheduler remembers each group's
// base lr; step() advances one epoch (or one batch, as the caller chooses) and sets
// lr = f(step count, base lr) on every group of the optimizer.
#pragma once
#include <memory>
#include <vector>

#include "tessera/nn/optim.h"

namespace tessera::nn {

class LRScheduler {
 public:
  explicit LRScheduler(Optimizer& optimizer);
  virtual ~LRScheduler() = default;
  void step();
  int64_t last_epoch() const { return epoch_; }
  // Jumps to a step count (used when resuming from a checkpoint).
  void set_epoch(int64_t epoch);
  // The lr a group with this base lr gets at step `epoch`.
  virtual double lr_at(int64_t epoch, double base_lr) const = 0;

 protected:
  Optimizer& optimizer_;

 private:
  void apply();
  std::vector<double> base_lrs_;
  int64_t epoch_ = 0;
};

// base * gamma ^ floor(epoch / step_size)
class StepLR : public LRScheduler {
 public:
  StepLR(Optimizer& o, int64_t step_size, double gamma = 0.1);
  double lr_at(int64_t epoch, double base) const override;

 private:
  int64_t step_size_;
  double gamma_;
};

// base * gamma ^ (number of milestones <= epoch)
class MultiStepLR : public LRScheduler {
 public:
  MultiStepLR(Optimizer& o, std::vector<int64_t> milestones, double gamma = 0.1);
  double lr_at(int64_t epoch, double base) const override;

 private:
  std::vector<int64_t> milestones_;
  double gamma_;
};

class ExponentialLR : public LRScheduler {
 public:
  ExponentialLR(Optimizer& o, double gamma);
  double lr_at(int64_t epoch, double base) const override;

 private:
  double gamma_;
};

// eta_min + (base - eta_min) * (1 + cos(pi * epoch / t_max)) / 2
class CosineAnnealingLR : public LRScheduler {
 public:
  CosineAnnealingLR(Optimizer& o, int64_t t_max, double eta_min = 0.0);
  double lr_at(int64_t epoch, double base) const override;

 private:
  int64_t t_max_;
  double eta_min_;
};

// Cosine annealing restarted after t_0 steps, each period t_mult times longer (SGDR).
class CosineAnnealingWarmRestarts : public LRScheduler {
 public:
  CosineAnnealingWarmRestarts(Optimizer& o, int64_t t_0, int64_t t_mult = 1, double eta_min = 0.0);
  double lr_at(int64_t epoch, double base) const override;

 private:
  int64_t t_0_, t_mult_;
  double eta_min_;
};

// The one-cycle policy (stepped per batch): from max_lr / div_factor up to max_lr over
// pct_start of total_steps, then cosine down to the initial lr / final_div_factor. The
// optimizer's base lr is ignored. (PyTorch also cycles momentum; this does not.)
class OneCycleLR : public LRScheduler {
 public:
  OneCycleLR(Optimizer& o, double max_lr, int64_t total_steps, double pct_start = 0.3,
             double div_factor = 25.0, double final_div_factor = 1e4);
  double lr_at(int64_t epoch, double base) const override;

 private:
  double max_lr_, pct_start_, div_, final_div_;
  int64_t total_;
};

// Scales another schedule (or the constant base lr when none) by a factor rising
// linearly from start_factor to 1 over warmup_steps.
class LinearWarmup : public LRScheduler {
 public:
  LinearWarmup(Optimizer& o, int64_t warmup_steps, double start_factor = 0.0,
               std::shared_ptr<LRScheduler> after = nullptr);
  double lr_at(int64_t epoch, double base) const override;

 private:
  int64_t warmup_;
  double start_factor_;
  std::shared_ptr<LRScheduler> after_;
};

// Multiplies every group's lr by `factor` when the monitored value has not improved for
// `patience` steps (relative threshold, like PyTorch's default "rel" mode), then waits
// `cooldown` steps; never below min_lr.
class ReduceLROnPlateau {
 public:
  ReduceLROnPlateau(Optimizer& o, bool minimize = true, double factor = 0.1, int64_t patience = 10,
                    double threshold = 1e-4, int64_t cooldown = 0, double min_lr = 0.0);
  void step(double value);

 private:
  Optimizer& optimizer_;
  bool minimize_;
  double factor_, threshold_, min_lr_, best_;
  int64_t patience_, cooldown_, bad_epochs_ = 0, cooldown_left_ = 0;
};

}  // namespace tessera::nn
