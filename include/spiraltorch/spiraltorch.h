#pragma once
// The whole C++ API.

#include "spiraltorch/autocast.h"
#include "spiraltorch/autograd.h"
#include "spiraltorch/device.h"
#include "spiraltorch/distributed.h"
#include "spiraltorch/dtype.h"
#include "spiraltorch/error.h"
#include "spiraltorch/nn.h"
#include "spiraltorch/ops.h"
#include "spiraltorch/optim.h"
#include "spiraltorch/scalar.h"
#include "spiraltorch/serialize.h"
#include "spiraltorch/tensor.h"
#include "spiraltorch/version.h"
