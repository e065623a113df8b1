#version 460
// Layer norm over the last dim of contiguous [rows, cols]. Forward (default): a workgroup per row,
// two passes (mean, then squared deviations), biased variance. BACKWARD: grad_x per row, with
// g = grad_out * weight: rstd * (g - mean(g) - xhat * mean(g * xhat)). WEIGHT_GRADS: the sums
// of grad_out * xhat and grad_out over all rows, per column, in two passes (partial sums over
// chunks of rows, then their totals; FINISH), so that tall inputs still fill the device.
// Statistics are in C: f64 for f64, f32 otherwise.
#include "common.glsl"

layout(local_size_x = WG) in;

layout(buffer_reference, std430, buffer_reference_align = 8) readonly buffer LayerNormParams {
  uint64_t x_addr;
  uint64_t out_addr;      // y, or grad_x
  uint64_t mean_addr;
  uint64_t rstd_addr;
  uint64_t weight_addr;   // 0 when absent
  uint64_t bias_addr;     // 0 when absent
  uint64_t grad_out_addr;
  uint64_t grad_weight_addr;  // 0 when not wanted
  uint64_t grad_bias_addr;    // 0 when not wanted
  uint64_t eps_bits;
  float eps_f;
  uint rows;
  uint cols;
  uint lanes;  // invocations per row in the VEC4 variant
  uint chunk_rows;       // WEIGHT_GRADS: rows per partial sum
  uint chunks;           // WEIGHT_GRADS: partial sums per column
  uint64_t partial_addr; // WEIGHT_GRADS: [2, chunks, cols] of C, grad_weight's then grad_bias's
};

#if T_KIND == 1
#define C double
#define LOAD_STAT load_f64
#define STORE_STAT store_f64
#else
#define C float
#define LOAD_STAT load_f32
#define STORE_STAT store_f32
#endif

#if defined(WEIGHT_GRADS) && !defined(FINISH)
shared C part_w[WG], part_b[WG];
#endif

C weight_at(LayerNormParams p, uint c) { return p.weight_addr != 0ul ? C(LOAD(T)(p.weight_addr, c)) : C(1); }

#ifdef VEC4
// Forward and BACKWARD (grad_x) for f32 rows of up to 4 * WG * PER columns, a multiple of 4, at 16-byte aligned
// addresses, p.lanes invocations per row and WG / p.lanes rows per workgroup: each invocation
// holds its vectors of the row in registers, read once, with loads clamped into the tensor so
// that all of them are in flight at once.
#define PER 8
layout(buffer_reference, std430, buffer_reference_align = 16) buffer Vec4Buf { vec4 v[]; };

void main() {
  LayerNormParams p = LayerNormParams(params_address);
  uint lanes = p.lanes, lane = gl_LocalInvocationIndex & (lanes - 1);
  uint cols4 = p.cols / 4, per = (cols4 + lanes - 1) / lanes, row_step = WG / lanes;
  for (uint r0 = gl_WorkGroupID.x * row_step; r0 < p.rows; r0 += gl_NumWorkGroups.x * row_step) {
    uint r = r0 + gl_LocalInvocationIndex / lanes;
    bool row_live = r < p.rows;
    uint base = min(r, p.rows - 1) * cols4;
#ifdef BACKWARD
    // grad_x = rstd * (g - mean(g) - xhat * mean(g * xhat)), g = grad_out * weight.
    float mu = load_f32(p.mean_addr, min(r, p.rows - 1)), rs = load_f32(p.rstd_addr, min(r, p.rows - 1));
    vec4 xhat[PER], g[PER];
    float sum_g = 0.0, sum_gx = 0.0;
    [[unroll]] for (uint k = 0; k < PER; ++k) {
      if (k >= per) break;
      uint c = lane + k * lanes, cc = min(c, cols4 - 1);
      xhat[k] = (Vec4Buf(p.x_addr).v[base + cc] - mu) * rs;
      g[k] = Vec4Buf(p.grad_out_addr).v[base + cc];
      if (p.weight_addr != 0ul) g[k] *= Vec4Buf(p.weight_addr).v[cc];
      sum_g += c < cols4 ? dot(g[k], vec4(1)) : 0.0;
      sum_gx += c < cols4 ? dot(g[k], xhat[k]) : 0.0;
    }
    float mean_g = segment_sum(sum_g, lanes) / float(p.cols);
    float mean_gx = segment_sum(sum_gx, lanes) / float(p.cols);
    [[unroll]] for (uint k = 0; k < PER; ++k) {
      if (k >= per) break;
      uint c = lane + k * lanes;
      if (!row_live || c >= cols4) break;
      Vec4Buf(p.out_addr).v[base + c] = rs * (g[k] - mean_g - xhat[k] * mean_gx);
    }
#else
    vec4 x[PER];
    float sum = 0.0;
    [[unroll]] for (uint k = 0; k < PER; ++k) {
      if (k >= per) break;
      uint c = lane + k * lanes;
      x[k] = Vec4Buf(p.x_addr).v[base + min(c, cols4 - 1)];
      sum += c < cols4 ? dot(x[k], vec4(1)) : 0.0;
    }
    float mu = segment_sum(sum, lanes) / float(p.cols);
    float sq = 0.0;
    [[unroll]] for (uint k = 0; k < PER; ++k) {
      if (k >= per) break;
      vec4 d = x[k] - mu;
      sq += lane + k * lanes < cols4 ? dot(d, d) : 0.0;
    }
    float rs = 1.0 / sqrt(segment_sum(sq, lanes) / float(p.cols) + p.eps_f);
    if (row_live && lane == 0) {
      store_f32(p.mean_addr, r, mu);
      store_f32(p.rstd_addr, r, rs);
    }
    [[unroll]] for (uint k = 0; k < PER; ++k) {
      if (k >= per) break;
      uint c = lane + k * lanes;
      if (!row_live || c >= cols4) break;
      vec4 w = p.weight_addr != 0ul ? Vec4Buf(p.weight_addr).v[c] : vec4(1);
      vec4 b = p.bias_addr != 0ul ? Vec4Buf(p.bias_addr).v[c] : vec4(0);
      Vec4Buf(p.out_addr).v[base + c] = (x[k] - mu) * rs * w + b;
    }
#endif
  }
}
#else
void main() {
  LayerNormParams p = LayerNormParams(params_address);
  uint t = gl_LocalInvocationIndex, cols = p.cols;
#if defined(WEIGHT_GRADS) && defined(FINISH)
  // Second pass: one invocation per column adds up its partial sums.
  for (uint c = gl_GlobalInvocationID.x; c < cols; c += gl_NumWorkGroups.x * WG) {
    C sum_w = C(0), sum_b = C(0);
    for (uint i = 0; i < p.chunks; ++i) {
      sum_w += LOAD_STAT(p.partial_addr, i * cols + c);
      sum_b += LOAD_STAT(p.partial_addr, (p.chunks + i) * cols + c);
    }
    if (p.grad_weight_addr != 0ul) STORE(T)(p.grad_weight_addr, c, CT(T)(sum_w));
    if (p.grad_bias_addr != 0ul) STORE(T)(p.grad_bias_addr, c, CT(T)(sum_b));
  }
#elif defined(WEIGHT_GRADS)
  // First pass: a workgroup sums 32 columns over chunk_rows rows (workgroup y), 8 invocations per
  // column taking every 8th row, and writes one partial sum per column.
  uint c = gl_WorkGroupID.x * 32 + t % 32, lane = t / 32;
  uint first = gl_WorkGroupID.y * p.chunk_rows, last = min(p.rows, first + p.chunk_rows);
  C sum_w = C(0), sum_b = C(0);
  if (c < cols) {
    for (uint r = first + lane; r < last; r += WG / 32) {
      C g = C(LOAD(T)(p.grad_out_addr, r * cols + c));
      C xhat = (C(LOAD(T)(p.x_addr, r * cols + c)) - LOAD_STAT(p.mean_addr, r)) * LOAD_STAT(p.rstd_addr, r);
      sum_w += g * xhat;
      sum_b += g;
    }
  }
  part_w[t] = sum_w;
  part_b[t] = sum_b;
  barrier();
  if (lane == 0 && c < cols) {
    for (uint i = 1; i < WG / 32; ++i) {
      sum_w += part_w[t + 32 * i];
      sum_b += part_b[t + 32 * i];
    }
    STORE_STAT(p.partial_addr, gl_WorkGroupID.y * cols + c, sum_w);
    STORE_STAT(p.partial_addr, (p.chunks + gl_WorkGroupID.y) * cols + c, sum_b);
  }
#else
  for (uint r = gl_WorkGroupID.x; r < p.rows; r += gl_NumWorkGroups.x) {
    uint base = r * cols;
#if defined(BACKWARD)
    C mu = LOAD_STAT(p.mean_addr, r), rs = LOAD_STAT(p.rstd_addr, r);
    C sum_g = C(0), sum_gx = C(0);
    for (uint c = t; c < cols; c += WG) {
      C xhat = (C(LOAD(T)(p.x_addr, base + c)) - mu) * rs;
      C g = C(LOAD(T)(p.grad_out_addr, base + c)) * weight_at(p, c);
      sum_g += g;
      sum_gx += g * xhat;
    }
    C mean_g = workgroup_sum(sum_g) / C(cols);
    C mean_gx = workgroup_sum(sum_gx) / C(cols);
    for (uint c = t; c < cols; c += WG) {
      C xhat = (C(LOAD(T)(p.x_addr, base + c)) - mu) * rs;
      C g = C(LOAD(T)(p.grad_out_addr, base + c)) * weight_at(p, c);
      STORE(T)(p.out_addr, base + c, CT(T)(rs * (g - mean_g - xhat * mean_gx)));
    }
#else
#if T_KIND == 1
    C eps = uint64BitsToDouble(p.eps_bits);
#else
    C eps = p.eps_f;
#endif
    C sum = C(0);
    for (uint c = t; c < cols; c += WG) sum += C(LOAD(T)(p.x_addr, base + c));
    C mu = workgroup_sum(sum) / C(cols);
    C sq = C(0);
    for (uint c = t; c < cols; c += WG) {
      C d = C(LOAD(T)(p.x_addr, base + c)) - mu;
      sq += d * d;
    }
    C rs = C(1) / sqrt(workgroup_sum(sq) / C(cols) + eps);
    if (t == 0) {
      STORE_STAT(p.mean_addr, r, mu);
      STORE_STAT(p.rstd_addr, r, rs);
    }
    for (uint c = t; c < cols; c += WG) {
      C b = p.bias_addr != 0ul ? C(LOAD(T)(p.bias_addr, c)) : C(0);
      STORE(T)(p.out_addr, base + c, CT(T)((C(LOAD(T)(p.x_addr, base + c)) - mu) * rs * weight_at(p, c) + b));
    }
#endif
  }
#endif
}
#endif
