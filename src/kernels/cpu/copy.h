// Strided copy with broadcasting and dtype conversion: the kernel under contiguous(),
// clone(), cast and copy_.
#pragma once
#include "tessera/core/tensor.h"

namespace tessera::cpu {

// Writes src (broadcast to dst's shape, converted to dst's dtype) into dst.
void copy_into(const Tensor& src, const Tensor& dst);

// Converts one value between C++ types with Tessera's rules (bool tests != 0).
template <typename To, typename From>
inline To convert(From v) {
  if constexpr (std::is_same_v<To, bool>) {
    if constexpr (std::is_same_v<From, float16> || std::is_same_v<From, bfloat16>) {
      return static_cast<float>(v) != 0.0f;
    } else {
      return v != From(0);
    }
  } else if constexpr (std::is_same_v<From, float16> || std::is_same_v<From, bfloat16>) {
    return static_cast<To>(static_cast<float>(v));
  } else if constexpr (std::is_same_v<To, float16> || std::is_same_v<To, bfloat16>) {
    return To(static_cast<float>(v));
  } else {
    return static_cast<To>(v);
  }
}

}  // namespace tessera::cpu
