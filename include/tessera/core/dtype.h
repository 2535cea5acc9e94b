// Element types, their sizes and names, NumPy/PyTorch type promotion, and a
// dispatch helper that turns a runtime DType into a compile-time C++ type.
#pragma once
#include <complex>
#include <cstdint>
#include <string>

#include "tessera/core/error.h"
#include "tessera/core/half.h"

namespace tessera {

enum class DType : uint8_t { Bool, UInt8, Int8, Int32, Int64, Float16, BFloat16, Float32, Float64 };

inline constexpr int kNumDTypes = 9;

size_t dtype_size(DType t);
const char* dtype_name(DType t);
inline bool is_floating(DType t) { return t >= DType::Float16; }
inline bool is_integral(DType t) { return t >= DType::UInt8 && t <= DType::Int64; }  // no bool

// Result type of a binary op on two tensors, following PyTorch: bool < integers < floats;
// int8 with uint8 gives int16 in PyTorch, which Tessera lacks, so it gives int32;
// float16 with bfloat16 gives float32.
DType promote_types(DType a, DType b);

// The type used for arithmetic on values of type t (half types compute in float).
template <typename T>
struct ComputeType {
  using type = T;
};
template <>
struct ComputeType<float16> {
  using type = float;
};
template <>
struct ComputeType<bfloat16> {
  using type = float;
};

template <typename T>
constexpr DType dtype_of();
template <>
constexpr DType dtype_of<bool>() {
  return DType::Bool;
}
template <>
constexpr DType dtype_of<uint8_t>() {
  return DType::UInt8;
}
template <>
constexpr DType dtype_of<int8_t>() {
  return DType::Int8;
}
template <>
constexpr DType dtype_of<int32_t>() {
  return DType::Int32;
}
template <>
constexpr DType dtype_of<int64_t>() {
  return DType::Int64;
}
template <>
constexpr DType dtype_of<float16>() {
  return DType::Float16;
}
template <>
constexpr DType dtype_of<bfloat16>() {
  return DType::BFloat16;
}
template <>
constexpr DType dtype_of<float>() {
  return DType::Float32;
}
template <>
constexpr DType dtype_of<double>() {
  return DType::Float64;
}

// Calls fn(T{}) with T the C++ type of `t`.
template <typename Fn>
decltype(auto) visit_dtype(DType t, Fn&& fn) {
  switch (t) {
    case DType::Bool:
      return fn(bool{});
    case DType::UInt8:
      return fn(uint8_t{});
    case DType::Int8:
      return fn(int8_t{});
    case DType::Int32:
      return fn(int32_t{});
    case DType::Int64:
      return fn(int64_t{});
    case DType::Float16:
      return fn(float16{});
    case DType::BFloat16:
      return fn(bfloat16{});
    case DType::Float32:
      return fn(float{});
    case DType::Float64:
      return fn(double{});
  }
  fail("dtype", "unknown dtype code ", static_cast<int>(t));
}

}  // namespace tessera
