// The MPI process group, run by ctest under `mpirun -np 2`: every collective against a
// local reference for every dtype and op, on sizes that divide nothing evenly, plus the
// errors. Each rank fills its tensors from its rank number, so every rank can compute what
// the group must return.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <thread>

#include "tessera/distributed/mpi.h"
#include "tessera/tessera.h"

namespace tessera::distributed {
namespace {

const DType kDTypes[] = {DType::Float32,  DType::Float64, DType::Float16,
                         DType::BFloat16, DType::Int32,   DType::Int64};
const int64_t kSizes[] = {1, 7, 1000, 4097};

// Small integers and halves: exact in every dtype, and in their sums over a few ranks.
double value(int rank, int64_t i, DType dtype) {
  double v = static_cast<double>((i * 7 + rank * 3) % 23) - 11;
  return is_floating(dtype) ? v * 0.5 : v;
}

Tensor filled(int rank, int64_t n, DType dtype) {
  std::vector<double> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[i] = value(rank, i, dtype);
  return from_vector(v, {n}).to(dtype);
}

double reduced(int ranks, int64_t i, DType dtype, ReduceOp op) {
  double acc = op == ReduceOp::max ? -1e300 : 0.0;
  for (int r = 0; r < ranks; ++r) {
    double v = value(r, i, dtype);
    acc = op == ReduceOp::max ? std::max(acc, v) : acc + v;
  }
  return op == ReduceOp::mean ? acc / ranks : acc;
}

void expect_values(const Tensor& t, const std::function<double(int64_t)>& want,
                   const std::string& what) {
  std::vector<double> got = t.to_vector<double>();
  for (size_t i = 0; i < got.size(); ++i) {
    double w = want(static_cast<int64_t>(i));
    // Means of halves may round in 16-bit dtypes.
    double tol = t.dtype() == DType::BFloat16 ? 0.05 : (t.dtype() == DType::Float16 ? 0.005 : 0);
    ASSERT_NEAR(got[i], w, tol * std::max(1.0, std::fabs(w))) << what << " at " << i;
  }
}

TEST(ProcessGroup, TheWorldIsEveryRankMpirunStarted) {
  auto pg = mpi_world();
  EXPECT_EQ(pg->backend(), "mpi");
  // Under mpirun the group must be all its ranks, not a group of one per process.
  if (const char* size = std::getenv("OMPI_COMM_WORLD_SIZE")) {
    EXPECT_EQ(pg->size(), std::atoi(size));
    EXPECT_EQ(pg->rank(), std::atoi(std::getenv("OMPI_COMM_WORLD_RANK")));
  } else {
    std::printf("not started by mpirun: a group of one\n");
    EXPECT_EQ(pg->size(), 1);
  }
}

TEST(ProcessGroup, AllreduceEveryDtypeAndOp) {
  auto pg = mpi_world();
  for (DType dtype : kDTypes) {
    for (ReduceOp op : {ReduceOp::sum, ReduceOp::mean, ReduceOp::max}) {
      if (op == ReduceOp::mean && !is_floating(dtype)) continue;
      for (int64_t n : kSizes) {
        Tensor t = filled(pg->rank(), n, dtype);
        pg->allreduce(t, op);
        EXPECT_EQ(t.dtype(), dtype);
        expect_values(
            t, [&](int64_t i) { return reduced(pg->size(), i, dtype, op); },
            str_cat("allreduce ", reduce_op_name(op), " ", dtype_name(dtype), " n=", n));
      }
    }
  }
}

TEST(ProcessGroup, AllreduceWritesBackIntoAView) {
  auto pg = mpi_world();
  Tensor base = filled(pg->rank(), 12, DType::Float32).reshape({3, 4});
  Tensor view = base.t();  // not contiguous: reduced in a copy, written back
  pg->allreduce(view, ReduceOp::sum);
  Tensor want = zeros({3, 4});
  for (int r = 0; r < pg->size(); ++r)
    want = add(want, filled(r, 12, DType::Float32).reshape({3, 4}));
  EXPECT_EQ(base.to_vector<float>(), want.to_vector<float>());
}

TEST(ProcessGroup, BroadcastAllgatherAndReduceScatter) {
  auto pg = mpi_world();
  const int size = pg->size(), root = size - 1;
  for (DType dtype : kDTypes) {
    for (int64_t n : kSizes) {
      std::string what = str_cat(dtype_name(dtype), " n=", n);
      Tensor b = filled(pg->rank(), n, dtype);
      pg->broadcast(b, root);
      expect_values(
          b, [&](int64_t i) { return value(root, i, dtype); }, "broadcast " + what);

      Tensor g = pg->allgather(filled(pg->rank(), n, dtype));
      ASSERT_EQ(g.shape(), (Shape{size, n})) << what;
      for (int r = 0; r < size; ++r) {
        expect_values(
            g.select(0, r), [&](int64_t i) { return value(r, i, dtype); },
            str_cat("allgather from ", r, " ", what));
      }

      Tensor s = pg->reduce_scatter(filled(pg->rank(), n * size, dtype), ReduceOp::sum);
      ASSERT_EQ(s.shape(), (Shape{n})) << what;
      expect_values(
          s, [&](int64_t i) { return reduced(size, pg->rank() * n + i, dtype, ReduceOp::sum); },
          "reduce_scatter " + what);
    }
  }
  pg->barrier();
}

TEST(ProcessGroup, BadCallsAreErrorsOnEveryRankBeforeAnyMessage) {
  auto pg = mpi_world();
  Tensor ints = filled(pg->rank(), 4, DType::Int32);
  EXPECT_THROW(pg->allreduce(ints, ReduceOp::mean), Error);
  Tensor bytes = zeros({4}, DType::UInt8);
  EXPECT_THROW(pg->allreduce(bytes), Error);
  EXPECT_THROW(pg->set_timeout(std::chrono::milliseconds(0)), Error);
  EXPECT_THROW(pg->broadcast(ints, pg->size()), Error);
  if (pg->size() > 1) {
    EXPECT_THROW(pg->reduce_scatter(zeros({pg->size() + 1})), Error);
  }
  pg->barrier();  // every rank got here: none is left waiting in a collective
}

// A duplicate's collectives run on another thread while this one runs the group's own:
// neither mixes into the other.
TEST(ProcessGroup, ADuplicateRunsCollectivesBesideTheGroup) {
  auto pg = mpi_world();
  auto copy = pg->duplicate();
  EXPECT_EQ(copy->rank(), pg->rank());
  EXPECT_EQ(copy->size(), pg->size());
  std::vector<float> beside;
  std::thread other([&] {
    for (int i = 0; i < 50; ++i) {
      Tensor t = full({1000}, static_cast<double>(i + pg->rank()));
      copy->allreduce(t, ReduceOp::sum);
      beside.push_back(t.to_vector<float>()[999]);
    }
  });
  for (int i = 0; i < 50; ++i) {
    Tensor t = full({3}, -static_cast<double>(i));
    pg->allreduce(t, ReduceOp::max);
    EXPECT_EQ(t.to_vector<float>()[0], -static_cast<float>(i));
  }
  other.join();
  const double ranks = pg->size();
  for (int i = 0; i < 50; ++i) {
    EXPECT_EQ(beside[static_cast<size_t>(i)], ranks * i + ranks * (ranks - 1) / 2) << i;
  }
}

TEST(ProcessGroup, TheTimeoutIsSettable) {
  auto pg = mpi_world();
  auto previous = pg->timeout();
  pg->set_timeout(std::chrono::milliseconds(1500));
  EXPECT_EQ(pg->timeout().count(), 1500);
  pg->set_timeout(previous);
}

}  // namespace
}  // namespace tessera::distributed
