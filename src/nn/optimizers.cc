// Update rules, one loop per optimizer over the raw float32/float64 data, split across
// the intra-op threads (elements are independent, so any split gives the same bits). The
// arithmetic follows PyTorch's order of operations so results agree to rounding. This
// file is compiled with -fno-math-errno so that sqrt vectorizes.
#include <cmath>

#include "../kernels/cpu/optimizer_kernels.h"
#include "tessera/core/error.h"
#include "tessera/core/parallel.h"
#include "tessera/nn/optim.h"

namespace tessera::nn {
namespace {

// Calls f(T{}) with T the parameter's element type.
template <class F>
void with_float_type(const Tensor& p, F&& f) {
  if (p.dtype() == DType::Float32)
    f(float{});
  else
    f(double{});
}

// The defaults overridden by the given options, each of which must be known.
Options with(const char* optimizer, Options defaults, const Options& given) {
  for (auto& [k, v] : given) {
    check(defaults.count(k), optimizer, "unknown option '", k, "'");
    defaults[k] = v;
  }
  return defaults;
}

}  // namespace

// ------------------------------------------------------------------ SGD
static const Options kSgd{
    {"lr", 1e-2}, {"momentum", 0}, {"dampening", 0}, {"weight_decay", 0}, {"nesterov", 0}};

SGD::SGD(std::vector<ParamGroup> groups, Options defaults)
    : Optimizer("SGD", std::move(groups), with("SGD", kSgd, defaults)) {}

SGD::SGD(const std::vector<Tensor>& params, double lr, double momentum, double weight_decay,
         bool nesterov)
    : SGD(single_group(params), {{"lr", lr},
                                 {"momentum", momentum},
                                 {"weight_decay", weight_decay},
                                 {"nesterov", nesterov ? 1 : 0}}) {}

void SGD::update(Tensor& p, const Tensor& g, State& s, const Options& o) {
  double momentum = o.at("momentum");
  bool first = !s.slots.count("momentum_buffer");
  Tensor buf = momentum != 0 ? slot(s, "momentum_buffer", p) : Tensor();
  cpu::sgd_update(p, buf, g,
                  {o.at("lr"), momentum, o.at("dampening"), o.at("weight_decay"),
                   o.at("nesterov") != 0, first});
}

// ------------------------------------------------------------------ Adam, AdamW
static const Options kAdam{{"lr", 1e-3},  {"beta1", 0.9},      {"beta2", 0.999},
                           {"eps", 1e-8}, {"weight_decay", 0}, {"amsgrad", 0}};

Adam::Adam(std::vector<ParamGroup> groups, Options defaults)
    : Optimizer("Adam", std::move(groups), with("Adam", kAdam, defaults)) {}
Adam::Adam(const std::vector<Tensor>& params, double lr, Options extra)
    : Adam(single_group(params), with("Adam", kAdam, extra)) {
  set_lr(lr);
}
Adam::Adam(const char* name, std::vector<ParamGroup> groups, Options defaults)
    : Optimizer(name, std::move(groups), std::move(defaults)) {}

static Options adamw_defaults(const Options& given) {
  Options d = kAdam;
  d["weight_decay"] = 1e-2;
  d["decoupled"] = 1;
  return with("AdamW", d, given);
}
AdamW::AdamW(std::vector<ParamGroup> groups, Options defaults)
    : Adam("AdamW", std::move(groups), adamw_defaults(defaults)) {}
AdamW::AdamW(const std::vector<Tensor>& params, double lr, Options extra)
    : AdamW(single_group(params), extra) {
  set_lr(lr);
}

void Adam::update(Tensor& p, const Tensor& g, State& s, const Options& o) {
  bool decoupled = o.count("decoupled") && o.at("decoupled") != 0, ams = o.at("amsgrad") != 0;
  Tensor m = slot(s, "exp_avg", p), v = slot(s, "exp_avg_sq", p);
  Tensor vmax = ams ? slot(s, "max_exp_avg_sq", p) : Tensor();
  cpu::adam_update(p, m, v, vmax, g,
                   {o.at("lr"), o.at("beta1"), o.at("beta2"), o.at("eps"), o.at("weight_decay"),
                    decoupled, ams, s.step});
}

// ------------------------------------------------------------------ RMSprop
RMSprop::RMSprop(std::vector<ParamGroup> groups, Options defaults)
    : Optimizer("RMSprop", std::move(groups),
                with("RMSprop",
                     {{"lr", 1e-2},
                      {"alpha", 0.99},
                      {"eps", 1e-8},
                      {"weight_decay", 0},
                      {"momentum", 0},
                      {"centered", 0}},
                     defaults)) {}

void RMSprop::update(Tensor& p, const Tensor& g, State& s, const Options& o) {
  double alpha = o.at("alpha"), eps = o.at("eps"), wd = o.at("weight_decay");
  double momentum = o.at("momentum"), lr = o.at("lr");
  bool centered = o.at("centered") != 0;
  Tensor sq = slot(s, "square_avg", p);
  Tensor ga = centered ? slot(s, "grad_avg", p) : Tensor();
  Tensor buf = momentum > 0 ? slot(s, "momentum_buffer", p) : Tensor();
  with_float_type(p, [&](auto zero) {
    using T = decltype(zero);
    T *pd = p.data<T>(), *sd = sq.data<T>();
    T* ad = centered ? ga.data<T>() : nullptr;
    T* bd = buf.defined() ? buf.data<T>() : nullptr;
    const T* gd = g.data<T>();
    parallel_for(0, p.numel(), kParallelGrain, [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i) {
        T d = gd[i];
        if (wd != 0) d += T(wd) * pd[i];
        sd[i] = sd[i] * T(alpha) + d * d * T(1 - alpha);
        T avg;
        if (ad) {
          ad[i] += (d - ad[i]) * T(1 - alpha);
          avg = std::sqrt(sd[i] - ad[i] * ad[i]) + T(eps);
        } else {
          avg = std::sqrt(sd[i]) + T(eps);
        }
        if (bd) {
          bd[i] = bd[i] * T(momentum) + d / avg;
          pd[i] += T(-lr) * bd[i];
        } else {
          pd[i] += T(-lr) * (d / avg);
        }
      }
    });
  });
}

// ------------------------------------------------------------------ Adagrad
Adagrad::Adagrad(std::vector<ParamGroup> groups, Options defaults)
    : Optimizer("Adagrad", std::move(groups),
                with("Adagrad",
                     {{"lr", 1e-2},
                      {"lr_decay", 0},
                      {"weight_decay", 0},
                      {"initial_accumulator_value", 0},
                      {"eps", 1e-10}},
                     defaults)) {}

void Adagrad::update(Tensor& p, const Tensor& g, State& s, const Options& o) {
  double wd = o.at("weight_decay"), eps = o.at("eps");
  double clr = o.at("lr") / (1 + static_cast<double>(s.step - 1) * o.at("lr_decay"));
  Tensor acc = slot(s, "sum", p, o.at("initial_accumulator_value"));
  with_float_type(p, [&](auto zero) {
    using T = decltype(zero);
    T *pd = p.data<T>(), *ad = acc.data<T>();
    const T* gd = g.data<T>();
    parallel_for(0, p.numel(), kParallelGrain, [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i) {
        T d = gd[i];
        if (wd != 0) d += T(wd) * pd[i];
        ad[i] += d * d;
        pd[i] += T(-clr) * (d / (std::sqrt(ad[i]) + T(eps)));
      }
    });
  });
}

// ------------------------------------------------------------------ Adadelta
Adadelta::Adadelta(std::vector<ParamGroup> groups, Options defaults)
    : Optimizer("Adadelta", std::move(groups),
                with("Adadelta", {{"lr", 1.0}, {"rho", 0.9}, {"eps", 1e-6}, {"weight_decay", 0}},
                     defaults)) {}

void Adadelta::update(Tensor& p, const Tensor& g, State& s, const Options& o) {
  double rho = o.at("rho"), eps = o.at("eps"), wd = o.at("weight_decay"), lr = o.at("lr");
  Tensor sq = slot(s, "square_avg", p), acc = slot(s, "acc_delta", p);
  with_float_type(p, [&](auto zero) {
    using T = decltype(zero);
    T *pd = p.data<T>(), *sd = sq.data<T>(), *ad = acc.data<T>();
    const T* gd = g.data<T>();
    parallel_for(0, p.numel(), kParallelGrain, [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i) {
        T d = gd[i];
        if (wd != 0) d += T(wd) * pd[i];
        sd[i] = sd[i] * T(rho) + d * d * T(1 - rho);
        T std_dev = std::sqrt(sd[i] + T(eps));
        T delta = std::sqrt(ad[i] + T(eps)) / std_dev * d;
        ad[i] = ad[i] * T(rho) + delta * delta * T(1 - rho);
        pd[i] += T(-lr) * delta;
      }
    });
  });
}

// ------------------------------------------------------------------ Adamax
Adamax::Adamax(std::vector<ParamGroup> groups, Options defaults)
    : Optimizer(
          "Adamax", std::move(groups),
          with("Adamax",
               {{"lr", 2e-3}, {"beta1", 0.9}, {"beta2", 0.999}, {"eps", 1e-8}, {"weight_decay", 0}},
               defaults)) {}

void Adamax::update(Tensor& p, const Tensor& g, State& s, const Options& o) {
  double b1 = o.at("beta1"), b2 = o.at("beta2"), eps = o.at("eps"), wd = o.at("weight_decay");
  double clr = o.at("lr") / (1 - std::pow(b1, static_cast<double>(s.step)));
  Tensor m = slot(s, "exp_avg", p), u = slot(s, "exp_inf", p);
  with_float_type(p, [&](auto zero) {
    using T = decltype(zero);
    T *pd = p.data<T>(), *md = m.data<T>(), *ud = u.data<T>();
    const T* gd = g.data<T>();
    parallel_for(0, p.numel(), kParallelGrain, [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i) {
        T d = gd[i];
        if (wd != 0) d += T(wd) * pd[i];
        md[i] += (d - md[i]) * T(1 - b1);
        ud[i] = std::max(ud[i] * T(b2), std::abs(d) + T(eps));
        pd[i] += T(-clr) * (md[i] / ud[i]);
      }
    });
  });
}

// ------------------------------------------------------------------ LAMB
LAMB::LAMB(std::vector<ParamGroup> groups, Options defaults)
    : Optimizer(
          "LAMB", std::move(groups),
          with("LAMB",
               {{"lr", 1e-3}, {"beta1", 0.9}, {"beta2", 0.999}, {"eps", 1e-6}, {"weight_decay", 0}},
               defaults)) {}

void LAMB::update(Tensor& p, const Tensor& g, State& s, const Options& o) {
  double b1 = o.at("beta1"), b2 = o.at("beta2"), eps = o.at("eps"), wd = o.at("weight_decay");
  double bc1 = 1 - std::pow(b1, static_cast<double>(s.step));
  double bc2 = 1 - std::pow(b2, static_cast<double>(s.step));
  Tensor m = slot(s, "exp_avg", p), v = slot(s, "exp_avg_sq", p);
  with_float_type(p, [&](auto zero) {
    using T = decltype(zero);
    T *pd = p.data<T>(), *md = m.data<T>(), *vd = v.data<T>();
    const T* gd = g.data<T>();
    int64_t n = p.numel();
    std::vector<T> dir(static_cast<size_t>(n));
    double p_norm = 0, d_norm = 0;  // accumulated in double for any thread count
    for (int64_t i = 0; i < n; ++i) {
      md[i] = md[i] * T(b1) + gd[i] * T(1 - b1);
      vd[i] = vd[i] * T(b2) + gd[i] * gd[i] * T(1 - b2);
      dir[i] = (md[i] / T(bc1)) / (std::sqrt(vd[i] / T(bc2)) + T(eps)) + T(wd) * pd[i];
      p_norm += double(pd[i]) * pd[i];
      d_norm += double(dir[i]) * dir[i];
    }
    double trust = p_norm > 0 && d_norm > 0 ? std::sqrt(p_norm) / std::sqrt(d_norm) : 1.0;
    T scale = T(-o.at("lr") * trust);
    for (int64_t i = 0; i < n; ++i) pd[i] += scale * dir[i];
  });
}

}  // namespace tessera::nn
