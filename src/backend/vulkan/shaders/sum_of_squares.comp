#version 460
// Partial sums of squares of one tensor: workgroup k writes the sum over its chunk into
// partials[first + k], accumulated in ACC (f32, or f64 when the result is f64). A reduce pass
// over all partials gives the total.
#include "common.glsl"

layout(local_size_x = WG) in;

layout(buffer_reference, std430, buffer_reference_align = 8) readonly buffer SquaresParams {
  uint64_t in_addr;
  uint64_t partials_addr;
  uint numel;
  uint first;
  uint chunk;  // elements per workgroup
  uint pad;
};

#define A CT(ACC)

void main() {
  SquaresParams p = SquaresParams(params_address);
  uint k = gl_WorkGroupID.x;
  uint begin = k * p.chunk, end = min(p.numel, begin + p.chunk);
  A sum = A(0);
  for (uint i = begin + gl_LocalInvocationIndex; i < end; i += WG) {
    A x = A(LOAD(T)(p.in_addr, i));
    sum += x * x;
  }
  sum = workgroup_sum(sum);
  if (gl_LocalInvocationIndex == 0) STORE(ACC)(p.partials_addr, p.first + k, sum);
}
