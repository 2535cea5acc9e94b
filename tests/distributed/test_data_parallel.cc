// Data-parallel training under `mpirun -np 2`: N ranks with per-rank batch B must follow the
// weights of one process training on the whole batch of N * B (the correctness
// test), for the MLP and the CNN over 50 Adam steps. Every rank also trains that
// single-process reference itself, so each can check its own weights.
#include <gtest/gtest.h>

#include "../test_models.h"
#include "tessera/data/dataset.h"
#include "tessera/distributed/data_parallel.h"
#include "tessera/distributed/mpi.h"
#include "tessera/nn/nn.h"
#include "tessera/tessera.h"

namespace tessera::distributed {
namespace {

nn::ModulePtr make_net(bool cnn, uint64_t seed) {
  manual_seed(seed);
  return testing::make_small_net(cnn);
}

// Global batch `step` of the data every rank can generate: N * B images and labels.
std::pair<Tensor, Tensor> global_batch(int step, int64_t n) {
  Generator gen(1000 + step);
  Tensor x = uniform({n, 1, 16, 16}, -1, 1, DType::Float32, &gen);
  Tensor y = randint(0, 10, {n}, DType::Int64, &gen);
  return {x, y};
}

void expect_same_training(bool cnn, int64_t bucket_bytes) {
  auto group = mpi_world();
  const int64_t per_rank = 4, ranks = group->size();
  // Ranks start from different weights: DataParallel gives them rank 0's.
  nn::ModulePtr net = make_net(cnn, 5 + static_cast<uint64_t>(group->rank()));
  DataParallel ddp(net, group, {.bucket_bytes = bucket_bytes});
  nn::ModulePtr reference = make_net(cnn, 5);
  nn::Adam opt(net->parameters(), 1e-2), ref_opt(reference->parameters(), 1e-2);
  for (int step = 0; step < 50; ++step) {
    auto [x, y] = global_batch(step, per_rank * ranks);
    Tensor xs = x.narrow(0, group->rank() * per_rank, per_rank);
    Tensor ys = y.narrow(0, group->rank() * per_rank, per_rank);
    opt.zero_grad();
    nn::cross_entropy(net->forward(xs), ys).backward();
    ddp.average_gradients();
    opt.step();
    ref_opt.zero_grad();
    nn::cross_entropy(reference->forward(x), y).backward();
    ref_opt.step();
  }
  EXPECT_GE(ddp.last_bucket_count(), 1);
  auto got = net->parameters(), want = reference->parameters();
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    std::vector<float> a = got[i].to_vector<float>(), b = want[i].to_vector<float>();
    for (size_t k = 0; k < a.size(); ++k) {
      ASSERT_NEAR(a[k], b[k], 1e-6 + 1e-5 * std::fabs(b[k]))
          << (cnn ? "CNN" : "MLP") << " parameter " << i << " at " << k << " on rank "
          << group->rank();
    }
  }
  // Every rank holds the same weights.
  for (Tensor& p : got) {
    Tensor mine = p.clone(), top = p.clone();
    group->allreduce(top, ReduceOp::max);
    EXPECT_EQ(mine.to_vector<float>(), top.to_vector<float>());
  }
}

TEST(DataParallel, MlpOnNRanksFollowsOneProcessOnTheWholeBatch) {
  expect_same_training(false, int64_t{25} << 20);
}

TEST(DataParallel, CnnInSmallBucketsFollowsOneProcessOnTheWholeBatch) {
  expect_same_training(true, 1000);  // buckets of a few parameters, sizes not multiples
}

TEST(DataParallel, ShardsOfADatasetAreDisjointAndCoverIt) {
  auto group = mpi_world();
  data::Dataset all = data::Dataset::range(10);
  std::vector<data::Example> mine = all.shard(group->size(), group->rank()).collect();
  Tensor count = scalar_tensor(static_cast<int64_t>(mine.size()), DType::Int64);
  group->allreduce(count, ReduceOp::sum);
  EXPECT_EQ(count.item<int64_t>(), 10);
  for (const data::Example& e : mine) {
    EXPECT_EQ(e[0].item<int64_t>() % group->size(), group->rank());
  }
}

}  // namespace
}  // namespace tessera::distributed
