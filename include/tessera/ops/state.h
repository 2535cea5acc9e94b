// Writing to variables. In eager mode assign() is an in-place copy; traced into a graph it is
// a node that writes the variable when the graph runs (the optimizer update of a captured
// training step), and later reads of the variable in the same trace see the new value.
#pragma once
#include "tessera/core/tensor.h"

namespace tessera {

// Copies `value` (same shape and dtype) into `variable`; returns the new value. Not
// differentiable, and not recorded by autodiff.
Tensor assign(const Tensor& variable, const Tensor& value);

}  // namespace tessera
