// Fused ops that graph passes put in place of chains of primitives (src/ops/fused.cc):
// `linear` (matmul by a transposed weight, bias, activation) and `fused_elementwise` (a
// program of float32 elementwise ops run in one pass). Passes name them through these
// functions, which also links their registration into programs using the static library.
#pragma once
#include "tessera/ops/op.h"

namespace tessera {

const OpDef& linear_op();
// The matmul op's definition, whose kernel `linear` calls (defined in linalg.cc).
const OpDef& matmul_op();
const OpDef& fused_elementwise_op();

// A fused_elementwise program run as the single ops it fuses (neg, add, ...): the same
// values, and differentiable, for training a graph that passes have already fused.
Tensor run_program_as_ops(const std::vector<int64_t>& program, const TensorList& inputs);

}  // namespace tessera
