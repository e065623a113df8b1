#pragma once
// The op side of autocast (spiraltorch/autocast.h): one hook at the top of each affected op.
//
//   Tensor matmul(const Tensor& a, const Tensor& b) {
//     if (auto cast = ops::autocast_inputs(ops::CastPolicy::LowerPrecision, {&a, &b}))
//       return matmul((*cast)[0], (*cast)[1]);
//
// The second call finds its inputs already in the target dtype and runs as usual.

#include <initializer_list>
#include <optional>
#include <vector>

#include "spiraltorch/autocast.h"
#include "spiraltorch/tensor.h"

namespace st::ops {

enum class CastPolicy : uint8_t {
  LowerPrecision,  // to the scope's f16/bf16: the GEMM ops
  Float32,         // to f32: ops whose accuracy needs it (softmax, norms, losses, sums)
};

namespace detail {
extern thread_local bool any_autocast_enabled;
std::optional<std::vector<Tensor>> autocast_inputs_slow(
    CastPolicy policy, std::initializer_list<const Tensor*> inputs);
}  // namespace detail

// Under an autocast scope for the inputs' device type: the inputs cast as `policy` asks (undefined
// ones stay undefined, non-float and f64 ones unchanged), when at least one of them changes;
// nullopt otherwise, and the op runs on the inputs it was given.
inline std::optional<std::vector<Tensor>> autocast_inputs(
    CastPolicy policy, std::initializer_list<const Tensor*> inputs) {
  if (!detail::any_autocast_enabled) return std::nullopt;  // the common case costs one load
  return detail::autocast_inputs_slow(policy, inputs);
}

// The scope's f16/bf16 dtype when an autocast scope for t's device is on and t is a float tensor
// below f64; nullopt otherwise. layer_norm computes in f32 and writes its output in it.
std::optional<DType> autocast_output_dtype(const Tensor& t);

// Whether an autocast scope for t's device is on and t is f16/bf16: an op of the Float32 policy
// whose kernels already compute in f32 reads such a tensor as it is and only writes an f32 result,
// which equals casting first and saves the copy (cross_entropy on a language model's logits).
inline bool autocast_computes_in_float32(const Tensor& t) {
  return autocast_output_dtype(t) && t.dtype() != DType::Float32;
}

// Turns autocast off for every device type while alive: the backward pass runs under it.
class AutocastSuspend {
 public:
  AutocastSuspend();
  ~AutocastSuspend();
  AutocastSuspend(const AutocastSuspend&) = delete;
  AutocastSuspend& operator=(const AutocastSuspend&) = delete;

 private:
  bool previous_[kNumDeviceTypes];
};

}  // namespace st::ops
