#include "tessera/nn/activations.h"

#include "tessera/ops/elementwise.h"
#include "tessera/ops/nn.h"

namespace tessera::nn {

using T = const Tensor&;
ReLU::ReLU() : Activation("ReLU", [](T x) { return relu(x); }) {}
ReLU6::ReLU6() : Activation("ReLU6", [](T x) { return relu6(x); }) {}
LeakyReLU::LeakyReLU(double s) : Activation("LeakyReLU", [s](T x) { return leaky_relu(x, s); }) {}
ELU::ELU(double a) : Activation("ELU", [a](T x) { return elu(x, a); }) {}
SELU::SELU() : Activation("SELU", [](T x) { return selu(x); }) {}
GELU::GELU(bool approx) : Activation("GELU", [approx](T x) { return gelu(x, approx); }) {}
SiLU::SiLU() : Activation("SiLU", [](T x) { return silu(x); }) {}
Sigmoid::Sigmoid() : Activation("Sigmoid", [](T x) { return sigmoid(x); }) {}
Tanh::Tanh() : Activation("Tanh", [](T x) { return tanh(x); }) {}
Softplus::Softplus(double beta, double threshold)
    : Activation("Softplus", [beta, threshold](T x) { return softplus(x, beta, threshold); }) {}
Softsign::Softsign() : Activation("Softsign", [](T x) { return softsign(x); }) {}
HardSigmoid::HardSigmoid() : Activation("HardSigmoid", [](T x) { return hard_sigmoid(x); }) {}
HardSwish::HardSwish() : Activation("HardSwish", [](T x) { return hard_swish(x); }) {}
Identity::Identity() : Activation("Identity", [](T x) { return x; }) {}
Softmax::Softmax(int64_t axis) : Activation("Softmax", [axis](T x) { return softmax(x, axis); }) {}
LogSoftmax::LogSoftmax(int64_t axis)
    : Activation("LogSoftmax", [axis](T x) { return log_softmax(x, axis); }) {}

}  // namespace tessera::nn
