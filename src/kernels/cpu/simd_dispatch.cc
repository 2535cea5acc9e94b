// Picks the SIMD table once, from the CPU's features; TESSERA_ISA=generic|avx2|avx512
// in the environment forces a lower path (for tests and benchmarks).
#include <cstdlib>
#include <cstring>
#include <initializer_list>

#include "simd.h"

namespace tessera::cpu {
namespace generic {
extern const SimdTable kTable;
}
namespace avx2 {
extern const SimdTable kTable;
}
namespace avx512 {
extern const SimdTable kTable;
}

static bool cpu_has(const char* isa) {
  __builtin_cpu_init();
  if (std::strcmp(isa, "generic") == 0) return true;
  if (std::strcmp(isa, "avx2") == 0) {
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  }
  if (std::strcmp(isa, "avx512") == 0) {
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
  }
  return false;
}

const SimdTable* simd_for(const char* isa) {
  if (!cpu_has(isa)) return nullptr;
  if (std::strcmp(isa, "avx512") == 0) return &avx512::kTable;
  if (std::strcmp(isa, "avx2") == 0) return &avx2::kTable;
  return &generic::kTable;
}

static const SimdTable& choose() {
  const char* forced = std::getenv("TESSERA_ISA");
  if (forced && simd_for(forced)) return *simd_for(forced);
  for (const char* isa : {"avx512", "avx2"}) {
    if (const SimdTable* t = simd_for(isa)) return *t;
  }
  return generic::kTable;
}

const SimdTable& simd() {
  static const SimdTable& table = choose();
  return table;
}

}  // namespace tessera::cpu
