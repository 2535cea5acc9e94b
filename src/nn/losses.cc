#include "tessera/nn/losses.h"

#include <cmath>

#include "tessera/core/error.h"
#include "tessera/ops/creation.h"
#include "tessera/ops/elementwise.h"
#include "tessera/ops/index.h"
#include "tessera/ops/nn.h"
#include "tessera/ops/reduce.h"
#include "tessera/ops/shape.h"

namespace tessera::nn {
namespace {

void check_same_shape(const char* op, const Tensor& a, const Tensor& b) {
  check(a.shape() == b.shape(), op, "input shape ", a.shape(), " and target shape ", b.shape(),
        " differ");
}

// [C] per-class values reshaped to broadcast along axis 1 of a [N, C, ...] tensor.
Tensor along_class_axis(const Tensor& w, int64_t dims) {
  Shape s(static_cast<size_t>(dims), 1);
  s[1] = w.numel();
  return reshape(w, s);
}

Tensor batch_size_of(const Tensor& loss) {
  return scalar_tensor(loss.dim() == 0 ? 1 : loss.size(0), loss.dtype());
}

// Per-element NLL (weighted), the per-element weights, and the valid mask.
struct NllParts {
  Tensor loss, weights, valid;
};

NllParts nll_parts(const char* op, const Tensor& log_p, const Tensor& target_in,
                   const CrossEntropyOptions& o) {
  check(log_p.dim() >= 2, op, "expected [N, C, ...] input, got shape ", log_p.shape());
  check(!is_floating(target_in.dtype()) && target_in.dtype() != DType::Bool, op,
        "class-index targets must be integers, got ", dtype_name(target_in.dtype()));
  // Any integer dtype holds class indices (uint8 labels as read from files, as Keras
  // takes them); the gather below wants int64.
  const Tensor target = target_in.to(DType::Int64);
  Shape expected{log_p.size(0)};
  for (int64_t i = 2; i < log_p.dim(); ++i) expected.push_back(log_p.size(i));
  check(target.shape() == expected, op, "target shape ", target.shape(),
        " does not match input shape ", log_p.shape(), " (expected ", expected, ")");
  int64_t classes = log_p.size(1);
  if (o.weight.defined())
    check(o.weight.dim() == 1 && o.weight.numel() == classes, op, "weight shape ", o.weight.shape(),
          " does not match ", classes, " classes");
  Tensor ignore = scalar_tensor(o.ignore_index, target.dtype());
  Tensor valid = ne(target, ignore);
  Tensor safe = where(valid, target, zeros_like(target));
  if (safe.numel() > 0 && !safe.is_symbolic()) {  // traced: the gather checks at run time
    int64_t lo = amin(safe).item<int64_t>(), hi = amax(safe).item<int64_t>();
    check(lo >= 0 && hi < classes, op, "target values must be in [0, ", classes,
          ") or ignore_index = ", o.ignore_index, ", got a value ", lo < 0 ? lo : hi);
  }
  Tensor picked = squeeze(take_along_axis(log_p, unsqueeze(safe, 1), 1), 1);
  Tensor w = o.weight.defined() ? take(o.weight.to(log_p.dtype()), safe, 0)
                                : ones(safe.shape(), log_p.dtype());
  w = where(valid, w, zeros_like(w));
  return {neg(picked) * w, w, valid};
}

Tensor reduce_weighted(const NllParts& parts, Reduction reduction) {
  if (reduction == Reduction::Mean) return sum(parts.loss) / sum(parts.weights);
  return reduce_loss(parts.loss, reduction);
}

}  // namespace

Tensor reduce_loss(const Tensor& loss, Reduction reduction) {
  switch (reduction) {
    case Reduction::Mean:
      return mean(loss);
    case Reduction::Sum:
      return sum(loss);
    case Reduction::None:
      return loss;
    case Reduction::BatchMean:
      return sum(loss) / batch_size_of(loss);
  }
  fail("loss", "unknown reduction");
}

Tensor nll_loss(const Tensor& log_probs, const Tensor& target, const CrossEntropyOptions& o) {
  return reduce_weighted(nll_parts("nll_loss", log_probs, target, o), o.reduction);
}

Tensor cross_entropy(const Tensor& logits, const Tensor& target, const CrossEntropyOptions& o) {
  const char* op = "cross_entropy";
  check(logits.dim() >= 2, op, "expected logits [N, C, ...], got shape ", logits.shape());
  check(o.label_smoothing >= 0 && o.label_smoothing <= 1, op,
        "label_smoothing must be in [0, 1], got ", o.label_smoothing);
  Tensor log_p = log_softmax(logits, 1);
  double eps = o.label_smoothing;
  double classes = static_cast<double>(logits.size(1));
  Tensor class_w =
      o.weight.defined() ? along_class_axis(o.weight.to(log_p.dtype()), log_p.dim()) : Tensor();
  if (is_floating(target.dtype())) {  // soft targets: probabilities per class
    check_same_shape(op, logits, target);
    Tensor t = eps > 0 ? target * (1.0 - eps) + eps / classes : target;
    Tensor per_class = log_p * t;
    if (class_w.defined()) per_class = per_class * class_w;
    Tensor loss = neg(sum(per_class, {1}));
    return reduce_loss(loss, o.reduction);  // Mean: over samples (and positions)
  }
  NllParts parts = nll_parts(op, log_p, target, o);
  Tensor nll = reduce_weighted(parts, o.reduction);
  if (eps == 0) return nll;
  // PyTorch's rule: (1 - eps) * nll + eps / C * (sum over classes of -w_c log p_c),
  // normalized like the nll term.
  Tensor smooth = class_w.defined() ? neg(sum(log_p * class_w, {1})) : neg(sum(log_p, {1}));
  smooth = where(parts.valid, smooth, zeros_like(smooth));
  Tensor reduced = o.reduction == Reduction::Mean ? sum(smooth) / sum(parts.weights)
                                                  : reduce_loss(smooth, o.reduction);
  return nll * (1.0 - eps) + reduced * (eps / classes);
}

Tensor binary_cross_entropy(const Tensor& p, const Tensor& y, const Tensor& weight,
                            Reduction reduction) {
  check_same_shape("binary_cross_entropy", p, y);
  if (p.numel() > 0 && !p.is_symbolic()) {  // (PyTorch checks this too; NaN fails it)
    const double lo = amin(p).item<double>(), hi = amax(p).item<double>();
    check(lo >= 0 && hi <= 1, "binary_cross_entropy", "probabilities must lie in [0, 1], got ",
          lo < 0 || std::isnan(lo) ? lo : hi);
  }
  Tensor log_p = clamp_min(log(p), -100.0);
  Tensor log_1mp = clamp_min(log(1.0 - p), -100.0);
  Tensor loss = neg(y * log_p + (1.0 - y) * log_1mp);
  if (weight.defined()) loss = loss * weight;
  return reduce_loss(loss, reduction);
}

Tensor binary_cross_entropy_with_logits(const Tensor& x, const Tensor& y, const Tensor& weight,
                                        const Tensor& pos_weight, Reduction reduction) {
  const char* op = "binary_cross_entropy_with_logits";
  check_same_shape(op, x, y);
  for (const Tensor* t : {&weight, &pos_weight}) {
    if (t->defined() && broadcast_shapes(t->shape(), x.shape(), op) != x.shape()) {
      fail(op, t == &weight ? "weight" : "pos_weight", " of shape ", t->shape(),
           " does not broadcast to the input's shape ", x.shape());
    }
  }
  // log(1 + exp(-|x|)) + max(-x, 0) is -log(sigmoid(x)) without overflow.
  Tensor softplus_neg = log1p(exp(neg(abs(x)))) + clamp_min(neg(x), 0.0);
  Tensor loss = pos_weight.defined() ? (1.0 - y) * x + (1.0 + (pos_weight - 1.0) * y) * softplus_neg
                                     : (1.0 - y) * x + softplus_neg;
  if (weight.defined()) loss = loss * weight;
  return reduce_loss(loss, reduction);
}

Tensor mse_loss(const Tensor& x, const Tensor& y, Reduction reduction) {
  check_same_shape("mse_loss", x, y);
  return reduce_loss(square(x - y), reduction);
}

Tensor l1_loss(const Tensor& x, const Tensor& y, Reduction reduction) {
  check_same_shape("l1_loss", x, y);
  return reduce_loss(abs(x - y), reduction);
}

Tensor huber_loss(const Tensor& x, const Tensor& y, double delta, Reduction reduction) {
  check_same_shape("huber_loss", x, y);
  check(delta > 0, "huber_loss", "delta must be positive, got ", delta);
  Tensor d = abs(x - y);
  Tensor loss = where(lt(d, wrap_scalar(delta, d)), square(d) * 0.5, (d - 0.5 * delta) * delta);
  return reduce_loss(loss, reduction);
}

Tensor smooth_l1_loss(const Tensor& x, const Tensor& y, double beta, Reduction reduction) {
  check_same_shape("smooth_l1_loss", x, y);
  check(beta >= 0, "smooth_l1_loss", "beta must be >= 0, got ", beta);
  Tensor d = abs(x - y);
  if (beta == 0) return reduce_loss(d, reduction);
  Tensor loss = where(lt(d, wrap_scalar(beta, d)), square(d) * (0.5 / beta), d - 0.5 * beta);
  return reduce_loss(loss, reduction);
}

Tensor kl_div(const Tensor& input, const Tensor& target, Reduction reduction, bool log_target) {
  check_same_shape("kl_div", input, target);
  Tensor loss;
  if (log_target) {
    loss = exp(target) * (target - input);
  } else {
    // target * log(target) is taken as 0 where target is 0 (xlogy).
    Tensor positive = gt(target, zeros_like(target));
    Tensor safe = where(positive, target, ones_like(target));
    loss = where(positive, target * (log(safe) - input), zeros_like(input * target));
  }
  return reduce_loss(loss, reduction);
}

Tensor cosine_embedding_loss(const Tensor& x1, const Tensor& x2, const Tensor& y, double margin,
                             Reduction reduction) {
  const char* op = "cosine_embedding_loss";
  check(x1.shape() == x2.shape() && x1.dim() >= 1 && x1.dim() <= 2, op, "inputs ", x1.shape(),
        " and ", x2.shape(), " must share a [N, D] or [D] shape");
  int64_t axis = x1.dim() - 1;
  constexpr double kEps = 1e-12;  // PyTorch's guard against zero vectors
  Tensor dot_prod = sum(x1 * x2, {axis});
  Tensor denom = sqrt((sum(x1 * x1, {axis}) + kEps) * (sum(x2 * x2, {axis}) + kEps));
  Tensor cos = dot_prod / denom;
  check(y.shape() == cos.shape(), op, "target shape ", y.shape(), " should be ", cos.shape());
  Tensor zero = zeros_like(cos);
  Tensor yf = y.to(cos.dtype());
  Tensor loss = where(eq(yf, wrap_scalar(1, yf)), 1.0 - cos, zero) +
                where(eq(yf, wrap_scalar(-1, yf)), clamp_min(cos - margin, 0.0), zero);
  return reduce_loss(loss, reduction);
}

Tensor triplet_margin_loss(const Tensor& a, const Tensor& p, const Tensor& n, double margin,
                           double norm_p, double eps, bool swap, Reduction reduction) {
  const char* op = "triplet_margin_loss";
  check(a.shape() == p.shape() && a.shape() == n.shape() && a.dim() >= 1, op, "anchor ", a.shape(),
        ", positive ", p.shape(), " and negative ", n.shape(), " must share a shape");
  int64_t axis = a.dim() - 1;
  auto distance = [&](const Tensor& u, const Tensor& v) {
    return norm(u - v + eps, norm_p, {axis});
  };
  Tensor d_ap = distance(a, p), d_an = distance(a, n);
  if (swap) d_an = minimum(d_an, distance(p, n));
  return reduce_loss(clamp_min(d_ap - d_an + margin, 0.0), reduction);
}

}  // namespace tessera::nn
