// ONNX TensorProto <-> Tensor, and reading protobuf files with size limits.
#pragma once
#include <onnx/onnx_pb.h>

#include <string>

#include "tessera/core/tensor.h"

namespace tessera::onnx {

// Tessera's dtype for an ONNX TensorProto.DataType; throws UnsupportedError for those it
// lacks (strings, int16, uint16, uint32, uint64, complex).
DType dtype_from_onnx(int onnx_type, const std::string& where);
int dtype_to_onnx(DType dtype);

// A TensorProto's data as a tensor (a copy). `base_dir` is where external data files are
// looked up; they must lie inside it. Sizes are checked against the declared dims, and
// external data against `*external_budget` (what the model may still read), which it
// lowers; null: no total.
Tensor tensor_from_proto(const ::onnx::TensorProto& proto, const std::string& base_dir,
                         int64_t max_bytes, int64_t* external_budget = nullptr);

// Reads a whole file, refusing files over max_bytes.
std::string read_file_bytes(const std::string& path, int64_t max_bytes);

}  // namespace tessera::onnx
