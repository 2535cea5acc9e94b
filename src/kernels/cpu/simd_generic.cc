// The generic instantiation of simd_impl.inc (compile flags are set in CMakeLists.txt).
#define TESSERA_ISA generic
#define TESSERA_ISA_NAME "generic"
#include "simd_impl.inc"
