// The avx512 instantiation of simd_impl.inc (compile flags are set in CMakeLists.txt).
#define TESSERA_ISA avx512
#define TESSERA_ISA_NAME "avx512"
#include "simd_impl.inc"
