#include "tessera/nn/checkpoint.h"

#include "tessera/autodiff/autodiff.h"
#include "tessera/core/error.h"
#include "tessera/io/safetensors.h"

namespace tessera::nn {
namespace {

constexpr const char* kFormat = "tessera-checkpoint";
constexpr const char* kVersion = "1";
const std::string kModel = "model.", kOptimizer = "optimizer.";

bool starts_with(const std::string& s, const std::string& prefix) {
  return s.compare(0, prefix.size(), prefix) == 0;
}

}  // namespace

void save_checkpoint(const std::string& path, const Module& module, const Optimizer* optimizer,
                     const Metadata& metadata) {
  io::NamedTensors entries;
  for (auto& [name, t] : module.state_dict()) entries.emplace_back(kModel + name, t);
  Metadata meta = metadata;
  meta["format"] = kFormat;
  meta["format_version"] = kVersion;
  if (optimizer) {
    meta["optimizer"] = optimizer->name();
    for (auto& [name, t] : optimizer->state_dict()) entries.emplace_back(kOptimizer + name, t);
  }
  io::save_safetensors(path, entries, meta);
}

Metadata load_checkpoint(const std::string& path, Module& module, Optimizer* optimizer) {
  const std::string op = "load_checkpoint";
  io::SafetensorsContents contents = io::load_safetensors(path);
  auto& meta = contents.metadata;
  check(meta.count("format") && meta["format"] == kFormat, op, path,
        ": not a Tessera checkpoint (metadata has no format = ", kFormat, ")");
  check(meta["format_version"] == kVersion, op, path, ": format version ", meta["format_version"],
        " is not supported (expected ", kVersion, ")");
  NamedTensors model_state, optimizer_state;
  for (auto& [name, t] : contents.tensors) {
    if (starts_with(name, kModel))
      model_state.emplace_back(name.substr(kModel.size()), t);
    else if (starts_with(name, kOptimizer))
      optimizer_state.emplace_back(name.substr(kOptimizer.size()), t);
    else
      fail(op, path, ": unexpected entry '", name, "'");
  }
  if (optimizer) {
    check(meta.count("optimizer"), op, path, ": the file holds no optimizer state");
    check(meta["optimizer"] == optimizer->name(), op, path, ": the optimizer state is for ",
          meta["optimizer"], ", not ", optimizer->name());
  }
  // Keep the current weights so a bad optimizer state can put them back.
  NamedTensors previous;
  {
    NoGradGuard no_grad;
    for (auto& [name, t] : module.state_dict()) previous.emplace_back(name, t.clone());
  }
  try {
    module.load_state_dict(model_state);
  } catch (const Error& e) {
    fail(op, path, ": ", e.what());
  }
  if (optimizer) {
    try {
      optimizer->load_state_dict(optimizer_state);
    } catch (const Error& e) {
      module.load_state_dict(previous);
      fail(op, path, ": ", e.what());
    }
  }
  return meta;
}

}  // namespace tessera::nn
