#include "tessera/core/parallel.h"

#include <omp.h>

#include <algorithm>
#include <atomic>

namespace tessera {
namespace {

// The count for the whole process. OpenMP keeps one per thread (omp_set_num_threads sets
// only the caller's), so a thread the user or Tessera started (the data pipeline's, the
// gradient exchange's) would otherwise run ops on every core after set_num_threads(1).
std::atomic<int> g_threads{0};     // 0: not chosen yet (OpenMP's default)
thread_local int t_threads = 0;    // this thread's own count; 0: the process's
thread_local int t_saved_omp = 0;  // OpenMP's count for this thread before its own count

}  // namespace

int num_threads() {
  int wanted = t_threads != 0 ? t_threads : g_threads.load(std::memory_order_relaxed);
  if (wanted == 0) return omp_get_max_threads();
  // Bring this thread's OpenMP count in line, for oneDNN, which reads OpenMP's.
  if (omp_get_max_threads() != wanted && !omp_in_parallel()) omp_set_num_threads(wanted);
  return wanted;
}

void set_num_threads(int n) {
  g_threads = std::max(1, n);
  omp_set_num_threads(g_threads);
}

void set_this_thread_num_threads(int n) {
  if (t_threads == 0) t_saved_omp = omp_get_max_threads();
  t_threads = std::max(0, n);
  const int process = g_threads.load(std::memory_order_relaxed);
  omp_set_num_threads(t_threads != 0 ? t_threads : process != 0 ? process : t_saved_omp);
}

namespace detail {

bool in_parallel_region() { return omp_in_parallel() != 0; }

void parallel_run(int64_t begin, int64_t end, int64_t grain,
                  const std::function<void(int64_t, int64_t)>& fn) {
  int64_t n = end - begin;
  int threads = static_cast<int>(std::min<int64_t>(num_threads(), (n + grain - 1) / grain));
  threads = std::max(threads, 1);
#pragma omp parallel num_threads(threads)
  {
    int t = omp_get_thread_num(), nt = omp_get_num_threads();
    int64_t chunk = (n + nt - 1) / nt;
    int64_t lo = begin + t * chunk, hi = std::min(end, lo + chunk);
    if (lo < hi) fn(lo, hi);
  }
}

}  // namespace detail
}  // namespace tessera
