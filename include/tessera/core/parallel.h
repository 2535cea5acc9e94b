// The intra-op thread pool. Tessera's loops and oneDNN share OpenMP's pool, since
// two pools on two cores thrash (see DESIGN.md).
#pragma once
#include <cstdint>
#include <functional>

namespace tessera {

// Threads used by ops; defaults to the number of cores.
int num_threads();
void set_num_threads(int n);
// The calling thread's ops use n threads whatever the process's count (0: follow it
// again). The data pipeline's threads run their ops on one: they overlap training, which
// has the cores, and a second OpenMP team of theirs would spin beside it.
void set_this_thread_num_threads(int n);

// Pays the CPU kernels' one-off start-up costs now: oneDNN generates its matrix-multiply
// code on the first product of the process (about 30 ms here). A program can run this on a
// thread of its own while it loads data, so that its first training step does not wait.
void warm_up_kernels();

// Below this many elements of simple work, loops stay on the calling thread.
inline constexpr int64_t kParallelGrain = 32768;

namespace detail {
void parallel_run(int64_t begin, int64_t end, int64_t grain,
                  const std::function<void(int64_t, int64_t)>& fn);
bool in_parallel_region();
}  // namespace detail

// Calls fn(chunk_begin, chunk_end) over [begin, end) split into contiguous chunks,
// one per thread when the range is at least `grain` long.
template <typename F>
void parallel_for(int64_t begin, int64_t end, int64_t grain, F&& fn) {
  if (end <= begin) return;
  // Below two grains of work, waking a second thread costs more than it saves.
  if (end - begin < 2 * grain || num_threads() == 1 || detail::in_parallel_region()) {
    fn(begin, end);
    return;
  }
  detail::parallel_run(begin, end, grain, fn);
}

}  // namespace tessera
