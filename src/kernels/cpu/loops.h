// Strided N-operand iteration: operands share one (broadcast) shape, each with its own
// element strides (0 along broadcast dims). Dims are coalesced so contiguous tensors
// become one flat run; the callback sees runs of the innermost dimension.
#pragma once
#include <array>
#include <cstdint>

#include "tessera/core/parallel.h"
#include "tessera/core/tensor.h"

namespace tessera::cpu {

template <int N>
struct Geometry {
  int ndim = 0;
  int64_t shape[kMaxDims] = {};
  int64_t strides[N][kMaxDims] = {};
  int64_t numel = 1;
};

// Strides of `t` seen through the broadcast `shape` (0 along broadcast dims).
inline Dims broadcast_strides(const Tensor& t, const Shape& shape) {
  Dims out(shape.size(), 0);
  size_t lead = shape.size() - t.shape().size();
  for (size_t i = 0; i < t.shape().size(); ++i) {
    out[lead + i] = t.shape()[i] == 1 ? 0 : t.strides()[i];
  }
  return out;
}

template <int N>
Geometry<N> make_geometry(const Shape& shape, const std::array<Dims, N>& strides) {
  Geometry<N> g;
  // Drop size-1 dims, then merge neighbours that are contiguous for every operand.
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 1) continue;
    if (g.ndim > 0) {
      bool mergeable = true;
      for (int k = 0; k < N; ++k) {
        if (strides[k][d] * shape[d] != g.strides[k][g.ndim - 1]) mergeable = false;
      }
      if (mergeable) {
        g.shape[g.ndim - 1] *= shape[d];
        for (int k = 0; k < N; ++k) g.strides[k][g.ndim - 1] = strides[k][d];
        continue;
      }
    }
    g.shape[g.ndim] = shape[d];
    for (int k = 0; k < N; ++k) g.strides[k][g.ndim] = strides[k][d];
    ++g.ndim;
  }
  if (g.ndim == 0) {  // a scalar: one run of length 1
    g.ndim = 1;
    g.shape[0] = 1;
  }
  g.numel = shape_numel(shape);
  return g;
}

// Calls fn(ptrs, n, inner_strides) for each innermost run within linear range [begin, end).
template <int N, typename F>
void for_each_run(const Geometry<N>& g, std::array<char*, N> base,
                  const std::array<int64_t, N>& elem_size, int64_t begin, int64_t end, F&& fn) {
  const int nd = g.ndim;
  const int64_t inner = g.shape[nd - 1];
  int64_t idx[kMaxDims] = {};
  int64_t rem = begin / inner;
  for (int d = nd - 2; d >= 0; --d) {
    idx[d] = rem % g.shape[d];
    rem /= g.shape[d];
  }
  int64_t pos = begin;
  int64_t inner_start = begin % inner;
  std::array<int64_t, N> inner_strides;
  for (int k = 0; k < N; ++k) inner_strides[k] = g.strides[k][nd - 1] * elem_size[k];
  while (pos < end) {
    std::array<char*, N> ptrs;
    for (int k = 0; k < N; ++k) {
      int64_t off = inner_start * g.strides[k][nd - 1];
      for (int d = 0; d < nd - 1; ++d) off += idx[d] * g.strides[k][d];
      ptrs[k] = base[k] + off * elem_size[k];
    }
    int64_t n = std::min(inner - inner_start, end - pos);
    fn(ptrs, n, inner_strides);
    pos += n;
    inner_start = 0;
    for (int d = nd - 2; d >= 0; --d) {
      if (++idx[d] < g.shape[d]) break;
      idx[d] = 0;
    }
  }
}

// Runs for_each_run over the whole geometry, split across threads when large.
template <int N, typename F>
void parallel_runs(const Geometry<N>& g, std::array<char*, N> base,
                   const std::array<int64_t, N>& elem_size, F&& fn) {
  parallel_for(0, g.numel, kParallelGrain,
               [&](int64_t lo, int64_t hi) { for_each_run<N>(g, base, elem_size, lo, hi, fn); });
}

}  // namespace tessera::cpu
