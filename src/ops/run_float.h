// Shared by the NN op files: their kernels exist for float and double only, so inputs
// are brought to one of those types (contiguous) and results converted back.
#pragma once
#include <span>
#include <vector>

#include "../kernels/cpu/copy.h"
#include "tessera/core/tensor.h"

namespace tessera::detail {

// A contiguous tensor of dtype t holding x's values (x itself when it already is one).
inline Tensor contiguous_as(const Tensor& x, DType t) {
  if (x.dtype() == t && x.is_contiguous()) return x;
  Tensor c = Tensor::empty(x.shape(), t);
  cpu::copy_into(x, c);
  return c;
}

// Runs fn(T{}, inputs, output) with T float (for float16, bfloat16 and float32 outputs) or
// double: floating inputs become contiguous T tensors, others (indices) only contiguous.
// The result is copied into `out` when its dtype is not T.
template <typename Fn>
void run_float(std::span<const Tensor> inputs, const Tensor& out, Fn&& fn) {
  DType t = out.dtype() == DType::Float64 ? DType::Float64 : DType::Float32;
  std::vector<Tensor> ins;
  for (const Tensor& x : inputs) {
    ins.push_back(contiguous_as(x, is_floating(x.dtype()) ? t : x.dtype()));
  }
  Tensor o = out.dtype() == t ? out : Tensor::empty(out.shape(), t);
  if (t == DType::Float32) {
    fn(float{}, ins, o);
  } else {
    fn(double{}, ins, o);
  }
  if (!o.same(out)) cpu::copy_into(o, out);
}

}  // namespace tessera::detail
