// Fits y = sin(x) on [-pi, pi] with a two-layer tanh network written in raw ops,
// trained by plain gradient descent through eager autodiff.
#include <cmath>
#include <cstdio>

#include "tessera/tessera.h"

using namespace tessera;

int main() {
  manual_seed(0);
  const int64_t n = 256, hidden = 32;
  Tensor x = reshape(linspace(-M_PI, M_PI, n), {n, 1});
  Tensor y = sin(x);

  Tensor w1 = mul(randn({1, hidden}), 1.0).set_requires_grad();
  Tensor b1 = zeros({hidden}).set_requires_grad();
  Tensor w2 = mul(randn({hidden, 1}), 1.0 / std::sqrt(hidden)).set_requires_grad();
  Tensor b2 = zeros({1}).set_requires_grad();
  std::vector<Tensor> params = {w1, b1, w2, b2};

  const double lr = 0.05;
  double first = 0, last = 0;
  for (int step = 0; step <= 2000; ++step) {
    Tensor h = tanh(add(matmul(x, w1), b1));
    Tensor pred = add(matmul(h, w2), b2);
    Tensor loss = mean(square(sub(pred, y)));
    for (Tensor& p : params) p.zero_grad();
    loss.backward();
    {
      NoGradGuard no_grad;
      for (Tensor& p : params) p.add_(p.grad(), -lr);
    }
    last = loss.item<double>();
    if (step == 0) first = last;
    if (step % 200 == 0) std::printf("step %4d  loss %.6f\n", step, last);
  }
  std::printf("loss fell from %.4f to %.6f\n", first, last);
  return last < first * 0.05 ? 0 : 1;
}
