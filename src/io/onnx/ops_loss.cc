// ONNX's loss operators: NegativeLogLikelihoodLoss and SoftmaxCrossEntropyLoss, with
// class weights, ignore_index and the three reductions.
#include "converter.h"
#include "tessera/ops/creation.h"
#include "tessera/ops/elementwise.h"
#include "tessera/ops/index.h"
#include "tessera/ops/nn.h"
#include "tessera/ops/reduce.h"
#include "tessera/ops/shape.h"

namespace tessera::onnx {
namespace {

// log_prob [N, C, d...], target [N, d...]: -log_prob[n, target[n, ...], ...] times the
// target's class weight, reduced. Mean divides by the summed weights of the targets used.
Tensor nll(const NodeContext& c, const Tensor& log_prob, const Tensor& target,
           const Tensor& weight) {
  c.require(log_prob.dim() >= 2 && target.dim() == log_prob.dim() - 1, "input of shape ",
            log_prob.shape(), " and target of shape ", target.shape(), " do not match");
  std::string reduction = c.attr_s("reduction", "mean");
  Tensor t = cast(target, DType::Int64);
  Tensor keep;
  if (c.has_attr("ignore_index")) {
    keep = ne(t, scalar_tensor(c.attr_i("ignore_index", 0), DType::Int64));
    t = where(keep, t, scalar_tensor(0, DType::Int64));
  }
  Tensor picked = squeeze(take_along_axis(log_prob, unsqueeze(t, 1), 1), 1);
  Tensor loss = neg(picked);
  Tensor w;
  if (weight.defined()) w = take(weight, t, 0);
  if (keep.defined()) {
    Tensor k = cast(keep, log_prob.dtype());
    w = w.defined() ? mul(w, k) : k;
  }
  if (w.defined()) loss = mul(loss, w);
  if (reduction == "none") return loss;
  if (reduction == "sum") return sum(loss);
  c.require(reduction == "mean", "unknown reduction '", reduction, "'");
  if (!w.defined()) return mean(loss);
  return div(sum(loss), sum(w));
}

TensorList nll_op(const NodeContext& c) {
  return {nll(c, c.in(0), c.in(1), c.has(2) ? c.in(2) : Tensor())};
}

TensorList softmax_cross_entropy_op(const NodeContext& c) {
  Tensor log_prob = log_softmax(c.in(0), 1);
  return {nll(c, log_prob, c.in(1), c.has(2) ? c.in(2) : Tensor()), log_prob};
}

}  // namespace

void add_loss_ops(OpTable& t) {
  t["NegativeLogLikelihoodLoss"] = {nll_op};
  t["SoftmaxCrossEntropyLoss"] = {softmax_cross_entropy_op};
}

}  // namespace tessera::onnx
