// Sorting: sort and topk are primitives returning values and int64 indices; the
// gradient of the values is gather_backward (a scatter-add into zeros by the indices),
// whose own gradient is gather. argsort and unique are composites. Each row along the
// axis is sorted on its own, rows in parallel.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "index_common.h"
#include "samples.h"
#include "tessera/ops/creation.h"
#include "tessera/ops/elementwise.h"
#include "tessera/ops/index.h"
#include "tessera/ops/op.h"
#include "tessera/ops/reduce.h"
#include "tessera/ops/shape.h"

namespace tessera {
namespace index_detail {
namespace {

template <typename C>
bool is_nan(C v) {
  if constexpr (std::is_floating_point_v<C>) {
    return std::isnan(v);
  } else {
    return false;
  }
}

// Ascending order with NaN after every number.
template <typename C>
bool ascending(C a, C b) {
  return !is_nan(a) && (is_nan(b) || a < b);
}

// Calls fn(values, perm, off, rows) for every row along `axis` of x: values holds the row
// (in compute type), perm is 0..n-1 ready to be reordered, off are the offsets of the row
// in x and in the two outputs (whose strides are given), rows is the walk's geometry.
template <typename T, typename F>
void for_each_sort_row(const Tensor& x, int64_t axis, const Dims& values_strides,
                       const Dims& index_strides, F&& fn) {
  using C = typename ComputeType<T>::type;
  AxisRows<3> r = make_axis_rows<3>(x.shape(), axis, {x.strides(), values_strides, index_strides});
  const T* px = static_cast<const T*>(x.data_ptr());
  parallel_for(0, r.count, std::max<int64_t>(1, row_grain(r) / 8), [&](int64_t lo, int64_t hi) {
    std::vector<C> values(r.length);
    std::vector<int64_t> perm(r.length);
    walk_rows<3>(r, lo, hi, [&](const std::array<int64_t, 3>& off, int64_t) {
      for (int64_t i = 0; i < r.length; ++i) {
        values[i] = static_cast<C>(px[off[0] + i * r.axis_strides[0]]);
      }
      std::iota(perm.begin(), perm.end(), int64_t{0});
      fn(values, perm, off, r);
    });
  });
}

// Writes the first k entries of perm: values[j] = x[perm[j]], indices[j] = perm[j].
template <typename T>
void write_row(const T* px, T* pv, int64_t* pi, const std::vector<int64_t>& perm, int64_t k,
               const std::array<int64_t, 3>& off, const AxisRows<3>& r) {
  const auto& s = r.axis_strides;
  for (int64_t j = 0; j < k; ++j) {
    pv[off[1] + j * s[1]] = px[off[0] + perm[j] * s[0]];
    pi[off[2] + j * s[2]] = perm[j];
  }
}

// ------------------------------------------------------------------ sort

MetaList infer_sort(const OpCall& c) {
  normalize_axis(c.attrs.i("axis"), c.in(0).dim(), "sort");
  return {{c.in(0).shape(), c.in(0).dtype()}, {c.in(0).shape(), DType::Int64}};
}

void cpu_sort(const OpCall& c, std::span<Tensor> outs) {
  const Tensor& x = c.in(0);
  if (x.numel() == 0) return;
  int64_t axis = normalize_axis(c.attrs.i("axis"), x.dim(), "sort");
  bool descending = c.attrs.b("descending"), stable = c.attrs.b("stable");
  visit_dtype(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    T* pv = static_cast<T*>(outs[0].data_ptr());
    int64_t* pi = outs[1].data<int64_t>();
    const T* px = static_cast<const T*>(x.data_ptr());
    for_each_sort_row<T>(
        x, axis, outs[0].strides(), outs[1].strides(),
        [&](const auto& values, std::vector<int64_t>& perm, const auto& off, const AxisRows<3>& r) {
          auto less = [&](int64_t a, int64_t b) {
            return descending ? ascending(values[b], values[a]) : ascending(values[a], values[b]);
          };
          if (stable) {
            std::stable_sort(perm.begin(), perm.end(), less);
          } else {
            std::sort(perm.begin(), perm.end(), less);
          }
          write_row(px, pv, pi, perm, r.length, off, r);
        });
  });
}

// The values' gradient goes back to the positions they came from.
TensorList grad_sorted_values(const GradCall& g) {
  if (!g.needs(0)) return {Tensor()};
  int64_t axis = normalize_axis(g.attrs.i("axis"), g.in_shape(0).size(), "sort");
  return {gather_backward(g.gout(0), axis, g.out(1), g.in_shape(0))};
}

// Stable sorts (ties keep their order, so integer inputs with repeats are determined),
// ascending and descending, along the last and a leading axis, of size 1 and empty.
std::vector<OpSample> sort_samples() {
  auto attrs = [](int64_t axis, bool descending) {
    return Attrs{{"axis", axis}, {"descending", descending}, {"stable", true}};
  };
  return {{{samples::values({2, 37}, -2, 2, 1)}, attrs(-1, false)},
          {{samples::values({4, 3, 5}, -2, 2, 2)}, attrs(0, true)},
          {{samples::values({3, 1}, -2, 2, 3)}, attrs(1, false)},
          {{samples::values({0, 4}, -2, 2, 4)}, attrs(1, true)}};
}

constexpr OpDef kSort = [] {
  OpDef def{"sort", infer_sort, cpu_sort, nullptr, grad_sorted_values, kSaveOutputs};
  def.samples = sort_samples;
  return def;
}();

// ------------------------------------------------------------------ topk

MetaList infer_topk(const OpCall& c) {
  const Tensor& x = c.in(0);
  int64_t axis = normalize_axis(c.attrs.i("axis"), x.dim(), "topk");
  int64_t k = c.attrs.i("k");
  int64_t n = x.dim() == 0 ? 1 : x.shape()[axis];
  check(k >= 0 && k <= n, "topk", "k = ", k, " is out of range for axis ", axis, " of size ", n,
        " (expected 0 to ", n, ")");
  check(x.dim() > 0 || k == 1, "topk", "k must be 1 for a 0-d tensor, got ", k);
  Shape shape = x.shape();
  if (x.dim() > 0) shape[axis] = k;
  return {{shape, x.dtype()}, {shape, DType::Int64}};
}

void cpu_topk(const OpCall& c, std::span<Tensor> outs) {
  const Tensor& x = c.in(0);
  if (outs[0].numel() == 0) return;
  int64_t axis = normalize_axis(c.attrs.i("axis"), x.dim(), "topk");
  int64_t k = c.attrs.i("k");
  bool largest = c.attrs.b("largest"), sorted = c.attrs.b("sorted");
  visit_dtype(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    T* pv = static_cast<T*>(outs[0].data_ptr());
    int64_t* pi = outs[1].data<int64_t>();
    const T* px = static_cast<const T*>(x.data_ptr());
    for_each_sort_row<T>(
        x, axis, outs[0].strides(), outs[1].strides(),
        [&](const auto& values, std::vector<int64_t>& perm, const auto& off, const AxisRows<3>& r) {
          // A strict total order: by value (NaN largest), then by position.
          auto before = [&](int64_t a, int64_t b) {
            bool ab = largest ? ascending(values[b], values[a]) : ascending(values[a], values[b]);
            bool ba = largest ? ascending(values[a], values[b]) : ascending(values[b], values[a]);
            return ab || (!ba && a < b);
          };
          std::partial_sort(perm.begin(), perm.begin() + k, perm.end(), before);
          if (!sorted) std::sort(perm.begin(), perm.begin() + k);
          write_row(px, pv, pi, perm, k, off, r);
        });
  });
}

TensorList grad_topk(const GradCall& g) {
  if (!g.needs(0)) return {Tensor()};
  int64_t axis = normalize_axis(g.attrs.i("axis"), g.in_shape(0).size(), "topk");
  return {gather_backward(g.gout(0), axis, g.out(1), g.in_shape(0))};
}

constexpr OpDef kTopk{"topk", infer_topk, cpu_topk, nullptr, grad_topk, kSaveOutputs};

const OpRegistrar r1(kSort), r2(kTopk);

}  // namespace
}  // namespace index_detail

using namespace index_detail;

ValuesIndices sort(const Tensor& x, int64_t axis, bool descending, bool stable) {
  TensorList out =
      run_op(kSort, {x}, {{"axis", axis}, {"descending", descending}, {"stable", stable}});
  return {out[0], out[1]};
}

Tensor argsort(const Tensor& x, int64_t axis, bool descending, bool stable) {
  return sort(x.detach(), axis, descending, stable).indices;
}

ValuesIndices topk(const Tensor& x, int64_t k, int64_t axis, bool largest, bool sorted) {
  TensorList out =
      run_op(kTopk, {x}, {{"k", k}, {"axis", axis}, {"largest", largest}, {"sorted", sorted}});
  return {out[0], out[1]};
}

UniqueResult unique(const Tensor& x, bool sorted, bool return_inverse, bool return_counts) {
  check_defined(x, "unique", "x");
  Tensor flat = reshape(x.detach(), {-1});
  int64_t n = flat.numel();
  UniqueResult r;
  if (n == 0) {
    r.values = zeros({0}, x.dtype());
    if (return_inverse) r.inverse = zeros(x.shape(), DType::Int64);
    if (return_counts) r.counts = zeros({0}, DType::Int64);
    return r;
  }
  // Sort (stably, so each run of equal values starts at its first occurrence), then mark
  // where each run starts.
  ValuesIndices s = sort(flat, 0, false, true);
  Tensor starts_mask =
      concat({ones({1}, DType::Bool), ne(slice(s.values, 0, 1, n), slice(s.values, 0, 0, n - 1))});
  Tensor values = masked_select(s.values, starts_mask);
  int64_t k = values.numel();
  Tensor starts, counts, inverse;
  if (return_counts || !sorted) starts = reshape(nonzero(starts_mask), {-1});
  if (return_counts) {
    counts = sub(concat({slice(starts, 0, 1, k), full({1}, n, DType::Int64)}), starts);
  }
  if (return_inverse) {
    // Run number of each sorted position, sent back to the original positions.
    Tensor run = sub(cumsum(starts_mask, 0), scalar_tensor(1, DType::Int64));
    inverse = scatter(zeros({n}, DType::Int64), 0, s.indices, run);
  }
  if (!sorted) {
    // Reorder the runs by their first original position.
    Tensor order = argsort(index_select(s.indices, 0, starts), 0);
    values = index_select(values, 0, order);
    if (return_counts) counts = index_select(counts, 0, order);
    if (return_inverse) {
      Tensor rank = scatter(zeros({k}, DType::Int64), 0, order, arange(k));
      inverse = index_select(rank, 0, inverse);
    }
  }
  r.values = values;
  if (return_inverse) r.inverse = reshape(inverse, x.shape());
  if (return_counts) r.counts = counts;
  return r;
}

}  // namespace tessera
