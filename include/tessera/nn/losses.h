// Loss functions with PyTorch's semantics and argument names. Each reduces by
// `reduction`: Mean (over elements, or over the total weight for weighted class losses),
// Sum, None (per element), or BatchMean (sum divided by the batch size; kl_div's
// recommended mode).
#pragma once
#include <functional>

#include "tessera/core/tensor.h"

namespace tessera::nn {

enum class Reduction { Mean, Sum, None, BatchMean };

// A loss as the training loop sees it: (prediction, target) -> scalar.
using LossFn = std::function<Tensor(const Tensor& prediction, const Tensor& target)>;

struct CrossEntropyOptions {
  Tensor weight;                // [C] per-class weights (optional)
  int64_t ignore_index = -100;  // targets equal to it add nothing (class-index targets only)
  double label_smoothing = 0.0;
  Reduction reduction = Reduction::Mean;
};

// Cross-entropy from logits [N, C] or [N, C, d1, ...]. Targets are either class indices
// (an integer tensor [N, d1, ...]) or class probabilities (a float tensor shaped like the
// logits, "soft targets").
Tensor cross_entropy(const Tensor& logits, const Tensor& target,
                     const CrossEntropyOptions& options = {});
// Negative log-likelihood of log-probabilities [N, C, ...] at integer targets [N, ...].
Tensor nll_loss(const Tensor& log_probs, const Tensor& target,
                const CrossEntropyOptions& options = {});

// -w (y log p + (1 - y) log(1 - p)), each log clamped at -100 like PyTorch.
Tensor binary_cross_entropy(const Tensor& probs, const Tensor& target,
                            const Tensor& weight = Tensor(), Reduction reduction = Reduction::Mean);
// The same from logits, computed stably; pos_weight scales the positive term (per class).
Tensor binary_cross_entropy_with_logits(const Tensor& logits, const Tensor& target,
                                        const Tensor& weight = Tensor(),
                                        const Tensor& pos_weight = Tensor(),
                                        Reduction reduction = Reduction::Mean);

Tensor mse_loss(const Tensor& input, const Tensor& target, Reduction reduction = Reduction::Mean);
Tensor l1_loss(const Tensor& input, const Tensor& target, Reduction reduction = Reduction::Mean);
// 0.5 d^2 where |d| < delta, else delta (|d| - 0.5 delta).
Tensor huber_loss(const Tensor& input, const Tensor& target, double delta = 1.0,
                  Reduction reduction = Reduction::Mean);
// 0.5 d^2 / beta where |d| < beta, else |d| - 0.5 beta (beta = 0 gives L1).
Tensor smooth_l1_loss(const Tensor& input, const Tensor& target, double beta = 1.0,
                      Reduction reduction = Reduction::Mean);
// KL(target || input) with `input` holding log-probabilities; the target holds
// probabilities, or log-probabilities when log_target.
Tensor kl_div(const Tensor& input, const Tensor& target, Reduction reduction = Reduction::Mean,
              bool log_target = false);
// For pairs of rows [N, D] and labels y = 1 (similar) or -1 (dissimilar):
// 1 - cos(x1, x2) when y = 1, max(0, cos - margin) when y = -1.
Tensor cosine_embedding_loss(const Tensor& x1, const Tensor& x2, const Tensor& y,
                             double margin = 0.0, Reduction reduction = Reduction::Mean);
// max(d(a, p) - d(a, n) + margin, 0) with d the p-norm distance of (x - y + eps) over the
// last axis; with swap, d(a, n) is replaced by min(d(a, n), d(p, n)).
Tensor triplet_margin_loss(const Tensor& anchor, const Tensor& positive, const Tensor& negative,
                           double margin = 1.0, double p = 2.0, double eps = 1e-6,
                           bool swap = false, Reduction reduction = Reduction::Mean);

// Connectionist temporal classification (Graves et al. 2006) of log-probabilities
// [T, N, C] (a log_softmax output) against padded targets [N, S] (row n uses its first
// target_lengths[n] labels), with input_lengths and target_lengths [N]. Mean divides each
// sequence's loss by its target length, then averages over the batch (PyTorch's rule).
// An impossible alignment has an infinite loss, or zero (and no gradient) with
// zero_infinity.
Tensor ctc_loss(const Tensor& log_probs, const Tensor& targets, const Tensor& input_lengths,
                const Tensor& target_lengths, int64_t blank = 0,
                Reduction reduction = Reduction::Mean, bool zero_infinity = false);

// Applies `reduction` to a per-element loss.
Tensor reduce_loss(const Tensor& loss, Reduction reduction);

}  // namespace tessera::nn
