// Every activation of tessera/ops as a layer, plus Softmax and LogSoftmax.
#pragma once
#include <functional>

#include "tessera/nn/module.h"

namespace tessera::nn {

// An elementwise function as a layer; the named classes below fix the function.
class Activation : public Module {
 public:
  Activation(const char* type_name, std::function<Tensor(const Tensor&)> fn)
      : Module(type_name), fn_(std::move(fn)) {}
  Tensor forward(const Tensor& input) override { return fn_(input); }

 private:
  std::function<Tensor(const Tensor&)> fn_;
};

struct ReLU : Activation {
  ReLU();
};
struct ReLU6 : Activation {
  ReLU6();
};
struct LeakyReLU : Activation {
  explicit LeakyReLU(double negative_slope = 0.01);
};
struct ELU : Activation {
  explicit ELU(double alpha = 1.0);
};
struct SELU : Activation {
  SELU();
};
struct GELU : Activation {
  explicit GELU(bool tanh_approximation = false);
};
struct SiLU : Activation {
  SiLU();
};
struct Sigmoid : Activation {
  Sigmoid();
};
struct Tanh : Activation {
  Tanh();
};
struct Softplus : Activation {
  explicit Softplus(double beta = 1.0, double threshold = 20.0);
};
struct Softsign : Activation {
  Softsign();
};
struct HardSigmoid : Activation {
  HardSigmoid();
};
struct HardSwish : Activation {
  HardSwish();
};
struct Identity : Activation {
  Identity();
};
struct Softmax : Activation {
  explicit Softmax(int64_t axis = -1);
};
struct LogSoftmax : Activation {
  explicit LogSoftmax(int64_t axis = -1);
};

}  // namespace tessera::nn
