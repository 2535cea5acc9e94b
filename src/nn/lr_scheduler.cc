#include "tessera/nn/lr_scheduler.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numbers>

#include "tessera/core/error.h"

namespace tessera::nn {

LRScheduler::LRScheduler(Optimizer& optimizer) : optimizer_(optimizer) {
  for (auto& g : optimizer.param_groups()) base_lrs_.push_back(g.options.at("lr"));
}

void LRScheduler::step() {
  ++epoch_;
  apply();
}

void LRScheduler::set_epoch(int64_t epoch) {
  check(epoch >= 0, "LRScheduler", "epoch must be non-negative, got ", epoch);
  epoch_ = epoch;
  apply();
}

void LRScheduler::apply() {
  auto& groups = optimizer_.param_groups();
  for (size_t i = 0; i < groups.size() && i < base_lrs_.size(); ++i)
    groups[i].options["lr"] = lr_at(epoch_, base_lrs_[i]);
}

StepLR::StepLR(Optimizer& o, int64_t step_size, double gamma)
    : LRScheduler(o), step_size_(step_size), gamma_(gamma) {
  check(step_size >= 1, "StepLR", "step_size must be >= 1, got ", step_size);
}
double StepLR::lr_at(int64_t e, double base) const {
  return base * std::pow(gamma_, static_cast<double>(e / step_size_));
}

MultiStepLR::MultiStepLR(Optimizer& o, std::vector<int64_t> milestones, double gamma)
    : LRScheduler(o), milestones_(std::move(milestones)), gamma_(gamma) {}
double MultiStepLR::lr_at(int64_t e, double base) const {
  auto passed =
      std::count_if(milestones_.begin(), milestones_.end(), [e](int64_t m) { return m <= e; });
  return base * std::pow(gamma_, static_cast<double>(passed));
}

ExponentialLR::ExponentialLR(Optimizer& o, double gamma) : LRScheduler(o), gamma_(gamma) {}
double ExponentialLR::lr_at(int64_t e, double base) const {
  return base * std::pow(gamma_, static_cast<double>(e));
}

static double cosine(double from, double to, double fraction) {
  return to + (from - to) * (1 + std::cos(std::numbers::pi * fraction)) / 2;
}

CosineAnnealingLR::CosineAnnealingLR(Optimizer& o, int64_t t_max, double eta_min)
    : LRScheduler(o), t_max_(t_max), eta_min_(eta_min) {
  check(t_max >= 1, "CosineAnnealingLR", "t_max must be >= 1, got ", t_max);
}
double CosineAnnealingLR::lr_at(int64_t e, double base) const {
  return cosine(base, eta_min_, static_cast<double>(e) / static_cast<double>(t_max_));
}

CosineAnnealingWarmRestarts::CosineAnnealingWarmRestarts(Optimizer& o, int64_t t_0, int64_t t_mult,
                                                         double eta_min)
    : LRScheduler(o), t_0_(t_0), t_mult_(t_mult), eta_min_(eta_min) {
  check(t_0 >= 1 && t_mult >= 1, "CosineAnnealingWarmRestarts", "t_0 and t_mult must be >= 1, got ",
        t_0, " and ", t_mult);
}
double CosineAnnealingWarmRestarts::lr_at(int64_t e, double base) const {
  int64_t t_i = t_0_, t_cur = e;
  if (t_mult_ == 1) {
    t_cur = e % t_0_;  // (a loop would take e / t_0 steps)
  } else {
    // Periods grow geometrically, so this loop runs at most 63 times; once the next period
    // would pass int64, e lies inside the current one.
    while (t_cur >= t_i) {
      t_cur -= t_i;
      if (__builtin_mul_overflow(t_i, t_mult_, &t_i)) t_i = std::numeric_limits<int64_t>::max();
    }
  }
  return cosine(base, eta_min_, static_cast<double>(t_cur) / static_cast<double>(t_i));
}

OneCycleLR::OneCycleLR(Optimizer& o, double max_lr, int64_t total_steps, double pct_start,
                       double div_factor, double final_div_factor)
    : LRScheduler(o),
      max_lr_(max_lr),
      pct_start_(pct_start),
      div_(div_factor),
      final_div_(final_div_factor),
      total_(total_steps) {
  check(total_steps >= 2, "OneCycleLR", "total_steps must be >= 2, got ", total_steps);
  check(pct_start >= 0 && pct_start <= 1, "OneCycleLR", "pct_start must lie in [0, 1], got ",
        pct_start);
  o.set_lr(max_lr / div_factor);
}
double OneCycleLR::lr_at(int64_t e, double) const {
  double initial = max_lr_ / div_, final_lr = initial / final_div_;
  double peak = pct_start_ * static_cast<double>(total_) - 1, end = static_cast<double>(total_ - 1);
  double step = static_cast<double>(std::min(e, total_ - 1));
  if (step <= peak) return peak > 0 ? cosine(initial, max_lr_, step / peak) : max_lr_;
  return cosine(max_lr_, final_lr, (step - peak) / (end - peak));
}

LinearWarmup::LinearWarmup(Optimizer& o, int64_t warmup, double start_factor,
                           std::shared_ptr<LRScheduler> after)
    : LRScheduler(o), warmup_(warmup), start_factor_(start_factor), after_(std::move(after)) {
  check(warmup >= 1, "LinearWarmup", "warmup_steps must be >= 1, got ", warmup);
  set_epoch(0);
}
double LinearWarmup::lr_at(int64_t e, double base) const {
  double inner = after_ ? after_->lr_at(e, base) : base;
  double progress = static_cast<double>(std::min(e, warmup_)) / static_cast<double>(warmup_);
  return inner * (start_factor_ + (1 - start_factor_) * progress);
}

ReduceLROnPlateau::ReduceLROnPlateau(Optimizer& o, bool minimize, double factor, int64_t patience,
                                     double threshold, int64_t cooldown, double min_lr)
    : optimizer_(o),
      minimize_(minimize),
      factor_(factor),
      threshold_(threshold),
      min_lr_(min_lr),
      best_(minimize ? std::numeric_limits<double>::infinity()
                     : -std::numeric_limits<double>::infinity()),
      patience_(patience),
      cooldown_(cooldown) {
  check(factor < 1, "ReduceLROnPlateau", "factor must be < 1, got ", factor);
}

void ReduceLROnPlateau::step(double value) {
  bool better = minimize_ ? value < best_ * (1 - threshold_) : value > best_ * (1 + threshold_);
  if (better) {
    best_ = value;
    bad_epochs_ = 0;
  } else {
    ++bad_epochs_;
  }
  if (cooldown_left_ > 0) {
    --cooldown_left_;
    bad_epochs_ = 0;
  }
  if (bad_epochs_ > patience_) {
    for (auto& g : optimizer_.param_groups())
      g.options["lr"] = std::max(g.options["lr"] * factor_, min_lr_);
    cooldown_left_ = cooldown_;
    bad_epochs_ = 0;
  }
}

}  // namespace tessera::nn
