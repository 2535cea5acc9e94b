// NumPy .npy files: the tensors `tessera run` reads and writes. Little-endian bool, int8,
// uint8, int32, int64, float16, float32 and float64, C or Fortran order. Malformed files
// give a tessera::Error saying what is wrong, never a read out of bounds.
#pragma once
#include <cstdint>
#include <span>
#include <string>

#include "tessera/core/tensor.h"

namespace tessera::io {

Tensor read_npy(const std::string& path);
Tensor parse_npy(std::span<const uint8_t> bytes);
// Written atomically (temp file, fsync, rename). bfloat16 has no NumPy dtype: an error.
void write_npy(const std::string& path, const Tensor& t);
std::string npy_bytes(const Tensor& t);

}  // namespace tessera::io
