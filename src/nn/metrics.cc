#include "tessera/nn/metrics.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "tessera/autodiff/autodiff.h"
#include "tessera/core/error.h"
#include "tessera/ops/creation.h"
#include "tessera/ops/elementwise.h"
#include "tessera/ops/index.h"
#include "tessera/ops/reduce.h"

namespace tessera::nn {
namespace {

// Predicted classes of [N, C] scores and the targets [N], both as int64 vectors.
std::pair<std::vector<int64_t>, std::vector<int64_t>> classes(const std::string& metric,
                                                              const Tensor& pred,
                                                              const Tensor& target) {
  check(pred.dim() == 2 && target.dim() == 1 && pred.size(0) == target.size(0), metric,
        "expected predictions [N, C] and targets [N], got ", pred.shape(), " and ", target.shape());
  NoGradGuard no_grad;
  return {argmax(pred, 1).to_vector<int64_t>(), target.to(DType::Int64).to_vector<int64_t>()};
}

std::vector<double> as_doubles(const Tensor& t) {
  NoGradGuard no_grad;
  return t.to(DType::Float64).contiguous().to_vector<double>();
}

// A count summed over ranks, back as an integer (exact below 2^53).
int64_t as_count(double value, const std::string& metric) {
  check(value >= 0 && value < 9.0e15 && value == std::floor(value), metric,
        "state holds a count that is not a whole number: ", value);
  return static_cast<int64_t>(value);
}

void check_state_size(const std::vector<double>& state, size_t expected,
                      const std::string& metric) {
  check(state.size() == expected, metric, "state has ", state.size(), " numbers, expected ",
        expected);
}

}  // namespace

std::vector<double> Metric::state() const {
  fail(name(), "this metric keeps no state that adds across ranks, so it cannot be combined ",
       "over data-parallel training (evaluate it on one process)");
}

void Metric::load_state(const std::vector<double>&) { state(); }

std::vector<double> counts_state(int64_t correct, int64_t total) {
  return {double(correct), double(total)};
}

void load_counts(const std::vector<double>& state, const std::string& metric, int64_t& correct,
                 int64_t& total) {
  check_state_size(state, 2, metric);
  correct = as_count(state[0], metric);
  total = as_count(state[1], metric);
}

void load_sum_count(const std::vector<double>& state, const std::string& metric, double& sum,
                    int64_t& count) {
  check_state_size(state, 2, metric);
  sum = state[0];
  count = as_count(state[1], metric);
}

void Accuracy::update(const Tensor& pred, const Tensor& target) {
  auto [p, t] = classes(name(), pred, target);
  for (size_t i = 0; i < p.size(); ++i) correct_ += p[i] == t[i];
  total_ += static_cast<int64_t>(p.size());
}

void TopKAccuracy::update(const Tensor& pred, const Tensor& target) {
  check(pred.dim() == 2 && target.dim() == 1 && pred.size(0) == target.size(0), name(),
        "expected predictions [N, C] and targets [N], got ", pred.shape(), " and ", target.shape());
  NoGradGuard no_grad;
  int64_t k = std::min(k_, pred.size(1));
  auto top = topk(pred, k, 1).indices.to_vector<int64_t>();
  auto t = target.to(DType::Int64).to_vector<int64_t>();
  for (size_t i = 0; i < t.size(); ++i)
    for (int64_t j = 0; j < k; ++j)
      if (top[i * k + j] == t[i]) {
        ++correct_;
        break;
      }
  total_ += static_cast<int64_t>(t.size());
}

void BinaryAccuracy::update(const Tensor& pred, const Tensor& target) {
  check(pred.shape() == target.shape(), name(), "prediction shape ", pred.shape(),
        " and target shape ", target.shape(), " differ");
  auto p = as_doubles(pred), t = as_doubles(target);
  for (size_t i = 0; i < p.size(); ++i) correct_ += (p[i] > threshold_) == (t[i] > 0.5);
  total_ += static_cast<int64_t>(p.size());
}

ConfusionMatrix::ConfusionMatrix(int64_t n) : ConfusionMatrix("confusion_matrix", n) {}
// The class count, checked before the n * n counts are sized.
static int64_t checked_classes(const std::string& name, int64_t n) {
  check(n >= 1 && n <= (int64_t{1} << 20), name, "num_classes must be in [1, 2^20], got ", n);
  return n;
}

ConfusionMatrix::ConfusionMatrix(std::string name, int64_t n)
    : Metric(std::move(name)),
      classes_(checked_classes(this->name(), n)),
      counts_(static_cast<size_t>(classes_ * classes_)) {}

void ConfusionMatrix::update(const Tensor& pred, const Tensor& target) {
  auto [p, t] = classes(name(), pred, target);
  check(pred.size(1) == classes_, name(), "predictions have ", pred.size(1), " classes, expected ",
        classes_);
  for (size_t i = 0; i < p.size(); ++i) {  // all checked first: a bad batch counts nothing
    check(t[i] >= 0 && t[i] < classes_, name(), "target ", t[i], " out of range [0, ", classes_,
          ")");
  }
  for (size_t i = 0; i < p.size(); ++i) ++counts_[static_cast<size_t>(t[i] * classes_ + p[i])];
}

std::vector<double> ConfusionMatrix::state() const {
  return std::vector<double>(counts_.begin(), counts_.end());
}

void ConfusionMatrix::load_state(const std::vector<double>& state) {
  check_state_size(state, counts_.size(), name());
  for (size_t i = 0; i < counts_.size(); ++i) counts_[i] = as_count(state[i], name());
}

void ConfusionMatrix::reset() { std::fill(counts_.begin(), counts_.end(), 0); }

int64_t ConfusionMatrix::count(int64_t t, int64_t p) const {
  check(t >= 0 && t < classes_ && p >= 0 && p < classes_, name(), "count(", t, ", ", p,
        ") is outside the ", classes_, " classes");
  return counts_[static_cast<size_t>(t * classes_ + p)];
}

Tensor ConfusionMatrix::matrix() const { return from_vector(counts_, {classes_, classes_}); }

double ConfusionMatrix::result() const {
  int64_t diag = 0, total = std::accumulate(counts_.begin(), counts_.end(), int64_t{0});
  for (int64_t c = 0; c < classes_; ++c) diag += count(c, c);
  return total ? double(diag) / double(total) : 0.0;
}

ClassificationScore::ClassificationScore(ClassScore score, int64_t n, std::string average)
    : ConfusionMatrix(score == ClassScore::Precision ? "precision"
                      : score == ClassScore::Recall  ? "recall"
                                                     : "f1",
                      n),
      score_(score),
      average_(std::move(average)) {
  check(average_ == "macro" || average_ == "micro" || (average_ == "binary" && n == 2), name(),
        "average must be macro, micro or (with 2 classes) binary, got ", average_);
}

double ClassificationScore::result() const {
  auto score = [&](double tp, double fp, double fn) {
    double p = tp + fp > 0 ? tp / (tp + fp) : 0.0, r = tp + fn > 0 ? tp / (tp + fn) : 0.0;
    if (score_ == ClassScore::Precision) return p;
    if (score_ == ClassScore::Recall) return r;
    return p + r > 0 ? 2 * p * r / (p + r) : 0.0;
  };
  int64_t n = num_classes();
  std::vector<double> tp(n), fp(n), fn(n);
  for (int64_t t = 0; t < n; ++t)
    for (int64_t p = 0; p < n; ++p) {
      double c = static_cast<double>(count(t, p));
      if (t == p)
        tp[t] += c;
      else
        fp[p] += c, fn[t] += c;
    }
  if (average_ == "binary") return score(tp[1], fp[1], fn[1]);
  if (average_ == "micro")
    return score(std::accumulate(tp.begin(), tp.end(), 0.0),
                 std::accumulate(fp.begin(), fp.end(), 0.0),
                 std::accumulate(fn.begin(), fn.end(), 0.0));
  double total = 0;
  for (int64_t c = 0; c < n; ++c) total += score(tp[c], fp[c], fn[c]);
  return total / double(n);
}

std::shared_ptr<ClassificationScore> precision(int64_t n, std::string average) {
  return std::make_shared<ClassificationScore>(ClassScore::Precision, n, std::move(average));
}
std::shared_ptr<ClassificationScore> recall(int64_t n, std::string average) {
  return std::make_shared<ClassificationScore>(ClassScore::Recall, n, std::move(average));
}
std::shared_ptr<ClassificationScore> f1_score(int64_t n, std::string average) {
  return std::make_shared<ClassificationScore>(ClassScore::F1, n, std::move(average));
}

void RocAuc::update(const Tensor& pred, const Tensor& target) {
  check(pred.numel() == target.numel(), name(), "prediction shape ", pred.shape(),
        " and target shape ", target.shape(), " differ in size");
  auto p = as_doubles(pred), t = as_doubles(target);
  for (double v : p) {  // (a NaN has no rank: it would also stall the tie loop in result())
    if (std::isnan(v)) fail(name(), "scores must not be NaN");
  }
  scores_.insert(scores_.end(), p.begin(), p.end());
  for (double v : t) labels_.push_back(v > 0.5);
}

double RocAuc::result() const {
  // Mann-Whitney U: the probability that a random positive outscores a random negative,
  // ties counting half, from ranks averaged over tied scores.
  size_t n = scores_.size();
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(),
            [&](size_t a, size_t b) { return scores_[a] < scores_[b]; });
  double positive_rank_sum = 0, positives = 0;
  for (size_t i = 0; i < n;) {
    size_t j = i;
    while (j < n && scores_[order[j]] == scores_[order[i]]) ++j;
    double rank = (double(i) + double(j - 1)) / 2.0 + 1.0;
    for (size_t k = i; k < j; ++k)
      if (labels_[order[k]]) positive_rank_sum += rank, positives += 1;
    i = j;
  }
  double negatives = double(n) - positives;
  if (positives == 0 || negatives == 0) return 0.0;
  return (positive_rank_sum - positives * (positives + 1) / 2.0) / (positives * negatives);
}

void Mean::update(const Tensor& values, const Tensor&) {
  for (double v : as_doubles(values)) sum_ += v;
  count_ += values.numel();
}

void MeanSquaredError::update(const Tensor& pred, const Tensor& target) {
  check(pred.shape() == target.shape(), name(), "prediction shape ", pred.shape(),
        " and target shape ", target.shape(), " differ");
  auto p = as_doubles(pred), t = as_doubles(target);
  for (size_t i = 0; i < p.size(); ++i) sum_ += (p[i] - t[i]) * (p[i] - t[i]);
  count_ += static_cast<int64_t>(p.size());
}

}  // namespace tessera::nn
