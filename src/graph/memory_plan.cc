// Static memory planning by lifetime (see memory_plan.h).
#include "tessera/graph/memory_plan.h"

#include <algorithm>
#include <numeric>

namespace tessera::graph {

static int64_t align_up(int64_t n) { return (n + 63) / 64 * 64; }

MemoryPlan plan_memory(const std::vector<BufferRequest>& requests) {
  MemoryPlan plan;
  plan.offsets.assign(requests.size(), 0);
  std::vector<size_t> order(requests.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return requests[a].bytes > requests[b].bytes; });
  std::vector<size_t> placed;
  for (size_t r : order) {
    const BufferRequest& req = requests[r];
    plan.naive_bytes += align_up(req.bytes);
    // Intervals of placed buffers alive at the same time, by offset.
    std::vector<std::pair<int64_t, int64_t>> busy;
    for (size_t p : placed) {
      const BufferRequest& other = requests[p];
      if (other.last < req.first || req.last < other.first) continue;
      busy.emplace_back(plan.offsets[p], plan.offsets[p] + align_up(other.bytes));
    }
    std::sort(busy.begin(), busy.end());
    // Best fit: the smallest gap between busy ranges that holds the buffer, else the end.
    const int64_t size = align_up(req.bytes);
    int64_t cursor = 0, best = -1, best_gap = 0;
    for (const auto& [begin, end] : busy) {
      int64_t gap = begin - cursor;
      if (gap >= size && (best < 0 || gap < best_gap)) best = cursor, best_gap = gap;
      cursor = std::max(cursor, end);
    }
    int64_t offset = best >= 0 ? best : cursor;
    plan.offsets[r] = offset;
    plan.arena_bytes = std::max(plan.arena_bytes, offset + align_up(req.bytes));
    placed.push_back(r);
  }
  return plan;
}

}  // namespace tessera::graph
