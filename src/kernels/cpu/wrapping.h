// Integer arithmetic that wraps around on overflow, as NumPy and PyTorch do: signed
// overflow is undefined behaviour in C++, so signed integers go through their unsigned
// type. Other types (floating point, bool, unsigned) use the plain operators.
#pragma once
#include <type_traits>

namespace tessera::cpu {

template <typename T>
inline constexpr bool kWraps = std::is_integral_v<T>&& std::is_signed_v<T>;

template <typename T>
T wrapping_add(T a, T b) {
  if constexpr (kWraps<T>) {
    using U = std::make_unsigned_t<T>;
    return static_cast<T>(static_cast<U>(static_cast<U>(a) + static_cast<U>(b)));
  } else {
    return a + b;
  }
}

template <typename T>
T wrapping_sub(T a, T b) {
  if constexpr (kWraps<T>) {
    using U = std::make_unsigned_t<T>;
    return static_cast<T>(static_cast<U>(static_cast<U>(a) - static_cast<U>(b)));
  } else {
    return a - b;
  }
}

template <typename T>
T wrapping_mul(T a, T b) {
  if constexpr (kWraps<T>) {
    using U = std::make_unsigned_t<T>;
    return static_cast<T>(static_cast<U>(static_cast<U>(a) * static_cast<U>(b)));
  } else {
    return a * b;
  }
}

template <typename T>
T wrapping_neg(T a) {
  if constexpr (kWraps<T>) {
    using U = std::make_unsigned_t<T>;
    return static_cast<T>(static_cast<U>(U(0) - static_cast<U>(a)));
  } else {
    return -a;
  }
}

}  // namespace tessera::cpu
