// The MPI process group (see mpi.h). float32, float64, int32 and int64 map to MPI's own
// types and reductions; float16 and bfloat16 travel as 16-bit words and reduce through
// float32 with user-defined MPI operations (MPI has no half types). Every collective is
// nonblocking underneath, so that a rank waiting for the others can notice failures and
// time out (see process_group.h).
#include "tessera/distributed/mpi.h"

#include <mpi.h>

#include <atomic>
#include <cstdlib>
#include <mutex>
#include <thread>

#include "mpi_fault_channel.h"
#include "tessera/autodiff/autodiff.h"
#include "tessera/core/half.h"
#include "tessera/ops/creation.h"
#include "tessera/ops/elementwise.h"

namespace tessera::distributed {

const char* reduce_op_name(ReduceOp op) {
  switch (op) {
    case ReduceOp::sum:
      return "sum";
    case ReduceOp::mean:
      return "mean";
    case ReduceOp::max:
      return "max";
  }
  return "?";
}

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// From this size up, allreduce waits for the ranks in a nonblocking barrier, then runs
// MPI's blocking allreduce (see MpiGroup::allreduce).
constexpr int64_t kBlockingAllreduceBytes = 4 * 1024;

milliseconds default_timeout() {
  const char* env = std::getenv("TESSERA_DISTRIBUTED_TIMEOUT");
  double seconds = env ? std::atof(env) : 0.0;
  return milliseconds(seconds > 0 ? static_cast<int64_t>(seconds * 1000) : 60000);
}

// MPI calls return error codes (the groups' handlers are set to return, not abort): each
// becomes an Error naming the collective and MPI's message.
void check_mpi(int code, const char* what) {
  if (code == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  MPI_Error_string(code, text, &length);
  fail("mpi", what, " failed: ", std::string(text, static_cast<size_t>(length)));
}

template <typename Half, bool kMax>
void reduce_half(void* in, void* inout, int* count, MPI_Datatype*) {
  const Half* a = static_cast<const Half*>(in);
  Half* b = static_cast<Half*>(inout);
  for (int i = 0; i < *count; ++i) {
    float x = static_cast<float>(a[i]), y = static_cast<float>(b[i]);
    b[i] = Half(kMax ? (x > y || x != x ? x : y) : x + y);
  }
}

// What every group of the process shares: MPI itself, the half-precision reductions and
// the fault channel.
struct MpiProcess {
  MPI_Op half_sum, half_max, bf16_sum, bf16_max;
  std::unique_ptr<FaultChannel> channel;
  int rank = 0, size = 1;

  MpiProcess() {
    int ready = 0;
    MPI_Initialized(&ready);
    if (!ready) {
      int provided = 0;
      // The communication thread of data-parallel training calls MPI beside the main one.
      check_mpi(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_MULTIPLE, &provided), "init");
      std::atexit(&MpiProcess::at_exit);
    }
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    MPI_Op_create(&reduce_half<float16, false>, 1, &half_sum);
    MPI_Op_create(&reduce_half<float16, true>, 1, &half_max);
    MPI_Op_create(&reduce_half<bfloat16, false>, 1, &bf16_sum);
    MPI_Op_create(&reduce_half<bfloat16, true>, 1, &bf16_max);
    channel = std::make_unique<FaultChannel>(rank, size);
  }

  static MpiProcess& get() {
    static MpiProcess* process = new MpiProcess();  // lives until exit, for at_exit
    return *process;
  }

  // After a failure MPI_Finalize would wait for ranks that are dead or hung: leave through
  // MPI_Abort, which ends the whole job.
  static void at_exit() {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (finalized) return;
    if (get().channel->failed()) MPI_Abort(MPI_COMM_WORLD, 1);
    MPI_Finalize();
  }
};

class MpiGroup : public ProcessGroup {
 public:
  explicit MpiGroup(MPI_Comm comm) : process_(MpiProcess::get()), comm_(comm) {
    MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN);
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &size_);
    id_ = process_.channel->add_group(&position_);
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string backend() const override { return "mpi"; }

  void allreduce(Tensor& tensor, ReduceOp op) override {
    const char* what = "allreduce";
    Tensor t = prepare(tensor, what, op);
    if (t.numel() * static_cast<int64_t>(t.element_size()) >= kBlockingAllreduceBytes) {
      // OpenMPI's blocking allreduce moves large buffers about 1.5x faster than its
      // nonblocking one (bench/RESULTS.md). Waiting for the others in a nonblocking barrier
      // first keeps the timeout and the failure reports: once it completes, every rank has
      // arrived, so the blocking call cannot wait on a missing one.
      run(what, [&](MPI_Request* r) { return MPI_Ibarrier(comm_, r); });
      check_mpi(
          MPI_Allreduce(MPI_IN_PLACE, t.data_ptr(), count(t), type_of(t), op_of(t, op), comm_),
          what);
    } else {
      run(what, [&](MPI_Request* r) {
        return MPI_Iallreduce(MPI_IN_PLACE, t.data_ptr(), count(t), type_of(t), op_of(t, op), comm_,
                              r);
      });
    }
    finish_mean(t, op);
    write_back(tensor, t);
  }

  void broadcast(Tensor& tensor, int root) override {
    const char* what = "broadcast";
    check(root >= 0 && root < size_, what, "root ", root, " is not a rank of a group of ", size_);
    Tensor t = prepare(tensor, what, ReduceOp::sum);
    run(what, [&](MPI_Request* r) {
      return MPI_Ibcast(t.data_ptr(), count(t), type_of(t), root, comm_, r);
    });
    write_back(tensor, t);
  }

  Tensor allgather(const Tensor& tensor) override {
    const char* what = "allgather";
    Tensor t = prepare(tensor, what, ReduceOp::sum);
    Shape shape = t.shape();
    shape.insert(0, size_);
    Tensor out = Tensor::empty(shape, t.dtype());
    run(what, [&](MPI_Request* r) {
      return MPI_Iallgather(t.data_ptr(), count(t), type_of(t), out.data_ptr(), count(t),
                            type_of(t), comm_, r);
    });
    return out;
  }

  Tensor reduce_scatter(const Tensor& tensor, ReduceOp op) override {
    const char* what = "reduce_scatter";
    Tensor t = prepare(tensor, what, op);
    check(t.dim() >= 1 && t.shape()[0] % size_ == 0, what, "needs a first axis divisible by the ",
          size_, " ranks, got shape ", t.shape());
    Shape shape = t.shape();
    shape[0] /= size_;
    Tensor out = Tensor::empty(shape, t.dtype());
    run(what, [&](MPI_Request* r) {
      return MPI_Ireduce_scatter_block(t.data_ptr(), out.data_ptr(), count(out), type_of(t),
                                       op_of(t, op), comm_, r);
    });
    finish_mean(out, op);
    return out;
  }

  void barrier() override {
    run("barrier", [&](MPI_Request* r) { return MPI_Ibarrier(comm_, r); });
  }

  std::shared_ptr<ProcessGroup> duplicate() override {
    process_.channel->throw_if_failed();
    MPI_Comm copy = MPI_COMM_NULL;
    check_mpi(MPI_Comm_dup(comm_, &copy), "duplicate");
    return std::make_shared<MpiGroup>(copy);
  }

  void set_timeout(milliseconds timeout) override {
    check(timeout.count() > 0, "ProcessGroup::set_timeout", "the timeout must be positive, got ",
          timeout.count(), " ms");
    timeout_ms_ = timeout.count();
  }
  milliseconds timeout() const override { return milliseconds(timeout_ms_.load()); }

  void set_wait_mode(WaitMode mode) override { wait_mode_ = mode; }

  void report_failure(const std::string& message) override {
    // After a RankFailure the others know already (the rank that timed out told them).
    if (size_ > 1 && !process_.channel->failed()) process_.channel->report(message);
  }

 private:
  // Starts a nonblocking collective and waits for it, servicing the fault channel, until it
  // completes, a peer reports a failure, or the timeout passes. The collective of a failed
  // wait stays pending on a peer that will not come: the process's groups are then broken.
  template <typename Start>
  void run(const char* what, Start start) {
    FaultChannel& channel = *process_.channel;
    channel.throw_if_failed();
    uint64_t position = ++position_;
    MPI_Request request = MPI_REQUEST_NULL;
    check_mpi(start(&request), what);
    if (size_ == 1) {
      check_mpi(MPI_Wait(&request, MPI_STATUS_IGNORE), what);
      return;
    }
    const auto begin = Clock::now();
    auto next_service = begin;
    for (;;) {
      int done = 0;
      check_mpi(MPI_Test(&request, &done, MPI_STATUS_IGNORE), what);
      if (done) return;
      auto now = Clock::now();
      auto waited = std::chrono::duration_cast<milliseconds>(now - begin);
      if (now >= next_service) {
        channel.service();  // throws a peer's failure (and records it)
        next_service = now + milliseconds(1);
        if (waited.count() >= timeout_ms_) {
          RankFailure failure = channel.diagnose(id_, position, what, waited, grace());
          channel.report(str_cat("rank ", rank_, " stopped waiting: ", failure.what()));
          channel.record(failure);
          throw failure;
        }
      }
      // MPI progresses only inside its calls. Spinning: spin while the others are likely
      // to be close, then yield, then nap, so that a rank waiting for a slower peer leaves
      // the cores to the compute threads. Napping: nap at once.
      bool nap = wait_mode_ == WaitMode::nap ? now - begin >= std::chrono::microseconds(20)
                                             : waited >= milliseconds(20);
      if (nap) {
        std::this_thread::sleep_for(std::chrono::microseconds(50));
      } else if (waited >= milliseconds(1)) {
        std::this_thread::yield();
      }
    }
  }

  // How long a rank that timed out waits for the others to say where they are.
  milliseconds grace() const { return std::min(milliseconds(2000), timeout()); }

  // A contiguous tensor of a supported dtype (the tensor itself when it already is one).
  static Tensor prepare(const Tensor& tensor, const char* what, ReduceOp op) {
    check(tensor.defined(), what, "got an undefined tensor");
    DType d = tensor.dtype();
    check(d == DType::Float32 || d == DType::Float64 || d == DType::Float16 ||
              d == DType::BFloat16 || d == DType::Int32 || d == DType::Int64,
          what, "supports float32, float64, float16, bfloat16, int32 and int64, got ",
          dtype_name(d));
    check(op != ReduceOp::mean || is_floating(d), what, "mean needs a floating dtype, got ",
          dtype_name(d));
    check(tensor.numel() <= INT32_MAX, what,
          "tensors of more than 2^31 elements are not supported");
    return tensor.is_contiguous() ? tensor : tensor.contiguous();
  }
  static void write_back(Tensor& tensor, const Tensor& t) {
    if (t.impl() != tensor.impl()) {
      NoGradGuard no_grad;
      tensor.copy_(t);
    }
  }
  void finish_mean(Tensor& t, ReduceOp op) const {
    if (op != ReduceOp::mean) return;
    NoGradGuard no_grad;
    t.copy_(div(t, scalar_tensor(static_cast<double>(size_), t.dtype())));
  }
  static int count(const Tensor& t) { return static_cast<int>(t.numel()); }
  static MPI_Datatype type_of(const Tensor& t) {
    switch (t.dtype()) {
      case DType::Float32:
        return MPI_FLOAT;
      case DType::Float64:
        return MPI_DOUBLE;
      case DType::Int32:
        return MPI_INT32_T;
      case DType::Int64:
        return MPI_INT64_T;
      default:
        return MPI_UINT16_T;  // float16, bfloat16
    }
  }
  MPI_Op op_of(const Tensor& t, ReduceOp op) const {
    bool max = op == ReduceOp::max;
    if (t.dtype() == DType::Float16) return max ? process_.half_max : process_.half_sum;
    if (t.dtype() == DType::BFloat16) return max ? process_.bf16_max : process_.bf16_sum;
    return max ? MPI_MAX : MPI_SUM;
  }

  MpiProcess& process_;
  MPI_Comm comm_;
  int rank_ = 0;
  int size_ = 1;
  int id_ = 0;                         // this group's name on the fault channel
  std::atomic<uint64_t> position_{0};  // collectives entered so far
  std::atomic<int64_t> timeout_ms_{default_timeout().count()};
  std::atomic<WaitMode> wait_mode_{WaitMode::spin};
};

}  // namespace

std::shared_ptr<ProcessGroup> mpi_world() {
  static std::mutex mutex;
  static std::shared_ptr<ProcessGroup> world;
  std::lock_guard<std::mutex> lock(mutex);
  if (!world) world = std::make_shared<MpiGroup>(MPI_COMM_WORLD);
  return world;
}

}  // namespace tessera::distributed
