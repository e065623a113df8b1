#pragma once
// Integer arithmetic as the CPU backend does it: wrap-around on overflow (through unsigned types,
// where it is defined), Python's floor division, powers by squaring.

#include <cstdint>
#include <limits>
#include <type_traits>

namespace st::backend::cuda {

template <typename I>
__host__ __device__ __forceinline__ I wrap_add(I a, I b) {
  using U = std::make_unsigned_t<I>;
  return static_cast<I>(static_cast<U>(a) + static_cast<U>(b));
}
template <typename I>
__host__ __device__ __forceinline__ I wrap_sub(I a, I b) {
  using U = std::make_unsigned_t<I>;
  return static_cast<I>(static_cast<U>(a) - static_cast<U>(b));
}
template <typename I>
__host__ __device__ __forceinline__ I wrap_mul(I a, I b) {
  using U = std::make_unsigned_t<I>;
  return static_cast<I>(static_cast<U>(a) * static_cast<U>(b));
}

// Python's a // b; b == 0 gives 0 rather than a trap.
template <typename I>
__host__ __device__ __forceinline__ I floor_div(I a, I b) {
  if (b == 0) return 0;
  if (b == -1) return wrap_sub(I(0), a);  // the lowest value / -1 overflows
  const I q = a / b;
  return a % b != 0 && (a < 0) != (b < 0) ? q - 1 : q;
}

// base ** exp, wrapping; negative powers of integers other than 1 and -1 round to 0.
template <typename I>
__host__ __device__ __forceinline__ I int_pow(I base, int64_t exp) {
  if (exp < 0) return base == 1 ? 1 : base == -1 ? (exp & 1 ? -1 : 1) : 0;
  I result = 1;
  for (; exp != 0; exp >>= 1) {
    if (exp & 1) result = wrap_mul(result, base);
    base = wrap_mul(base, base);
  }
  return result;
}

// A double parameter in T's range: bool is "nonzero", integers saturate and NaN gives 0.
template <typename T>
T saturate(double v) {
  if constexpr (std::is_same_v<T, bool>) {
    return v != 0;
  } else {
    constexpr double lowest = static_cast<double>(std::numeric_limits<T>::lowest());
    if (v != v) return 0;
    if (v <= lowest) return std::numeric_limits<T>::lowest();
    if (v >= -lowest) return std::numeric_limits<T>::max();
    return static_cast<T>(v);
  }
}

}  // namespace st::backend::cuda
