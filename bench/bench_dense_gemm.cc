// Dense-layer products (x @ W^T: x [m, k], W [n, k]) through oneDNN's sgemm and through its
// matmul primitive, which gemm_f32 uses for them (src/kernels/cpu/matmul_onednn.h): the
// reference MLP's and CNN's forward products at batch 128.
#include <benchmark/benchmark.h>
#include <dnnl.h>
#include <omp.h>

#include <dnnl.hpp>
#include <vector>

namespace {

struct Dense {
  int64_t m, n, k;
};
// MLP 784->256 and 256->256, CNN 3136->128, at batch 128.
const Dense kShapes[] = {{128, 256, 784}, {128, 256, 256}, {128, 128, 3136}};

void set_flops(benchmark::State& state, const Dense& d) {
  state.counters["GFLOPs"] = benchmark::Counter(
      static_cast<double>(state.iterations()) * 2 * d.m * d.n * d.k, benchmark::Counter::kIsRate);
}

void BM_dense_sgemm(benchmark::State& state) {
  const Dense& d = kShapes[state.range(0)];
  omp_set_num_threads(static_cast<int>(state.range(1)));
  std::vector<float> x(d.m * d.k, 0.5f), w(d.n * d.k, 0.25f), y(d.m * d.n);
  for (auto _ : state) {
    dnnl_sgemm('N', 'T', d.m, d.n, d.k, 1.0f, x.data(), d.k, w.data(), d.k, 0.0f, y.data(), d.n);
    benchmark::ClobberMemory();
  }
  set_flops(state, d);
}

void BM_dense_matmul_primitive(benchmark::State& state) {
  const Dense& d = kShapes[state.range(0)];
  omp_set_num_threads(static_cast<int>(state.range(1)));
  std::vector<float> x(d.m * d.k, 0.5f), w(d.n * d.k, 0.25f), y(d.m * d.n);
  using dnnl::memory;
  dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  dnnl::stream stream(eng);
  memory::desc xd({d.m, d.k}, memory::data_type::f32, memory::dims{d.k, 1});
  memory::desc wd({d.k, d.n}, memory::data_type::f32, memory::dims{1, d.k});  // W^T
  memory::desc yd({d.m, d.n}, memory::data_type::f32, memory::dims{d.n, 1});
  dnnl::matmul matmul(dnnl::matmul::primitive_desc(dnnl::matmul::desc(xd, wd, yd), eng));
  memory xm(xd, eng, x.data()), wm(wd, eng, w.data()), ym(yd, eng, y.data());
  for (auto _ : state) {
    matmul.execute(stream, {{DNNL_ARG_SRC, xm}, {DNNL_ARG_WEIGHTS, wm}, {DNNL_ARG_DST, ym}});
    stream.wait();
    benchmark::ClobberMemory();
  }
  set_flops(state, d);
}

}  // namespace

BENCHMARK(BM_dense_sgemm)->ArgsProduct({{0, 1, 2}, {1, 2}})->UseRealTime();
BENCHMARK(BM_dense_matmul_primitive)->ArgsProduct({{0, 1, 2}, {1, 2}})->UseRealTime();
