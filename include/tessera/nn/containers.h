// Containers: Sequential (a chain), ModuleList and ModuleDict (indexed holders whose
// forward the user writes) and Residual (x + body(x)).
#pragma once
#include <initializer_list>
#include <string>

#include "tessera/nn/module.h"

namespace tessera::nn {

// Applies its layers in order; children are named "0", "1", ... unless named explicitly.
class Sequential : public Module {
 public:
  Sequential() : Module("Sequential") {}
  Sequential(std::initializer_list<ModulePtr> layers);
  // Appends a layer (any Module, or any callable Tensor(const Tensor&) through Lambda).
  Sequential& add(ModulePtr layer, const std::string& name = "");
  Sequential& add(std::function<Tensor(const Tensor&)> fn, const std::string& name = "");
  Tensor forward(const Tensor& input) override;
  size_t size() const { return named_children().size(); }
  ModulePtr operator[](size_t i) const;
};

class ModuleList : public Module {
 public:
  ModuleList() : Module("ModuleList") {}
  ModuleList(std::initializer_list<ModulePtr> modules);
  ModuleList& append(ModulePtr module);
  size_t size() const { return named_children().size(); }
  ModulePtr operator[](size_t i) const;
};

class ModuleDict : public Module {
 public:
  ModuleDict() : Module("ModuleDict") {}
  ModuleDict& insert(const std::string& key, ModulePtr module);
  bool contains(const std::string& key) const;
  ModulePtr operator[](const std::string& key) const;  // error naming the key when absent
};

// y = body(x) + shortcut(x), the shortcut being identity when null (a ResNet block).
class Residual : public Module {
 public:
  explicit Residual(ModulePtr body, ModulePtr shortcut = nullptr);
  Tensor forward(const Tensor& input) override;

 private:
  ModulePtr body_, shortcut_;
};

}  // namespace tessera::nn
