// Running independent branches together: the hazard analysis that finds them, and the
// executor running them at the same time with the same results as running in order.
#include <chrono>
#include <thread>

#include "tessera/graph/schedule.h"
#include "test_util.h"

namespace tessera {
namespace {

using graph::MemoryRegion;
using graph::StepAccess;
using testing::expect_close;
using testing::random_tensor;

// A copy that takes `ms` milliseconds without using a core: two of them overlap only if
// the executor runs them at the same time.
MetaList infer_slow_copy(const OpCall& c) { return {{c.in(0).shape(), c.in(0).dtype()}}; }
void cpu_slow_copy(const OpCall& c, std::span<Tensor> out) {
  std::this_thread::sleep_for(std::chrono::milliseconds(c.attrs.i("ms")));
  out[0].copy_(c.in(0));
}
const OpDef kSlowCopy{.name = "test_slow_copy", .infer = infer_slow_copy, .cpu = cpu_slow_copy};
const OpRegistrar register_slow_copy(kSlowCopy);

MemoryRegion bytes(const void* storage, int64_t begin, int64_t end) {
  return {storage, begin, end};
}

using Branches = std::vector<std::vector<int>>;

TEST(Schedule, ForksStartBranchesChainsStayTogetherAndLoneBranchesSplit) {
  // 0 -> {1, 2}; 2 -> 3 (2's only reader); {1, 3} -> 4; 4 -> 5 -> 6 (a lone chain).
  std::vector<std::vector<int>> after = {{}, {0}, {0}, {2}, {1, 3}, {4}, {5}};
  std::vector<graph::Wave> waves = graph::schedule_waves(after, after);
  ASSERT_EQ(waves.size(), 5u);
  EXPECT_EQ(waves[0].branches, (Branches{{0}}));
  EXPECT_EQ(waves[1].branches, (Branches{{1}, {2, 3}}));
  EXPECT_EQ(waves[2].branches, (Branches{{4}}));
  EXPECT_EQ(waves[3].branches, (Branches{{5}}));
  EXPECT_EQ(waves[4].branches, (Branches{{6}}));
}

TEST(Schedule, WaitingWithoutReadingStartsABranch) {
  // 2 waits for 1 without reading it (it overwrites what 1 read): no chain.
  std::vector<std::vector<int>> after = {{}, {0}, {0, 1}, {0}};
  std::vector<std::vector<int>> reads = {{}, {0}, {}, {0}};
  std::vector<graph::Wave> waves = graph::schedule_waves(after, reads);
  ASSERT_EQ(waves.size(), 3u);
  EXPECT_EQ(waves[1].branches, (Branches{{1}, {3}}));
  EXPECT_EQ(waves[2].branches, (Branches{{2}}));
}

TEST(Schedule, IndependentStepsTouchNoCommonWrittenBytes) {
  int a = 0, b = 0;
  StepAccess w0{{}, {bytes(&a, 0, 16)}}, w1{{}, {bytes(&a, 16, 32)}};
  StepAccess r0{{bytes(&a, 8, 12)}, {bytes(&b, 0, 4)}}, r1{{bytes(&a, 20, 24)}, {}};
  EXPECT_TRUE(graph::independent(w0, w1));
  EXPECT_FALSE(graph::independent(w0, r0));  // reads what w0 writes
  EXPECT_FALSE(graph::independent(r0, w0));  // w0 overwrites what r0 reads
  EXPECT_TRUE(graph::independent(r0, r1));   // reads only
  EXPECT_FALSE(graph::independent(w1, r1));
}

TEST(Schedule, RegionsCoverStridedViews) {
  Tensor t = zeros({4, 6}, DType::Float32);
  MemoryRegion whole = graph::region_of(t);
  EXPECT_EQ(whole.end - whole.begin, 96);
  MemoryRegion column = graph::region_of(t.select(1, 2));  // elements 2, 8, 14, 20
  EXPECT_EQ(column.begin, 8);
  EXPECT_EQ(column.end, 84);
  MemoryRegion transposed = graph::region_of(t.transpose(0, 1));
  EXPECT_EQ(transposed.begin, 0);
  EXPECT_EQ(transposed.end, 96);
  EXPECT_EQ(graph::region_of(zeros({0, 3})).storage, nullptr);
}

TEST(Executor, RunsIndependentBranchesAtTheSameTime) {
  if (num_threads() < 2) GTEST_SKIP() << "one thread: branches cannot overlap";
  Function f(
      [](const TensorList& in) {
        Tensor a = run_op1(kSlowCopy, {in[0]}, {{"ms", int64_t{40}}});
        Tensor b = run_op1(kSlowCopy, {neg(in[0])}, {{"ms", int64_t{41}}});
        return TensorList{add(a, b)};
      },
      {.signature = {{{3}}}});
  Tensor x = random_tensor({3}, DType::Float32);
  graph::Executor& ex = f.executor_for({x});
  EXPECT_GE(ex.stats({x.shape()}).concurrent_waves, 1);
  std::vector<double> ms;
  for (int r = 0; r < 5; ++r) {
    auto start = std::chrono::steady_clock::now();
    TensorList y = f({x});
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
                     .count());
    expect_close(y[0], zeros({3}));
  }
  std::sort(ms.begin(), ms.end());
  EXPECT_LT(ms[2], 70.0) << "in order the two branches take 81 ms";
  graph::set_inter_op_parallelism(false);
  auto start = std::chrono::steady_clock::now();
  f({x});
  double apart =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  graph::set_inter_op_parallelism(true);
  EXPECT_GE(apart, 80.0);
}

// A training step has independent branches (the weight and input gradients of each layer):
// results must not depend on whether they run together.
TEST(Executor, ConcurrentBranchesGiveTheSameResultsAsRunningInOrder) {
  Tensor w1 = random_tensor({16, 32}, DType::Float32, -0.3, 0.3, 1);
  Tensor w2 = random_tensor({32, 4}, DType::Float32, -0.3, 0.3, 2);
  auto step = [&](const TensorList& in) {
    Tensor a = w1.detach().set_requires_grad(), b = w2.detach().set_requires_grad();
    Tensor h = tanh(matmul(in[0], a));
    Tensor loss = mean(square(sub(matmul(h, b), in[1])));
    TensorList g = grad({loss}, {a, b});
    return TensorList{loss, g[0], g[1], sigmoid(h), exp(h)};
  };
  Function f(step);
  Tensor x = random_tensor({8, 16}, DType::Float32, -1, 1, 3);
  Tensor y = random_tensor({8, 4}, DType::Float32, -1, 1, 4);
  graph::set_inter_op_parallelism(false);
  TensorList in_order = f({x, y});
  graph::set_inter_op_parallelism(true);
  for (int r = 0; r < 3; ++r) {
    TensorList together = f({x, y});
    for (size_t i = 0; i < together.size(); ++i) expect_close(together[i], in_order[i], 0, 0);
  }
  EXPECT_GT(f.executor_for({x, y}).stats({x.shape(), y.shape()}).waves, 0);
}

}  // namespace
}  // namespace tessera
