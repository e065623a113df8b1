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
  uint lanes;  // invocations per row in the VEC4 variants
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

#ifdef VEC4
// f32 rows of up to 4 * WG * PER columns, a multiple of 4, at 16-byte aligned addresses, p.lanes
// invocations per row and WG / p.lanes rows per workgroup: each invocation holds its vectors of
// the row in registers, so every input is read once. Loads are clamped into the tensor rather
// than skipped, so that all of an invocation's loads are in flight at once. The loops over a
// row's vectors are unrolled to PER with an early exit, so that the arrays stay in registers.
#define PER 8
layout(buffer_reference, std430, buffer_reference_align = 16) buffer Vec4Buf { vec4 v[]; };

float max4(vec4 v) { return max_nan(max_nan(v.x, v.y), max_nan(v.z, v.w)); }

void main() {
  SoftmaxParams p = SoftmaxParams(params_address);
  uint lanes = p.lanes, lane = gl_LocalInvocationIndex & (lanes - 1);
  uint cols4 = p.cols / 4, per = (cols4 + lanes - 1) / lanes, row_step = WG / lanes;
  bool log_softmax = p.log_softmax != 0u;
  float scale = p.scale_f;
  for (uint r0 = gl_WorkGroupID.x * row_step; r0 < p.rows; r0 += gl_NumWorkGroups.x * row_step) {
    uint r = r0 + gl_LocalInvocationIndex / lanes;
    bool row_live = r < p.rows;
    uint base = min(r, p.rows - 1) * cols4;
#ifndef BACKWARD
    uint seen = !row_live ? 0u : p.causal_rows > 0u ? min(p.cols, r % p.causal_rows + 1u) : p.cols;
    vec4 x[PER];
    float hi = -1.0 / 0.0;
    [[unroll]] for (uint k = 0; k < PER; ++k) {
      if (k >= per) break;
      uint c = lane + k * lanes;
      x[k] = scale * Vec4Buf(p.in_addr).v[base + min(c, cols4 - 1)];
      // Columns past the row or masked (causal) take no part in the max and the sum.
      bvec4 live = lessThan(uvec4(4 * c) + uvec4(0, 1, 2, 3), uvec4(seen));
      hi = max_nan(hi, max4(mix(vec4(-1.0 / 0.0), x[k], live)));
    }
    hi = segment_max(hi, lanes);
    float sum = 0.0;
    [[unroll]] for (uint k = 0; k < PER; ++k) {
      if (k >= per) break;
      bvec4 live = lessThan(uvec4(4 * (lane + k * lanes)) + uvec4(0, 1, 2, 3), uvec4(seen));
      sum += dot(mix(vec4(0), exp(x[k] - hi), live), vec4(1));
    }
    sum = segment_sum(sum, lanes);
    float log_sum = log(sum), inv = 1.0 / sum;
    [[unroll]] for (uint k = 0; k < PER; ++k) {
      if (k >= per) break;
      uint c = lane + k * lanes;
      if (!row_live || c >= cols4) break;
      bvec4 live = lessThan(uvec4(4 * c) + uvec4(0, 1, 2, 3), uvec4(seen));
      Vec4Buf(p.y_addr).v[base + c] =
          log_softmax ? (x[k] - hi) - log_sum : mix(vec4(0), exp(x[k] - hi) * inv, live);
    }
#else
    vec4 g[PER], y[PER];
    float dot_gy = 0.0;
    [[unroll]] for (uint k = 0; k < PER; ++k) {
      if (k >= per) break;
      uint c = lane + k * lanes, i = base + min(c, cols4 - 1);
      g[k] = Vec4Buf(p.in_addr).v[i];
      y[k] = Vec4Buf(p.y_addr).v[i];
      float d = log_softmax ? dot(g[k], vec4(1)) : dot(g[k], y[k]);
      dot_gy += c < cols4 ? d : 0.0;
    }
    dot_gy = segment_sum(dot_gy, lanes);
    [[unroll]] for (uint k = 0; k < PER; ++k) {
      if (k >= per) break;
      uint c = lane + k * lanes;
      if (!row_live || c >= cols4) break;
      Vec4Buf(p.out_addr).v[base + c] = log_softmax ? scale * (g[k] - exp(y[k]) * dot_gy)
                                                    : scale * y[k] * (g[k] - dot_gy);
    }
#endif
  }
}
#else
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
#endif
