// A small fixed-capacity vector of int64 for shapes and strides: tensors are made
// per op, so their metadata must not touch the heap.
#pragma once
#include <algorithm>
#include <cstdint>
#include <initializer_list>
#include <ostream>
#include <string>
#include <vector>

#include "tessera/core/error.h"

namespace tessera {

inline constexpr int kMaxDims = 12;

class Dims {
 public:
  Dims() = default;
  Dims(std::initializer_list<int64_t> values) { assign(values.begin(), values.end()); }
  explicit Dims(const std::vector<int64_t>& values) { assign(values.begin(), values.end()); }
  Dims(size_t count, int64_t value) {
    resize(count);
    std::fill(begin(), end(), value);
  }
  template <typename It>
  Dims(It first, It last) {
    assign(first, last);
  }

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  int64_t& operator[](size_t i) { return data_[i]; }
  int64_t operator[](size_t i) const { return data_[i]; }
  int64_t* begin() { return data_; }
  int64_t* end() { return data_ + size_; }
  const int64_t* begin() const { return data_; }
  const int64_t* end() const { return data_ + size_; }
  const int64_t* data() const { return data_; }
  int64_t back() const { return data_[size_ - 1]; }
  int64_t front() const { return data_[0]; }

  void resize(size_t n, int64_t fill_value = 0) {
    check(n <= kMaxDims, "", "tensors have at most ", kMaxDims, " dimensions, got ", n);
    for (size_t i = size_; i < n; ++i) data_[i] = fill_value;
    size_ = static_cast<uint8_t>(n);
  }
  void push_back(int64_t v) {
    resize(size_ + 1);
    data_[size_ - 1] = v;
  }
  void insert(size_t pos, int64_t v) {
    resize(size_ + 1);
    for (size_t i = size_ - 1; i > pos; --i) data_[i] = data_[i - 1];
    data_[pos] = v;
  }
  void erase(size_t pos) {
    for (size_t i = pos; i + 1 < size_; ++i) data_[i] = data_[i + 1];
    --size_;
  }
  std::vector<int64_t> vec() const { return std::vector<int64_t>(begin(), end()); }

  friend bool operator==(const Dims& a, const Dims& b) {
    return std::equal(a.begin(), a.end(), b.begin(), b.end());
  }

 private:
  template <typename It>
  void assign(It first, It last) {
    resize(static_cast<size_t>(std::distance(first, last)));
    std::copy(first, last, data_);
  }
  int64_t data_[kMaxDims] = {};
  uint8_t size_ = 0;
};

using Shape = Dims;

// Number of elements of a shape (1 for a scalar).
inline int64_t shape_numel(const Dims& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string to_string(const Dims& dims);
inline std::ostream& operator<<(std::ostream& os, const Dims& dims) {
  return os << to_string(dims);
}

// Row-major strides for a shape.
Dims contiguous_strides(const Dims& shape);

// Broadcasts two shapes NumPy-style; throws naming `op` when they do not broadcast.
Dims broadcast_shapes(const Dims& a, const Dims& b, const char* op);

// Wraps a possibly negative axis into [0, ndim); throws naming `op` when out of range.
int64_t normalize_axis(int64_t axis, int64_t ndim, const char* op);

}  // namespace tessera
