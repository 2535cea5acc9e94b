// Checkpoints: a module's weights and buffers and (optionally) an optimizer's state in
// one safetensors file, readable by other tools. Entries are named "model.<name>" and
// "optimizer.<name>"; the metadata holds the format version and any caller entries
// (fit() stores the epoch). Files are written atomically.
#pragma once
#include <map>
#include <string>

#include "tessera/nn/module.h"
#include "tessera/nn/optim.h"

namespace tessera::nn {

using Metadata = std::map<std::string, std::string>;

void save_checkpoint(const std::string& path, const Module& module,
                     const Optimizer* optimizer = nullptr, const Metadata& metadata = {});

// Loads weights (strictly: every entry must match) and, when given, the optimizer state.
// On any error (unreadable, truncated or corrupted file, missing or mismatched entries)
// it throws and leaves the module and optimizer unchanged. Returns the metadata.
Metadata load_checkpoint(const std::string& path, Module& module, Optimizer* optimizer = nullptr);

}  // namespace tessera::nn
