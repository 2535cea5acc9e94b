// Helpers for the sample calls ops declare (OpDef::samples) for the test that walks the
// registry: the shapes every elementwise family is tried on, and float64 values in a range.
#pragma once
#include <cstdint>
#include <utility>
#include <vector>

#include "tessera/core/random.h"
#include "tessera/ops/creation.h"
#include "tessera/ops/op.h"

namespace tessera::samples {

// Scalars, size-1 and empty dimensions, and runs longer than a 512-bit vector (with a
// tail), so that vector and scalar paths, and degenerate sizes, are all reached.
inline std::vector<Shape> elementwise_shapes() {
  return {{2, 37}, {}, {1}, {3, 1, 5}, {0}, {4, 0, 3}};
}

// Shape pairs that broadcast: equal, both ways, against a scalar, with empty dimensions.
inline std::vector<std::pair<Shape, Shape>> broadcast_shapes() {
  return {{{2, 37}, {2, 37}}, {{3, 1}, {1, 4}}, {{}, {2, 3}},
          {{5, 37}, {37}},    {{2, 0}, {1}},    {{1}, {1}}};
}

// Uniform float64 values in [lo, hi), the same for every run.
inline Tensor values(const Shape& shape, double lo, double hi, uint64_t seed) {
  Generator gen(seed);
  return uniform(shape, lo, hi, DType::Float64, &gen);
}

// One input of each shape with values in [lo, hi), reduced or scanned along its axis
// (attribute "axis"); `tolerance` as OpSample's.
inline std::vector<OpSample> along_axis(const std::vector<std::pair<Shape, int64_t>>& cases,
                                        double lo, double hi, double tolerance = 1) {
  std::vector<OpSample> out;
  uint64_t seed = 1;
  for (const auto& [shape, axis] : cases) {
    out.push_back({{values(shape, lo, hi, seed++)}, {{"axis", axis}}, ~0u, tolerance});
  }
  return out;
}

// `def` with its samples: for definitions written as one aggregate.
constexpr OpDef with(OpDef def, OpSamples samples) {
  def.samples = samples;
  return def;
}

}  // namespace tessera::samples
