// Softmax and log-softmax, forward and backward, row-wise over [rows, cols]; rows run in parallel.
// Row sums accumulate in compute_t (f32 for f16/bf16/f32, f64 for f64) over SIMD lanes, i.e.
// blocked summation, which keeps the error of a row of n terms near eps * n / lanes.

#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/parallel.h"
#include "backend/cpu/vec_math.h"

namespace st::backend::cpu {
namespace {

// One row of softmax(scale * x) (or log_softmax) over its first `cols` values; the rest of the
// `width`-wide row (masked by the causal mask) comes out 0. The 16-bit types keep
// exp(scale * x - max) in the f32 row `exps`; the others write it straight to y.
template <typename T>
ST_CPU_CLONES void softmax_row(const T* x, T* y, int64_t cols, int64_t width, bool log,
                               compute_t<T> scale, compute_t<T>* exps) {
  using C = compute_t<T>;
  C hi = -std::numeric_limits<C>::infinity();
#pragma omp simd reduction(max : hi)
  for (int64_t c = 0; c < cols; ++c) hi = std::max(hi, scale * static_cast<C>(x[c]));
  C sum = 0;
  if (log) {
#pragma omp simd reduction(+ : sum)
    for (int64_t c = 0; c < cols; ++c) sum += exp_of(scale * static_cast<C>(x[c]) - hi);
    const C log_sum = std::log(sum);
    // (x - max) - log(sum), not x - lse: keeps log(sum)'s digits when the max is large.
    for (int64_t c = 0; c < cols; ++c) y[c] = T((scale * static_cast<C>(x[c]) - hi) - log_sum);
    return;
  }
  C* ex = nullptr;
  if constexpr (std::is_same_v<T, C>)
    ex = y;
  else
    ex = exps;
#pragma omp simd reduction(+ : sum)
  for (int64_t c = 0; c < cols; ++c) {
    ex[c] = exp_of(scale * static_cast<C>(x[c]) - hi);
    sum += ex[c];
  }
  const C inv = C(1) / sum;
  for (int64_t c = 0; c < cols; ++c) y[c] = T(ex[c] * inv);
  for (int64_t c = cols; c < width; ++c) y[c] = T(0);
}

template <typename T>
void softmax_typed(const Tensor& out, const Tensor& in, bool log, double scale,
                   int64_t causal_rows) {
  using C = compute_t<T>;
  const int64_t rows = in.shape()[0], cols = in.shape()[1];
  const T* src = in.data<T>();
  T* dst = out.data<T>();
  parallel_for(rows, cols, [&](int64_t b, int64_t e) {
    std::vector<C> exps(std::is_same_v<T, C> ? 0 : cols);
    for (int64_t r = b; r < e; ++r) {
      const int64_t seen = causal_rows > 0 ? std::min(cols, r % causal_rows + 1) : cols;
      softmax_row(src + r * cols, dst + r * cols, seen, cols, log, static_cast<C>(scale),
                  exps.data());
    }
  });
}

// One row of the backward: the row-wise dot, then the fused update.
template <typename T>
ST_CPU_CLONES void softmax_backward_row(const T* g, const T* y, T* gi, int64_t cols, bool log,
                                        compute_t<T> scale) {
  using C = compute_t<T>;
  C dot = 0;  // sum(g * y), or sum(g) for log-softmax
  if (log) {
#pragma omp simd reduction(+ : dot)
    for (int64_t c = 0; c < cols; ++c) dot += static_cast<C>(g[c]);
    for (int64_t c = 0; c < cols; ++c)
      gi[c] = T(scale * (static_cast<C>(g[c]) - exp_of(static_cast<C>(y[c])) * dot));
  } else {
#pragma omp simd reduction(+ : dot)
    for (int64_t c = 0; c < cols; ++c) dot += static_cast<C>(g[c]) * static_cast<C>(y[c]);
    for (int64_t c = 0; c < cols; ++c)
      gi[c] = T(scale * static_cast<C>(y[c]) * (static_cast<C>(g[c]) - dot));
  }
}

template <typename T>
void softmax_backward_typed(const Tensor& grad_in, const Tensor& grad_out, const Tensor& out,
                            bool log, double scale) {
  const int64_t rows = out.shape()[0], cols = out.shape()[1];
  const T* grads = grad_out.data<T>();
  const T* ys = out.data<T>();
  T* dst = grad_in.data<T>();
  parallel_for(rows, cols, [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r)
      softmax_backward_row(grads + r * cols, ys + r * cols, dst + r * cols, cols, log,
                           static_cast<compute_t<T>>(scale));
  });
}

template <typename T>
constexpr bool kFloating = std::is_floating_point_v<compute_t<T>>;

}  // namespace

void CpuBackend::softmax(const Tensor& out, const Tensor& in, bool log, double scale,
                         int64_t causal_rows) {
  dispatch_dtype(in.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if constexpr (kFloating<T>)
      softmax_typed<T>(out, in, log, scale, causal_rows);
    else
      not_implemented(log ? "log_softmax" : "softmax");
  });
}

void CpuBackend::softmax_backward(const Tensor& grad_in, const Tensor& grad_out, const Tensor& out,
                                  bool log, double scale) {
  dispatch_dtype(out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if constexpr (kFloating<T>)
      softmax_backward_typed<T>(grad_in, grad_out, out, log, scale);
    else
      not_implemented(log ? "log_softmax_backward" : "softmax_backward");
  });
}

}  // namespace st::backend::cpu
