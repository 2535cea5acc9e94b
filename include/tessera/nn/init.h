// Weight initializers. Each fills an existing tensor in place (without recording
// gradients) and returns it, like torch.nn.init; `gen` defaults to the global generator.
//
// Fans follow PyTorch: for a [out, in, *kernel] weight, fan_in = in * prod(kernel) and
// fan_out = out * prod(kernel); a 1-d tensor has fan_in = fan_out = its size.
#pragma once
#include <string>
#include <utility>

#include "tessera/core/random.h"
#include "tessera/core/tensor.h"

namespace tessera::nn::init {

std::pair<int64_t, int64_t> fans(const Tensor& weight);  // {fan_in, fan_out}
// The recommended gain for a nonlinearity ("linear", "conv", "sigmoid", "tanh", "relu",
// "leaky_relu" (with `param` as the slope), "selu"), as torch.nn.init.calculate_gain.
double calculate_gain(const std::string& nonlinearity, double param = 0.01);

Tensor& zeros_(Tensor& t);
Tensor& ones_(Tensor& t);
Tensor& constant_(Tensor& t, double value);
Tensor& uniform_(Tensor& t, double low = 0.0, double high = 1.0, Generator* gen = nullptr);
Tensor& normal_(Tensor& t, double mean = 0.0, double stddev = 1.0, Generator* gen = nullptr);
// Normal(mean, stddev) redrawn until inside [a, b] (absolute bounds, like PyTorch).
Tensor& trunc_normal_(Tensor& t, double mean = 0.0, double stddev = 1.0, double a = -2.0,
                      double b = 2.0, Generator* gen = nullptr);
// Glorot: uniform in +-gain * sqrt(6 / (fan_in + fan_out)), or normal with
// stddev gain * sqrt(2 / (fan_in + fan_out)).
Tensor& xavier_uniform_(Tensor& t, double gain = 1.0, Generator* gen = nullptr);
Tensor& xavier_normal_(Tensor& t, double gain = 1.0, Generator* gen = nullptr);
// He: bound gain / sqrt(fan) * sqrt(3) with gain = calculate_gain(nonlinearity, a);
// mode "fan_in" or "fan_out".
Tensor& kaiming_uniform_(Tensor& t, double a = 0.0, const std::string& mode = "fan_in",
                         const std::string& nonlinearity = "leaky_relu", Generator* gen = nullptr);
Tensor& kaiming_normal_(Tensor& t, double a = 0.0, const std::string& mode = "fan_in",
                        const std::string& nonlinearity = "leaky_relu", Generator* gen = nullptr);
// LeCun: variance 1 / fan_in (uniform in +-sqrt(3 / fan_in), or truncated normal as Keras).
Tensor& lecun_uniform_(Tensor& t, Generator* gen = nullptr);
Tensor& lecun_normal_(Tensor& t, Generator* gen = nullptr);
// A new tensor from U(-1/sqrt(fan_in), 1/sqrt(fan_in)): PyTorch's default for the weights
// and biases of dense, convolution and recurrent layers (zeros when fan_in is 0).
Tensor fan_in_uniform(const Shape& shape, int64_t fan_in, DType dtype = DType::Float32,
                      Generator* gen = nullptr);

// A (semi-)orthogonal matrix over the tensor flattened to [size(0), rest], times gain.
Tensor& orthogonal_(Tensor& t, double gain = 1.0, Generator* gen = nullptr);

}  // namespace tessera::nn::init
