// Bool tensors read from files: bytes other than 0 and 1 are not valid C++ bools (loading
// one is undefined behaviour), so they are read as true, as NumPy does.
#pragma once
#include <cstdint>

#include "tessera/core/tensor.h"

namespace tessera::io {

inline void normalize_bools(Tensor& t) {
  if (t.dtype() != DType::Bool) return;
  auto* p = static_cast<uint8_t*>(t.data_ptr());
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = p[i] != 0;
}

}  // namespace tessera::io
