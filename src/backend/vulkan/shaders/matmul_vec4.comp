#version 460
// f32 batched GEMM with 16-byte accesses: out[b] = alpha * a[b] @ b[b] + beta * out[b], where each
// operand is unit-stride along one dim (a along K or M, b along N or K), that dim's length and
// every other stride a multiple of 4, and every base address 16-byte aligned; out is contiguous
// with N a multiple of 4. 16 x 16 invocations compute a BM x BN tile, each a (BM / 16) x (BN / 16)
// block of 4 x 4 sub-blocks 64 rows or columns apart, so that the shared-memory reads of a warp
// are contiguous vec4s. The next BK-deep slices are loaded into registers while the current ones
// are multiplied, then stored into the other half of a double buffer: one barrier per slice.
#include "common.glsl"

layout(local_size_x = 256) in;

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

layout(buffer_reference, std430, buffer_reference_align = 16) buffer Vec4Buf { vec4 v[]; };

#define TM (BM / 16)
#define TN (BN / 16)
// vec4 loads per invocation and slice.
#define A_LOADS (BM * BK / 1024)
#define B_LOADS (BN * BK / 1024)
// Rows padded by 4 floats: a K-contiguous operand is stored transposed, a column of 4 at a time,
// and the padding spreads invocations that share a row over different banks; vec4 reads stay
// 16-byte aligned.
shared vec4 tile_a[2][BK][(BM + 4) / 4];
shared vec4 tile_b[2][BK][(BN + 4) / 4];

// The v-th vec4 of a BK-deep slice of a [rows, K] operand, zero past its ends, and where it goes
// in the k-major tile: `k_unit` says whether the operand is unit-stride along K (else along rows),
// `stride` is its stride along the other dim.
void load_slice(uint64_t addr, uint base, uint stride, bool k_unit, uint rows, uint row0, uint K,
                uint k0, uint loads, uint v, out vec4 value, out uint row, out uint kk) {
  uint tile_rows = loads * 1024 / BK;
  if (k_unit) {
    row = v / (BK / 4);
    kk = (v % (BK / 4)) * 4;
    uint gr = row0 + row, gk = k0 + kk;
    bool live = gr < rows && gk < K;
    value = live ? Vec4Buf(addr).v[(base + gr * stride + gk) / 4] : vec4(0);
  } else {
    kk = v / (tile_rows / 4);
    row = (v % (tile_rows / 4)) * 4;
    uint gr = row0 + row, gk = k0 + kk;
    bool live = gr < rows && gk < K;
    value = live ? Vec4Buf(addr).v[(base + gr + gk * stride) / 4] : vec4(0);
  }
}

void main() {
  MatmulParams p = MatmulParams(params_address);
  uint t = gl_LocalInvocationIndex, tx = t % 16, ty = t / 16;
  uint row0 = gl_WorkGroupID.y * BM, col0 = gl_WorkGroupID.x * BN;
  uint M = p.m, N = p.n, K = p.k;
  bool a_k_unit = p.a_col == 1u, b_k_unit = p.b_row == 1u;
  uint a_stride = a_k_unit ? p.a_row : p.a_col, b_stride = b_k_unit ? p.b_col : p.b_row;
  for (uint b = gl_WorkGroupID.z; b < p.batch; b += gl_NumWorkGroups.z) {
    uint a_base = b * p.a_batch, b_base = b * p.b_batch;
    vec4 acc[TM][TN / 4];
    for (uint i = 0; i < TM; ++i)
      for (uint j = 0; j < TN / 4; ++j) acc[i][j] = vec4(0);

    vec4 next_a[A_LOADS], next_b[B_LOADS];
    uint a_row_of[A_LOADS], a_k_of[A_LOADS], b_col_of[B_LOADS], b_k_of[B_LOADS];
    for (uint i = 0; i < A_LOADS; ++i)
      load_slice(p.a_addr, a_base, a_stride, a_k_unit, M, row0, K, 0, A_LOADS,
                 t + i * 256, next_a[i], a_row_of[i], a_k_of[i]);
    for (uint i = 0; i < B_LOADS; ++i)
      load_slice(p.b_addr, b_base, b_stride, b_k_unit, N, col0, K, 0, B_LOADS,
                 t + i * 256, next_b[i], b_col_of[i], b_k_of[i]);

    uint stage = 0;
    for (uint k0 = 0; k0 < K; k0 += BK) {
      // Registers to shared memory: a K-unit operand's vec4 runs along K, so it is spread over
      // 4 rows of the k-major tile; otherwise it is one vec4 of a row.
      for (uint i = 0; i < A_LOADS; ++i) {
        uint r = a_row_of[i], kk = a_k_of[i];
        if (a_k_unit) {
          for (uint e = 0; e < 4; ++e) tile_a[stage][kk + e][r / 4][r % 4] = next_a[i][e];
        } else {
          tile_a[stage][kk][r / 4] = next_a[i];
        }
      }
      for (uint i = 0; i < B_LOADS; ++i) {
        uint c = b_col_of[i], kk = b_k_of[i];
        if (b_k_unit) {
          for (uint e = 0; e < 4; ++e) tile_b[stage][kk + e][c / 4][c % 4] = next_b[i][e];
        } else {
          tile_b[stage][kk][c / 4] = next_b[i];
        }
      }
      barrier();
      if (k0 + BK < K) {
        for (uint i = 0; i < A_LOADS; ++i)
          load_slice(p.a_addr, a_base, a_stride, a_k_unit, M, row0, K, k0 + BK,
                     A_LOADS, t + i * 256, next_a[i], a_row_of[i], a_k_of[i]);
        for (uint i = 0; i < B_LOADS; ++i)
          load_slice(p.b_addr, b_base, b_stride, b_k_unit, N, col0, K, k0 + BK,
                     B_LOADS, t + i * 256, next_b[i], b_col_of[i], b_k_of[i]);
      }
      for (uint kk = 0; kk < BK; ++kk) {
        vec4 av[TM / 4], bv[TN / 4];
        for (uint g = 0; g < TM / 4; ++g) av[g] = tile_a[stage][kk][g * 16 + ty];
        for (uint g = 0; g < TN / 4; ++g) bv[g] = tile_b[stage][kk][g * 16 + tx];
        for (uint g = 0; g < TM / 4; ++g)
          for (uint i = 0; i < 4; ++i)
            for (uint j = 0; j < TN / 4; ++j) acc[g * 4 + i][j] += av[g][i] * bv[j];
      }
      // The other buffer is free: every invocation passed the barrier above after its last read.
      stage ^= 1u;
    }
    barrier();  // the next batch entry rewrites stage 0, which may still be read

    float alpha = p.alpha_f, beta = p.beta_f;
    uint out_base = b * M * N;
    for (uint i = 0; i < TM; ++i) {
      uint r = row0 + (i / 4) * 64 + ty * 4 + i % 4;
      if (r >= M) continue;
      for (uint j = 0; j < TN / 4; ++j) {
        uint c = col0 + j * 64 + tx * 4;
        if (c >= N) continue;
        uint at = (out_base + r * N + c) / 4;
        vec4 v = alpha * acc[i][j];
        if (beta != 0.0) v += beta * Vec4Buf(p.out_addr).v[at];
        Vec4Buf(p.out_addr).v[at] = v;
      }
    }
  }
}
