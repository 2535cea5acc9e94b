// Optimizer update loops (see optimizer_kernels.h): one loop per rule over the raw data,
// split across the intra-op threads (elements are independent, so any split gives the same
// bits), in PyTorch's order of operations. Compiled with -fno-math-errno so sqrt vectorizes.
#include "optimizer_kernels.h"

#include <algorithm>
#include <cmath>

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

// The Adam step over [lo, hi): branch-free and with unaliased pointers so that it
// vectorizes (it is the hot loop of most training runs).
template <typename T, bool kAmsgrad, bool kDecoupled>
void adam_range(T* __restrict p, T* __restrict m, T* __restrict v, T* __restrict vmax,
                const T* __restrict g, int64_t lo, int64_t hi, T one_minus_b1, T b2, T one_minus_b2,
                T wd, T decay, T bc2_sqrt, T eps, T neg_step) {
  for (int64_t i = lo; i < hi; ++i) {
    T d = g[i];
    if constexpr (kDecoupled) {
      p[i] *= decay;
    } else {
      d += wd * p[i];
    }
    m[i] += (d - m[i]) * one_minus_b1;  // PyTorch's lerp form
    v[i] = v[i] * b2 + d * d * one_minus_b2;
    T second = v[i];
    if constexpr (kAmsgrad) second = vmax[i] = std::max(vmax[i], v[i]);
    T denom = std::sqrt(second) / bc2_sqrt + eps;
    p[i] += neg_step * (m[i] / denom);
  }
}

}  // namespace

void adam_update(const Tensor& p, const Tensor& m, const Tensor& v, const Tensor& vmax,
                 const Tensor& g, const AdamStep& s) {
  double bc1 = 1 - std::pow(s.beta1, static_cast<double>(s.step));
  double bc2_sqrt = std::sqrt(1 - std::pow(s.beta2, static_cast<double>(s.step)));
  double step_size = s.lr / bc1;
  with_float_type(p, [&](auto zero) {
    using T = decltype(zero);
    T *pd = p.data<T>(), *md = m.data<T>(), *vd = v.data<T>();
    T* xd = s.amsgrad ? vmax.data<T>() : nullptr;
    const T* gd = g.data<T>();
    auto run = [&](auto kernel) {
      parallel_for(0, p.numel(), kParallelGrain, [&](int64_t lo, int64_t hi) {
        kernel(pd, md, vd, xd, gd, lo, hi, T(1 - s.beta1), T(s.beta2), T(1 - s.beta2),
               T(s.weight_decay), T(1 - s.lr * s.weight_decay), T(bc2_sqrt), T(s.eps),
               T(-step_size));
      });
    };
    if (s.amsgrad) {
      s.decoupled ? run(adam_range<T, true, true>) : run(adam_range<T, true, false>);
    } else {
      s.decoupled ? run(adam_range<T, false, true>) : run(adam_range<T, false, false>);
    }
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
