// Streaming metrics: update() with each batch, result() at any time, reset() between
// epochs. Predictions are logits or probabilities [N, C] (argmax is the class) unless
// said otherwise; targets are class indices [N].
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "tessera/core/tensor.h"

namespace tessera::nn {

class Metric {
 public:
  explicit Metric(std::string name) : name_(std::move(name)) {}
  virtual ~Metric() = default;
  virtual void update(const Tensor& prediction, const Tensor& target) = 0;
  virtual double result() const = 0;
  virtual void reset() = 0;
  const std::string& name() const { return name_; }
  // The running totals behind result(), as numbers that add across shards of the data:
  // data-parallel training sums each rank's state and loads the sum, so every rank reports
  // the metric over all ranks' samples. Metrics without such a state throw.
  virtual std::vector<double> state() const;
  virtual void load_state(const std::vector<double>& state);

 private:
  std::string name_;
};
using MetricPtr = std::shared_ptr<Metric>;

// State helpers of the counting metrics (the loads check the length, naming the metric).
std::vector<double> counts_state(int64_t correct, int64_t total);
void load_counts(const std::vector<double>& state, const std::string& metric, int64_t& correct,
                 int64_t& total);
void load_sum_count(const std::vector<double>& state, const std::string& metric, double& sum,
                    int64_t& count);

// Fraction of samples whose top class is the target.
class Accuracy : public Metric {
 public:
  Accuracy() : Metric("accuracy") {}
  void update(const Tensor& prediction, const Tensor& target) override;
  double result() const override { return total_ ? double(correct_) / double(total_) : 0.0; }
  void reset() override { correct_ = total_ = 0; }
  std::vector<double> state() const override { return counts_state(correct_, total_); }
  void load_state(const std::vector<double>& s) override {
    load_counts(s, name(), correct_, total_);
  }

 private:
  int64_t correct_ = 0, total_ = 0;
};

// Fraction of samples whose target is among the k highest scores.
class TopKAccuracy : public Metric {
 public:
  explicit TopKAccuracy(int64_t k = 5) : Metric("top" + std::to_string(k) + "_accuracy"), k_(k) {}
  void update(const Tensor& prediction, const Tensor& target) override;
  double result() const override { return total_ ? double(correct_) / double(total_) : 0.0; }
  void reset() override { correct_ = total_ = 0; }
  std::vector<double> state() const override { return counts_state(correct_, total_); }
  void load_state(const std::vector<double>& s) override {
    load_counts(s, name(), correct_, total_);
  }

 private:
  int64_t k_, correct_ = 0, total_ = 0;
};

// Predictions are probabilities of the positive class (any shape); targets 0/1 alike.
class BinaryAccuracy : public Metric {
 public:
  explicit BinaryAccuracy(double threshold = 0.5)
      : Metric("binary_accuracy"), threshold_(threshold) {}
  void update(const Tensor& prediction, const Tensor& target) override;
  double result() const override { return total_ ? double(correct_) / double(total_) : 0.0; }
  void reset() override { correct_ = total_ = 0; }
  std::vector<double> state() const override { return counts_state(correct_, total_); }
  void load_state(const std::vector<double>& s) override {
    load_counts(s, name(), correct_, total_);
  }

 private:
  double threshold_;
  int64_t correct_ = 0, total_ = 0;
};

// Confusion counts: entry [t, p] counts samples of class t predicted as p.
class ConfusionMatrix : public Metric {
 public:
  explicit ConfusionMatrix(int64_t num_classes);
  void update(const Tensor& prediction, const Tensor& target) override;
  double result() const override;  // the trace fraction (accuracy)
  void reset() override;
  Tensor matrix() const;  // int64 [C, C]
  int64_t count(int64_t target, int64_t predicted) const;
  int64_t num_classes() const { return classes_; }
  std::vector<double> state() const override;
  void load_state(const std::vector<double>& state) override;

 protected:
  ConfusionMatrix(std::string name, int64_t num_classes);

 private:
  int64_t classes_;
  std::vector<int64_t> counts_;
};

// Precision, recall and F1 over C classes. average "macro" (mean of per-class scores)
// or "micro" (from the summed counts); with num_classes 2 and average "binary", the
// score of class 1. A class with no predicted (or no actual) samples scores 0.
enum class ClassScore { Precision, Recall, F1 };
class ClassificationScore : public ConfusionMatrix {
 public:
  ClassificationScore(ClassScore score, int64_t num_classes, std::string average = "macro");
  double result() const override;

 private:
  ClassScore score_;
  std::string average_;
};
std::shared_ptr<ClassificationScore> precision(int64_t num_classes, std::string average = "macro");
std::shared_ptr<ClassificationScore> recall(int64_t num_classes, std::string average = "macro");
std::shared_ptr<ClassificationScore> f1_score(int64_t num_classes, std::string average = "macro");

// Area under the ROC curve for binary scores (any shape) against 0/1 targets, exact
// (ties share rank), from every sample seen since reset.
class RocAuc : public Metric {
 public:
  RocAuc() : Metric("auc") {}
  void update(const Tensor& prediction, const Tensor& target) override;
  double result() const override;
  void reset() override {
    scores_.clear();
    labels_.clear();
  }

 private:
  std::vector<double> scores_;
  std::vector<uint8_t> labels_;
};

// Mean of the values passed as `prediction` (the target is ignored), e.g. the loss.
class Mean : public Metric {
 public:
  explicit Mean(std::string name = "mean") : Metric(std::move(name)) {}
  void update(const Tensor& values, const Tensor& = Tensor()) override;
  double result() const override { return count_ ? sum_ / double(count_) : 0.0; }
  void reset() override { sum_ = 0, count_ = 0; }
  std::vector<double> state() const override { return {sum_, double(count_)}; }
  void load_state(const std::vector<double>& s) override {
    load_sum_count(s, name(), sum_, count_);
  }

 private:
  double sum_ = 0;
  int64_t count_ = 0;
};

class MeanSquaredError : public Metric {
 public:
  MeanSquaredError() : Metric("mse") {}
  void update(const Tensor& prediction, const Tensor& target) override;
  double result() const override { return count_ ? sum_ / double(count_) : 0.0; }
  void reset() override { sum_ = 0, count_ = 0; }
  std::vector<double> state() const override { return {sum_, double(count_)}; }
  void load_state(const std::vector<double>& s) override {
    load_sum_count(s, name(), sum_, count_);
  }

 private:
  double sum_ = 0;
  int64_t count_ = 0;
};

}  // namespace tessera::nn
