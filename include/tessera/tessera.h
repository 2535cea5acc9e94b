// Tessera's umbrella header: tensors, ops and eager autodiff.
#pragma once
#include "tessera/autodiff/autodiff.h"
#include "tessera/core/dtype.h"
#include "tessera/core/error.h"
#include "tessera/core/parallel.h"
#include "tessera/core/random.h"
#include "tessera/core/tensor.h"
#include "tessera/ops/creation.h"
#include "tessera/ops/elementwise.h"
#include "tessera/ops/index.h"
#include "tessera/ops/linalg.h"
#include "tessera/ops/reduce.h"
#include "tessera/ops/shape.h"
