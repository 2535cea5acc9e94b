// The distributed benchmark (bench/run_distributed.sh runs it under mpirun):
//   bench_distributed train [--steps N] [--threads T] [--batch B]
//     trains the main job's CNN on Fashion-MNIST data-parallel over the ranks (global batch
//     B, default 128), and rank 0 prints one line: ranks, threads per rank, images/s, and the
//     gradient exchange per step (time on the communication thread, time backward's end
//     waited for it, the hidden part).
//   bench_distributed allreduce
//     float32 allreduce of 1 KiB to 64 MiB: Tessera's process group against MPI_Allreduce
//     alone on the same buffers, median of repeats, as algorithm bandwidth (bytes / time).
#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "../tools/reference_models.h"
#include "tessera/core/parallel.h"
#include "tessera/data/readers.h"
#include "tessera/distributed/data_parallel.h"
#include "tessera/distributed/mpi.h"
#include "tessera/nn/nn.h"
#include "tessera/tessera.h"

using namespace tessera;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

double median(std::vector<double> v) {
  std::nth_element(v.begin(), v.begin() + static_cast<ptrdiff_t>(v.size() / 2), v.end());
  return v[v.size() / 2];
}

int int_flag(int argc, char** argv, const char* name, int fallback) {
  for (int i = 2; i + 1 < argc; ++i) {
    if (std::strcmp(argv[i], name) == 0) return std::atoi(argv[i + 1]);
  }
  return fallback;
}

int train(int argc, char** argv) {
  auto group = distributed::mpi_world();
  const int steps = int_flag(argc, argv, "--steps", 200), warmup = 10;
  const int64_t batch = int_flag(argc, argv, "--batch", 128);
  set_num_threads(int_flag(argc, argv, "--threads", 1));
  check(batch % group->size() == 0, "bench_distributed", "the batch must divide over the ranks");
  const std::string dir = "/usr/share/datasets/fashion-mnist";
  TensorList pair =
      data::read_idx_pair(dir + "/train-images-idx3-ubyte.gz", dir + "/train-labels-idx1-ubyte.gz");
  data::Dataset batches = data::Dataset::from_tensors(pair)
                              .shuffle(pair[0].size(0), 42)
                              .shard(group->size(), group->rank())
                              .batch(batch / group->size())
                              .map([](data::Example b) {
                                b[0] = (b[0] - tools::kFashionMean) / tools::kFashionStd;
                                return b;
                              })
                              .repeat()
                              .prefetch(2);
  manual_seed(42);
  nn::Model model(tools::make_reference_cnn());
  model.compile(std::make_shared<nn::Adam>(model.module().parameters(), 1e-3),
                [](const Tensor& p, const Tensor& t) { return nn::cross_entropy(p, t); });
  std::shared_ptr<distributed::DataParallel> ddp;
  // --independent 1: the ranks train alone (no exchange), to separate the cost of sharing
  // the machine from the cost of communicating.
  if (group->size() > 1 && !int_flag(argc, argv, "--independent", 0)) {
    distributed::DataParallelOptions options;
    options.overlap = int_flag(argc, argv, "--overlap", 1) != 0;
    options.bucket_bytes = int_flag(argc, argv, "--bucket-kib", 1024) * int64_t{1024};
    options.final_bucket_bytes = int_flag(argc, argv, "--final-bucket-kib", 64) * int64_t{1024};
    ddp = std::make_shared<distributed::DataParallel>(model.module_ptr(), group, options);
    model.distribute(ddp);
  }
  auto it = batches.iterator();
  double exchange = 0, wait = 0, cpu = 0;
  Clock::time_point start;
  for (int step = 0; step < warmup + steps; ++step) {
    if (step == warmup) {
      group->barrier();
      start = Clock::now();
    }
    data::Example b = *it->next();
    model.train_step(b[0], b[1]);
    if (ddp && step >= warmup) {
      exchange += ddp->last_sync().exchange_seconds;
      wait += ddp->last_sync().wait_seconds;
      cpu += ddp->last_sync().exchange_cpu_seconds;
    }
  }
  group->barrier();
  double seconds = seconds_since(start);
  if (group->rank() == 0) {
    double hidden = exchange > 0 ? std::clamp(1.0 - wait / exchange, 0.0, 1.0) : 1.0;
    std::printf(
        "train ranks=%d threads=%d images_per_s=%.1f exchange_ms_per_step=%.3f "
        "waited_ms_per_step=%.3f exchange_cpu_ms_per_step=%.3f hidden=%.3f\n",
        group->size(), num_threads(), static_cast<double>(steps * batch) / seconds,
        1e3 * exchange / steps, 1e3 * wait / steps, 1e3 * cpu / steps, hidden);
  }
  return 0;
}

int allreduce() {
  auto group = distributed::mpi_world();
  if (group->rank() == 0) {
    std::printf("%10s %14s %14s %8s\n", "bytes", "tessera_GB/s", "mpi_GB/s", "ratio");
  }
  for (int64_t bytes = 1024; bytes <= (int64_t{64} << 20); bytes *= 4) {
    const int64_t n = bytes / 4;
    const int repeats = bytes <= (1 << 20) ? 200 : 20;
    Tensor t = full({n}, 1.0);
    std::vector<float> raw(static_cast<size_t>(n), 1.0f);
    std::vector<double> ours, theirs;
    // Interleaved, so that noise on the shared machine falls on both alike.
    for (int r = 0; r < repeats + 3; ++r) {
      MPI_Barrier(MPI_COMM_WORLD);
      auto s = Clock::now();
      group->allreduce(t, distributed::ReduceOp::sum);
      double a = seconds_since(s);
      MPI_Barrier(MPI_COMM_WORLD);
      s = Clock::now();
      MPI_Allreduce(MPI_IN_PLACE, raw.data(), static_cast<int>(n), MPI_FLOAT, MPI_SUM,
                    MPI_COMM_WORLD);
      double b = seconds_since(s);
      if (r >= 3) ours.push_back(a), theirs.push_back(b);
    }
    double ours_s = median(ours), theirs_s = median(theirs);
    if (group->rank() == 0) {
      std::printf("%10lld %14.3f %14.3f %8.2f\n", static_cast<long long>(bytes),
                  static_cast<double>(bytes) / ours_s / 1e9,
                  static_cast<double>(bytes) / theirs_s / 1e9, theirs_s / ours_s);
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    std::string mode = argc > 1 ? argv[1] : "";
    if (mode == "train") return train(argc, argv);
    if (mode == "allreduce") return allreduce();
    std::fprintf(stderr, "usage: bench_distributed train|allreduce [options]\n");
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_distributed: %s\n", e.what());
    return 1;
  }
}
