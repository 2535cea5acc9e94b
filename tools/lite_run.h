// `tessera run MODEL.tlite`: a lite model run by the lite runtime on NPY inputs, so that
// its outputs can be compared with the saved model's from the command line.
#pragma once
#include <string>

#include "tessera/ops/op.h"  // TensorList

namespace tessera::tools {

// Whether `path` is a lite model (by its extension).
bool is_lite_model(const std::string& path);

// Runs the lite model on float32 inputs. Where the inputs hold k times the model's batch
// (its first dimension), the model runs k times and the outputs are concatenated.
TensorList run_lite_model(const std::string& path, const TensorList& inputs);

}  // namespace tessera::tools
