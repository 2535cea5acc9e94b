// Static memory planning: places every buffer a graph run needs in one arena, reusing
// bytes between buffers whose lifetimes (first definition to last use) do not overlap.
#pragma once
#include <cstdint>
#include <vector>

namespace tessera::graph {

struct BufferRequest {
  int64_t bytes = 0;
  int first = 0;  // step that writes it (-1: before the first node, as inputs are)
  int last = 0;   // last step that reads it
  // After step `shrink_at`, only the first `bytes_after` bytes are still read (an op wrote
  // a smaller output over the head of this buffer there); -1: all of it until `last`.
  int64_t bytes_after = -1;
  int shrink_at = 0;
};

struct MemoryPlan {
  std::vector<int64_t> offsets;  // one per request, 64-byte aligned
  int64_t arena_bytes = 0;
  int64_t naive_bytes = 0;  // the sum of all requests (every buffer its own allocation)
};

// Greedy by size, largest first, each in the smallest gap that fits between the
// already-placed buffers that are alive at the same time (best fit); a buffer that shrinks
// goes at the lowest offset where both its sizes fit.
MemoryPlan plan_memory(const std::vector<BufferRequest>& requests);

}  // namespace tessera::graph
