#pragma once
// Automatic mixed precision, as torch.autocast: inside a scope for a device type, ops on tensors of
// that device type pick their compute dtype themselves.
//
//   {
//     st::AutocastGuard autocast(st::DeviceType::CUDA);  // bf16 by default
//     Tensor loss = st::cross_entropy(model.forward(x), y);  // GEMMs in bf16, loss in f32
//   }
//   loss.backward();  // f32 parameters get f32 gradients
//
// - matmul, linear and scaled_dot_product_attention run in the scope's dtype (bf16 or f16; the
//   kernels accumulate in f32): their f32 inputs are cast first.
// - softmax, log_softmax, layer_norm, cross_entropy, sum and mean run in f32: their f16/bf16
//   inputs are cast up. layer_norm writes its output in the scope's dtype (its consumers are
//   the GEMMs, which would cast it) and reads that output's gradient as it comes.
// - Every other op runs in the dtype of its inputs (type promotion: bf16 + f32 gives f32).
// f64 inputs are never cast. The casts are ops of the graph (Tensor::to), so gradients flow back
// through them in the dtype of each leaf. Backward runs without autocast: each backward op works in
// the dtype its forward op used. The state is per thread and per device type; scopes nest, each
// restoring the state it found, and `enabled = false` turns autocast off inside an enclosing scope.

#include "spiraltorch/device.h"
#include "spiraltorch/dtype.h"

namespace st {

class AutocastGuard {
 public:
  // dtype must be f16 or bf16 (DTypeError otherwise).
  explicit AutocastGuard(DeviceType device_type, DType dtype = DType::BFloat16,
                         bool enabled = true);
  ~AutocastGuard();
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

 private:
  DeviceType device_type_;
  bool previous_enabled_;
  DType previous_dtype_;
};

// The state of this thread for a device type, as torch.is_autocast_enabled(device_type) and
// torch.get_autocast_dtype(device_type). The dtype outside any scope is bf16.
bool is_autocast_enabled(DeviceType device_type);
DType get_autocast_dtype(DeviceType device_type);
// What AutocastGuard sets and restores; for bindings that manage scopes themselves.
void set_autocast_enabled(DeviceType device_type, bool enabled);
void set_autocast_dtype(DeviceType device_type, DType dtype);

}  // namespace st
