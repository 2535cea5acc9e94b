// The reference networks of the main job (`tessera train`), also trained by the distributed
// benchmark: the same layers as the Keras and PyTorch models of bench/train_peers.py.
#pragma once
#include <memory>

#include "tessera/nn/nn.h"

namespace tessera::tools {

// Two conv+ReLU+maxpool stages, then two dense layers. The ReLU is the convolution's
// activation (as in the Keras model), which fuses it into the convolution's output pass.
inline nn::ModulePtr make_reference_cnn() {
  auto net = std::make_shared<nn::Sequential>();
  const nn::ConvOptions same_relu{.padding = 1, .activation = "relu"};
  net->add(std::make_shared<nn::Conv2d>(1, 32, 3, same_relu), "conv1")
      .add(std::make_shared<nn::MaxPool2d>(2), "pool1")
      .add(std::make_shared<nn::Conv2d>(32, 64, 3, same_relu), "conv2")
      .add(std::make_shared<nn::MaxPool2d>(2), "pool2")
      .add(std::make_shared<nn::Flatten>(), "flatten")
      .add(std::make_shared<nn::Linear>(3136, 128), "dense1")
      .add(std::make_shared<nn::ReLU>(), "relu3")
      .add(std::make_shared<nn::Linear>(128, 10), "dense2");
  return net;
}

// 784-256-256-10 with ReLU.
inline nn::ModulePtr make_reference_mlp() {
  auto net = std::make_shared<nn::Sequential>();
  net->add(std::make_shared<nn::Flatten>(), "flatten")
      .add(std::make_shared<nn::Linear>(784, 256), "dense1")
      .add(std::make_shared<nn::ReLU>(), "relu1")
      .add(std::make_shared<nn::Linear>(256, 256), "dense2")
      .add(std::make_shared<nn::ReLU>(), "relu2")
      .add(std::make_shared<nn::Linear>(256, 10), "dense3");
  return net;
}

// Fashion-MNIST images scaled to [0, 1] are standardized with the training set's statistics.
constexpr double kFashionMean = 0.2860, kFashionStd = 0.3530;

}  // namespace tessera::tools
