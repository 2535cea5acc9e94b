// Shape ops. Views (reshape when strides allow, transpose, permute, slice, expand,
// squeeze, unsqueeze, diagonal) share storage; the rest copy.
#pragma once
#include <vector>

#include "tessera/core/tensor.h"

namespace tessera {

Tensor reshape(const Tensor& x, const Shape& shape);  // one -1 entry is inferred
Tensor view(const Tensor& x, const Shape& shape);
Tensor flatten(const Tensor& x, int64_t start_axis = 0, int64_t end_axis = -1);
Tensor transpose(const Tensor& x, int64_t a, int64_t b);
Tensor permute(const Tensor& x, const Dims& order);
Tensor slice(const Tensor& x, int64_t axis, int64_t start, int64_t stop, int64_t step = 1);
Tensor narrow(const Tensor& x, int64_t axis, int64_t start, int64_t length);
Tensor select(const Tensor& x, int64_t axis, int64_t index);
Tensor expand(const Tensor& x, const Shape& shape);  // -1 keeps a dimension
Tensor broadcast_to(const Tensor& x, const Shape& shape);
Tensor squeeze(const Tensor& x);
Tensor squeeze(const Tensor& x, int64_t axis);
Tensor unsqueeze(const Tensor& x, int64_t axis);
Tensor diagonal(const Tensor& x, int64_t offset = 0, int64_t axis1 = 0, int64_t axis2 = 1);
Tensor contiguous(const Tensor& x);
Tensor clone(const Tensor& x);

Tensor concat(const std::vector<Tensor>& tensors, int64_t axis = 0);
Tensor stack(const std::vector<Tensor>& tensors, int64_t axis = 0);
std::vector<Tensor> split(const Tensor& x, int64_t split_size, int64_t axis = 0);
std::vector<Tensor> split(const Tensor& x, const std::vector<int64_t>& sizes, int64_t axis);
std::vector<Tensor> chunk(const Tensor& x, int64_t chunks, int64_t axis = 0);
Tensor tile(const Tensor& x, const std::vector<int64_t>& reps);
Tensor repeat_interleave(const Tensor& x, int64_t repeats, int64_t axis);
Tensor flip(const Tensor& x, const std::vector<int64_t>& axes);
Tensor roll(const Tensor& x, int64_t shift, int64_t axis);
Tensor tril(const Tensor& x, int64_t diagonal = 0);
Tensor triu(const Tensor& x, int64_t diagonal = 0);
std::vector<Tensor> meshgrid(const std::vector<Tensor>& tensors, bool ij_indexing = true);

}  // namespace tessera
