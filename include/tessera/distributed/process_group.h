// Process groups: the collectives data-parallel training needs, over one communication
// library per backend (MPI for CPUs here; NCCL for GPUs would implement the same class).
// Every rank of the group calls each collective in the same order with tensors of the same
// dtype and shape; results come back on every rank (allreduce, allgather, reduce_scatter)
// or on all but the root (broadcast).
//
// Faults: a collective that has not completed within the timeout (60 s unless set, or the
// TESSERA_DISTRIBUTED_TIMEOUT environment variable in seconds) throws RankFailure naming
// the ranks that did not reach it; a rank that reports a failure makes the others' pending
// and later collectives throw RankFailure naming it. After a RankFailure the group is
// broken: every later collective throws the same error, and the process leaves through
// MPI_Abort at exit, so that no rank is left waiting. (A rank that dies outright is noticed
// by mpirun, which ends the job naming it.)
#pragma once
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "tessera/core/error.h"

#include "tessera/core/tensor.h"

namespace tessera::distributed {

enum class ReduceOp { sum, mean, max };

// How a collective waits for the other ranks: spinning answers soonest; napping (short
// sleeps between checks) leaves the cores to other threads. Data-parallel training naps
// while backward computes beside the exchange, and spins once backward waits for it.
enum class WaitMode { spin, nap };

// Another rank failed or did not answer; ranks() names them.
class RankFailure : public Error {
 public:
  RankFailure(std::vector<int> ranks, const std::string& message)
      : Error("distributed", message), ranks_(std::move(ranks)) {}
  const std::vector<int>& ranks() const { return ranks_; }

 private:
  std::vector<int> ranks_;
};
const char* reduce_op_name(ReduceOp op);

class ProcessGroup {
 public:
  virtual ~ProcessGroup() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual std::string backend() const = 0;

  // In place: every rank's tensor becomes the reduction over ranks. float32, float64,
  // float16, bfloat16, int32 and int64; mean needs a floating dtype.
  virtual void allreduce(Tensor& tensor, ReduceOp op = ReduceOp::sum) = 0;
  // In place: every rank's tensor becomes root's.
  virtual void broadcast(Tensor& tensor, int root = 0) = 0;
  // [size, ...shape]: rank r's tensor at index r.
  virtual Tensor allgather(const Tensor& tensor) = 0;
  // Reduces `tensor` ([size * n, ...], split along the first axis into `size` chunks) over
  // ranks and returns chunk `rank` of the result ([n, ...]).
  virtual Tensor reduce_scatter(const Tensor& tensor, ReduceOp op = ReduceOp::sum) = 0;
  virtual void barrier() = 0;

  // A group of the same ranks whose collectives never mix with this one's, so another
  // thread can run collectives on it at the same time (every rank must call this, in the
  // same order). Data-parallel training exchanges gradients on one.
  virtual std::shared_ptr<ProcessGroup> duplicate() = 0;

  // May change while a collective waits (from another thread). Spin by default.
  virtual void set_wait_mode(WaitMode mode) = 0;

  // How long a collective may wait for the other ranks before RankFailure.
  virtual void set_timeout(std::chrono::milliseconds timeout) = 0;
  virtual std::chrono::milliseconds timeout() const = 0;
  // Tells every other rank that this one failed with `message` (it does not throw here):
  // their collectives then throw RankFailure naming this rank.
  virtual void report_failure(const std::string& message) = 0;
};

}  // namespace tessera::distributed
