// Image augmentations for use inside Dataset::map_indexed. They take images as float
// tensors laid out [C, H, W] (a [H, W] image is treated as one channel) and return new
// float32 tensors (never writing into their input, which may be a cached view).
//
// Randomness comes from a Generator made per element by element_generator(seed, info):
// keyed by (seed, epoch, element index), so the draws do not depend on the number of map
// workers or on which thread runs an element, and every epoch draws afresh.
#pragma once
#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

#include "tessera/core/random.h"
#include "tessera/core/tensor.h"
#include "tessera/data/dataset.h"

namespace tessera::data {

Generator element_generator(uint64_t seed, const ElementInfo& info);
// One uniform double in [low, high) from `gen` (reserves one counter).
double uniform_double(Generator& gen, double low = 0.0, double high = 1.0);

// Mirrors the width axis with probability p.
Tensor random_flip(const Tensor& image, Generator& gen, double p = 0.5);
// Pads each side of H and W by `padding` (with fill), then crops a random height x width
// window: the usual "pad 4, crop 32" for CIFAR-style inputs.
Tensor random_crop(const Tensor& image, int64_t height, int64_t width, int64_t padding,
                   Generator& gen, double fill = 0.0);
// Adds one delta drawn from [-max_delta, max_delta) to every value.
Tensor random_brightness(const Tensor& image, double max_delta, Generator& gen);
// Scales each channel's deviation from its mean by a factor drawn from [lower, upper).
Tensor random_contrast(const Tensor& image, double lower, double upper, Generator& gen);
// (x - mean[c]) / std[c] per channel; one-entry lists apply to every channel.
Tensor normalize(const Tensor& image, const std::vector<double>& mean,
                 const std::vector<double>& std);

// Byte images (uint8, any shape) as float32 through a table of the 256 values a byte can
// take: one pass over a batch kept as bytes, which a shuffled gather reads a quarter of.
struct ByteTable {
  std::array<float, 256> values;
};
Tensor bytes_to_float(const Tensor& bytes, const ByteTable& table);
// The table of v / 255 (the scaling of read_idx) for every byte v, standardized as
// (x - mean) / std by the tensor ops when std is given (so the bits are those ops' on
// float32 images).
ByteTable byte_table(std::optional<double> mean = std::nullopt,
                     std::optional<double> std = std::nullopt);

// A map_indexed function that replaces component `component` of each element with
// fn(component, element_generator(seed, info)).
MapIndexedFn augment(uint64_t seed, std::function<Tensor(const Tensor&, Generator&)> fn,
                     size_t component = 0);

}  // namespace tessera::data
