#pragma once
// Division by a fixed divisor d >= 1 as a multiply-high, an add and a shift (Granlund and
// Montgomery's round-up method), exact for dividends below 2^31. Strided kernels divide each
// index by every dim's size; a 64-bit division costs dozens of instructions and bound them. Plain
// C++ outside CUDA, so that the host tests can check it.

#include <cstdint>

#if defined(__CUDACC__)
#define ST_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define ST_HOST_DEVICE inline
#endif

namespace st::backend::cuda {

struct FastDivmod {
  uint32_t divisor = 1, multiplier = 1, shift = 0;

  FastDivmod() = default;
  explicit FastDivmod(uint32_t d) : divisor(d) {
    while ((uint64_t{1} << shift) < d) ++shift;
    multiplier = static_cast<uint32_t>((uint64_t{1} << 32) * ((uint64_t{1} << shift) - d) / d + 1);
  }
  // n / divisor for n < 2^31.
  ST_HOST_DEVICE uint32_t div(uint32_t n) const {
#ifdef __CUDA_ARCH__
    const uint32_t high = __umulhi(n, multiplier);
#else
    const uint32_t high = static_cast<uint32_t>((uint64_t{n} * multiplier) >> 32);
#endif
    return (high + n) >> shift;
  }
};

}  // namespace st::backend::cuda

#undef ST_HOST_DEVICE
