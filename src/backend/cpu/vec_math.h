#pragma once
// exp written so that the compiler vectorizes loops calling it (branch-free; the library is built
// with -fno-trapping-math so the selects if-convert): the C library's expf is a call per element,
// which made exp the cost of softmax and cross_entropy. f64 keeps std::exp.
//
// exp(x) = 2^n * exp(r) with n = round(x / ln 2) and |r| <= ln 2 / 2; exp(r) by a degree-6
// polynomial (Taylor coefficients); relative error under 2.5e-7 over the normal range.

#include <cmath>
#include <cstdint>
#include <cstring>

namespace st::backend::cpu {

inline float exp_approx(float x) {
  constexpr float kLog2e = 1.44269504088896341f;
  constexpr float kLn2Hi = 0.693359375f;  // ln 2 split in two so n * kLn2Hi is exact
  constexpr float kLn2Lo = -2.12194440e-4f;
  constexpr float kRoundMagic = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
  // Past 89 the result overflows to inf and below -104 underflows to 0 by itself. A NaN x fails
  // both comparisons, so it flows through to the result.
  const float low_clamped = x < -104.0f ? -104.0f : x;
  const float clamped = low_clamped > 89.0f ? 89.0f : low_clamped;
  const float n = (clamped * kLog2e + kRoundMagic) - kRoundMagic;
  const float r = (clamped - n * kLn2Hi) - n * kLn2Lo;
  float p = 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  // 2^n as a product of two powers of two that stay normal numbers for n in [-150, 128].
  const int32_t n_int = static_cast<int32_t>(n == n ? n : 0.0f);
  const int32_t half = n_int / 2;
  const int32_t bits_a = (half + 127) << 23, bits_b = (n_int - half + 127) << 23;
  float scale_a, scale_b;
  std::memcpy(&scale_a, &bits_a, sizeof scale_a);
  std::memcpy(&scale_b, &bits_b, sizeof scale_b);
  return p * scale_a * scale_b;
}

// erf with an absolute error under 5e-7 (the Abramowitz-Stegun 7.1.26 form, max error 1.5e-7,
// plus f32 rounding): right for GELU, where the erf term is scaled by x / 2, not for erf alone
// near 0, where the relative error would grow.
inline float erf_approx(float x) {
  const float z = x < 0 ? -x : x;
  const float t = 1.0f / (1.0f + 0.3275911f * z);
  float p = 1.061405429f;
  p = p * t - 1.453152027f;
  p = p * t + 1.421413741f;
  p = p * t - 0.284496736f;
  p = p * t + 0.254829592f;
  const float erf_z = 1.0f - p * t * exp_approx(-z * z);
  return x < 0 ? -erf_z : erf_z;
}

// exp in the compute type C of a kernel: the vectorizable one for f32, std::exp for f64.
template <typename C>
inline C exp_of(C x) {
  if constexpr (sizeof(C) == 4)
    return exp_approx(x);
  else
    return std::exp(x);
}

// erf in the compute type C, for GELU: the approximation for f32, std::erf for f64.
template <typename C>
inline C erf_for_gelu(C x) {
  if constexpr (sizeof(C) == 4)
    return erf_approx(x);
  else
    return std::erf(x);
}

}  // namespace st::backend::cpu
