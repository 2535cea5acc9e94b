// CTC by the forward (alpha) recursion in log space, written with differentiable ops so
// that autodiff provides the gradient: one step per input frame over all sequences of the
// batch at once, on the blank-extended label sequences.
#include <limits>

#include "tessera/autodiff/autodiff.h"
#include "tessera/core/error.h"
#include "tessera/nn/losses.h"
#include "tessera/ops/creation.h"
#include "tessera/ops/elementwise.h"
#include "tessera/ops/index.h"
#include "tessera/ops/reduce.h"
#include "tessera/ops/shape.h"

namespace tessera::nn {
namespace {

// Stands for log(0): finite, so that max-shifted sums never compute inf - inf.
constexpr double kLogZero = -1e30;
// Losses beyond this are impossible alignments (sums of kLogZero terms).
constexpr double kImpossible = 1e29;

// log(exp(a) + exp(b) + exp(c)), shifted by the (constant) maximum.
Tensor log_add3(const Tensor& a, const Tensor& b, const Tensor& c) {
  Tensor m = maximum(maximum(a, b), c).detach();
  return m + log(exp(a - m) + exp(b - m) + exp(c - m));
}

// Shifts the columns of [N, K] right by `k`, filling with kLogZero.
Tensor shift_right(const Tensor& x, int64_t k) {
  Tensor fill = full({x.size(0), k}, kLogZero, x.dtype());
  return concat({fill, x.narrow(1, 0, x.size(1) - k)}, 1);
}

}  // namespace

Tensor ctc_loss(const Tensor& log_probs, const Tensor& targets, const Tensor& input_lengths,
                const Tensor& target_lengths, int64_t blank, Reduction reduction,
                bool zero_infinity) {
  const char* op = "ctc_loss";
  check(log_probs.dim() == 3 && is_floating(log_probs.dtype()), op,
        "log_probs must be floating [T, N, C], got ", dtype_name(log_probs.dtype()), " ",
        log_probs.shape());
  const int64_t T = log_probs.size(0), N = log_probs.size(1), C = log_probs.size(2);
  check(blank >= 0 && blank < C, op, "blank ", blank, " out of range for ", C, " classes");
  check(targets.dim() == 2 && targets.size(0) == N, op, "targets must be [N, S] with N = ", N,
        ", got ", targets.shape());
  check(input_lengths.shape() == Shape{N} && target_lengths.shape() == Shape{N}, op,
        "input_lengths and target_lengths must be [", N, "], got ", input_lengths.shape(), " and ",
        target_lengths.shape());
  const int64_t S = targets.size(1), K = 2 * S + 1;
  std::vector<int64_t> tgt = targets.to(DType::Int64).contiguous().to_vector<int64_t>();
  std::vector<int64_t> in_len = input_lengths.to(DType::Int64).to_vector<int64_t>();
  std::vector<int64_t> tgt_len = target_lengths.to(DType::Int64).to_vector<int64_t>();

  // Blank-extended labels, which positions may skip over a blank, and which are in range.
  std::vector<int64_t> ext(static_cast<size_t>(N * K), blank), last(N), prev(N);
  std::vector<uint8_t> skip(static_cast<size_t>(N * K)), valid(static_cast<size_t>(N * K));
  for (int64_t n = 0; n < N; ++n) {
    check(in_len[n] >= 0 && in_len[n] <= T, op, "input_lengths[", n, "] = ", in_len[n],
          " out of range [0, ", T, "]");
    check(tgt_len[n] >= 0 && tgt_len[n] <= S, op, "target_lengths[", n, "] = ", tgt_len[n],
          " out of range [0, ", S, "]");
    for (int64_t s = 0; s < tgt_len[n]; ++s) {
      int64_t label = tgt[n * S + s];
      check(label >= 0 && label < C && label != blank, op, "target ", label, " at [", n, ", ", s,
            "] must be a class in [0, ", C, ") other than the blank ", blank);
      ext[n * K + 2 * s + 1] = label;
    }
    for (int64_t k = 0; k < 2 * tgt_len[n] + 1; ++k) {
      valid[n * K + k] = 1;
      skip[n * K + k] = k >= 2 && ext[n * K + k] != blank && ext[n * K + k] != ext[n * K + k - 2];
    }
    last[n] = 2 * tgt_len[n];
    prev[n] = tgt_len[n] > 0 ? 2 * tgt_len[n] - 1 : 2 * tgt_len[n];
  }
  Tensor ext_t = from_vector(ext, {N, K});
  Tensor skip_t = from_vector(skip, {N, K}).to(DType::Bool);
  Tensor valid_t = from_vector(valid, {N, K}).to(DType::Bool);
  Tensor log_zero = full({N, K}, kLogZero, log_probs.dtype());
  Tensor steps_left = input_lengths.to(DType::Int64).reshape({N, 1});

  auto emit = [&](int64_t t) { return take_along_axis(log_probs.select(0, t), ext_t, 1); };
  Tensor first_two =
      lt(arange(0, K, 1, DType::Int64).reshape({1, K}), full({1, 1}, 2, DType::Int64));
  Tensor alpha = log_zero;
  if (T > 0) {
    Tensor start = logical_and(first_two, valid_t);
    alpha =
        where(logical_and(start, gt(steps_left, zeros({N, 1}, DType::Int64))), emit(0), log_zero);
  }
  for (int64_t t = 1; t < T; ++t) {
    Tensor a2 = where(skip_t, shift_right(alpha, std::min<int64_t>(2, K)), log_zero);
    Tensor next = where(valid_t, log_add3(alpha, shift_right(alpha, 1), a2) + emit(t), log_zero);
    Tensor active = gt(steps_left, full({N, 1}, t, DType::Int64));
    alpha = where(active, next, alpha);
  }
  Tensor end_last = take_along_axis(alpha, from_vector(last, {N, 1}), 1);
  Tensor end_prev = take_along_axis(alpha, from_vector(prev, {N, 1}), 1);
  // A zero-length target ends only on its single blank.
  Tensor has_labels =
      gt(target_lengths.to(DType::Int64).reshape({N, 1}), zeros({N, 1}, DType::Int64));
  end_prev = where(has_labels, end_prev, full({N, 1}, kLogZero, log_probs.dtype()));
  Tensor loss = neg(log_add3(end_last, end_prev, full({N, 1}, kLogZero, log_probs.dtype())));
  loss = loss.reshape({N});
  // An input of length 0 with an empty target has probability 1.
  Tensor empty_ok = logical_and(eq(input_lengths.to(DType::Int64), zeros({N}, DType::Int64)),
                                logical_not(has_labels.reshape({N})));
  loss = where(empty_ok, zeros_like(loss), loss);
  Tensor impossible = gt(loss, full_like(loss, kImpossible));
  loss =
      where(impossible,
            full_like(loss, zero_infinity ? 0.0 : std::numeric_limits<double>::infinity()), loss);
  if (reduction == Reduction::Mean) {
    Tensor denom = clamp_min(target_lengths.to(loss.dtype()), 1.0);
    return mean(loss / denom);
  }
  return reduce_loss(loss, reduction);
}

}  // namespace tessera::nn
