#version 460
// Same-dtype copy of dense bytes, 16 bytes per access: both addresses 16-byte aligned, the length
// in 16-byte units (the host copies any shorter tail itself). Each invocation moves UNROLL vectors
// a workgroup apart per step, so that several loads are in flight and each step stays coalesced.
#include "common.glsl"

#define UNROLL 4
layout(buffer_reference, std430, buffer_reference_align = 16) buffer UVec4Buf { uvec4 v[]; };
layout(buffer_reference, std430, buffer_reference_align = 8) readonly buffer CopyVec4Params {
  uint64_t dst;
  uint64_t src;
  uint count;  // 16-byte vectors
  uint pad;
};

layout(local_size_x = WG) in;

void main() {
  CopyVec4Params p = CopyVec4Params(params_address);
  UVec4Buf dst = UVec4Buf(p.dst), src = UVec4Buf(p.src);
  const uint step = gl_NumWorkGroups.x * WG * UNROLL;
  for (uint base = gl_WorkGroupID.x * WG * UNROLL + gl_LocalInvocationIndex; base < p.count;
       base += step) {
    uvec4 v[UNROLL];
    for (uint k = 0; k < UNROLL; ++k) {
      uint i = base + k * WG;
      if (i < p.count) v[k] = src.v[i];
    }
    for (uint k = 0; k < UNROLL; ++k) {
      uint i = base + k * WG;
      if (i < p.count) dst.v[i] = v[k];
    }
  }
}
