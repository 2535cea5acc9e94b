// oneDNN matmul primitives for gemm_f32 (see matmul_onednn.h), kept per geometry and thread
// count: creating one costs far more than running it.
#include "matmul_onednn.h"

#include <omp.h>

#include <cstring>
#include <dnnl.hpp>
#include <memory>
#include <mutex>
#include <unordered_map>

#include "scratch.h"

namespace tessera::cpu {
namespace {

using dnnl::memory;

dnnl::engine& engine() {
  static dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  return eng;
}

struct Key {
  int64_t m, n, k, lda, ldb, ldc;
  bool trans_a, trans_b, accumulate;
  int threads;  // oneDNN sizes its work split by the threads at creation
  bool operator==(const Key&) const = default;
};

struct KeyHash {
  size_t operator()(const Key& key) const {
    size_t h = 0;
    for (int64_t v : {key.m, key.n, key.k, key.lda, key.ldb, key.ldc,
                      int64_t{key.trans_a} << 2 | int64_t{key.trans_b} << 1 | key.accumulate,
                      int64_t{key.threads}}) {
      h = (h ^ static_cast<size_t>(v)) * 0x100000001B3ull;
    }
    return h;
  }
};

// A primitive and its operands' and scratchpad's descriptions; no primitive where oneDNN
// would fall back to a slower implementation than brgemm. The scratchpad is the caller's
// (a buffer per call): a cached primitive with oneDNN's own scratchpad gives wrong results
// when two threads run it at once.
struct Plan {
  memory::desc a, b, c, scratchpad;
  std::unique_ptr<dnnl::matmul> matmul;
};

std::shared_ptr<const Plan> make_plan(const Key& key) {
  auto plan = std::make_shared<Plan>();
  try {
    // Row-major strides; a transposed operand is the same memory read column by column.
    plan->a = memory::desc({key.m, key.k}, memory::data_type::f32,
                           key.trans_a ? memory::dims{1, key.lda} : memory::dims{key.lda, 1});
    plan->b = memory::desc({key.k, key.n}, memory::data_type::f32,
                           key.trans_b ? memory::dims{1, key.ldb} : memory::dims{key.ldb, 1});
    plan->c = memory::desc({key.m, key.n}, memory::data_type::f32, memory::dims{key.ldc, 1});
    dnnl::primitive_attr attr;
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    if (key.accumulate) {
      dnnl::post_ops ops;
      ops.append_sum(1.0f);
      attr.set_post_ops(ops);
    }
    dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(plan->a, plan->b, plan->c), attr, engine());
    if (std::strncmp(pd.impl_info_str(), "brg", 3) == 0) {
      plan->scratchpad = pd.scratchpad_desc();
      plan->matmul = std::make_unique<dnnl::matmul>(pd);
    }
  } catch (const dnnl::error&) {  // no implementation: sgemm it is
  }
  return plan;
}

std::shared_ptr<const Plan> plan_for(const Key& key) {
  static std::mutex mutex;
  static auto* plans =
      new std::unordered_map<Key, std::shared_ptr<const Plan>, KeyHash>();  // outlives exit
  constexpr size_t kMaxPlans = 256;
  std::lock_guard<std::mutex> lock(mutex);
  auto it = plans->find(key);
  if (it != plans->end()) return it->second;
  if (plans->size() >= kMaxPlans) plans->clear();  // shapes that keep changing: start over
  return plans->emplace(key, make_plan(key)).first->second;
}

}  // namespace

bool onednn_matmul_f32(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, const float* a,
                       int64_t lda, const float* b, int64_t ldb, float* c, int64_t ldc,
                       bool accumulate) {
  Key key{m, n, k, lda, ldb, ldc, trans_a, trans_b, accumulate, omp_get_max_threads()};
  std::shared_ptr<const Plan> plan = plan_for(key);
  if (!plan->matmul) return false;
  thread_local dnnl::stream stream(engine());
  memory am(plan->a, engine(), const_cast<float*>(a));
  memory bm(plan->b, engine(), const_cast<float*>(b));
  memory cm(plan->c, engine(), c);
  Scratch pad(plan->scratchpad.get_size());
  memory pm(plan->scratchpad, engine(), pad.ptr);
  plan->matmul->execute(
      stream,
      {{DNNL_ARG_SRC, am}, {DNNL_ARG_WEIGHTS, bm}, {DNNL_ARG_DST, cm}, {DNNL_ARG_SCRATCHPAD, pm}});
  stream.wait();
  return true;
}

}  // namespace tessera::cpu
