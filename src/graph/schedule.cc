// Wave scheduling and hazard checks (see schedule.h).
#include "tessera/graph/schedule.h"

#include <algorithm>

namespace tessera::graph {
namespace {

bool overlap(const MemoryRegion& a, const MemoryRegion& b) {
  return a.storage == b.storage && a.begin < b.end && b.begin < a.end;
}

bool any_overlap(const std::vector<MemoryRegion>& a, const std::vector<MemoryRegion>& b) {
  for (const MemoryRegion& x : a) {
    for (const MemoryRegion& y : b) {
      if (overlap(x, y)) return true;
    }
  }
  return false;
}

}  // namespace

std::vector<Wave> schedule_waves(const std::vector<std::vector<int>>& after,
                                 const std::vector<std::vector<int>>& reads) {
  const int n = static_cast<int>(after.size());
  std::vector<int> readers(n, 0);
  for (const std::vector<int>& r : reads) {
    for (int t : r) ++readers[t];
  }
  std::vector<int> branch_of(n), wave_of_branch;
  std::vector<std::vector<int>> branches;
  for (int s = 0; s < n; ++s) {
    int wave = 0, latest = -1;
    for (int t : after[s]) {
      int w = wave_of_branch[branch_of[t]];
      wave = std::max(wave, w + 1);
      if (latest < 0 || w > wave_of_branch[branch_of[latest]]) latest = t;
    }
    // Continue the chain of the latest step it waits for, when it reads that step's
    // output, is its only reader, that step ends its branch, and all else it waits for
    // is in that branch or finishes earlier.
    bool chain = latest >= 0 && readers[latest] == 1 &&
                 std::find(reads[s].begin(), reads[s].end(), latest) != reads[s].end() &&
                 branches[branch_of[latest]].back() == latest;
    for (int t : after[s]) {
      if (!chain) break;
      chain = branch_of[t] == branch_of[latest] ||
              wave_of_branch[branch_of[t]] < wave_of_branch[branch_of[latest]];
    }
    if (chain) {
      branch_of[s] = branch_of[latest];
      branches[branch_of[s]].push_back(s);
      continue;
    }
    branch_of[s] = static_cast<int>(branches.size());
    branches.push_back({s});
    wave_of_branch.push_back(wave);
  }
  int waves = 0;
  for (int w : wave_of_branch) waves = std::max(waves, w + 1);
  std::vector<Wave> grouped(waves);
  for (size_t b = 0; b < branches.size(); ++b) {
    grouped[wave_of_branch[b]].branches.push_back(std::move(branches[b]));
  }
  // A lone branch gains nothing from being one wave; as single steps, buffers inside it
  // get exact lifetimes.
  std::vector<Wave> out;
  for (Wave& w : grouped) {
    if (w.branches.size() == 1) {
      for (int s : w.branches[0]) out.push_back(Wave{{{s}}});
    } else {
      out.push_back(std::move(w));
    }
  }
  return out;
}

MemoryRegion region_of(const Tensor& t) {
  if (!t.defined() || t.is_symbolic() || t.numel() == 0) return {};
  const int64_t size = static_cast<int64_t>(t.element_size());
  int64_t lo = t.offset() * size, hi = lo;
  for (size_t d = 0; d < t.shape().size(); ++d) {
    int64_t reach = (t.shape()[d] - 1) * t.strides()[d] * size;
    (reach < 0 ? lo : hi) += reach;
  }
  return {t.storage().get(), lo, hi + size};
}

bool independent(const StepAccess& a, const StepAccess& b) {
  return !any_overlap(a.writes, b.reads) && !any_overlap(a.writes, b.writes) &&
         !any_overlap(a.reads, b.writes);
}

}  // namespace tessera::graph
