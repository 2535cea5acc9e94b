// A number given by the user (fill values, clamp bounds): exact for int64 and double.
#pragma once
#include <cstdint>
#include <type_traits>

#include "tessera/core/dtype.h"

namespace tessera {

class Scalar {
 public:
  Scalar() = default;
  template <typename T, std::enable_if_t<std::is_integral_v<T>, int> = 0>
  Scalar(T v)
      : is_int_(!std::is_same_v<T, bool>),
        is_bool_(std::is_same_v<T, bool>),
        i_(v),
        d_(static_cast<double>(v)) {}
  template <typename T, std::enable_if_t<std::is_floating_point_v<T>, int> = 0>
  Scalar(T v) : d_(static_cast<double>(v)) {}

  bool is_int() const { return is_int_; }
  bool is_bool() const { return is_bool_; }
  double to_double() const { return d_; }
  int64_t to_int() const { return is_int_ || is_bool_ ? i_ : static_cast<int64_t>(d_); }
  // The dtype a tensor made from this scalar alone would have (PyTorch's defaults).
  DType default_dtype() const {
    return is_bool_ ? DType::Bool : is_int_ ? DType::Int64 : DType::Float32;
  }
  template <typename T>
  T to() const {
    if constexpr (std::is_same_v<T, bool>) {
      return is_int_ || is_bool_ ? i_ != 0 : d_ != 0.0;
    } else if constexpr (std::is_integral_v<T>) {
      return static_cast<T>(to_int());
    } else {
      return static_cast<T>(d_);
    }
  }

 private:
  bool is_int_ = false;
  bool is_bool_ = false;
  int64_t i_ = 0;
  double d_ = 0.0;
};

}  // namespace tessera
