#include "tessera/core/dtype.h"

namespace tessera {

size_t dtype_size(DType t) {
  return visit_dtype(t, [](auto v) { return sizeof(v); });
}

const char* dtype_name(DType t) {
  static const char* names[kNumDTypes] = {"bool",    "uint8",    "int8",    "int32",  "int64",
                                          "float16", "bfloat16", "float32", "float64"};
  return names[static_cast<int>(t)];
}

DType promote_types(DType a, DType b) {
  if (a == b) return a;
  if (a > b) std::swap(a, b);  // now a < b in the enum order
  if (a == DType::UInt8 && b == DType::Int8) return DType::Int32;
  if (a == DType::Float16 && b == DType::BFloat16) return DType::Float32;
  return b;
}

}  // namespace tessera
