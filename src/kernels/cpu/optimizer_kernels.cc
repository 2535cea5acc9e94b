// Optimizer update loops (see optimizer_kernels.h): one loop per rule over the raw data,
// split across the intra-op threads (elements are independent, so any split gives the same
// bits), in PyTorch's order of operations. Float32 Adam runs the ISA's loop from simd();
// this file is compiled with -fno-math-errno so sqrt vectorizes in the others.
#include "optimizer_kernels.h"

#include <algorithm>
#include <cmath>
#include <type_traits>

#include "simd.h"
#include "tessera/core/parallel.h"

namespace tessera::cpu {
namespace {

template <class F>
void with_float_type(const Tensor& p, F&& f) {
  if (p.dtype() == DType::Float32) {
    f(float{});
  } else {
    f(double{});
  }
}

#include "adam_loop.inc"

}  // namespace

void adam_update(const Tensor& p, const Tensor& m, const Tensor& v, const Tensor& vmax,
                 const Tensor& g, const AdamStep& s) {
  double bc1 = 1 - std::pow(s.beta1, static_cast<double>(s.step));
  double bc2_sqrt = std::sqrt(1 - std::pow(s.beta2, static_cast<double>(s.step)));
  double step_size = s.lr / bc1;
  with_float_type(p, [&](auto zero) {
    using T = decltype(zero);
    AdamConstants<T> k{
        T(1 - s.beta1), T(s.beta2), T(1 - s.beta2), T(s.weight_decay), T(1 - s.lr * s.weight_decay),
        T(bc2_sqrt),    T(s.eps),   T(-step_size),  s.decoupled,       s.amsgrad};
    T *pd = p.data<T>(), *md = m.data<T>(), *vd = v.data<T>();
    T* xd = s.amsgrad ? vmax.data<T>() : nullptr;
    const T* gd = g.data<T>();
    parallel_for(0, p.numel(), kParallelGrain, [&](int64_t lo, int64_t hi) {
      if constexpr (std::is_same_v<T, float>) {
        simd().adam_f32(pd, md, vd, xd, gd, lo, hi, k);  // the widest vectors the CPU has
      } else {
        adam_range_any(pd, md, vd, xd, gd, lo, hi, k);
      }
    });
  });
}

void sgd_update(const Tensor& p, const Tensor& buf, const Tensor& g, const SgdStep& s) {
  with_float_type(p, [&](auto zero) {
    using T = decltype(zero);
    T *pd = p.data<T>(), *bd = buf.defined() ? buf.data<T>() : nullptr;
    const T* gd = g.data<T>();
    T lr = T(s.lr);
    double wd = s.weight_decay, momentum = s.momentum;
    parallel_for(0, p.numel(), kParallelGrain, [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i) {
        T d = gd[i];
        if (wd != 0) d += T(wd) * pd[i];
        if (bd) {
          bd[i] = s.first ? d : T(momentum) * bd[i] + T(1 - s.dampening) * d;
          d = s.nesterov ? d + T(momentum) * bd[i] : bd[i];
        }
        pd[i] -= lr * d;
      }
    });
  });
}

}  // namespace tessera::cpu
