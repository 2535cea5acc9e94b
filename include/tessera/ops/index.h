// Indexing ops: gather/scatter along an axis, index_select, take, take_along_axis,
// masks (masked_fill, masked_select, boolean_mask), one_hot, sort/argsort/topk,
// unique and nonzero. Semantics follow PyTorch unless noted.
//
// Index tensors are int32 or int64. An index outside its axis is an error naming the op,
// the index value, the axis and its size. Negative indices count from the end only in
// take (as in x[..., indices]); gather, scatter, scatter_add, index_select,
// take_along_axis and one_hot reject them, like PyTorch.
//
// Gradients flow to the data inputs (x, src, value), never to indices or masks. Results
// whose size depends on the data (masked_select, boolean_mask, nonzero, unique) are
// computed eagerly.
#pragma once
#include <cstdint>

#include "tessera/core/tensor.h"

namespace tessera {

// out[i][j][k] = x[index[i][j][k]][j][k] for axis 0 (likewise for other axes). index has
// x's rank and index.size(d) <= x.size(d) for d != axis; the result has index's shape.
Tensor gather(const Tensor& x, int64_t axis, const Tensor& index);

// A copy of x with out[index[i][j]][j] = src[i][j] for axis 0 (likewise for other axes).
// index has x's rank, index.size(d) <= src.size(d) for every d and index.size(d) <= x.size(d)
// for d != axis; only the leading index-shaped part of src is used. src has x's dtype.
// When several entries of one row hit the same position, the last one (in index order) wins.
// Gradients: x gets the output gradient with the written positions zeroed; src gets
// gather(grad, axis, index), also at entries later overwritten (as in PyTorch).
Tensor scatter(const Tensor& x, int64_t axis, const Tensor& index, const Tensor& src);

// Like scatter but adds: out = x; out[index[i][j]][j] += src[i][j] (for axis 0). Sums are
// taken in a fixed order, so results do not depend on the thread count.
Tensor scatter_add(const Tensor& x, int64_t axis, const Tensor& index, const Tensor& src);

// The slices of x at positions `index` (0-d or 1-d) along axis: the result has x's shape
// with that axis replaced by index.numel(). x must have at least one dimension.
Tensor index_select(const Tensor& x, int64_t axis, const Tensor& index);

// Integer-array indexing along one axis, NumPy's take(x, indices, axis) and PyTorch's
// x[:, ..., indices] at that axis: the result has shape
// x.shape[:axis] + indices.shape + x.shape[axis+1:]. Negative indices count from the end.
Tensor take(const Tensor& x, const Tensor& indices, int64_t axis);

// torch.take_along_dim / numpy.take_along_axis: indices has x's rank; x and indices are
// broadcast against each other in every dimension except axis, then gathered along axis.
// take_along_axis(x, argsort(x, axis), axis) equals sort(x, axis).values.
Tensor take_along_axis(const Tensor& x, const Tensor& indices, int64_t axis);

// x with `value` where the bool mask (broadcast to x's shape) is true. value is converted to
// x's dtype; the tensor form takes a 0-d value and passes it a gradient too.
Tensor masked_fill(const Tensor& x, const Tensor& mask, const Scalar& value);
Tensor masked_fill(const Tensor& x, const Tensor& mask, const Tensor& value);

// The elements of x where the bool mask is true, as a 1-d tensor in row-major order. x and
// mask broadcast against each other.
Tensor masked_select(const Tensor& x, const Tensor& mask);

// Boolean-mask indexing, PyTorch's x[mask]: mask is bool and its shape equals the leading
// mask.dim() dimensions of x; the result has shape [count of true] + x.shape[mask.dim():].
Tensor boolean_mask(const Tensor& x, const Tensor& mask);

// int64 tensor of shape indices.shape + [num_classes] with a 1 at each index.
// num_classes = -1 uses max(indices) + 1.
Tensor one_hot(const Tensor& indices, int64_t num_classes = -1);

// Values and int64 positions, as returned by sort and topk.
struct ValuesIndices {
  Tensor values;
  Tensor indices;
};

// Sorts along axis. NaN counts as larger than every number (last ascending, first
// descending). stable keeps equal elements in their original order; without it the order
// of equal elements is unspecified (but deterministic). A 0-d x is one element.
ValuesIndices sort(const Tensor& x, int64_t axis = -1, bool descending = false,
                   bool stable = false);
// The indices of sort(x, axis, descending, stable).
Tensor argsort(const Tensor& x, int64_t axis = -1, bool descending = false, bool stable = false);

// The k largest (or smallest) elements along axis, 0 <= k <= size of the axis. sorted
// gives them in order (largest first when largest); otherwise in order of position along
// the axis. Among equal values the lower position is taken first; NaN counts as largest.
ValuesIndices topk(const Tensor& x, int64_t k, int64_t axis = -1, bool largest = true,
                   bool sorted = true);

// Distinct elements of x (flattened), as torch.unique without dim.
struct UniqueResult {
  Tensor values;   // 1-d, x's dtype
  Tensor inverse;  // int64 of x's shape with x = values[inverse]; defined if return_inverse
  Tensor counts;   // int64, occurrences of each value; defined if return_counts
};
// sorted gives values in ascending order, otherwise in order of first occurrence. NaNs are
// all distinct (like PyTorch). Not differentiable.
UniqueResult unique(const Tensor& x, bool sorted = true, bool return_inverse = false,
                    bool return_counts = false);

// Coordinates of the nonzero (true, NaN included) elements of x in row-major order, as an
// int64 tensor of shape [count, x.dim()] (torch.nonzero).
Tensor nonzero(const Tensor& x);

}  // namespace tessera
