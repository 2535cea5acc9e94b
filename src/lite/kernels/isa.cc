#include "isa.h"

#include <cstdlib>
#include <cstring>

namespace tessera::lite {

Isa kernel_isa() {
  static const Isa isa = [] {
    Isa best = Isa::portable;
#if defined(__x86_64__)
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) best = Isa::avx2;
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("bmi2")) {
      best = Isa::avx512;
    }
#endif
    const char* cap = std::getenv("TESSERA_LITE_ISA");
    if (cap && std::strcmp(cap, "portable") == 0) return Isa::portable;
    if (cap && std::strcmp(cap, "avx2") == 0 && best == Isa::avx512) return Isa::avx2;
    return best;
  }();
  return isa;
}

bool kernel_vnni() {
  static const bool vnni = [] {
#if defined(__x86_64__)
    const char* cap = std::getenv("TESSERA_LITE_ISA");
    return kernel_isa() == Isa::avx512 && __builtin_cpu_supports("avx512vnni") &&
           !(cap && std::strcmp(cap, "avx512") == 0);
#else
    return false;
#endif
  }();
  return vnni;
}

}  // namespace tessera::lite
