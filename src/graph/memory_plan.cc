// Static memory planning by lifetime (see memory_plan.h).
#include "tessera/graph/memory_plan.h"

#include <algorithm>
#include <numeric>

namespace tessera::graph {

namespace {

int64_t align_up(int64_t n) { return (n + 63) / 64 * 64; }

// Bytes of `r` (from its offset) in use at some step in [a, b]; 0 when it is not alive.
int64_t bytes_in_use(const BufferRequest& r, int a, int b) {
  if (r.last < a || b < r.first) return 0;
  return r.bytes_after < 0 || a <= r.shrink_at ? r.bytes : r.bytes_after;
}

// A part of a request's life with the bytes it needs then, and the byte ranges that
// placed buffers use during that part, by offset.
struct Span {
  int first, last;
  int64_t size;
  std::vector<std::pair<int64_t, int64_t>> busy;
};

bool fits(const Span& span, int64_t offset) {
  for (const auto& [begin, end] : span.busy) {
    if (begin < offset + span.size && offset < end) return false;
  }
  return true;
}

}  // namespace

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
    std::vector<Span> spans;
    if (req.bytes_after < 0 || req.shrink_at >= req.last) {
      spans.push_back({req.first, req.last, align_up(req.bytes), {}});
    } else {
      spans.push_back({req.first, req.shrink_at, align_up(req.bytes), {}});
      spans.push_back({req.shrink_at + 1, req.last, align_up(req.bytes_after), {}});
    }
    for (Span& span : spans) {
      for (size_t p : placed) {
        int64_t used = bytes_in_use(requests[p], span.first, span.last);
        if (used > 0) span.busy.emplace_back(plan.offsets[p], plan.offsets[p] + align_up(used));
      }
      std::sort(span.busy.begin(), span.busy.end());
    }
    int64_t offset = -1;
    if (spans.size() == 1) {
      // Best fit: the smallest gap between busy ranges that holds the buffer, else the end.
      int64_t cursor = 0, best_gap = 0;
      for (const auto& [begin, end] : spans[0].busy) {
        int64_t gap = begin - cursor;
        if (gap >= spans[0].size && (offset < 0 || gap < best_gap)) offset = cursor, best_gap = gap;
        cursor = std::max(cursor, end);
      }
      if (offset < 0) offset = cursor;
    } else {
      // The lowest offset where every span fits: 0 or the end of some busy range.
      std::vector<int64_t> candidates{0};
      for (const Span& span : spans) {
        for (const auto& range : span.busy) candidates.push_back(range.second);
      }
      std::sort(candidates.begin(), candidates.end());
      for (int64_t c : candidates) {
        if (std::all_of(spans.begin(), spans.end(), [&](const Span& s) { return fits(s, c); })) {
          offset = c;
          break;
        }
      }
    }
    plan.offsets[r] = offset;
    plan.arena_bytes = std::max(plan.arena_bytes, offset + align_up(req.bytes));
    placed.push_back(r);
  }
  return plan;
}

}  // namespace tessera::graph
