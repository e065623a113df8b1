#include "spiraltorch/dtype.h"

#include "spiraltorch/error.h"
#include "spiraltorch/scalar.h"

namespace st {

size_t dtype_size(DType dtype) {
  switch (dtype) {
    case DType::Float32:
    case DType::Int32: return 4;
    case DType::Float64:
    case DType::Int64: return 8;
    case DType::Float16:
    case DType::BFloat16: return 2;
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
      case DType::Float16:
      case DType::BFloat16: return 3;
      case DType::Float32: return 4;
      case DType::Float64: return 5;
    }
    return 0;
  };
  if (rank(a) == 3 && rank(b) == 3) return DType::Float32;
  return rank(a) >= rank(b) ? a : b;
}

std::ostream& operator<<(std::ostream& out, DType dtype) { return out << dtype_name(dtype); }

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
