// Convolution cases of the foundation issue: forward, and forward + backward (the
// gradient of the input only where the first layer would need it: never for 1 channel).
// Case index order matches CONV_CASES in bench/compare.py.
#include <benchmark/benchmark.h>

#include "tessera/ops/nn.h"
#include "tessera/tessera.h"

using namespace tessera;

namespace {

struct ConvCase {
  int64_t n, cin, cout, h, w, groups;
};
const ConvCase kCases[] = {{128, 1, 32, 28, 28, 1},
                           {128, 32, 64, 14, 14, 1},
                           {32, 64, 64, 56, 56, 1},
                           {1, 32, 32, 112, 112, 32}};

void BM_conv_fwd(benchmark::State& state) {
  const ConvCase& c = kCases[state.range(0)];
  set_num_threads(static_cast<int>(state.range(1)));
  Tensor x = rand({c.n, c.cin, c.h, c.w});
  Tensor w = mul(rand({c.cout, c.cin / c.groups, 3, 3}), 0.1);
  NoGradGuard no_grad;
  for (auto _ : state) {
    benchmark::DoNotOptimize(conv2d(x, w, Tensor(), 1, 1, 1, c.groups).data_ptr());
  }
}

void BM_conv_fwd_bwd(benchmark::State& state) {
  const ConvCase& c = kCases[state.range(0)];
  set_num_threads(static_cast<int>(state.range(1)));
  Tensor x = rand({c.n, c.cin, c.h, c.w});
  if (c.cin > 1) x.set_requires_grad();
  Tensor w = mul(rand({c.cout, c.cin / c.groups, 3, 3}), 0.1).detach().set_requires_grad();
  for (auto _ : state) {
    Tensor y = conv2d(x, w, Tensor(), 1, 1, 1, c.groups);
    TensorList g = grad({sum(y)}, c.cin > 1 ? TensorList{x, w} : TensorList{w});
    benchmark::DoNotOptimize(g[0].data_ptr());
  }
}

}  // namespace

BENCHMARK(BM_conv_fwd)->ArgsProduct({{0, 1, 2, 3}, {1, 2}})->UseRealTime();
BENCHMARK(BM_conv_fwd_bwd)->ArgsProduct({{0, 1, 2, 3}, {1, 2}})->UseRealTime();
