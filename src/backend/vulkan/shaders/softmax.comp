#version 460
// Row-wise softmax(scale * x) or log_softmax over contiguous [rows, cols], a workgroup per row,
// with the causal mask of attention when causal_rows > 0 (masked entries come out 0). BACKWARD
// variants compute grad_in = scale * y * (g - sum(g * y)), or for log scale * (g - exp(y) sum(g)).
#include "common.glsl"
#include "math.glsl"

layout(local_size_x = WG) in;

layout(buffer_reference, std430, buffer_reference_align = 8) readonly buffer SoftmaxParams {
  uint64_t in_addr;   // x (forward) or grad_out (backward)
  uint64_t y_addr;    // out (forward) or the forward's output (backward)
  uint64_t out_addr;  // unused (forward) or grad_in (backward)
  uint64_t scale_bits;
  float scale_f;
  uint rows;
  uint cols;
  uint log_softmax;
  uint causal_rows;
  uint pad;
};

#if T_KIND == 1
#define C double
#define EXP_C exp_f64
#define LOG_C log_f64
#else
#define C float
#define EXP_C exp
#define LOG_C log
#endif

void main() {
  SoftmaxParams p = SoftmaxParams(params_address);
  uint t = gl_LocalInvocationIndex, cols = p.cols;
  bool log_softmax = p.log_softmax != 0u;
#if T_KIND == 1
  C scale = uint64BitsToDouble(p.scale_bits);
#else
  C scale = p.scale_f;
#endif
  for (uint r = gl_WorkGroupID.x; r < p.rows; r += gl_NumWorkGroups.x) {
    uint base = r * cols;
#ifndef BACKWARD
    uint seen = p.causal_rows > 0u ? min(cols, r % p.causal_rows + 1u) : cols;
    C hi = C(-1.0 / 0.0);
    for (uint c = t; c < seen; c += WG) hi = max_nan(hi, scale * C(LOAD(T)(p.in_addr, base + c)));
    hi = workgroup_max(hi);
    C sum = C(0);
    for (uint c = t; c < seen; c += WG) sum += EXP_C(scale * C(LOAD(T)(p.in_addr, base + c)) - hi);
    sum = workgroup_sum(sum);
    if (log_softmax) {
      C log_sum = LOG_C(sum);
      for (uint c = t; c < cols; c += WG)
        STORE(T)(p.y_addr, base + c, CT(T)((scale * C(LOAD(T)(p.in_addr, base + c)) - hi) - log_sum));
    } else {
      C inv = C(1) / sum;
      for (uint c = t; c < cols; c += WG) {
        C e = c < seen ? EXP_C(scale * C(LOAD(T)(p.in_addr, base + c)) - hi) : C(0);
        STORE(T)(p.y_addr, base + c, CT(T)(e * inv));
      }
    }
#else
    C dot = C(0);
    for (uint c = t; c < cols; c += WG) {
      C g = C(LOAD(T)(p.in_addr, base + c));
      dot += log_softmax ? g : g * C(LOAD(T)(p.y_addr, base + c));
    }
    dot = workgroup_sum(dot);
    for (uint c = t; c < cols; c += WG) {
      C g = C(LOAD(T)(p.in_addr, base + c)), y = C(LOAD(T)(p.y_addr, base + c));
      C gi = log_softmax ? scale * (g - EXP_C(y) * dot) : scale * y * (g - dot);
      STORE(T)(p.out_addr, base + c, CT(T)(gi));
    }
#endif
  }
}
