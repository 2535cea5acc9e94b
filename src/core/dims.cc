#include "tessera/core/dims.h"

#include "tessera/core/error.h"

namespace tessera {

std::string to_string(const Dims& dims) {
  std::string s = "[";
  for (size_t i = 0; i < dims.size(); ++i) {
    if (i) s += ",";
    s += std::to_string(dims[i]);
  }
  return s + "]";
}

Dims contiguous_strides(const Dims& shape) {
  Dims strides(shape.size(), 1);
  int64_t acc = 1;
  for (size_t i = shape.size(); i-- > 0;) {
    strides[i] = acc;
    // Every tensor's strides come from here, so this one check keeps numel() in range for
    // shapes read from files.
    if (__builtin_mul_overflow(acc, std::max<int64_t>(shape[i], 1), &acc)) {
      fail("", "shape ", shape, " has more elements than a tensor can index");
    }
  }
  return strides;
}

Dims broadcast_shapes(const Dims& a, const Dims& b, const char* op) {
  size_t n = std::max(a.size(), b.size());
  Dims out(n, 1);
  for (size_t i = 0; i < n; ++i) {
    int64_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
    int64_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
    if (da != db && da != 1 && db != 1) {
      fail(op, "shapes do not broadcast: ", a, " and ", b, " (dimension ", i, ": ", da, " vs ", db,
           ")");
    }
    out[i] = da == 1 ? db : da;
  }
  return out;
}

int64_t normalize_axis(int64_t axis, int64_t ndim, const char* op) {
  int64_t lo = -std::max<int64_t>(ndim, 1), hi = std::max<int64_t>(ndim, 1) - 1;
  if (axis < lo || axis > hi) {
    fail(op, "axis ", axis, " is out of range for a tensor of ", ndim, " dimensions (expected ", lo,
         " to ", hi, ")");
  }
  return axis < 0 ? axis + std::max<int64_t>(ndim, 1) : axis;
}

}  // namespace tessera
