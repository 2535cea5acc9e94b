// The libraries Tessera could use for float32 gemm, called directly on the same
// square sizes as BM_matmul: oneDNN's sgemm (what Tessera uses) and OpenBLAS.
#include <benchmark/benchmark.h>
#include <cblas.h>
#include <dnnl.h>
#include <omp.h>

#include <vector>

extern "C" void openblas_set_num_threads(int);

namespace {

void BM_sgemm_onednn(benchmark::State& state) {
  int64_t n = state.range(0);
  omp_set_num_threads(static_cast<int>(state.range(1)));
  std::vector<float> a(n * n, 0.5f), b(n * n, 0.25f), c(n * n);
  for (auto _ : state) {
    dnnl_sgemm('N', 'N', n, n, n, 1.0f, a.data(), n, b.data(), n, 0.0f, c.data(), n);
    benchmark::ClobberMemory();
  }
  state.counters["GFLOPs"] = benchmark::Counter(
      static_cast<double>(state.iterations()) * 2 * n * n * n, benchmark::Counter::kIsRate);
}

void BM_sgemm_openblas(benchmark::State& state) {
  int64_t n = state.range(0);
  openblas_set_num_threads(static_cast<int>(state.range(1)));
  std::vector<float> a(n * n, 0.5f), b(n * n, 0.25f), c(n * n);
  for (auto _ : state) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a.data(), n, b.data(), n,
                0.0f, c.data(), n);
    benchmark::ClobberMemory();
  }
  state.counters["GFLOPs"] = benchmark::Counter(
      static_cast<double>(state.iterations()) * 2 * n * n * n, benchmark::Counter::kIsRate);
}

}  // namespace

BENCHMARK(BM_sgemm_onednn)->ArgsProduct({{128, 256, 512, 1024, 2048}, {1, 2}})->UseRealTime();
BENCHMARK(BM_sgemm_openblas)->ArgsProduct({{128, 256, 512, 1024, 2048}, {1, 2}})->UseRealTime();
