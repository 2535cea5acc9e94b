// Fused ops that graph passes put in place of chains of primitives (src/ops/fused.cc):
// `linear` (matmul by a transposed weight, bias, activation) and `fused_elementwise` (a
// program of float32 pointwise ops run in one pass). Passes name them through these
// functions, which also links their registration into programs using the static library.
#pragma once
#include <array>

#include "tessera/ops/op.h"

namespace tessera {

const OpDef& linear_op();
// The matmul op's definition, whose kernel `linear` calls (defined in linalg.cc).
const OpDef& matmul_op();
const OpDef& fused_elementwise_op();

// The kernel choices of float32 products (matmul, linear): one thread or all ("threads"
// 1 or 2, cpu::GemmThreads).
std::vector<Attrs> product_thread_choices(std::span<const Tensor> outputs);

// A fused_elementwise program: instruction j runs ops[j] (an op with OpDef::pointwise) on
// the registers reads[j] (the second -1 for unary ops). Registers are the node's inputs,
// then one per instruction; the last is the output.
struct ElementwiseProgram {
  std::vector<const OpDef*> ops;
  std::vector<std::array<int64_t, 2>> reads;
};
// Reads and checks the program in fused_elementwise's attributes ("ops": op names
// separated by spaces; "registers": two per instruction) for a node of `inputs` inputs.
ElementwiseProgram read_elementwise_program(const Attrs& attrs, size_t inputs);
Attrs elementwise_program_attrs(const ElementwiseProgram& program);

}  // namespace tessera
