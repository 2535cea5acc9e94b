// The avx2 instantiation of simd_impl.inc (compile flags are set in CMakeLists.txt).
#define TESSERA_ISA avx2
#define TESSERA_ISA_NAME "avx2"
#include "simd_impl.inc"
