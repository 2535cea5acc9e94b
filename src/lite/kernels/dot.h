// Dot products of 16-bit integers summed in 32 bits, the inner loop of the integer
// convolution: pmaddwd multiplies and pairs 16-bit lanes in one instruction (32 products
// per AVX-512 instruction), which the compiler does not find by itself here. Chosen once
// for the machine; a portable loop elsewhere (aarch64 compilers vectorize it with smlal).
#pragma once
#include <cstdint>

namespace tessera::lite {

// out[j] = sum_k a[k] * b_j[k] for the four rows b_0..b_3 (each n long).
using Dot16x4 = void (*)(const int16_t* a, const int16_t* b0, const int16_t* b1, const int16_t* b2,
                         const int16_t* b3, int64_t n, int32_t* out);
// The fastest version for this machine (see isa.h).
Dot16x4 best_dot16x4();

// The same with 8-bit rows (int8 weights used as they are stored), widened on the fly.
using Dot16x8x4 = void (*)(const int16_t* a, const int8_t* b0, const int8_t* b1, const int8_t* b2,
                           const int8_t* b3, int64_t n, int32_t* out);
Dot16x8x4 best_dot16x8x4();

}  // namespace tessera::lite
