// ONNX's window functions (HannWindow, HammingWindow, BlackmanWindow): constants of a size
// known at import time.
#include <cmath>
#include <numbers>

#include "converter.h"
#include "tensor_proto.h"
#include "tessera/ops/creation.h"
#include "tessera/ops/elementwise.h"

namespace tessera::onnx {
namespace {

// sum_k a_k cos(2 pi k n / N), N = size (periodic) or size - 1 (symmetric).
TensorList cosine_window(const NodeContext& c, std::vector<double> coefficients) {
  auto size = static_cast<int64_t>(c.scalar(0));
  c.require(size >= 0 && size <= (int64_t{1} << 30), "window size ", size, " is out of range");
  bool periodic = c.attr_i("periodic", 1) != 0;
  double n_total = periodic ? double(size) : double(size - 1);
  std::vector<double> values(static_cast<size_t>(size));
  for (int64_t n = 0; n < size; ++n) {
    double v = 0;
    for (size_t k = 0; k < coefficients.size(); ++k) {
      v += coefficients[k] * std::cos(2 * std::numbers::pi * double(k) * double(n) / n_total);
    }
    values[static_cast<size_t>(n)] = v;
  }
  DType dtype = dtype_from_onnx(static_cast<int>(c.attr_i("output_datatype", 1)), c.where());
  return {cast(from_vector<double>(values, {size}), dtype)};
}

TensorList hann_op(const NodeContext& c) { return cosine_window(c, {0.5, -0.5}); }
TensorList hamming_op(const NodeContext& c) {
  return cosine_window(c, {25.0 / 46.0, -21.0 / 46.0});
}
TensorList blackman_op(const NodeContext& c) { return cosine_window(c, {0.42, -0.5, 0.08}); }

}  // namespace

void add_signal_ops(OpTable& t) {
  t["HannWindow"] = {hann_op};
  t["HammingWindow"] = {hamming_op};
  t["BlackmanWindow"] = {blackman_op};
}

}  // namespace tessera::onnx
