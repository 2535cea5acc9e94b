#include "tessera/nn/containers.h"

#include "tessera/autodiff/autodiff.h"
#include "tessera/core/error.h"
#include "tessera/nn/conv_layers.h"
#include "tessera/nn/pool_layers.h"
#include "tessera/ops/elementwise.h"
#include "tessera/ops/nn.h"

namespace tessera::nn {

Sequential::Sequential(std::initializer_list<ModulePtr> layers) : Module("Sequential") {
  for (auto& layer : layers) add(layer);
}

Sequential& Sequential::add(ModulePtr layer, const std::string& name) {
  add_child(name.empty() ? std::to_string(size()) : name, std::move(layer));
  return *this;
}

Sequential& Sequential::add(std::function<Tensor(const Tensor&)> fn, const std::string& name) {
  return add(std::make_shared<Lambda>(std::move(fn)), name);
}

Tensor Sequential::forward(const Tensor& input) {
  Tensor x = input;
  const auto& layers = named_children();
  for (size_t i = 0; i < layers.size(); ++i) {
    if (i + 1 < layers.size() && grad_enabled()) {
      // A Conv2d with relu then MaxPool2d(2), while training: one op whose gradient stores
      // no full-size tensor in the caller's layout (conv2d_relu_max_pool2d), with the same
      // results. Only with autodiff on: inference keeps the two ops, which its graph passes
      // know (split_training_fusions splits a traced one back).
      const auto* conv = dynamic_cast<const ConvNd*>(layers[i].second.get());
      const auto* pool = dynamic_cast<const PoolNd*>(layers[i + 1].second.get());
      if (conv && pool && conv->is_training() && conv->fuses_with_max_pool_2x2() &&
          pool->is_max_pool_2x2()) {
        x = conv2d_relu_max_pool2d(x, conv->weight, conv->bias);
        ++i;
        continue;
      }
    }
    x = (*layers[i].second)(x);
  }
  return x;
}

ModulePtr Sequential::operator[](size_t i) const {
  check(i < size(), "Sequential", "index ", i, " out of range for ", size(), " layers");
  return named_children()[i].second;
}

ModuleList::ModuleList(std::initializer_list<ModulePtr> modules) : Module("ModuleList") {
  for (auto& m : modules) append(m);
}

ModuleList& ModuleList::append(ModulePtr module) {
  add_child(std::to_string(size()), std::move(module));
  return *this;
}

ModulePtr ModuleList::operator[](size_t i) const {
  check(i < size(), "ModuleList", "index ", i, " out of range for ", size(), " modules");
  return named_children()[i].second;
}

ModuleDict& ModuleDict::insert(const std::string& key, ModulePtr module) {
  add_child(key, std::move(module));
  return *this;
}

bool ModuleDict::contains(const std::string& key) const {
  for (auto& [name, m] : named_children())
    if (name == key) return true;
  return false;
}

ModulePtr ModuleDict::operator[](const std::string& key) const {
  for (auto& [name, m] : named_children())
    if (name == key) return m;
  fail("ModuleDict", "no module named '", key, "'");
}

Residual::Residual(ModulePtr body, ModulePtr shortcut)
    : Module("Residual"), body_(std::move(body)), shortcut_(std::move(shortcut)) {
  register_module("body", body_);
  if (shortcut_) register_module("shortcut", shortcut_);
}

Tensor Residual::forward(const Tensor& input) {
  return (*body_)(input) + (shortcut_ ? (*shortcut_)(input) : input);
}

}  // namespace tessera::nn
