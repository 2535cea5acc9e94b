// NumPy-like printing: nested brackets, aligned columns, "..." for large tensors.
#include <cmath>
#include <cstdio>
#include <sstream>

#include "tessera/core/tensor.h"

namespace tessera {

static PrintOptions g_print_options;
void set_print_options(const PrintOptions& options) { g_print_options = options; }
const PrintOptions& print_options() { return g_print_options; }

namespace {

std::string format_value(double v, DType dtype, int precision) {
  char buf[64];
  if (dtype == DType::Bool) return v != 0 ? "True" : "False";
  if (!is_floating(dtype)) {
    std::snprintf(buf, sizeof(buf), "%lld", static_cast<long long>(v));
  } else if (std::isnan(v)) {
    return "nan";
  } else if (std::isinf(v)) {
    return v > 0 ? "inf" : "-inf";
  } else if (v != 0 && (std::fabs(v) >= 1e8 || std::fabs(v) < 1e-4)) {
    std::snprintf(buf, sizeof(buf), "%.*e", precision, v);
  } else {
    std::snprintf(buf, sizeof(buf), "%.*f", precision, v);
  }
  return buf;
}

struct Printer {
  const std::vector<double>& values;
  const Shape& shape;
  DType dtype;
  bool summarize;
  int width = 0;
  std::ostringstream out;

  // Indices shown along a dimension of size n (-1 marks the "..." gap).
  std::vector<int64_t> shown(int64_t n) const {
    std::vector<int64_t> idx;
    int64_t edge = print_options().edgeitems;
    if (!summarize || n <= 2 * edge) {
      for (int64_t i = 0; i < n; ++i) idx.push_back(i);
    } else {
      for (int64_t i = 0; i < edge; ++i) idx.push_back(i);
      idx.push_back(-1);
      for (int64_t i = n - edge; i < n; ++i) idx.push_back(i);
    }
    return idx;
  }

  void print(size_t dim, int64_t flat, int64_t stride, int indent) {
    if (dim == shape.size()) {
      std::string s = format_value(values[flat], dtype, print_options().precision);
      out << std::string(width - s.size(), ' ') << s;
      return;
    }
    out << "[";
    int64_t inner = stride / std::max<int64_t>(shape[dim], 1);
    std::vector<int64_t> idx = shown(shape[dim]);
    for (size_t k = 0; k < idx.size(); ++k) {
      if (k > 0) {
        out << ",";
        if (dim + 1 == shape.size()) {
          out << " ";
        } else {
          out << std::string(shape.size() - dim - 1, '\n') << std::string(indent + 1, ' ');
        }
      }
      if (idx[k] < 0) {
        out << "...";
        continue;
      }
      print(dim + 1, flat + idx[k] * inner, inner, indent + 1);
    }
    out << "]";
  }
};

}  // namespace

std::string Tensor::to_string() const {
  if (!defined()) return "tensor(undefined)";
  std::vector<double> values = to_vector<double>();
  bool summarize = numel() > print_options().threshold;
  Printer p{values, shape(), dtype(), summarize, 0, {}};
  for (double v : values) {
    p.width = std::max<int>(
        p.width, static_cast<int>(format_value(v, dtype(), print_options().precision).size()));
  }
  p.out << "tensor(";
  p.print(0, 0, numel(), 7);
  p.out << ", shape=" << shape() << ", dtype=" << dtype_name(dtype());
  if (requires_grad()) p.out << ", requires_grad=True";
  p.out << ")";
  return p.out.str();
}

std::ostream& operator<<(std::ostream& os, const Tensor& t) { return os << t.to_string(); }

}  // namespace tessera
