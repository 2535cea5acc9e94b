// Process groups: the collectives data-parallel training needs, over one communication
// library per backend (MPI for CPUs here; NCCL for GPUs would implement the same class).
// Every rank of the group calls each collective in the same order with tensors of the same
// dtype and shape; results come back on every rank (allreduce, allgather, reduce_scatter)
// or on all but the root (broadcast).
#pragma once
#include <memory>
#include <string>

#include "tessera/core/tensor.h"

namespace tessera::distributed {

enum class ReduceOp { sum, mean, max };
const char* reduce_op_name(ReduceOp op);

class ProcessGroup {
 public:
  virtual ~ProcessGroup() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual std::string backend() const = 0;

  // In place: every rank's tensor becomes the reduction over ranks. float32, float16,
  // bfloat16, int32 and int64; mean needs a floating dtype.
  virtual void allreduce(Tensor& tensor, ReduceOp op = ReduceOp::sum) = 0;
  // In place: every rank's tensor becomes root's.
  virtual void broadcast(Tensor& tensor, int root = 0) = 0;
  // [size, ...shape]: rank r's tensor at index r.
  virtual Tensor allgather(const Tensor& tensor) = 0;
  // Reduces `tensor` ([size * n, ...], split along the first axis into `size` chunks) over
  // ranks and returns chunk `rank` of the result ([n, ...]).
  virtual Tensor reduce_scatter(const Tensor& tensor, ReduceOp op = ReduceOp::sum) = 0;
  virtual void barrier() = 0;
};

}  // namespace tessera::distributed
