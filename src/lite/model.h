// The checked form of a lite model, shared by the loader, the interpreter and the kernels:
// descriptors that point into the flatbuffer (nothing is copied). Everything the kernels
// may rely on is checked in check_model(): indices, sizes, dtypes and quantization; each
// operator's shapes are checked by its kernel's prepare().
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "lite_model_generated.h"
#include "tessera/lite/lite.h"

namespace tessera::lite {

// The most dimensions a lite tensor may have.
inline constexpr int kMaxRank = 6;

struct TensorDesc {
  std::string_view name;
  DType dtype = DType::float32;
  std::vector<int32_t> shape;
  int64_t numel = 1;
  size_t bytes = 0;
  const uint8_t* constant = nullptr;  // a constant's bytes in the model; null for activations
  // Quantization: per tensor (one scale) or per channel along quant_axis.
  std::vector<float> scales;
  std::vector<int64_t> zero_points;
  int quant_axis = -1;
  int rank() const { return static_cast<int>(shape.size()); }
  int32_t dim(int axis) const {
    return shape[static_cast<size_t>(axis < 0 ? axis + rank() : axis)];
  }
};

struct OpDesc {
  schema::OpCode code = schema::OpCode_Conv2D;
  const schema::Operator* op = nullptr;
  std::vector<int> inputs, outputs;  // tensor indices; -1 for an absent optional input
};

struct ModelData {
  std::vector<uint8_t> owned;     // unused when mapped or borrowed
  const void* mapping = nullptr;  // mmap of the file, unmapped by ~ModelData
  size_t mapping_size = 0;
  const schema::Model* model = nullptr;
  std::vector<TensorDesc> tensors;
  std::vector<OpDesc> ops;
  std::vector<int> inputs, outputs;
  ~ModelData();
};

// Checks the flatbuffer at `bytes` and fills `out`; an error names what is wrong.
Result check_model(const uint8_t* bytes, size_t size, ModelData& out);

// A Result with a message built from parts: invalid("tensor ", 3, " has ...").
Result make_result(Status status, std::string message);

}  // namespace tessera::lite
