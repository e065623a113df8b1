#version 460
// Embedding forward: out[n, d] = weight[indices[n], d], indices validated by the host. BACKWARD:
// for each distinct index u (sorted by the host, with the rows that use it listed in order),
// grad_weight[index_u, d] += the sum of those rows of grad_out: deterministic, no atomics.
#include "common.glsl"

layout(local_size_x = WG) in;

layout(buffer_reference, std430, buffer_reference_align = 8) readonly buffer EmbeddingParams {
  uint64_t out_addr;      // out, or grad_weight
  uint64_t weight_addr;   // weight, or grad_out
  uint64_t indices_addr;  // indices (forward), or the host's plan (backward)
  uint n;                 // rows of out, or distinct indices
  uint dim;
  uint indices_are_i64;
  uint plan_rows;         // backward: offset in the plan of the row lists
};

#if T_KIND == 1
#define C double
#else
#define C float
#endif

void main() {
  EmbeddingParams p = EmbeddingParams(params_address);
  uint total = p.n * p.dim;
  for (uint i = gl_GlobalInvocationID.x; i < total; i += gl_NumWorkGroups.x * WG) {
    uint row = i / p.dim, d = i % p.dim;
#ifndef BACKWARD
    uint index = p.indices_are_i64 != 0u ? uint(load_i64(p.indices_addr, row)) : uint(load_i32(p.indices_addr, row));
    STORE(T)(p.out_addr, i, LOAD(T)(p.weight_addr, index * p.dim + d));
#else
    // Plan (int32): [index of u, first row slot of u] per u, then the row lists.
    int index = load_i32(p.indices_addr, 2u * row);
    uint first = uint(load_i32(p.indices_addr, 2u * row + 1u));
    uint last = uint(load_i32(p.indices_addr, 2u * row + 3u));
    C acc = C(LOAD(T)(p.out_addr, uint(index) * p.dim + d));
    for (uint k = first; k < last; ++k) {
      uint src = uint(load_i32(p.indices_addr, p.plan_rows + k));
      acc += C(LOAD(T)(p.weight_addr, src * p.dim + d));
    }
    STORE(T)(p.out_addr, uint(index) * p.dim + d, CT(T)(acc));
#endif
  }
}
