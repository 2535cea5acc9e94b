// Dense matrix multiply C = A * B (+ C when accumulate) for row-major matrices with
// leading dimensions; float32 goes to oneDNN's sgemm, other types to a plain loop.
#pragma once
#include <cstdint>

namespace tessera::cpu {

// How many threads a float32 product uses: by its size (the default rule: small products
// stay on the calling thread), or chosen by the caller, as graph plans do after timing
// both (kernels read the choice from the op's "threads" attribute).
enum class GemmThreads : int64_t { by_size = 0, one = 1, all = 2 };
// Sets the choice for gemm_f32 calls on this thread for the scope's lifetime.
class GemmThreadsScope {
 public:
  explicit GemmThreadsScope(GemmThreads threads);
  ~GemmThreadsScope();
  GemmThreadsScope(const GemmThreadsScope&) = delete;
  GemmThreadsScope& operator=(const GemmThreadsScope&) = delete;

 private:
  GemmThreads previous_;
};

// A is m x k (or k x m when trans_a), B is k x n (or n x k when trans_b), C is m x n.
void gemm_f32(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, const float* a,
              int64_t lda, const float* b, int64_t ldb, float* c, int64_t ldc, bool accumulate);

template <typename T>
void gemm_ref(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, const T* a, int64_t lda,
              const T* b, int64_t ldb, T* c, int64_t ldc);

}  // namespace tessera::cpu
