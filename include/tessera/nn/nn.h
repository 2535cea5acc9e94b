// Everything for training: modules and layers, initializers, losses, metrics,
// optimizers and schedules, the Model API with callbacks, and checkpoints.
#pragma once
#include "tessera/nn/activations.h"
#include "tessera/nn/attention.h"
#include "tessera/nn/callbacks.h"
#include "tessera/nn/checkpoint.h"
#include "tessera/nn/containers.h"
#include "tessera/nn/conv_layers.h"
#include "tessera/nn/graph_module.h"
#include "tessera/nn/init.h"
#include "tessera/nn/layers.h"
#include "tessera/nn/losses.h"
#include "tessera/nn/lr_scheduler.h"
#include "tessera/nn/metrics.h"
#include "tessera/nn/model.h"
#include "tessera/nn/module.h"
#include "tessera/nn/norm_layers.h"
#include "tessera/nn/optim.h"
#include "tessera/nn/pool_layers.h"
#include "tessera/nn/recurrent.h"
#include "tessera/tessera.h"  // tensors, ops and autodiff come with training
