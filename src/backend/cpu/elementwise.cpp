// Elementwise kernels: unary, binary and where, for every dtype where the op means something.

#include <array>
#include <cmath>
#include <iterator>
#include <numbers>
#include <string_view>
#include <type_traits>
#include <utility>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/strided.h"
#include "backend/cpu/vec_math.h"

namespace st::backend::cpu {
namespace {

// Op names for errors, in enum order.
// clang-format off
constexpr std::string_view kUnaryNames[] = {
    "neg", "exp", "log", "sqrt", "rsqrt", "abs", "tanh", "sigmoid", "relu",
    "gelu", "gelu_tanh", "clamp", "pow", "affine"};
static_assert(std::size(kUnaryNames) == static_cast<size_t>(UnaryOp::Affine) + 1);
constexpr std::string_view kBinaryNames[] = {
    "add", "sub", "mul", "div", "pow", "maximum", "minimum",
    "eq", "ne", "lt", "le", "gt", "ge",
    "tanh_backward", "sigmoid_backward", "relu_backward", "gelu_backward", "gelu_tanh_backward"};
// clang-format on
static_assert(std::size(kBinaryNames) == static_cast<size_t>(BinaryOp::GeluTanhBackward) + 1);

// What an element is computed in: f32 for f16/bf16, int for bool (stored back as "nonzero", so
// bool + bool is "or" and bool * bool is "and"), T otherwise.
template <typename T>
using calc_t = std::conditional_t<std::is_same_v<T, bool>, int, compute_t<T>>;

// Work per element relative to an add, for parallel_for's threshold.
constexpr int64_t kCheap = 1;
constexpr int64_t kMath = 8;

// out[i] = fn(in[i]...) over [begin, end) of dense operands: the loop that vectorizes.
template <typename TOut, typename Fn, typename... TIn>
ST_CPU_CLONES void dense_loop(int64_t begin, int64_t end, Fn fn, TOut* out, const TIn*... in) {
  for (int64_t i = begin; i < end; ++i) out[i] = TOut(fn(static_cast<calc_t<TIn>>(in[i])...));
}

// The same over n elements at the given strides (0 for a broadcast operand).
template <typename TOut, typename Fn, typename... TIn, typename... Steps>
ST_CPU_CLONES void strided_loop(int64_t n, Fn fn, TOut* out, int64_t out_step,
                                std::pair<const TIn*, Steps>... in) {
  for (int64_t j = 0; j < n; ++j)
    out[j * out_step] = TOut(fn(static_cast<calc_t<TIn>>(in.first[j * in.second])...));
}

// out[i] = fn(in[i]...), with loads converted to calc types and the result to TOut. fn is inlined
// into the loops, so the contiguous one vectorizes.
template <typename TOut, typename... TIn, typename Fn, typename... Tensors>
void map(int64_t cost, Fn fn, const Tensor& out, const Tensors&... in) {
  static_assert(sizeof...(TIn) == sizeof...(Tensors));
  TOut* o = static_cast<TOut*>(out.data_ptr());
  const auto layout = StridedLayout<1 + sizeof...(TIn)>::of(out, in...);
  const auto run = [&](const TIn*... x) {
    if (layout.contiguous()) {
      parallel_for(layout.numel, cost,
                   [&](int64_t begin, int64_t end) { dense_loop(begin, end, fn, o, x...); });
      return;
    }
    // Runs along the innermost dim (operand K + 1 is input K). A run that every operand walks with
    // unit stride, as a bias add's rows, is a plain loop the compiler vectorizes.
    const auto strided = [&]<size_t... K>(std::index_sequence<K...>) {
      const int64_t out_step = layout.inner_stride(0);
      const std::array<int64_t, sizeof...(TIn)> step{layout.inner_stride(K + 1)...};
      const bool dense = out_step == 1 && ((step[K] == 1) && ...);
      parallel_for(layout.numel, cost, [&](int64_t begin, int64_t end) {
        for_each_run(layout, begin, end, [&](const auto& at, int64_t n) {
          TOut* out = o + at[0];
          if (dense) {
            dense_loop(0, n, fn, out, (x + at[K + 1])...);
          } else {
            strided_loop(n, fn, out, out_step, std::pair{x + at[K + 1], step[K]}...);
          }
        });
      });
    };
    strided(std::index_sequence_for<TIn...>{});
  };
  run(static_cast<const TIn*>(in.data_ptr())...);
}

// Integers wrap around on overflow, as in PyTorch; unsigned math keeps that defined behaviour.
template <typename I>
I wrap_add(I a, I b) {
  using U = std::make_unsigned_t<I>;
  return static_cast<I>(static_cast<U>(a) + static_cast<U>(b));
}
template <typename I>
I wrap_sub(I a, I b) {
  using U = std::make_unsigned_t<I>;
  return static_cast<I>(static_cast<U>(a) - static_cast<U>(b));
}
template <typename I>
I wrap_mul(I a, I b) {
  using U = std::make_unsigned_t<I>;
  return static_cast<I>(static_cast<U>(a) * static_cast<U>(b));
}

// Python's a // b; b == 0 gives 0 rather than a trap.
template <typename I>
I floor_div(I a, I b) {
  if (b == 0) return 0;
  if (b == -1) return wrap_sub(I(0), a);  // the lowest value / -1 overflows
  const I q = a / b;
  return a % b != 0 && (a < 0) != (b < 0) ? q - 1 : q;
}

// base ** exp by repeated squaring, wrapping on overflow; negative powers of integers other than
// 1 and -1 round to 0.
template <typename I>
I int_pow(I base, int64_t exp) {
  if (exp < 0) return base == 1 ? 1 : base == -1 ? (exp & 1 ? -1 : 1) : 0;
  I result = 1;
  for (; exp != 0; exp >>= 1) {
    if (exp & 1) result = wrap_mul(result, base);
    base = wrap_mul(base, base);
  }
  return result;
}

template <typename T>
bool unary_float(UnaryOp op, const Tensor& out, const Tensor& in, double alpha, double beta) {
  using C = compute_t<T>;
  constexpr C kInvSqrt2 = 1 / std::numbers::sqrt2_v<C>;
  constexpr C kSqrt2OverPi = std::numbers::sqrt2_v<C> * std::numbers::inv_sqrtpi_v<C>;
  const C a = static_cast<C>(alpha), b = static_cast<C>(beta);
  const auto run = [&](int64_t cost, auto fn) { map<T, T>(cost, fn, out, in); };
  switch (op) {
    case UnaryOp::Neg: run(kCheap, [](C x) { return -x; }); break;
    case UnaryOp::Exp: run(kMath, [](C x) { return exp_of(x); }); break;
    case UnaryOp::Log: run(kMath, [](C x) { return std::log(x); }); break;
    case UnaryOp::Sqrt: run(kMath, [](C x) { return std::sqrt(x); }); break;
    case UnaryOp::Rsqrt: run(kMath, [](C x) { return 1 / std::sqrt(x); }); break;
    case UnaryOp::Abs: run(kCheap, [](C x) { return std::abs(x); }); break;
    case UnaryOp::Tanh: run(kMath, [](C x) { return std::tanh(x); }); break;
    case UnaryOp::Sigmoid:
      // exp(-|x|) never overflows; sigmoid(x) = e / (1 + e) for negative x.
      run(kMath, [](C x) {
        const C e = exp_of(-std::abs(x));
        const C r = 1 / (1 + e);
        return x >= 0 ? r : e * r;
      });
      break;
    case UnaryOp::Relu: run(kCheap, [](C x) { return x < 0 ? C(0) : x; }); break;  // keeps NaN
    case UnaryOp::GeluErf:
      run(kMath, [](C x) { return C(0.5) * x * (1 + erf_for_gelu(x * kInvSqrt2)); });
      break;
    case UnaryOp::GeluTanh:
      run(kMath, [](C x) {
        return C(0.5) * x * (1 + std::tanh(kSqrt2OverPi * (x + C(0.044715) * x * x * x)));
      });
      break;
    // max before min, each returning its NaN first argument, so a NaN x stays NaN.
    case UnaryOp::Clamp: run(kCheap, [a, b](C x) { return std::min(std::max(x, a), b); }); break;
    case UnaryOp::PowScalar:
      if (alpha == 2) {  // the common square, exact either way
        run(kCheap, [](C x) { return x * x; });
      } else {
        run(kMath, [a](C x) { return std::pow(x, a); });
      }
      break;
    case UnaryOp::Affine: run(kCheap, [a, b](C x) { return x * a + b; }); break;
  }
  return true;
}

// Integers and bool: only the ops the front-end sends them.
template <typename T>
bool unary_integer(UnaryOp op, const Tensor& out, const Tensor& in, double alpha, double beta) {
  using I = calc_t<T>;
  // Bounds and factors saturate into T's range first: an absent clamp bound arrives as +-inf.
  const I a = element_cast<T>(alpha), b = element_cast<T>(beta);
  const auto run = [&](auto fn) { map<T, T>(kCheap, fn, out, in); };
  switch (op) {
    case UnaryOp::Neg: run([](I x) { return wrap_sub(I(0), x); }); return true;
    case UnaryOp::Abs: run([](I x) { return x < 0 ? wrap_sub(I(0), x) : x; }); return true;
    case UnaryOp::Relu: run([](I x) { return x < 0 ? I(0) : x; }); return true;
    case UnaryOp::Clamp: run([a, b](I x) { return std::min(std::max(x, a), b); }); return true;
    case UnaryOp::Affine: run([a, b](I x) { return wrap_add(wrap_mul(x, a), b); }); return true;
    case UnaryOp::PowScalar: {
      const int64_t exp = element_cast<int64_t>(alpha);
      run([exp](I x) { return int_pow(x, exp); });
      return true;
    }
    default: return false;
  }
}

// Comparisons: bool out, operands of T.
template <typename T>
void compare(BinaryOp op, const Tensor& out, const Tensor& a, const Tensor& b) {
  using C = calc_t<T>;
  const auto run = [&](auto fn) { map<bool, T, T>(kCheap, fn, out, a, b); };
  switch (op) {
    case BinaryOp::Eq: run([](C x, C y) { return x == y; }); break;
    case BinaryOp::Ne: run([](C x, C y) { return x != y; }); break;
    case BinaryOp::Lt: run([](C x, C y) { return x < y; }); break;
    case BinaryOp::Le: run([](C x, C y) { return x <= y; }); break;
    case BinaryOp::Gt: run([](C x, C y) { return x > y; }); break;
    case BinaryOp::Ge: run([](C x, C y) { return x >= y; }); break;
    default: ST_ASSERT(false);
  }
}

bool is_comparison(BinaryOp op) { return op >= BinaryOp::Eq && op <= BinaryOp::Ge; }

template <typename T>
bool binary_float(BinaryOp op, const Tensor& out, const Tensor& a, const Tensor& b) {
  using C = compute_t<T>;
  constexpr C kInvSqrt2 = 1 / std::numbers::sqrt2_v<C>;
  constexpr C kInvSqrt2Pi = kInvSqrt2 * std::numbers::inv_sqrtpi_v<C>;
  constexpr C kSqrt2OverPi = std::numbers::sqrt2_v<C> * std::numbers::inv_sqrtpi_v<C>;
  constexpr C kCubic = C(0.044715);
  const auto run = [&](int64_t cost, auto fn) { map<T, T, T>(cost, fn, out, a, b); };
  switch (op) {
    case BinaryOp::Add: run(kCheap, [](C x, C y) { return x + y; }); break;
    case BinaryOp::Sub: run(kCheap, [](C x, C y) { return x - y; }); break;
    case BinaryOp::Mul: run(kCheap, [](C x, C y) { return x * y; }); break;
    case BinaryOp::Div: run(kCheap, [](C x, C y) { return x / y; }); break;
    case BinaryOp::Pow: run(kMath, [](C x, C y) { return std::pow(x, y); }); break;
    // NaN in either operand wins, as in torch.maximum.
    case BinaryOp::Maximum:
      run(kCheap, [](C x, C y) { return x > y || std::isnan(x) ? x : y; });
      break;
    case BinaryOp::Minimum:
      run(kCheap, [](C x, C y) { return x < y || std::isnan(x) ? x : y; });
      break;
    case BinaryOp::TanhBackward: run(kCheap, [](C g, C y) { return g * (1 - y * y); }); break;
    case BinaryOp::SigmoidBackward: run(kCheap, [](C g, C y) { return g * y * (1 - y); }); break;
    case BinaryOp::ReluBackward: run(kCheap, [](C g, C x) { return x > 0 ? g : C(0); }); break;
    case BinaryOp::GeluErfBackward:
      // d/dx x * Phi(x) = Phi(x) + x * phi(x)
      run(kMath, [](C g, C x) {
        const C cdf = C(0.5) * (1 + erf_for_gelu(x * kInvSqrt2));
        const C pdf = kInvSqrt2Pi * exp_of(C(-0.5) * x * x);
        return g * (cdf + x * pdf);
      });
      break;
    case BinaryOp::GeluTanhBackward:
      run(kMath, [](C g, C x) {
        const C t = std::tanh(kSqrt2OverPi * (x + kCubic * x * x * x));
        const C du = kSqrt2OverPi * (1 + 3 * kCubic * x * x);
        return g * (C(0.5) * (1 + t) + C(0.5) * x * (1 - t * t) * du);
      });
      break;
    default: return false;
  }
  return true;
}

template <typename T>
bool binary_integer(BinaryOp op, const Tensor& out, const Tensor& a, const Tensor& b) {
  using I = calc_t<T>;
  const auto run = [&](auto fn) { map<T, T, T>(kCheap, fn, out, a, b); };
  switch (op) {
    case BinaryOp::Add: run([](I x, I y) { return wrap_add(x, y); }); return true;
    case BinaryOp::Sub: run([](I x, I y) { return wrap_sub(x, y); }); return true;
    case BinaryOp::Mul: run([](I x, I y) { return wrap_mul(x, y); }); return true;
    case BinaryOp::Div: run([](I x, I y) { return floor_div(x, y); }); return true;
    case BinaryOp::Pow: run([](I x, I y) { return int_pow(x, int64_t{y}); }); return true;
    case BinaryOp::Maximum: run([](I x, I y) { return std::max(x, y); }); return true;
    case BinaryOp::Minimum: run([](I x, I y) { return std::min(x, y); }); return true;
    default: return false;
  }
}

}  // namespace

void CpuBackend::unary(UnaryOp op, const Tensor& out, const Tensor& in, double alpha, double beta) {
  const bool done = dispatch_dtype(in.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if constexpr (std::is_floating_point_v<compute_t<T>>)
      return unary_float<T>(op, out, in, alpha, beta);
    else
      return unary_integer<T>(op, out, in, alpha, beta);
  });
  if (!done)
    not_implemented(detail::concat(kUnaryNames[static_cast<size_t>(op)], " for ", in.dtype()));
}

void CpuBackend::binary(BinaryOp op, const Tensor& out, const Tensor& a, const Tensor& b) {
  const bool done = dispatch_dtype(a.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if (is_comparison(op)) {
      compare<T>(op, out, a, b);
      return true;
    }
    if constexpr (std::is_floating_point_v<compute_t<T>>)
      return binary_float<T>(op, out, a, b);
    else
      return binary_integer<T>(op, out, a, b);
  });
  if (!done)
    not_implemented(detail::concat(kBinaryNames[static_cast<size_t>(op)], " for ", a.dtype()));
}

void CpuBackend::where(const Tensor& out, const Tensor& cond, const Tensor& a, const Tensor& b) {
  dispatch_dtype(out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    map<T, bool, T, T>(
        kCheap, [](int c, auto x, auto y) { return c ? x : y; }, out, cond, a, b);
  });
}

}  // namespace st::backend::cpu
