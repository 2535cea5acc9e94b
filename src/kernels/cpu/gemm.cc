#include "gemm.h"

#include <dnnl.h>
#include <omp.h>

#include <algorithm>
#include <vector>

#include "matmul_onednn.h"
#include "tessera/core/error.h"
#include "tessera/core/half.h"
#include "tessera/core/parallel.h"

namespace tessera::cpu {

// Thresholds in multiply-adds, measured on the 2-core Zen 4 host (bench/RESULTS.md).
constexpr double kTinyGemmFlops = 16 * 1024;
constexpr double kSingleThreadGemmFlops = 96.0 * 96 * 96;
// Below this many rows (batch-1 inference) the primitive's call costs more than sgemm.
constexpr int64_t kMinPrimitiveRows = 32;

namespace {
thread_local GemmThreads gemm_threads = GemmThreads::by_size;

void sgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda,
           const float* b, int64_t ldb, float* c, int64_t ldc, bool accumulate) {
  dnnl_status_t st = dnnl_sgemm(trans_a ? 'T' : 'N', trans_b ? 'T' : 'N', m, n, k, 1.0f, a, lda, b,
                                ldb, accumulate ? 1.0f : 0.0f, c, ldc);
  check(st == dnnl_success, "matmul", "oneDNN sgemm failed with status ", static_cast<int>(st));
}
}  // namespace

}  // namespace tessera::cpu

namespace tessera {
void warm_up_kernels() {
  float a[16 * 16] = {}, b[16 * 16] = {}, c[16 * 16];
  cpu::sgemm(false, false, 16, 16, 16, a, 16, b, 16, c, 16, false);
}
}  // namespace tessera

namespace tessera::cpu {

GemmThreadsScope::GemmThreadsScope(GemmThreads threads) : previous_(gemm_threads) {
  gemm_threads = threads;
}
GemmThreadsScope::~GemmThreadsScope() { gemm_threads = previous_; }

void gemm_f32(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, const float* a,
              int64_t lda, const float* b, int64_t ldb, float* c, int64_t ldc, bool accumulate) {
  if (m == 0 || n == 0) return;
  if (k == 0) {
    if (!accumulate) {
      for (int64_t i = 0; i < m; ++i) std::fill(c + i * ldc, c + i * ldc + n, 0.0f);
    }
    return;
  }
  double flops = static_cast<double>(m) * n * k;
  if (flops <= kTinyGemmFlops) {
    // Library call overhead dominates tiny products: plain loops, vectorized over n when
    // rows are long, else as dot products over k with independent partial sums.
    auto A = [&](int64_t i, int64_t p) { return trans_a ? a[p * lda + i] : a[i * lda + p]; };
    auto B = [&](int64_t p, int64_t j) { return trans_b ? b[j * ldb + p] : b[p * ldb + j]; };
    if (n >= 16 && !trans_b) {
      for (int64_t i = 0; i < m; ++i) {
        float* __restrict row = c + i * ldc;
        if (!accumulate) std::fill(row, row + n, 0.0f);
        for (int64_t p = 0; p < k; ++p) {
          const float av = A(i, p);
          const float* __restrict brow = b + p * ldb;
          for (int64_t j = 0; j < n; ++j) row[j] += av * brow[j];
        }
      }
      return;
    }
    for (int64_t i = 0; i < m; ++i) {
      for (int64_t j = 0; j < n; ++j) {
        float acc[4] = {0, 0, 0, 0};
        int64_t p = 0;
        for (; p + 4 <= k; p += 4) {
          for (int q = 0; q < 4; ++q) acc[q] += A(i, p + q) * B(p + q, j);
        }
        for (; p < k; ++p) acc[0] += A(i, p) * B(p, j);
        float sum = (acc[0] + acc[1]) + (acc[2] + acc[3]);
        c[i * ldc + j] = accumulate ? c[i * ldc + j] + sum : sum;
      }
    }
    return;
  }
  const GemmThreads mode = gemm_threads;
  if (mode == GemmThreads::all && m <= 16 && n >= 64 && !detail::in_parallel_region()) {
    // A few rows (batch-1 inference): the library keeps these on one thread, so split the
    // columns across threads, each a single-threaded product on its slice.
    const int64_t chunk = (n + num_threads() - 1) / num_threads();
    const int64_t step = (chunk + 15) / 16 * 16;
    parallel_for(0, (n + step - 1) / step, 1, [&](int64_t lo, int64_t hi) {
      for (int64_t part = lo; part < hi; ++part) {
        int64_t j0 = part * step, cols = std::min(step, n - j0);
        const float* bj = trans_b ? b + j0 * ldb : b + j0;
        sgemm(trans_a, trans_b, m, cols, k, a, lda, bj, ldb, c + j0, ldc, accumulate);
      }
    });
    return;
  }
  // Small products lose more to waking threads than they gain: run them on this thread.
  int saved_threads = omp_get_max_threads();
  bool single =
      mode == GemmThreads::one || (mode == GemmThreads::by_size && flops < kSingleThreadGemmFlops);
  if (single) omp_set_num_threads(1);
  try {
    // x @ W^T with a few dozen rows or more: oneDNN's matmul primitive is faster there,
    // once the product outweighs the primitive's lookup and call (about 2 us).
    const bool primitive =
        !trans_a && trans_b && m >= kMinPrimitiveRows && flops >= kSingleThreadGemmFlops;
    if (!primitive ||
        !onednn_matmul_f32(trans_a, trans_b, m, n, k, a, lda, b, ldb, c, ldc, accumulate)) {
      sgemm(trans_a, trans_b, m, n, k, a, lda, b, ldb, c, ldc, accumulate);
    }
  } catch (...) {
    if (single) omp_set_num_threads(saved_threads);
    throw;
  }
  if (single) omp_set_num_threads(saved_threads);
}

template <typename T>
void gemm_ref(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, const T* a, int64_t lda,
              const T* b, int64_t ldb, T* c, int64_t ldc) {
  using Acc = std::conditional_t<std::is_floating_point_v<T>, double,
                                 std::conditional_t<sizeof(T) < 8, int64_t, T>>;
  parallel_for(0, m, std::max<int64_t>(1, 4096 / std::max<int64_t>(n * k, 1)),
               [&](int64_t lo, int64_t hi) {
                 std::vector<Acc> row(n);
                 for (int64_t i = lo; i < hi; ++i) {
                   std::fill(row.begin(), row.end(), Acc(0));
                   for (int64_t p = 0; p < k; ++p) {
                     Acc av = static_cast<Acc>(trans_a ? a[p * lda + i] : a[i * lda + p]);
                     if (av == Acc(0)) continue;
                     for (int64_t j = 0; j < n; ++j) {
                       row[j] += av * static_cast<Acc>(trans_b ? b[j * ldb + p] : b[p * ldb + j]);
                     }
                   }
                   for (int64_t j = 0; j < n; ++j) c[i * ldc + j] = static_cast<T>(row[j]);
                 }
               });
}

template void gemm_ref(bool, bool, int64_t, int64_t, int64_t, const double*, int64_t, const double*,
                       int64_t, double*, int64_t);
template void gemm_ref(bool, bool, int64_t, int64_t, int64_t, const float*, int64_t, const float*,
                       int64_t, float*, int64_t);
template void gemm_ref(bool, bool, int64_t, int64_t, int64_t, const int64_t*, int64_t,
                       const int64_t*, int64_t, int64_t*, int64_t);
template void gemm_ref(bool, bool, int64_t, int64_t, int64_t, const int32_t*, int64_t,
                       const int32_t*, int64_t, int32_t*, int64_t);
template void gemm_ref(bool, bool, int64_t, int64_t, int64_t, const int8_t*, int64_t, const int8_t*,
                       int64_t, int8_t*, int64_t);
template void gemm_ref(bool, bool, int64_t, int64_t, int64_t, const uint8_t*, int64_t,
                       const uint8_t*, int64_t, uint8_t*, int64_t);

}  // namespace tessera::cpu
