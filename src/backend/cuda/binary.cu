// Binary elementwise ops and comparisons, with the CPU backend's semantics: NaN wins maximum and
// minimum, integers wrap around, integer division floors.

#include <string_view>

#include "backend/cuda/integer_math.cuh"
#include "backend/cuda/map.cuh"

namespace st::backend::cuda {
namespace {

constexpr std::string_view kBinaryNames[] = {"add",
                                             "sub",
                                             "mul",
                                             "div",
                                             "pow",
                                             "maximum",
                                             "minimum",
                                             "eq",
                                             "ne",
                                             "lt",
                                             "le",
                                             "gt",
                                             "ge",
                                             "tanh_backward",
                                             "sigmoid_backward",
                                             "relu_backward",
                                             "gelu_backward",
                                             "gelu_tanh_backward"};

const char* name_of(BinaryOp op) { return kBinaryNames[static_cast<size_t>(op)].data(); }

bool is_comparison(BinaryOp op) { return op >= BinaryOp::Eq && op <= BinaryOp::Ge; }

template <typename T>
void compare(BinaryOp op, const Tensor& out, const Tensor& a, const Tensor& b) {
  using C = calc_t<T>;
  const auto run = [&](auto fn) { map<bool, T, T>(name_of(op), fn, out, a, b); };
  switch (op) {
    case BinaryOp::Eq: run([] __device__(C x, C y) { return x == y; }); break;
    case BinaryOp::Ne: run([] __device__(C x, C y) { return x != y; }); break;
    case BinaryOp::Lt: run([] __device__(C x, C y) { return x < y; }); break;
    case BinaryOp::Le: run([] __device__(C x, C y) { return x <= y; }); break;
    case BinaryOp::Gt: run([] __device__(C x, C y) { return x > y; }); break;
    case BinaryOp::Ge: run([] __device__(C x, C y) { return x >= y; }); break;
    default: break;
  }
}

template <typename T>
bool binary_float(BinaryOp op, const Tensor& out, const Tensor& a, const Tensor& b) {
  using C = calc_t<T>;
  constexpr C kInvSqrt2 = C(0.70710678118654752440);
  constexpr C kInvSqrt2Pi = C(0.39894228040143267794);
  constexpr C kSqrt2OverPi = C(0.79788456080286535588);
  constexpr C kCubic = C(0.044715);
  const auto run = [&](auto fn) { map<T, T, T>(name_of(op), fn, out, a, b); };
  switch (op) {
    case BinaryOp::Add: run([] __device__(C x, C y) { return x + y; }); break;
    case BinaryOp::Sub: run([] __device__(C x, C y) { return x - y; }); break;
    case BinaryOp::Mul: run([] __device__(C x, C y) { return x * y; }); break;
    case BinaryOp::Div: run([] __device__(C x, C y) { return x / y; }); break;
    case BinaryOp::Pow: run([] __device__(C x, C y) { return ::pow(x, y); }); break;
    case BinaryOp::Maximum:
      run([] __device__(C x, C y) { return x > y || ::isnan(x) ? x : y; });
      break;
    case BinaryOp::Minimum:
      run([] __device__(C x, C y) { return x < y || ::isnan(x) ? x : y; });
      break;
    case BinaryOp::TanhBackward: run([] __device__(C g, C y) { return g * (C(1) - y * y); }); break;
    case BinaryOp::SigmoidBackward:
      run([] __device__(C g, C y) { return g * y * (C(1) - y); });
      break;
    case BinaryOp::ReluBackward:
      run([] __device__(C g, C x) { return x > C(0) ? g : C(0); });
      break;
    case BinaryOp::GeluErfBackward:
      // d/dx x * Phi(x) = Phi(x) + x * phi(x)
      run([] __device__(C g, C x) {
        const C cdf = C(0.5) * (C(1) + ::erf(x * kInvSqrt2));
        const C pdf = kInvSqrt2Pi * ::exp(C(-0.5) * x * x);
        return g * (cdf + x * pdf);
      });
      break;
    case BinaryOp::GeluTanhBackward:
      run([] __device__(C g, C x) {
        const C t = ::tanh(kSqrt2OverPi * (x + kCubic * x * x * x));
        const C du = kSqrt2OverPi * (C(1) + C(3) * kCubic * x * x);
        return g * (C(0.5) * (C(1) + t) + C(0.5) * x * (C(1) - t * t) * du);
      });
      break;
    default: return false;
  }
  return true;
}

template <typename T>
bool binary_integer(BinaryOp op, const Tensor& out, const Tensor& a, const Tensor& b) {
  using I = calc_t<T>;
  const auto run = [&](auto fn) { map<T, T, T>(name_of(op), fn, out, a, b); };
  switch (op) {
    case BinaryOp::Add: run([] __device__(I x, I y) { return wrap_add(x, y); }); return true;
    case BinaryOp::Sub: run([] __device__(I x, I y) { return wrap_sub(x, y); }); return true;
    case BinaryOp::Mul: run([] __device__(I x, I y) { return wrap_mul(x, y); }); return true;
    case BinaryOp::Div: run([] __device__(I x, I y) { return floor_div(x, y); }); return true;
    case BinaryOp::Pow:
      run([] __device__(I x, I y) { return int_pow(x, static_cast<int64_t>(y)); });
      return true;
    case BinaryOp::Maximum: run([] __device__(I x, I y) { return x > y ? x : y; }); return true;
    case BinaryOp::Minimum: run([] __device__(I x, I y) { return x < y ? x : y; }); return true;
    default: return false;
  }
}

bool is_narrow_float(DType dtype) { return dtype == DType::Float16 || dtype == DType::BFloat16; }

// f32 out = op(a, b), one operand f32 and the other N (f16 or bf16), read as it is.
template <typename N>
void binary_mixed(BinaryOp op, const Tensor& out, const Tensor& a, const Tensor& b) {
  const auto run = [&](auto fn) {
    if (a.dtype() == DType::Float32)
      map<float, float, N>(name_of(op), fn, out, a, b);
    else
      map<float, N, float>(name_of(op), fn, out, a, b);
  };
  switch (op) {
    case BinaryOp::Add: run([] __device__(float x, float y) { return x + y; }); break;
    case BinaryOp::Sub: run([] __device__(float x, float y) { return x - y; }); break;
    case BinaryOp::Mul: run([] __device__(float x, float y) { return x * y; }); break;
    default: break;
  }
}

}  // namespace

bool CudaBackend::has_mixed_binary(BinaryOp op, DType a, DType b) {
  return (op == BinaryOp::Add || op == BinaryOp::Sub || op == BinaryOp::Mul) &&
         ((a == DType::Float32 && is_narrow_float(b)) ||
          (b == DType::Float32 && is_narrow_float(a)));
}

void CudaBackend::binary(BinaryOp op, const Tensor& out, const Tensor& a, const Tensor& b) {
  if (a.dtype() != b.dtype() && !is_comparison(op)) {
    ST_CHECK(has_mixed_binary(op, a.dtype(), b.dtype()), NotImplementedError, "[", name_of(op),
             "] not implemented for ", a.dtype(), " and ", b.dtype(),
             " operands on the cuda backend");
    const DType narrow = a.dtype() == DType::Float32 ? b.dtype() : a.dtype();
    if (narrow == DType::BFloat16)
      binary_mixed<__nv_bfloat16>(op, out, a, b);
    else
      binary_mixed<__half>(op, out, a, b);
    return;
  }
  const bool done = dispatch(a.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if (is_comparison(op)) {
      compare<T>(op, out, a, b);
      return true;
    }
    if constexpr (kIsFloat<T>)
      return binary_float<T>(op, out, a, b);
    else
      return binary_integer<T>(op, out, a, b);
  });
  if (!done) not_implemented(detail::concat(name_of(op), " for ", a.dtype()));
}

}  // namespace st::backend::cuda
