#pragma once
// Element types. f16 and bf16 are stored as 16 bits and computed in f32.

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <ostream>
#include <string_view>
#include <type_traits>

namespace st {

enum class DType : uint8_t { Float32, Float64, Float16, BFloat16, Int32, Int64, Bool };

inline constexpr DType kDefaultFloat = DType::Float32;

size_t dtype_size(DType dtype);
std::string_view dtype_name(DType dtype);  // "float32", as PyTorch spells it
bool is_floating(DType dtype);
bool is_integral(DType dtype);  // bool counts as integral
// The dtype both operands are computed in, following PyTorch's promotion lattice:
// bool < int32 < int64 < {float16, bfloat16} < float32 < float64; float16 with bfloat16 gives
// float32.
DType promote_types(DType a, DType b);
std::ostream& operator<<(std::ostream& out, DType dtype);

// IEEE binary16.
struct Half {
  uint16_t bits = 0;
  Half() = default;
  Half(float value);  // NOLINT: implicit, like the built-in float conversions
  operator float() const;
};

// Round-to-nearest-even conversion between binary32 and binary16, subnormals included.
inline Half::Half(float value) {
  uint32_t f;
  std::memcpy(&f, &value, 4);
  const uint32_t sign = (f >> 16) & 0x8000u;
  const uint32_t abs = f & 0x7fffffffu;
  if (abs >= 0x7f800000u) {  // Inf or NaN
    bits = static_cast<uint16_t>(sign | 0x7c00u | (abs > 0x7f800000u ? 0x200u : 0u));
    return;
  }
  if (abs >= 0x477ff000u) {  // rounds to >= 65520: overflow to Inf
    bits = static_cast<uint16_t>(sign | 0x7c00u);
    return;
  }
  if (abs < 0x38800000u) {  // below the smallest normal half (2^-14): subnormal or zero
    float magnitude;
    std::memcpy(&magnitude, &abs, 4);
    // Scaling by 2^24 puts the half subnormal's integer mantissa in the float's integer part;
    // nearbyint rounds it to nearest even.
    bits = static_cast<uint16_t>(sign |
                                 static_cast<uint32_t>(std::nearbyint(magnitude * 16777216.0f)));
    return;
  }
  uint32_t rounded = abs + 0xfffu + ((abs >> 13) & 1u);
  bits = static_cast<uint16_t>(sign | ((rounded - 0x38000000u) >> 13));
}

inline Half::operator float() const {
  const uint32_t sign = static_cast<uint32_t>(bits & 0x8000u) << 16;
  const uint32_t exponent = (bits >> 10) & 0x1fu;
  const uint32_t mantissa = bits & 0x3ffu;
  uint32_t f;
  if (exponent == 0x1f) {
    f = sign | 0x7f800000u | (mantissa << 13);
  } else if (exponent == 0) {
    float value = static_cast<float>(mantissa) * 5.9604644775390625e-08f;  // mantissa * 2^-24
    std::memcpy(&f, &value, 4);
    f |= sign;
  } else {
    f = sign | ((exponent + 112) << 23) | (mantissa << 13);
  }
  float out;
  std::memcpy(&out, &f, 4);
  return out;
}

// bfloat16: the upper half of an f32, rounded to nearest even.
struct BFloat16 {
  uint16_t bits = 0;
  BFloat16() = default;
  BFloat16(float value) {  // NOLINT
    uint32_t u;
    std::memcpy(&u, &value, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) {  // NaN: keep it quiet rather than round into Inf
      bits = static_cast<uint16_t>((u >> 16) | 0x40);
      return;
    }
    u += 0x7fffu + ((u >> 16) & 1u);
    bits = static_cast<uint16_t>(u >> 16);
  }
  operator float() const {
    uint32_t u = static_cast<uint32_t>(bits) << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
  }
};

// The dtype whose elements are stored as T.
template <typename T>
constexpr DType dtype_of() {
  if constexpr (std::is_same_v<T, float>)
    return DType::Float32;
  else if constexpr (std::is_same_v<T, double>)
    return DType::Float64;
  else if constexpr (std::is_same_v<T, Half>)
    return DType::Float16;
  else if constexpr (std::is_same_v<T, BFloat16>)
    return DType::BFloat16;
  else if constexpr (std::is_same_v<T, int32_t>)
    return DType::Int32;
  else if constexpr (std::is_same_v<T, int64_t>)
    return DType::Int64;
  else if constexpr (std::is_same_v<T, bool>)
    return DType::Bool;
  else
    static_assert(sizeof(T) == 0, "no SpiralTorch dtype stores this C++ type");
}

// Calls fn(T{}) with T the C++ type of `dtype`: the one switch over dtypes that kernels use.
template <typename Fn>
decltype(auto) dispatch_dtype(DType dtype, Fn&& fn) {
  switch (dtype) {
    case DType::Float32: return fn(float{});
    case DType::Float64: return fn(double{});
    case DType::Float16: return fn(Half{});
    case DType::BFloat16: return fn(BFloat16{});
    case DType::Int32: return fn(int32_t{});
    case DType::Int64: return fn(int64_t{});
    case DType::Bool: return fn(bool{});
  }
  __builtin_unreachable();
}

// The type arithmetic on T is done in: f32 for the 16-bit floats, T otherwise.
template <typename T>
struct ComputeType {
  using type = T;
};
template <>
struct ComputeType<Half> {
  using type = float;
};
template <>
struct ComputeType<BFloat16> {
  using type = float;
};
template <typename T>
using compute_t = typename ComputeType<T>::type;

}  // namespace st
