#version 460
// Fused optimizer updates over one parameter tensor, in C (f64 for f64, f32 otherwise), the maths
// of ops.h. SGD (default): d = g + wd * p; with momentum b = first ? d : momentum * b + (1 -
// dampening) * d, d = nesterov ? d + momentum * b : b; p -= lr * d. ADAM: see ops.h.
#include "common.glsl"

layout(local_size_x = WG) in;

layout(buffer_reference, std430, buffer_reference_align = 8) readonly buffer OptimParams {
  uint64_t param_addr;
  uint64_t grad_addr;
  uint64_t state1_addr;  // momentum buffer (0 without momentum), or exp_avg
  uint64_t state2_addr;  // exp_avg_sq
  uint64_t h_bits[8];    // hyperparameters as doubles
  float h_f[8];          // the same as floats
  uint numel;
  uint flags;            // SGD: 1 first step, 2 nesterov
};

#if T_KIND == 1
#define C double
#define H(k) uint64BitsToDouble(p.h_bits[k])
#else
#define C float
#define H(k) p.h_f[k]
#endif

void main() {
  OptimParams p = OptimParams(params_address);
  for (uint i = gl_GlobalInvocationID.x; i < p.numel; i += gl_NumWorkGroups.x * WG) {
    C x = C(LOAD(T)(p.param_addr, i));
    C g = C(LOAD(T)(p.grad_addr, i));
#ifndef ADAM
    // h: lr, weight_decay, momentum, 1 - dampening
    C d = g + H(1) * x;
    if (p.state1_addr != 0ul) {
      C b = (p.flags & 1u) != 0u ? d : H(2) * C(LOAD(T)(p.state1_addr, i)) + H(3) * d;
      STORE(T)(p.state1_addr, i, CT(T)(b));
      d = (p.flags & 2u) != 0u ? d + H(2) * b : b;
    }
    STORE(T)(p.param_addr, i, CT(T)(x - H(0) * d));
#else
    // h: step_size, 1 / sqrt(bias2), beta1, beta2, eps, coupled weight decay, shrink
    C shrunk = x * H(6);
    C d = g + H(5) * x;
    C m = H(2) * C(LOAD(T)(p.state1_addr, i)) + (C(1) - H(2)) * d;
    C v = H(3) * C(LOAD(T)(p.state2_addr, i)) + (C(1) - H(3)) * d * d;
    STORE(T)(p.state1_addr, i, CT(T)(m));
    STORE(T)(p.state2_addr, i, CT(T)(v));
    STORE(T)(p.param_addr, i, CT(T)(shrunk - H(0) * m / (sqrt(v) * H(1) + H(4))));
#endif
  }
}
