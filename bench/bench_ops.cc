// Google Benchmark cases for Tessera's eager ops. bench/compare.py runs this binary
// beside PyTorch, TensorFlow and LibTorch on the same work and prints ratios.
// Every case takes the thread count as its last argument.
#include <benchmark/benchmark.h>

#include <cstring>

#include "tessera/tessera.h"

using namespace tessera;

namespace {

void set_threads(benchmark::State& state, int arg_index) {
  set_num_threads(static_cast<int>(state.range(arg_index)));
}

// 10,000 adds of one-element tensors; reported per op.
void BM_overhead_add(benchmark::State& state) {
  set_threads(state, 0);
  Tensor a = ones({1}), b = ones({1});
  for (auto _ : state) {
    for (int i = 0; i < 10000; ++i) benchmark::DoNotOptimize(add(a, b));
  }
  state.counters["us_per_op"] = benchmark::Counter(
      static_cast<double>(state.iterations()) * 10000,
      benchmark::Counter::kIsRate | benchmark::Counter::kInvert, benchmark::Counter::kIs1000);
}

template <int kOp>
void BM_elementwise(benchmark::State& state) {
  set_threads(state, 1);
  int64_t n = state.range(0);
  Tensor a = rand({n}), b = rand({n});
  for (auto _ : state) {
    Tensor y = kOp == 0 ? add(a, b) : kOp == 1 ? mul(a, b) : exp(a);
    benchmark::DoNotOptimize(y.data_ptr());
  }
  int64_t streams = kOp == 2 ? 2 : 3;
  state.SetBytesProcessed(state.iterations() * n * 4 * streams);
}

void BM_memcpy(benchmark::State& state) {
  int64_t n = state.range(0);
  std::vector<float> src(n, 1.0f), dst(n);
  for (auto _ : state) {
    std::memcpy(dst.data(), src.data(), n * 4);
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * n * 4 * 2);
}

void BM_sum(benchmark::State& state) {
  set_threads(state, 1);
  Tensor a = rand({state.range(0)});
  for (auto _ : state) benchmark::DoNotOptimize(sum(a).data_ptr());
  state.SetBytesProcessed(state.iterations() * state.range(0) * 4);
}

void BM_matmul(benchmark::State& state) {
  set_threads(state, 1);
  int64_t n = state.range(0);
  Tensor a = rand({n, n}), b = rand({n, n});
  for (auto _ : state) benchmark::DoNotOptimize(matmul(a, b).data_ptr());
  state.counters["GFLOPs"] = benchmark::Counter(
      static_cast<double>(state.iterations()) * 2 * n * n * n, benchmark::Counter::kIsRate);
}

}  // namespace

BENCHMARK(BM_overhead_add)->Arg(1)->Arg(2)->UseRealTime();
BENCHMARK(BM_elementwise<0>)
    ->Name("BM_add")
    ->ArgsProduct({{1 << 20, 16 << 20}, {1, 2}})
    ->UseRealTime();
BENCHMARK(BM_elementwise<1>)
    ->Name("BM_mul")
    ->ArgsProduct({{1 << 20, 16 << 20}, {1, 2}})
    ->UseRealTime();
BENCHMARK(BM_elementwise<2>)
    ->Name("BM_exp")
    ->ArgsProduct({{1 << 20, 16 << 20}, {1, 2}})
    ->UseRealTime();
BENCHMARK(BM_memcpy)->Arg(1 << 20)->Arg(16 << 20)->UseRealTime();
BENCHMARK(BM_sum)->ArgsProduct({{16 << 20}, {1, 2}})->UseRealTime();
BENCHMARK(BM_matmul)->ArgsProduct({{128, 256, 512, 1024, 2048}, {1, 2}})->UseRealTime();
