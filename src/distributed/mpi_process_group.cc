// The MPI process group (see mpi.h). float32, int32 and int64 map to MPI's own types and
// reductions; float16 and bfloat16 travel as 16-bit words and reduce through float32 with
// user-defined MPI operations (MPI has no half types).
#include "tessera/distributed/mpi.h"

#include <mpi.h>

#include <cstdlib>
#include <mutex>

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

// MPI calls return error codes (the world group's handler is set to return, not abort):
// each becomes an Error naming the collective and MPI's message.
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

struct MpiTypes {
  MPI_Op half_sum, half_max, bf16_sum, bf16_max;
};

class MpiGroup : public ProcessGroup {
 public:
  MpiGroup() {
    int ready = 0;
    MPI_Initialized(&ready);
    if (!ready) {
      int provided = 0;
      // The communication thread of data-parallel training calls MPI beside the main one.
      check_mpi(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_MULTIPLE, &provided), "init");
      std::atexit([] {
        int finalized = 0;
        MPI_Finalized(&finalized);
        if (!finalized) MPI_Finalize();
      });
    }
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
    MPI_Op_create(&reduce_half<float16, false>, 1, &ops_.half_sum);
    MPI_Op_create(&reduce_half<float16, true>, 1, &ops_.half_max);
    MPI_Op_create(&reduce_half<bfloat16, false>, 1, &ops_.bf16_sum);
    MPI_Op_create(&reduce_half<bfloat16, true>, 1, &ops_.bf16_max);
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string backend() const override { return "mpi"; }

  void allreduce(Tensor& tensor, ReduceOp op) override {
    const char* what = "allreduce";
    Tensor t = prepare(tensor, what, op);
    check_mpi(MPI_Allreduce(MPI_IN_PLACE, t.data_ptr(), count(t), type_of(t), op_of(t, op),
                            MPI_COMM_WORLD),
              what);
    finish_mean(t, op);
    write_back(tensor, t);
  }

  void broadcast(Tensor& tensor, int root) override {
    const char* what = "broadcast";
    check(root >= 0 && root < size_, what, "root ", root, " is not a rank of a group of ", size_);
    Tensor t = prepare(tensor, what, ReduceOp::sum);
    check_mpi(MPI_Bcast(t.data_ptr(), count(t), type_of(t), root, MPI_COMM_WORLD), what);
    write_back(tensor, t);
  }

  Tensor allgather(const Tensor& tensor) override {
    const char* what = "allgather";
    Tensor t = prepare(tensor, what, ReduceOp::sum);
    Shape shape = t.shape();
    shape.insert(0, size_);
    Tensor out = Tensor::empty(shape, t.dtype());
    check_mpi(MPI_Allgather(t.data_ptr(), count(t), type_of(t), out.data_ptr(), count(t),
                            type_of(t), MPI_COMM_WORLD),
              what);
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
    check_mpi(MPI_Reduce_scatter_block(t.data_ptr(), out.data_ptr(), count(out), type_of(t),
                                       op_of(t, op), MPI_COMM_WORLD),
              what);
    finish_mean(out, op);
    return out;
  }

  void barrier() override { check_mpi(MPI_Barrier(MPI_COMM_WORLD), "barrier"); }

 private:
  // A contiguous tensor of a supported dtype (the tensor itself when it already is one).
  static Tensor prepare(const Tensor& tensor, const char* what, ReduceOp op) {
    check(tensor.defined(), what, "got an undefined tensor");
    DType d = tensor.dtype();
    check(d == DType::Float32 || d == DType::Float16 || d == DType::BFloat16 || d == DType::Int32 ||
              d == DType::Int64,
          what, "supports float32, float16, bfloat16, int32 and int64, got ", dtype_name(d));
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
    if (t.dtype() == DType::Float16) return max ? ops_.half_max : ops_.half_sum;
    if (t.dtype() == DType::BFloat16) return max ? ops_.bf16_max : ops_.bf16_sum;
    return max ? MPI_MAX : MPI_SUM;
  }

  int rank_ = 0;
  int size_ = 1;
  MpiTypes ops_{};
};

}  // namespace

std::shared_ptr<ProcessGroup> mpi_world() {
  static std::mutex mutex;
  static std::shared_ptr<ProcessGroup> world;
  std::lock_guard<std::mutex> lock(mutex);
  if (!world) world = std::make_shared<MpiGroup>();
  return world;
}

}  // namespace tessera::distributed
