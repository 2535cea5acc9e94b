// Counter-based random numbers (Philox-4x32-10): element i of a draw depends only on
// the seed, the draw's starting counter and i, so results are the same for any
// thread count and any split of the work.
#pragma once
#include <array>
#include <cstdint>

namespace tessera {

// Four 32-bit random words for (key, counter).
std::array<uint32_t, 4> philox4x32(uint64_t key, uint64_t counter_hi, uint64_t counter_lo);

class Generator {
 public:
  explicit Generator(uint64_t seed = 0x5eed) : seed_(seed) {}
  void manual_seed(uint64_t seed) {
    seed_ = seed;
    offset_ = 0;
  }
  uint64_t seed() const { return seed_; }
  // Reserves `count` counters for one draw and returns the first.
  uint64_t advance(uint64_t count) {
    uint64_t start = offset_;
    offset_ += count;
    return start;
  }

 private:
  uint64_t seed_;
  uint64_t offset_ = 0;
};

// The generator used when a call names none; seeded by manual_seed().
Generator& default_generator();
void manual_seed(uint64_t seed);

// Uniform float in [0, 1) and double in [0, 1) from random words.
inline float uint_to_unit_float(uint32_t x) { return static_cast<float>(x >> 8) * 0x1.0p-24f; }
inline double uint_to_unit_double(uint32_t hi, uint32_t lo) {
  uint64_t v = (static_cast<uint64_t>(hi) << 32 | lo) >> 11;
  return static_cast<double>(v) * 0x1.0p-53;
}

}  // namespace tessera
