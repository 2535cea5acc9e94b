// Which planned kernel calls may run at the same time.
//
// The executor schedules steps (kernel calls) by their dependencies: a step waits for the
// steps whose outputs it reads and, where it writes a variable, for the steps that read
// that variable before it. Steps with no path between them are independent branches of
// the graph. The memory planner then measures buffer lifetimes in waves, so that buffers
// of branches that may run together never share bytes. Hazard analysis on the bytes each
// step touches checks the result.
#pragma once
#include <cstdint>
#include <vector>

#include "tessera/core/tensor.h"

namespace tessera::graph {

// Steps grouped for running: waves run one after another; the branches of a wave may run
// at the same time, each its steps in order.
struct Wave {
  std::vector<std::vector<int>> branches;
};

// Schedules steps 0..n-1 given in a valid sequential order. after[s] lists the earlier
// steps s waits for; reads[s] those of them whose outputs s reads. A step continues the
// branch of the step it reads from when it is that step's only reader (a chain);
// otherwise it starts a branch in the first wave after everything it waits for. Waves
// with a single branch are split into one wave per step.
std::vector<Wave> schedule_waves(const std::vector<std::vector<int>>& after,
                                 const std::vector<std::vector<int>>& reads);

// Bytes [begin, end) of one storage.
struct MemoryRegion {
  const void* storage = nullptr;
  int64_t begin = 0;
  int64_t end = 0;
};
// The bytes a tensor's elements span (empty for empty or symbolic tensors).
MemoryRegion region_of(const Tensor& t);

struct StepAccess {
  std::vector<MemoryRegion> reads;
  std::vector<MemoryRegion> writes;
};
// Whether two steps may run in either order: neither writes bytes the other touches.
bool independent(const StepAccess& a, const StepAccess& b);

}  // namespace tessera::graph
