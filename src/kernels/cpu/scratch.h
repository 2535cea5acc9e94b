// A buffer from Tessera's caching allocator for the length of one kernel call: oneDNN's
// scratchpads and reordered arguments, which its cached primitives must not own (two
// threads may run one primitive at once). A fresh malloc of tens of megabytes per call
// would page-fault every byte in again.
#pragma once
#include <cstddef>

#include "tessera/core/allocator.h"

namespace tessera::cpu {

struct Scratch {
  void* ptr = nullptr;
  size_t bytes = 0;
  explicit Scratch(size_t n) : ptr(n ? allocate_host(n) : nullptr), bytes(n) {}
  ~Scratch() {
    if (ptr) free_host(ptr, bytes);
  }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
};

}  // namespace tessera::cpu
