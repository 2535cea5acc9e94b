// The 16-bit dot products of dot.h: AVX-512BW, AVX2 and portable versions, each one template
// over the rows' type (int16, or int8 widened as it is loaded).
#include "dot.h"

#include "isa.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace tessera::lite {
namespace {

template <typename B>
void dot4_portable(const int16_t* a, const B* b0, const B* b1, const B* b2, const B* b3, int64_t n,
                   int32_t* out) {
  int32_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  for (int64_t k = 0; k < n; ++k) {
    int32_t x = a[k];
    s0 += x * b0[k], s1 += x * b1[k], s2 += x * b2[k], s3 += x * b3[k];
  }
  out[0] = s0, out[1] = s1, out[2] = s2, out[3] = s3;
}

#if defined(__x86_64__)
// GCC 12 takes the undefined vectors inside some AVX-512 intrinsics (_mm512_undefined_*)
// for uninitialized reads once they are inlined into templates; they are not reads.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
// 32 values as int16 lanes.
__attribute__((target("avx512f,avx512bw"))) __m512i load32(const int16_t* p) {
  return _mm512_loadu_si512(p);
}
__attribute__((target("avx512f,avx512bw"))) __m512i load32(const int8_t* p) {
  return _mm512_cvtepi8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}

template <typename B>
__attribute__((target("avx512f,avx512bw"))) void dot4_avx512(const int16_t* a, const B* b0,
                                                             const B* b1, const B* b2, const B* b3,
                                                             int64_t n, int32_t* out) {
  __m512i s0 = _mm512_setzero_si512(), s1 = s0, s2 = s0, s3 = s0;
  int64_t k = 0;
  for (; k + 32 <= n; k += 32) {
    __m512i x = _mm512_loadu_si512(a + k);
    s0 = _mm512_add_epi32(s0, _mm512_madd_epi16(x, load32(b0 + k)));
    s1 = _mm512_add_epi32(s1, _mm512_madd_epi16(x, load32(b1 + k)));
    s2 = _mm512_add_epi32(s2, _mm512_madd_epi16(x, load32(b2 + k)));
    s3 = _mm512_add_epi32(s3, _mm512_madd_epi16(x, load32(b3 + k)));
  }
  int32_t tail[4];
  dot4_portable(a + k, b0 + k, b1 + k, b2 + k, b3 + k, n - k, tail);
  out[0] = _mm512_reduce_add_epi32(s0) + tail[0], out[1] = _mm512_reduce_add_epi32(s1) + tail[1];
  out[2] = _mm512_reduce_add_epi32(s2) + tail[2], out[3] = _mm512_reduce_add_epi32(s3) + tail[3];
}

// 16 values as int16 lanes.
__attribute__((target("avx2"))) __m256i load16(const int16_t* p) {
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
}
__attribute__((target("avx2"))) __m256i load16(const int8_t* p) {
  return _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}

__attribute__((target("avx2"))) int32_t sum8(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
  return _mm_cvtsi128_si32(s);
}

template <typename B>
__attribute__((target("avx2"))) void dot4_avx2(const int16_t* a, const B* b0, const B* b1,
                                               const B* b2, const B* b3, int64_t n, int32_t* out) {
  __m256i s0 = _mm256_setzero_si256(), s1 = s0, s2 = s0, s3 = s0;
  int64_t k = 0;
  for (; k + 16 <= n; k += 16) {
    __m256i x = load16(a + k);
    s0 = _mm256_add_epi32(s0, _mm256_madd_epi16(x, load16(b0 + k)));
    s1 = _mm256_add_epi32(s1, _mm256_madd_epi16(x, load16(b1 + k)));
    s2 = _mm256_add_epi32(s2, _mm256_madd_epi16(x, load16(b2 + k)));
    s3 = _mm256_add_epi32(s3, _mm256_madd_epi16(x, load16(b3 + k)));
  }
  int32_t tail[4];
  dot4_portable(a + k, b0 + k, b1 + k, b2 + k, b3 + k, n - k, tail);
  out[0] = sum8(s0) + tail[0], out[1] = sum8(s1) + tail[1];
  out[2] = sum8(s2) + tail[2], out[3] = sum8(s3) + tail[3];
}
#pragma GCC diagnostic pop
#endif

// The fastest version for this machine, for rows of type B.
template <typename B>
auto best_dot4() {
#if defined(__x86_64__)
  if (kernel_isa() == Isa::avx512) return dot4_avx512<B>;
  if (kernel_isa() == Isa::avx2) return dot4_avx2<B>;
#endif
  return dot4_portable<B>;
}

}  // namespace

Dot16x8x4 best_dot16x8x4() { return best_dot4<int8_t>(); }
Dot16x4 best_dot16x4() { return best_dot4<int16_t>(); }

}  // namespace tessera::lite
