// Collectives inside the autodiff graph: synchronized batch norm sums its statistics over
// ranks in forward, and the gradients of those sums over ranks in backward.
#pragma once
#include <memory>

#include "tessera/distributed/process_group.h"

namespace tessera::distributed {

// The sum of `x` over the ranks of `group` (every rank calls it with the same shape). When
// grad is on and `x` requires it, backward sends the output gradient through the same sum:
// every rank's output depends on every rank's input.
Tensor sum_over_ranks_with_grad(const std::shared_ptr<ProcessGroup>& group, const Tensor& x);

}  // namespace tessera::distributed
