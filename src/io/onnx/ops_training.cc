// The optimizer operators of ONNX's preview training domain (ai.onnx.preview.training):
// Adagrad, Momentum and Adam, each updating any number of tensors at once. The learning
// rate R and step count T may be computed at run time.
#include "converter.h"
#include "tessera/ops/creation.h"
#include "tessera/ops/elementwise.h"

namespace tessera::onnx {
namespace {

Tensor num(double v, const Tensor& like) { return scalar_tensor(v, like.dtype()); }

// The tensors being optimized: inputs 2 .. 2 + groups * n, in `groups` runs of n.
int64_t tensor_count(const NodeContext& c, int64_t groups) {
  auto rest = static_cast<int64_t>(c.num_inputs()) - 2;
  c.require(rest > 0 && rest % groups == 0, "expects R, T and ", groups,
            " equal runs of tensors, got ", c.num_inputs(), " inputs");
  return rest / groups;
}

TensorList adagrad_op(const NodeContext& c) {
  const int64_t n = tensor_count(c, 3);
  double decay = c.attr_f("decay_factor", 0.0), eps = c.attr_f("epsilon", 0.0),
         norm = c.attr_f("norm_coefficient", 0.0);
  TensorList xs, hs;
  for (int64_t i = 0; i < n; ++i) {
    const Tensor &x = c.in(2 + i), &grad = c.in(2 + n + i), &h = c.in(2 + 2 * n + i);
    Tensor t = cast(c.in(1), x.dtype()), r = cast(c.in(0), x.dtype());
    Tensor lr = div(r, add(num(1, x), mul(t, num(decay, x))));
    Tensor g = add(mul(x, num(norm, x)), grad);
    Tensor h_new = add(h, mul(g, g));
    xs.push_back(sub(x, div(mul(lr, g), add(sqrt(h_new), num(eps, x)))));
    hs.push_back(h_new);
  }
  xs.insert(xs.end(), hs.begin(), hs.end());
  return xs;
}

TensorList momentum_op(const NodeContext& c) {
  const int64_t n = tensor_count(c, 3);
  double alpha = c.attr_f("alpha", 0.0), beta = c.attr_f("beta", 0.0),
         norm = c.attr_f("norm_coefficient", 0.0);
  std::string mode = c.attr_s("mode", "standard");
  c.require(mode == "standard" || mode == "nesterov", "unknown mode '", mode, "'");
  TensorList xs, vs;
  for (int64_t i = 0; i < n; ++i) {
    const Tensor &x = c.in(2 + i), &grad = c.in(2 + n + i), &v = c.in(2 + 2 * n + i);
    Tensor r = cast(c.in(0), x.dtype());
    // The first step (T = 0) takes the whole gradient.
    Tensor beta_t = where(gt(c.in(1), scalar_tensor(0, c.in(1).dtype())), num(beta, x), num(1, x));
    Tensor g = add(mul(x, num(norm, x)), grad);
    Tensor v_new = add(mul(v, num(alpha, x)), mul(beta_t, g));
    Tensor step = mode == "standard" ? v_new : add(g, mul(v_new, num(alpha, x)));
    xs.push_back(sub(x, mul(r, step)));
    vs.push_back(v_new);
  }
  xs.insert(xs.end(), vs.begin(), vs.end());
  return xs;
}

TensorList adam_op(const NodeContext& c) {
  const int64_t n = tensor_count(c, 4);
  double alpha = c.attr_f("alpha", 0.9), beta = c.attr_f("beta", 0.999),
         eps = c.attr_f("epsilon", 0.0), norm = c.attr_f("norm_coefficient", 0.0),
         norm_post = c.attr_f("norm_coefficient_post", 0.0);
  TensorList xs, vs, hs;
  for (int64_t i = 0; i < n; ++i) {
    const Tensor &x = c.in(2 + i), &grad = c.in(2 + n + i), &v = c.in(2 + 2 * n + i),
                 &h = c.in(2 + 3 * n + i);
    Tensor r = cast(c.in(0), x.dtype()), t = cast(c.in(1), x.dtype());
    Tensor g = add(mul(x, num(norm, x)), grad);
    Tensor v_new = add(mul(v, num(alpha, x)), mul(g, num(1 - alpha, x)));
    Tensor h_new = add(mul(h, num(beta, x)), mul(mul(g, g), num(1 - beta, x)));
    Tensor h_sqrt = add(sqrt(h_new), num(eps, x));
    // Bias correction from the second step on (T > 0).
    Tensor corrected = div(mul(r, sqrt(sub(num(1, x), pow(num(beta, x), t)))),
                           sub(num(1, x), pow(num(alpha, x), t)));
    Tensor lr = where(gt(t, num(0, x)), corrected, r);
    Tensor x_new = sub(x, mul(lr, div(v_new, h_sqrt)));
    xs.push_back(mul(x_new, num(1 - norm_post, x)));
    vs.push_back(v_new);
    hs.push_back(h_new);
  }
  xs.insert(xs.end(), vs.begin(), vs.end());
  xs.insert(xs.end(), hs.begin(), hs.end());
  return xs;
}

}  // namespace

void add_training_ops(OpTable& t) {
  t["ai.onnx.preview.training:Adagrad"] = {adagrad_op};
  t["ai.onnx.preview.training:Momentum"] = {momentum_op};
  t["ai.onnx.preview.training:Adam"] = {adam_op};
}

}  // namespace tessera::onnx
