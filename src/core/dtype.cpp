#include "spiraltorch/dtype.h"

#include <cmath>

#include "spiraltorch/error.h"
#include "spiraltorch/scalar.h"

namespace st {

size_t dtype_size(DType dtype) {
  switch (dtype) {
    case DType::Float32: case DType::Int32: return 4;
    case DType::Float64: case DType::Int64: return 8;
    case DType::Float16: case DType::BFloat16: return 2;
    case DType::Bool: return 1;
  }
  throw Error("[dtype] unknown dtype");
}

std::string_view dtype_name(DType dtype) {
  switch (dtype) {
    case DType::Float32: return "float32";
    case DType::Float64: return "float64";
    case DType::Float16: return "float16";
    case DType::BFloat16: return "bfloat16";
    case DType::Int32: return "int32";
    case DType::Int64: return "int64";
    case DType::Bool: return "bool";
  }
  return "unknown";
}

bool is_floating(DType dtype) {
  return dtype == DType::Float32 || dtype == DType::Float64 || dtype == DType::Float16 ||
         dtype == DType::BFloat16;
}

bool is_integral(DType dtype) { return !is_floating(dtype); }

DType promote_types(DType a, DType b) {
  if (a == b) return a;
  // Rank on the lattice; the two 16-bit floats share a rank and meet at float32.
  auto rank = [](DType d) {
    switch (d) {
      case DType::Bool: return 0;
      case DType::Int32: return 1;
      case DType::Int64: return 2;
      case DType::Float16: case DType::BFloat16: return 3;
      case DType::Float32: return 4;
      case DType::Float64: return 5;
    }
    return 0;
  };
  if (rank(a) == 3 && rank(b) == 3) return DType::Float32;
  return rank(a) >= rank(b) ? a : b;
}

std::ostream& operator<<(std::ostream& out, DType dtype) { return out << dtype_name(dtype); }

// Round-to-nearest-even conversion between binary32 and binary16, subnormals included.
Half::Half(float value) {
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
    bits = static_cast<uint16_t>(sign | static_cast<uint32_t>(std::nearbyint(magnitude * 16777216.0f)));
    return;
  }
  uint32_t rounded = abs + 0xfffu + ((abs >> 13) & 1u);
  bits = static_cast<uint16_t>(sign | ((rounded - 0x38000000u) >> 13));
}

Half::operator float() const {
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

DType Scalar::dtype() const {
  switch (kind_) {
    case Kind::Float: return DType::Float32;
    case Kind::Int: return DType::Int64;
    case Kind::Bool: return DType::Bool;
  }
  return DType::Float32;
}

std::ostream& operator<<(std::ostream& out, const Scalar& s) {
  switch (s.kind()) {
    case Scalar::Kind::Float: return out << s.to_double();
    case Scalar::Kind::Int: return out << s.to_int();
    case Scalar::Kind::Bool: return out << (s.to_int() ? "True" : "False");
  }
  return out;
}

}  // namespace st
