// Unary elementwise ops, with the CPU backend's semantics (NaN propagation, integer wrap-around).

#include <string_view>

#include "backend/cuda/integer_math.cuh"
#include "backend/cuda/map.cuh"

namespace st::backend::cuda {
namespace {

constexpr std::string_view kUnaryNames[] = {"neg",       "exp",   "log",     "sqrt",  "rsqrt",
                                            "abs",       "tanh",  "sigmoid", "relu",  "gelu",
                                            "gelu_tanh", "clamp", "pow",     "affine"};

template <typename T>
void unary_float(UnaryOp op, const Tensor& out, const Tensor& in, double alpha, double beta) {
  using C = calc_t<T>;
  const C a = static_cast<C>(alpha), b = static_cast<C>(beta);
  const auto run = [&](auto fn) {
    map<T, T>(kUnaryNames[static_cast<int>(op)].data(), fn, out, in);
  };
  switch (op) {
    case UnaryOp::Neg: run([] __device__(C x) { return -x; }); break;
    case UnaryOp::Exp: run([] __device__(C x) { return ::exp(x); }); break;
    case UnaryOp::Log: run([] __device__(C x) { return ::log(x); }); break;
    case UnaryOp::Sqrt: run([] __device__(C x) { return ::sqrt(x); }); break;
    case UnaryOp::Rsqrt: run([] __device__(C x) { return C(1) / ::sqrt(x); }); break;
    case UnaryOp::Abs: run([] __device__(C x) { return ::fabs(x); }); break;
    case UnaryOp::Tanh: run([] __device__(C x) { return ::tanh(x); }); break;
    case UnaryOp::Sigmoid:
      // ::exp(-|x|) never overflows; sigmoid(x) = e / (1 + e) for negative x.
      run([] __device__(C x) {
        const C e = ::exp(-::fabs(x));
        const C r = C(1) / (C(1) + e);
        return x >= C(0) ? r : e * r;
      });
      break;
    case UnaryOp::Relu: run([] __device__(C x) { return x < C(0) ? C(0) : x; }); break;
    case UnaryOp::GeluErf:
      run([] __device__(C x) {
        return C(0.5) * x * (C(1) + ::erf(x * C(0.70710678118654752440)));
      });
      break;
    case UnaryOp::GeluTanh:
      run([] __device__(C x) {
        return C(0.5) * x *
               (C(1) + ::tanh(C(0.79788456080286535588) * (x + C(0.044715) * x * x * x)));
      });
      break;
    // Written as comparisons so that a NaN x stays NaN (fmax would drop it).
    case UnaryOp::Clamp:
      run([a, b] __device__(C x) {
        const C lo = x < a ? a : x;
        return b < lo ? b : lo;
      });
      break;
    case UnaryOp::PowScalar:
      if (alpha == 2)
        run([] __device__(C x) { return x * x; });
      else
        run([a] __device__(C x) { return ::pow(x, a); });
      break;
    case UnaryOp::Affine: run([a, b] __device__(C x) { return x * a + b; }); break;
  }
}

template <typename T>
bool unary_integer(UnaryOp op, const Tensor& out, const Tensor& in, double alpha, double beta) {
  using I = calc_t<T>;
  // Bounds and factors saturate into T's range first: an absent clamp bound arrives as +-inf.
  const I a = static_cast<I>(saturate<T>(alpha)), b = static_cast<I>(saturate<T>(beta));
  const char* name = kUnaryNames[static_cast<int>(op)].data();
  switch (op) {
    case UnaryOp::Neg:
      map<T, T>(
          name, [] __device__(I x) { return wrap_sub(I(0), x); }, out, in);
      return true;
    case UnaryOp::Abs:
      map<T, T>(
          name, [] __device__(I x) { return x < 0 ? wrap_sub(I(0), x) : x; }, out, in);
      return true;
    case UnaryOp::Relu:
      map<T, T>(
          name, [] __device__(I x) { return x < 0 ? I(0) : x; }, out, in);
      return true;
    case UnaryOp::Clamp:
      map<T, T>(
          name,
          [a, b] __device__(I x) {
            const I lo = x < a ? a : x;
            return b < lo ? b : lo;
          },
          out, in);
      return true;
    case UnaryOp::Affine:
      map<T, T>(
          name, [a, b] __device__(I x) { return wrap_add(wrap_mul(x, a), b); }, out, in);
      return true;
    case UnaryOp::PowScalar: {
      const int64_t exp = saturate<int64_t>(alpha);
      map<T, T>(
          name, [exp] __device__(I x) { return int_pow(x, exp); }, out, in);
      return true;
    }
    default: return false;
  }
}

}  // namespace

void CudaBackend::unary(UnaryOp op, const Tensor& out, const Tensor& in, double alpha,
                        double beta) {
  const bool done = dispatch(in.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if constexpr (kIsFloat<T>) {
      unary_float<T>(op, out, in, alpha, beta);
      return true;
    } else {
      return unary_integer<T>(op, out, in, alpha, beta);
    }
  });
  if (!done)
    not_implemented(detail::concat(kUnaryNames[static_cast<size_t>(op)], " for ", in.dtype()));
}

}  // namespace st::backend::cuda
