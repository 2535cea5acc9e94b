// The small MLP and CNN that several tests train (16x16 single-channel images, 10 classes).
#pragma once
#include <memory>

#include "tessera/nn/nn.h"

namespace tessera::testing {

inline nn::ModulePtr make_small_net(bool cnn) {
  auto net = std::make_shared<nn::Sequential>();
  if (cnn) {
    const nn::ConvOptions same_relu{.padding = 1, .activation = "relu"};
    net->add(std::make_shared<nn::Conv2d>(1, 4, 3, same_relu))
        .add(std::make_shared<nn::MaxPool2d>(2))
        .add(std::make_shared<nn::Conv2d>(4, 8, 3, same_relu))
        .add(std::make_shared<nn::MaxPool2d>(2))
        .add(std::make_shared<nn::Flatten>())
        .add(std::make_shared<nn::Linear>(8 * 4 * 4, 10));
  } else {
    net->add(std::make_shared<nn::Flatten>())
        .add(std::make_shared<nn::Linear>(256, 32))
        .add(std::make_shared<nn::ReLU>())
        .add(std::make_shared<nn::Linear>(32, 10));
  }
  return net;
}

}  // namespace tessera::testing
