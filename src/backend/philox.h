#pragma once
// Philox4x32-10 (Salmon et al., "Parallel Random Numbers: As Easy as 1, 2, 3", SC'11), a
// counter-based generator: a number depends only on (key, counter), so every backend draws the same
// ones. Plain C++ without the standard library, so CUDA kernels can include it too.

#include <stdint.h>

#ifdef __CUDACC__
#define ST_HOST_DEVICE __host__ __device__
#else
#define ST_HOST_DEVICE
#endif

namespace st::backend {

struct Philox4x32 {
  uint32_t lane[4];
};

// The four outputs for counter (counter low, counter high, 0, 0) under key (seed low, seed high).
ST_HOST_DEVICE inline Philox4x32 philox4x32_10(uint64_t counter, uint64_t seed) {
  uint32_t c0 = static_cast<uint32_t>(counter), c1 = static_cast<uint32_t>(counter >> 32);
  uint32_t c2 = 0, c3 = 0;
  uint32_t k0 = static_cast<uint32_t>(seed), k1 = static_cast<uint32_t>(seed >> 32);
  for (int round = 0; round < 10; ++round) {
    if (round > 0) {  // the key is bumped between rounds
      k0 += 0x9E3779B9u;
      k1 += 0xBB67AE85u;
    }
    const uint64_t p0 = static_cast<uint64_t>(0xD2511F53u) * c0;
    const uint64_t p1 = static_cast<uint64_t>(0xCD9E8D57u) * c2;
    const uint32_t next0 = static_cast<uint32_t>(p1 >> 32) ^ c1 ^ k0;
    const uint32_t next2 = static_cast<uint32_t>(p0 >> 32) ^ c3 ^ k1;
    c1 = static_cast<uint32_t>(p1);
    c3 = static_cast<uint32_t>(p0);
    c0 = next0;
    c2 = next2;
  }
  return {{c0, c1, c2, c3}};
}

// The top `bits` bits of x as a uniform number in [0, 1). With bits at most the significand width
// of the output dtype (24 for f32 and f64, 11 for f16, 8 for bf16) every value is exact there, so
// none rounds up to 1.
ST_HOST_DEVICE inline float philox_unit(uint32_t x, int bits = 24) {
  return static_cast<float>(x >> (32 - bits)) * (1.0f / static_cast<float>(1u << bits));
}

}  // namespace st::backend
