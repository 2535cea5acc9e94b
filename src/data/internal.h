// Helpers shared by the data sources and transformations (not part of the public API).
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tessera/data/dataset.h"

namespace tessera::data::detail {

// Builds a Dataset from a node type.
template <typename Node, typename... Args>
Dataset make_dataset(Args&&... args) {
  return Dataset(std::make_shared<Node>(std::forward<Args>(args)...));
}

// The shared_ptr that owns `node`, so an iterator can keep its node alive.
template <typename Node>
std::shared_ptr<const Node> self(const Node* node) {
  return std::static_pointer_cast<const Node>(node->shared_from_this());
}

// 64-bit mixing (splitmix64's finalizer): turns (seed, counters) into unrelated keys.
inline uint64_t mix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}
inline uint64_t mix64(uint64_t a, uint64_t b) { return mix64(mix64(a) ^ b); }

// Asks the CPU to start loading up to 16 KiB from p. Batches of shuffled rows copy rows
// scattered over the whole data set; fetching kPrefetchAhead rows ahead hides their memory
// latency (bench_pipeline: 12.6k/13.1k/10.3k -> 14.6k/13.9k/14.4k batches/s stacking float
// rows, 15.2-15.4k -> 16.3-16.4k gathering byte rows).
inline constexpr size_t kPrefetchAhead = 4;
inline void prefetch_bytes(const void* p, size_t bytes) {
  const auto* at = static_cast<const char*>(p);
  for (size_t off = 0; off < std::min<size_t>(bytes, 16384); off += 64)
    __builtin_prefetch(at + off);
}

// A 0-d tensor holding one int64.
Tensor int64_scalar(int64_t value);

// The whole file, decompressed when it starts with the gzip magic (1f 8b). Errors name
// `op` and the path.
std::vector<unsigned char> read_file_bytes(const std::string& path, const char* op,
                                           bool gunzip = true);

}  // namespace tessera::data::detail
