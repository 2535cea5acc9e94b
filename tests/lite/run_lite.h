// Runs a lite model from a test: the outputs as float32 tensors of the lite output shapes.
// Shared by the converter's tests and the registry walk (needs tessera_lite and GoogleTest).
#pragma once
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "tessera/lite/lite.h"
#include "tessera/tessera.h"

namespace tessera::testing {

// Float inputs go in as float32; integer inputs (indices) keep their dtype. Failures are
// test failures naming `what`, and give no outputs.
inline TensorList run_lite(const std::vector<uint8_t>& bytes, const TensorList& inputs,
                           const std::string& what = "") {
  std::unique_ptr<lite::Model> model;
  lite::Result r = lite::Model::from_buffer(bytes.data(), bytes.size(), model);
  EXPECT_TRUE(r.ok()) << what << ": " << r.message;
  if (!r.ok()) return {};
  lite::Interpreter interpreter(*model);
  r = interpreter.allocate();
  EXPECT_TRUE(r.ok()) << what << ": " << r.message;
  if (!r.ok()) return {};
  for (size_t i = 0; i < inputs.size(); ++i) {
    Tensor x = is_floating(inputs[i].dtype()) ? inputs[i].to(DType::Float32).contiguous()
                                              : inputs[i].contiguous();
    r = interpreter.set_input(i, x.data_ptr(), static_cast<size_t>(x.numel()) * x.element_size());
    EXPECT_TRUE(r.ok()) << what << ": " << r.message;
  }
  r = interpreter.invoke();
  EXPECT_TRUE(r.ok()) << what << ": " << r.message;
  TensorList out;
  for (size_t i = 0; i < interpreter.num_outputs(); ++i) {
    lite::TensorInfo info = interpreter.output(i);
    Shape shape;
    for (int32_t d : info.shape) shape.push_back(d);
    const auto* data = static_cast<const float*>(interpreter.output_data(i));
    std::vector<float> values(data, data + info.bytes / 4);
    const auto n = static_cast<int64_t>(values.size());
    out.push_back(from_vector(values, {n}).reshape(shape));  // rank 0 too
  }
  return out;
}

}  // namespace tessera::testing
