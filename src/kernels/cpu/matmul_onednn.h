// float32 products through oneDNN's matmul primitive, cached per geometry. On AVX-512 its
// brgemm kernels beat sgemm where the second operand is transposed (x @ W^T, the forward of
// every dense layer): 8-20% on the reference MLP and CNN (bench/RESULTS.md); elsewhere
// they are level or slower, so gemm_f32 sends only those products here.
#pragma once
#include <cstdint>

namespace tessera::cpu {

// C = op(A) * op(B) (+ C when accumulate), row-major with leading dimensions, as gemm_f32.
// False, with C untouched, where oneDNN offers only its slower implementations for the
// geometry: the caller then uses sgemm.
bool onednn_matmul_f32(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, const float* a,
                       int64_t lda, const float* b, int64_t ldb, float* c, int64_t ldc,
                       bool accumulate);

}  // namespace tessera::cpu
