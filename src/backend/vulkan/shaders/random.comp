#version 460
// uniform, normal and dropout from Philox4x32-10 streams, as backend.h and philox.h define them:
// element i uses lane i % 4 of the block at counter offset + i / 4 under key seed. An invocation
// computes one block and writes its (up to) four elements.
#include "common.glsl"
#include "math.glsl"

#define UNIFORM 0
#define NORMAL 1
#define DROPOUT 2

layout(local_size_x = WG) in;

layout(buffer_reference, std430, buffer_reference_align = 8) readonly buffer RandomParams {
  uint64_t out_addr;
  uint64_t mask_addr;
  uint64_t in_addr;
  uint64_t seed;
  uint64_t offset;
  uint64_t a_bits;  // low, mean or p as a double
  uint64_t b_bits;  // high - low, stddev or 1 / (1 - p) as a double
  float a_f;
  float b_f;
  uint numel;
  uint mode;
  uint bits;  // significand bits of the dtype
  uint pad;
};

uvec4 philox(uint64_t counter, uint64_t seed) {
  uint c0 = uint(counter), c1 = uint(counter >> 32), c2 = 0u, c3 = 0u;
  uint k0 = uint(seed), k1 = uint(seed >> 32);
  for (int round = 0; round < 10; ++round) {
    if (round > 0) {
      k0 += 0x9E3779B9u;
      k1 += 0xBB67AE85u;
    }
    uint hi0, lo0, hi1, lo1;
    umulExtended(0xD2511F53u, c0, hi0, lo0);
    umulExtended(0xCD9E8D57u, c2, hi1, lo1);
    uint next0 = hi1 ^ c1 ^ k0, next2 = hi0 ^ c3 ^ k1;
    c1 = lo1;
    c3 = lo0;
    c0 = next0;
    c2 = next2;
  }
  return uvec4(c0, c1, c2, c3);
}

float unit(uint x, uint bits) { return float(x >> (32u - bits)) * (1.0 / float(1u << bits)); }

#if T_KIND == 1
#define C double
#else
#define C float
#endif

void main() {
  RandomParams p = RandomParams(params_address);
#if T_KIND == 1
  C a = uint64BitsToDouble(p.a_bits), b = uint64BitsToDouble(p.b_bits);
#else
  C a = p.a_f, b = p.b_f;
#endif
  uint blocks = (p.numel + 3u) / 4u;
  for (uint c = gl_GlobalInvocationID.x; c < blocks; c += gl_NumWorkGroups.x * WG) {
    uvec4 x = philox(p.offset + uint64_t(c), p.seed);
    for (uint lane = 0; lane < 4u && 4u * c + lane < p.numel; ++lane) {
      uint i = 4u * c + lane;
      if (p.mode == UNIFORM) {
        STORE(T)(p.out_addr, i, CT(T)(a + b * C(unit(x[lane], p.bits))));
      } else if (p.mode == NORMAL) {
        // Box-Muller on lanes (0, 1) and (2, 3); even lanes take the cosine.
        C u_radius = C(unit(x[lane & ~1u], 24u));
        float angle = 6.28318530717958647692 * unit(x[lane | 1u], 24u);
#if T_KIND == 1
        C radius = sqrt(-2.0LF * log_f64(1.0LF - u_radius));
#else
        C radius = sqrt(-2.0 * log(1.0 - u_radius));
#endif
        C z = radius * C((lane & 1u) == 0u ? cos(angle) : sin(angle));
        STORE(T)(p.out_addr, i, CT(T)(a + b * z));
      } else {
        C m = C(unit(x[lane], p.bits)) >= a ? b : C(0);
        STORE(T)(p.mask_addr, i, CT(T)(m));
        STORE(T)(p.out_addr, i, CT(T)(C(LOAD(T)(p.in_addr, i)) * m));
      }
    }
  }
}
