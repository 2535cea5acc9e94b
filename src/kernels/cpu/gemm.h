// Dense matrix multiply C = A * B (+ C when accumulate) for row-major matrices with
// leading dimensions; float32 goes to oneDNN's sgemm, other types to a plain loop.
#pragma once
#include <cstdint>

namespace tessera::cpu {

// A is m x k (or k x m when trans_a), B is k x n (or n x k when trans_b), C is m x n.
void gemm_f32(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, const float* a,
              int64_t lda, const float* b, int64_t ldb, float* c, int64_t ldc, bool accumulate);

template <typename T>
void gemm_ref(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, const T* a, int64_t lda,
              const T* b, int64_t ldb, T* c, int64_t ldc);

}  // namespace tessera::cpu
