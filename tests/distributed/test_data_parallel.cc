// Data-parallel training under `mpirun -np 2`: N ranks with per-rank batch B must follow the
// weights of one process training on the whole batch of N * B (the correctness
// test), for the MLP and the CNN over 50 Adam steps, with gradients exchanged during
// backward or after it, with gradient accumulation, with synchronized batch norm, and
// through Model::fit. Every rank also trains the single-process reference itself, so each
// can check its own weights.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>

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

void expect_close(const std::vector<Tensor>& got, const std::vector<Tensor>& want,
                  const std::string& what, double tolerance = 1e-5) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    std::vector<float> a = got[i].to(DType::Float32).to_vector<float>();
    std::vector<float> b = want[i].to(DType::Float32).to_vector<float>();
    ASSERT_EQ(a.size(), b.size());
    for (size_t k = 0; k < a.size(); ++k) {
      ASSERT_NEAR(a[k], b[k], tolerance * (0.1 + std::fabs(b[k])))
          << what << ": tensor " << i << " at " << k << " on rank " << mpi_world()->rank();
    }
  }
}

// One step of each: this rank on its shard of the global batch (x, y) through `ddp`, and
// the single-process reference on all of it.
void step_both(DataParallel& ddp, nn::Module& net, nn::Optimizer& opt, nn::Module& reference,
               nn::Optimizer& ref_opt, const Tensor& x, const Tensor& y, int64_t per_rank) {
  const int64_t rank = ddp.group().rank();
  opt.zero_grad();
  nn::cross_entropy(net.forward(x.narrow(0, rank * per_rank, per_rank)),
                    y.narrow(0, rank * per_rank, per_rank))
      .backward();
  ddp.average_gradients();
  opt.step();
  ref_opt.zero_grad();
  nn::cross_entropy(reference.forward(x), y).backward();
  ref_opt.step();
}

void expect_same_training(bool cnn, int64_t bucket_bytes, bool overlap = true) {
  auto group = mpi_world();
  const int64_t per_rank = 4, ranks = group->size();
  // Ranks start from different weights: DataParallel gives them rank 0's.
  nn::ModulePtr net = make_net(cnn, 5 + static_cast<uint64_t>(group->rank()));
  DataParallel ddp(net, group, {.bucket_bytes = bucket_bytes, .overlap = overlap});
  nn::ModulePtr reference = make_net(cnn, 5);
  nn::Adam opt(net->parameters(), 1e-2), ref_opt(reference->parameters(), 1e-2);
  for (int step = 0; step < 50; ++step) {
    auto [x, y] = global_batch(step, per_rank * ranks);
    step_both(ddp, *net, opt, *reference, ref_opt, x, y, per_rank);
  }
  EXPECT_GE(ddp.last_bucket_count(), 1);
  if (bucket_bytes <= 1000) {
    EXPECT_GT(ddp.last_bucket_count(), 2);
  }
  EXPECT_GE(ddp.last_sync().hidden_fraction(), 0.0);
  EXPECT_LE(ddp.last_sync().wait_seconds, ddp.last_sync().exchange_seconds + 1.0);
  auto got = net->parameters(), want = reference->parameters();
  expect_close(got, want, cnn ? "CNN" : "MLP");
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

TEST(DataParallel, ExchangingAfterBackwardGivesTheSameTraining) {
  expect_same_training(false, 2000, /*overlap=*/false);
}

// Two micro-batches per rank, the first inside no_sync(): the step must equal one process
// accumulating the two global micro-batches.
TEST(DataParallel, GradientAccumulationExchangesOnlyOnTheLastMicroBatch) {
  auto group = mpi_world();
  const int64_t per_rank = 2, ranks = group->size();
  nn::ModulePtr net = make_net(true, 11), reference = make_net(true, 11);
  DataParallel ddp(net, group, {.bucket_bytes = 1500});
  nn::SGD opt(net->parameters(), 0.05), ref_opt(reference->parameters(), 0.05);
  for (int step = 0; step < 10; ++step) {
    opt.zero_grad();
    ref_opt.zero_grad();
    for (int micro = 0; micro < 2; ++micro) {
      auto [x, y] = global_batch(100 * step + micro, per_rank * ranks);
      Tensor xs = x.narrow(0, group->rank() * per_rank, per_rank);
      Tensor ys = y.narrow(0, group->rank() * per_rank, per_rank);
      if (micro == 0) {
        auto no_sync = ddp.no_sync();
        nn::cross_entropy(net->forward(xs), ys).backward();
      } else {
        nn::cross_entropy(net->forward(xs), ys).backward();
      }
      nn::cross_entropy(reference->forward(x), y).backward();
    }
    ddp.average_gradients();
    opt.step();
    ref_opt.step();
  }
  expect_close(net->parameters(), reference->parameters(), "accumulated CNN");
}

TEST(DataParallel, SecondBackwardWithoutNoSyncIsAClearError) {
  auto group = mpi_world();
  if (group->size() == 1) GTEST_SKIP() << "a group of one exchanges nothing during backward";
  nn::ModulePtr net = make_net(false, 3);
  DataParallel ddp(net, group);
  auto [x, y] = global_batch(0, 2);
  nn::cross_entropy(net->forward(x), y).backward();
  try {
    nn::cross_entropy(net->forward(x), y).backward();
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no_sync()"), std::string::npos) << e.what();
  }
  ddp.average_gradients();  // both ranks still exchange what the first pass started
}

// A parameter that gets no gradient still takes part (as zeros), so the ranks stay in step.
TEST(DataParallel, ParametersWithoutGradientsCountAsZeros) {
  auto group = mpi_world();
  auto net = std::make_shared<nn::Sequential>();
  net->add(std::make_shared<nn::Flatten>()).add(std::make_shared<nn::Linear>(256, 10));
  auto unused = std::make_shared<nn::Linear>(3, 3);
  auto holder = std::make_shared<nn::Sequential>();
  holder->add(net).add(unused);
  DataParallel ddp(holder, group, {.bucket_bytes = 64});
  auto [x, y] = global_batch(1, 2);
  nn::cross_entropy(net->forward(x), y).backward();
  ddp.average_gradients();
  ASSERT_TRUE(unused->weight.grad().defined());
  EXPECT_EQ(sum(abs(unused->weight.grad())).item<float>(), 0.0f);
}

nn::ModulePtr make_bn_net(uint64_t seed) {
  manual_seed(seed);
  auto net = std::make_shared<nn::Sequential>();
  net->add(std::make_shared<nn::Conv2d>(1, 4, 3, nn::ConvOptions{.padding = 1}))
      .add(std::make_shared<nn::BatchNorm2d>(4))
      .add(std::make_shared<nn::ReLU>())
      .add(std::make_shared<nn::MaxPool2d>(4))
      .add(std::make_shared<nn::Flatten>())
      .add(std::make_shared<nn::Linear>(64, 10));
  return net;
}

// Synchronized batch norm: 2 ranks of batch B normalize as one process with batch 2B, so
// weights and running statistics follow it; local batch norm does not.
TEST(DataParallel, SyncBatchNormFollowsOneProcessOnTheWholeBatch) {
  auto group = mpi_world();
  const int64_t per_rank = 3, ranks = group->size();
  for (bool sync : {true, false}) {
    nn::ModulePtr net = make_bn_net(21), reference = make_bn_net(21);
    DataParallel ddp(net, group, {.bucket_bytes = 2000, .sync_batch_norm = sync});
    // SGD, not Adam: the convolution's bias gets only rounding noise through batch norm,
    // which Adam would scale up to full steps.
    nn::SGD opt(net->parameters(), 0.1), ref_opt(reference->parameters(), 0.1);
    for (int step = 0; step < 10; ++step) {
      auto [x, y] = global_batch(step, per_rank * ranks);
      // Shifted and scaled, so that statistics differ from those of the default init.
      step_both(ddp, *net, opt, *reference, ref_opt, x * 2.0 + 0.5, y, per_rank);
    }
    auto state = [](const nn::ModulePtr& m) {
      std::vector<Tensor> out = m->parameters();
      for (auto& [name, b] : m->named_buffers()) out.push_back(b);
      return out;
    };
    if (sync) {
      expect_close(state(net), state(reference), "sync batch norm", 1e-4);
    } else if (ranks > 1) {
      auto norm = std::dynamic_pointer_cast<nn::BatchNorm>(
          (*std::dynamic_pointer_cast<nn::Sequential>(net))[1]);
      Tensor mine = norm->running_mean.clone(), top = norm->running_mean.clone();
      group->allreduce(top, ReduceOp::max);
      EXPECT_NE(mine.to_vector<float>(), top.to_vector<float>())
          << "local batch norm should keep each rank's own statistics";
    }
  }
}

// Model::fit with DataParallel on shards of a shuffled data set follows fit() of one
// process on the whole batch: the same weights, and the same epoch loss and accuracy
// (reduced over ranks); only rank 0 prints and writes logs.
TEST(DataParallel, FitOnShardsFollowsFitOnTheWholeBatch) {
  auto group = mpi_world();
  const int64_t per_rank = 8, ranks = group->size(), n = 64 * ranks;
  Generator gen(77);
  Tensor images = uniform({n, 1, 16, 16}, -1, 1, DType::Float32, &gen);
  Tensor labels = randint(0, 10, {n}, DType::Int64, &gen);
  data::Dataset all = data::Dataset::from_tensors({images, labels}).shuffle(n, 9);
  auto loss = [](const Tensor& p, const Tensor& t) { return nn::cross_entropy(p, t); };

  nn::Model model(make_net(true, 31 + static_cast<uint64_t>(group->rank())));
  model.compile(std::make_shared<nn::Adam>(model.module().parameters(), 1e-2), loss,
                {std::make_shared<nn::Accuracy>()});
  model.distribute(std::make_shared<DataParallel>(model.module_ptr(), group,
                                                  DataParallelOptions{.bucket_bytes = 1500}));
  std::string csv = str_cat("/tmp/tessera_ddp_fit_", ::getpid(), "_rank", group->rank(), ".csv");
  nn::FitOptions options{.epochs = 2, .verbose = 2};
  options.callbacks.push_back(std::make_shared<nn::CSVLogger>(csv));
  ::testing::internal::CaptureStdout();
  nn::History history = model.fit(all.shard(ranks, group->rank()).batch(per_rank), options);
  std::string printed = ::testing::internal::GetCapturedStdout();

  nn::Model reference(make_net(true, 31));
  reference.compile(std::make_shared<nn::Adam>(reference.module().parameters(), 1e-2), loss,
                    {std::make_shared<nn::Accuracy>()});
  nn::History want = reference.fit(all.batch(per_rank * ranks), {.epochs = 2, .verbose = 0});

  expect_close(model.module().parameters(), reference.module().parameters(), "fit");
  for (const char* name : {"loss", "accuracy"}) {
    for (size_t e = 0; e < 2; ++e) {
      EXPECT_NEAR(history[name][e], want[name][e], 1e-5) << name << " epoch " << e;
    }
  }
  bool chief = group->rank() == 0;
  EXPECT_EQ(printed.find("Epoch 1/2") != std::string::npos, chief) << printed;
  EXPECT_EQ(std::ifstream(csv).good(), chief);
  std::remove(csv.c_str());
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
  // Shards of a shuffled data set, for a seed: disjoint in every pass, and different passes
  // see different orders.
  for (uint64_t pass : {0, 1}) {
    data::Dataset shuffled = data::Dataset::range(100).shuffle(100, 5);
    shuffled.set_next_pass(pass);
    std::vector<data::Example> part = shuffled.shard(group->size(), group->rank()).collect();
    std::vector<int64_t> counts(100, 0);
    for (const data::Example& e : part) ++counts[static_cast<size_t>(e[0].item<int64_t>())];
    Tensor seen = from_vector(counts, {100});
    group->allreduce(seen, ReduceOp::sum);
    EXPECT_EQ(seen.to_vector<int64_t>(), std::vector<int64_t>(100, 1)) << "pass " << pass;
  }
}

}  // namespace
}  // namespace tessera::distributed
