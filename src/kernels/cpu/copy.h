// Strided copy with broadcasting and dtype conversion: the kernel under contiguous(),
// clone(), cast and copy_.
#pragma once
#include <cstdint>
#include <limits>
#include <type_traits>

#include "tessera/core/tensor.h"

namespace tessera::cpu {

// Writes src (broadcast to dst's shape, converted to dst's dtype) into dst.
void copy_into(const Tensor& src, const Tensor& dst);

// A float's integer part as To. NaN and values outside the range of the integer type the
// conversion goes through (int64 for To = int64, int32 otherwise, as x86's instructions
// and so PyTorch do) give that type's lowest value, x86's result, instead of undefined
// behaviour. The narrower types then keep the low bits.
template <typename To, typename F>
inline To float_to_integer(F v) {
  using Via = std::conditional_t<sizeof(To) == 8, int64_t, int32_t>;
  constexpr F limit = static_cast<F>(sizeof(Via) == 8 ? 9223372036854775808.0 : 2147483648.0);
  const bool fits = v >= -limit && v < limit;
  const Via whole = static_cast<Via>(fits ? v : F(0));  // (computed apart: vectorizes)
  return static_cast<To>(fits ? whole : std::numeric_limits<Via>::min());
}

// Converts one value between C++ types with Tessera's rules (bool tests != 0).
template <typename To, typename From>
inline To convert(From v) {
  constexpr bool from_half = std::is_same_v<From, float16> || std::is_same_v<From, bfloat16>;
  if constexpr (std::is_same_v<To, bool>) {
    if constexpr (from_half) {
      return static_cast<float>(v) != 0.0f;
    } else {
      return v != From(0);
    }
  } else if constexpr (std::is_integral_v<To> && from_half) {
    return float_to_integer<To>(static_cast<float>(v));
  } else if constexpr (std::is_integral_v<To> && std::is_floating_point_v<From>) {
    return float_to_integer<To>(v);
  } else if constexpr (from_half) {
    return static_cast<To>(static_cast<float>(v));
  } else if constexpr (std::is_same_v<To, float16> || std::is_same_v<To, bfloat16>) {
    return To(static_cast<float>(v));
  } else {
    return static_cast<To>(v);
  }
}

}  // namespace tessera::cpu
