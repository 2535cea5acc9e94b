// Reductions over any set of axes (empty axes = all), with keepdim; scans.
// Sums use fixed-size blocks combined in a fixed order, so results are
// bit-identical for any thread count.
#pragma once
#include <vector>

#include "tessera/core/tensor.h"

namespace tessera {

using Axes = std::vector<int64_t>;

Tensor sum(const Tensor& x, const Axes& axes = {}, bool keepdim = false);
Tensor mean(const Tensor& x, const Axes& axes = {}, bool keepdim = false);
Tensor prod(const Tensor& x, const Axes& axes = {}, bool keepdim = false);
Tensor amax(const Tensor& x, const Axes& axes = {}, bool keepdim = false);
// How many elements a reduction over `axes` combines, less `correction` (at least 0), as a
// 0-d tensor; inside tessera::function it follows the batch size at run time.
Tensor reduction_size(const Tensor& x, const Axes& axes, int64_t correction = 0,
                      DType dtype = DType::Float32);
Tensor amin(const Tensor& x, const Axes& axes = {}, bool keepdim = false);
// Index of the largest/smallest value along one axis (first on ties), or of the flattened tensor.
Tensor argmax(const Tensor& x, int64_t axis, bool keepdim = false);
Tensor argmax(const Tensor& x);
Tensor argmin(const Tensor& x, int64_t axis, bool keepdim = false);
Tensor argmin(const Tensor& x);
Tensor var(const Tensor& x, const Axes& axes = {}, int64_t correction = 1, bool keepdim = false);
// Standard deviation (torch.std); named stddev because a function named `std` would make
// every `std::` ambiguous in code that says `using namespace tessera`.
Tensor stddev(const Tensor& x, const Axes& axes = {}, int64_t correction = 1, bool keepdim = false);
Tensor logsumexp(const Tensor& x, const Axes& axes = {}, bool keepdim = false);
// ord: 1, 2, INFINITY (max |x|), or 0 meaning Frobenius (= 2 over the axes).
Tensor norm(const Tensor& x, double ord = 2.0, const Axes& axes = {}, bool keepdim = false);
Tensor all(const Tensor& x, const Axes& axes = {}, bool keepdim = false);
Tensor any(const Tensor& x, const Axes& axes = {}, bool keepdim = false);
Tensor count_nonzero(const Tensor& x, const Axes& axes = {}, bool keepdim = false);
Tensor cumsum(const Tensor& x, int64_t axis);
Tensor cumprod(const Tensor& x, int64_t axis);

// Sums a broadcast gradient back to `shape` (the inverse of broadcasting).
Tensor sum_to(const Tensor& x, const Shape& shape);

}  // namespace tessera
