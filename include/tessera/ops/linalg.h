// Linear algebra: matmul (NumPy semantics with batch broadcasting), dot, outer,
// tensordot and einsum (written with permute/reshape/matmul).
#pragma once
#include <string>
#include <vector>

#include "tessera/core/tensor.h"

namespace tessera {

Tensor matmul(const Tensor& a, const Tensor& b);
Tensor dot(const Tensor& a, const Tensor& b);
Tensor outer(const Tensor& a, const Tensor& b);
Tensor tensordot(const Tensor& a, const Tensor& b, const std::vector<int64_t>& axes_a,
                 const std::vector<int64_t>& axes_b);
// Einstein summation, e.g. einsum("bhqd,bhkd->bhqk", {q, k}). Letters a-z and A-Z;
// without "->" the output holds the letters used once, in alphabetical order.
Tensor einsum(const std::string& equation, const std::vector<Tensor>& operands);

}  // namespace tessera
