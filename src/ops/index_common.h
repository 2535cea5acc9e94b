// Shared by the indexing op files (gather_scatter.cc, sort.cc, masking.cc): walking
// the rows of a tensor along one axis, reading and validating int32/int64 index
// tensors, and the backward op of gather (a scatter-add into zeros).
#pragma once
#include <algorithm>
#include <array>
#include <cstdint>
#include <string>

#include "../kernels/cpu/loops.h"
#include "tessera/core/parallel.h"
#include "tessera/core/tensor.h"

namespace tessera::index_detail {

// The rows of `shape` along `axis`: one row per combination of the other coordinates,
// seen through N sets of element strides (one per operand). A 0-d shape is one row of
// length 1.
template <int N>
struct AxisRows {
  int nd = 0;  // number of dimensions other than axis
  int64_t sizes[kMaxDims] = {};
  int64_t strides[N][kMaxDims] = {};
  std::array<int64_t, N> axis_strides{};
  int64_t length = 1;  // size along axis
  int64_t count = 1;   // number of rows
};

template <int N>
AxisRows<N> make_axis_rows(const Shape& shape, int64_t axis, const std::array<Dims, N>& strides) {
  AxisRows<N> r;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (static_cast<int64_t>(d) == axis) {
      r.length = shape[d];
      for (int k = 0; k < N; ++k) r.axis_strides[k] = strides[k][d];
      continue;
    }
    r.sizes[r.nd] = shape[d];
    for (int k = 0; k < N; ++k) r.strides[k][r.nd] = strides[k][d];
    r.count *= shape[d];
    ++r.nd;
  }
  return r;
}

// Calls fn(offsets, row) for rows [lo, hi), where offsets[k] is operand k's element offset of
// the row's first element. Rows come in row-major order of the other coordinates.
template <int N, typename F>
void walk_rows(const AxisRows<N>& r, int64_t lo, int64_t hi, F&& fn) {
  if (lo >= hi) return;
  int64_t idx[kMaxDims] = {};
  std::array<int64_t, N> off{};
  int64_t rem = lo;
  for (int d = r.nd - 1; d >= 0; --d) {
    idx[d] = rem % r.sizes[d];
    rem /= r.sizes[d];
    for (int k = 0; k < N; ++k) off[k] += idx[d] * r.strides[k][d];
  }
  for (int64_t row = lo; row < hi; ++row) {
    fn(static_cast<const std::array<int64_t, N>&>(off), row);
    for (int d = r.nd - 1; d >= 0; --d) {
      for (int k = 0; k < N; ++k) off[k] += r.strides[k][d];
      if (++idx[d] < r.sizes[d]) break;
      for (int k = 0; k < N; ++k) off[k] -= r.strides[k][d] * r.sizes[d];
      idx[d] = 0;
    }
  }
}

// Chunk size (in rows) so that each thread gets about kParallelGrain elements of work.
template <int N>
int64_t row_grain(const AxisRows<N>& r) {
  return std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(r.length, 1));
}

// walk_rows over all rows, split across threads when large. Rows must write disjoint outputs.
template <int N, typename F>
void parallel_rows(const AxisRows<N>& r, F&& fn) {
  parallel_for(0, r.count, row_grain(r),
               [&](int64_t lo, int64_t hi) { walk_rows<N>(r, lo, hi, fn); });
}

inline bool is_index_dtype(DType t) { return t == DType::Int32 || t == DType::Int64; }

inline void check_index_dtype(const Tensor& index, const char* op, const char* what = "index") {
  check(is_index_dtype(index.dtype()), op, what, " must be an int32 or int64 tensor, got ",
        dtype_name(index.dtype()));
}

// Calls fn(int32_t{}) or fn(int64_t{}) for an index dtype.
template <typename F>
decltype(auto) visit_index(DType t, F&& fn) {
  if (t == DType::Int32) return fn(int32_t{});
  return fn(int64_t{});
}

// Calls fn(value) for every element of an int32/int64 tensor, in row-major order.
template <typename F>
void for_each_index(const Tensor& index, F&& fn) {
  if (index.numel() == 0) return;
  cpu::Geometry<1> g = cpu::make_geometry<1>(index.shape(), {index.strides()});
  visit_index(index.dtype(), [&](auto tag) {
    using I = decltype(tag);
    cpu::for_each_run<1>(
        g, {static_cast<char*>(index.data_ptr())}, {static_cast<int64_t>(sizeof(I))}, 0, g.numel,
        [&](std::array<char*, 1> p, int64_t n, const std::array<int64_t, 1>& st) {
          for (int64_t i = 0; i < n; ++i) {
            fn(static_cast<int64_t>(*reinterpret_cast<const I*>(p[0] + i * st[0])));
          }
        });
  });
}

// The valid range of an index into an axis of `size`, for error messages.
inline std::string index_range_text(int64_t size, bool allow_negative) {
  if (size == 0) return "the axis is empty";
  return "expected " + std::to_string(allow_negative ? -size : 0) + " to " +
         std::to_string(size - 1);
}

// Checks that every index lies in [0, size), or [-size, size) when negatives count from the
// end. Throws naming the op, the offending value, the axis and its size. Returns whether any
// index is negative.
inline bool check_index_range(const Tensor& index, int64_t size, int64_t axis, const char* op,
                              bool allow_negative) {
  bool negative = false;
  int64_t lo = allow_negative ? -size : 0;
  for_each_index(index, [&](int64_t v) {
    if (v < lo || v >= size) {
      fail(op, "index ", v, " is out of range for axis ", axis, " of size ", size, " (",
           index_range_text(size, allow_negative), ")");
    }
    negative = negative || v < 0;
  });
  return negative;
}

// Zeros of `input_shape` with `grad` added at the positions gather(x, axis, index) read:
// the gradient of gather (and of sort/topk values). Differentiable: its gradient is gather.
Tensor gather_backward(const Tensor& grad, int64_t axis, const Tensor& index,
                       const Shape& input_shape);

}  // namespace tessera::index_detail
