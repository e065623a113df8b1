#version 460
// Cross entropy over contiguous [N, C] logits with integer targets (validated by the host).
// Forward: a workgroup per row; lse = max + log(sum(exp(x - max))), loss = (max - x[t]) + log(sum)
// (0 where ignored). BACKWARD: one invocation per element, (softmax(row) - onehot) * grad_loss[n].
// L is the loss's dtype (and grad_loss's): T, or f32 for f16/bf16 logits under autocast.
#include "common.glsl"
#include "math.glsl"

layout(local_size_x = WG) in;

layout(buffer_reference, std430, buffer_reference_align = 8) readonly buffer CrossEntropyParams {
  uint64_t logits_addr;
  uint64_t target_addr;
  uint64_t loss_addr;       // loss (forward) or grad_logits (backward)
  uint64_t lse_addr;
  uint64_t grad_loss_addr;  // backward
  int64_t ignore_index;
  uint rows;
  uint cols;
  uint target_is_i64;
  uint grad_loss_stride;
};

#if T_KIND == 1
#define C double
#define EXP_C exp_f64
#define LOG_C log_f64
#define LOAD_STAT load_f64
#define STORE_STAT store_f64
#else
#define C float
#define EXP_C exp
#define LOG_C log
#define LOAD_STAT load_f32
#define STORE_STAT store_f32
#endif

int64_t target_at(CrossEntropyParams p, uint r) {
  return p.target_is_i64 != 0u ? load_i64(p.target_addr, r) : int64_t(load_i32(p.target_addr, r));
}

void main() {
  CrossEntropyParams p = CrossEntropyParams(params_address);
  uint cols = p.cols;
#ifndef BACKWARD
  uint t = gl_LocalInvocationIndex;
  for (uint r = gl_WorkGroupID.x; r < p.rows; r += gl_NumWorkGroups.x) {
    uint base = r * cols;
    C hi = C(-1.0 / 0.0);
    for (uint c = t; c < cols; c += WG) hi = max_nan(hi, C(LOAD(T)(p.logits_addr, base + c)));
    hi = workgroup_max(hi);
    C sum = C(0);
    for (uint c = t; c < cols; c += WG) sum += EXP_C(C(LOAD(T)(p.logits_addr, base + c)) - hi);
    C log_sum = LOG_C(workgroup_sum(sum));
    if (t == 0) {
      STORE_STAT(p.lse_addr, r, hi + log_sum);
      int64_t target = target_at(p, r);
      C loss = target == p.ignore_index ? C(0)
                                        : (hi - C(LOAD(T)(p.logits_addr, base + uint(target)))) + log_sum;
      STORE(L)(p.loss_addr, r, CT(L)(loss));
    }
  }
#else
  uint n = p.rows * cols;
  for (uint i = gl_GlobalInvocationID.x; i < n; i += gl_NumWorkGroups.x * WG) {
    uint r = i / cols, c = i % cols;
    int64_t target = target_at(p, r);
    C g = C(0);
    if (target != p.ignore_index) {
      C scale = C(LOAD(L)(p.grad_loss_addr, r * p.grad_loss_stride));
      C prob = EXP_C(C(LOAD(T)(p.logits_addr, i)) - LOAD_STAT(p.lse_addr, r));
      g = (int64_t(c) == target ? prob - C(1) : prob) * scale;
    }
    STORE(T)(p.loss_addr, i, CT(T)(g));
  }
#endif
}
