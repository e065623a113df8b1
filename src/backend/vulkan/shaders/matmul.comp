#version 460
// Batched GEMM: out[b] = alpha * a[b] @ b[b] + beta * out[b], a [M, K] and b [K, N] with any
// element strides (one of each pair is 1), out contiguous. A workgroup computes a BM x BN tile,
// staging BK-deep slices of a and b in shared memory; each invocation accumulates a TM x TN block
// in registers. C (f32, or f64 for f64) accumulates; 16-bit inputs are widened on load.
#include "common.glsl"

layout(local_size_x = (BM / TM) * (BN / TN)) in;
#define THREADS ((BM / TM) * (BN / TN))

layout(buffer_reference, std430, buffer_reference_align = 8) readonly buffer MatmulParams {
  uint64_t a_addr;
  uint64_t b_addr;
  uint64_t out_addr;
  uint64_t alpha_bits;
  uint64_t beta_bits;
  float alpha_f;
  float beta_f;
  uint m;
  uint n;
  uint k;
  uint batch;
  uint a_batch;
  uint a_row;  // stride along M
  uint a_col;  // stride along K
  uint b_batch;
  uint b_row;  // stride along K
  uint b_col;  // stride along N
};

#if T_KIND == 1
#define C double
#else
#define C float
#endif

shared C tile_a[BK][BM + 1];
shared C tile_b[BK][BN + 1];

void main() {
  MatmulParams p = MatmulParams(params_address);
  uint t = gl_LocalInvocationIndex;
  uint tx = t % (BN / TN), ty = t / (BN / TN);
  uint row0 = gl_WorkGroupID.y * BM, col0 = gl_WorkGroupID.x * BN;
  uint M = p.m, N = p.n, K = p.k;
#if T_KIND == 1
  C alpha = uint64BitsToDouble(p.alpha_bits), beta = uint64BitsToDouble(p.beta_bits);
#else
  C alpha = p.alpha_f, beta = p.beta_f;
#endif
  for (uint b = gl_WorkGroupID.z; b < p.batch; b += gl_NumWorkGroups.z) {
    uint a_base = b * p.a_batch, b_base = b * p.b_batch;
    C acc[TM][TN];
    for (uint i = 0; i < TM; ++i)
      for (uint j = 0; j < TN; ++j) acc[i][j] = C(0);
    for (uint k0 = 0; k0 < K; k0 += BK) {
      // Stage the slices; consecutive invocations take consecutive elements along whichever dim
      // the operand is unit-stride in, so that the loads coalesce.
      for (uint e = t; e < BM * BK; e += THREADS) {
        uint r, kk;
        if (p.a_col == 1u) { r = e / BK; kk = e % BK; } else { r = e % BM; kk = e / BM; }
        uint gr = row0 + r, gk = k0 + kk;
        tile_a[kk][r] = (gr < M && gk < K) ? C(LOAD(T)(p.a_addr, a_base + gr * p.a_row + gk * p.a_col)) : C(0);
      }
      for (uint e = t; e < BK * BN; e += THREADS) {
        uint c, kk;
        if (p.b_col == 1u) { c = e % BN; kk = e / BN; } else { c = e / BK; kk = e % BK; }
        uint gc = col0 + c, gk = k0 + kk;
        tile_b[kk][c] = (gc < N && gk < K) ? C(LOAD(T)(p.b_addr, b_base + gk * p.b_row + gc * p.b_col)) : C(0);
      }
      barrier();
      for (uint kk = 0; kk < BK; ++kk) {
        C av[TM], bv[TN];
        for (uint i = 0; i < TM; ++i) av[i] = tile_a[kk][ty + i * (BM / TM)];
        for (uint j = 0; j < TN; ++j) bv[j] = tile_b[kk][tx + j * (BN / TN)];
        for (uint i = 0; i < TM; ++i)
          for (uint j = 0; j < TN; ++j) acc[i][j] += av[i] * bv[j];
      }
      barrier();
    }
    uint out_base = b * M * N;
    for (uint i = 0; i < TM; ++i) {
      uint r = row0 + ty + i * (BM / TM);
      if (r >= M) continue;
      for (uint j = 0; j < TN; ++j) {
        uint c = col0 + tx + j * (BN / TN);
        if (c >= N) continue;
        uint at = out_base + r * N + c;
        C v = alpha * acc[i][j];
        if (beta != C(0)) v += beta * C(LOAD(T)(p.out_addr, at));
        STORE(T)(p.out_addr, at, CT(T)(v));
      }
    }
  }
}
