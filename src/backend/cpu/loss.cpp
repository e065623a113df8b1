// Cross-entropy over [N, C] logits with integer class targets: the fused log-softmax + nll forward,
// which saves logsumexp per row (in compute precision) for the backward. Targets are read and
// validated serially before the parallel loops, so that the IndexError is thrown outside OpenMP
// regions. Row sums accumulate in compute_t over SIMD lanes (f32 for f16/bf16/f32, f64 for f64).

#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/parallel.h"
#include "backend/cpu/strided.h"
#include "backend/cpu/vec_math.h"

namespace st::backend::cpu {
namespace {

std::vector<int64_t> read_targets(const Tensor& target, int64_t classes, int64_t ignore_index) {
  std::vector<int64_t> t = read_vector<int64_t>(target);
  for (int64_t v : t)
    ST_CHECK(v == ignore_index || (v >= 0 && v < classes), IndexError, "[cross_entropy] target ", v,
             " is out of range for ", classes, " classes");
  return t;
}

// logsumexp of a row as max + log(sum(exp(x - max))), the two parts kept apart.
template <typename C>
struct LogSumExp {
  C max, log_sum;
};

template <typename T, typename C = compute_t<T>>
ST_CPU_CLONES LogSumExp<C> row_logsumexp(const T* x, int64_t cols) {
  C hi = -std::numeric_limits<C>::infinity();
#pragma omp simd reduction(max : hi)
  for (int64_t c = 0; c < cols; ++c) hi = std::max(hi, static_cast<C>(x[c]));
  C sum = 0;
#pragma omp simd reduction(+ : sum)
  for (int64_t c = 0; c < cols; ++c) sum += exp_of(static_cast<C>(x[c]) - hi);
  return {hi, std::log(sum)};
}

// L: the loss's dtype, T's or f32 (autocast on f16/bf16 logits).
template <typename T, typename L>
void cross_entropy_typed(const Tensor& loss, const Tensor& lse, const Tensor& logits,
                         const std::vector<int64_t>& target, int64_t ignore_index) {
  using C = compute_t<T>;
  const int64_t rows = logits.shape()[0], cols = logits.shape()[1];
  const T* src = logits.data<T>();
  L* loss_out = loss.data<L>();
  C* lse_out = lse.data<C>();
  parallel_for(rows, cols, [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      const T* x = src + r * cols;
      const LogSumExp<C> l = row_logsumexp(x, cols);
      lse_out[r] = l.max + l.log_sum;
      // (max - x[t]) + log(sum): no cancellation against a large max.
      const int64_t t = target[r];
      loss_out[r] = t == ignore_index ? L(C(0)) : L((l.max - static_cast<C>(x[t])) + l.log_sum);
    }
  });
}

// g = softmax(x) * scale for one row, given the row's logsumexp.
template <typename T, typename C = compute_t<T>>
ST_CPU_CLONES void scaled_softmax_row(const T* x, T* g, int64_t cols, C lse, C scale) {
  for (int64_t c = 0; c < cols; ++c) g[c] = T(exp_of(static_cast<C>(x[c]) - lse) * scale);
}

template <typename T>
void cross_entropy_backward_typed(const Tensor& grad_logits, const Tensor& grad_loss,
                                  const Tensor& logits, const Tensor& lse,
                                  const std::vector<int64_t>& target, int64_t ignore_index) {
  using C = compute_t<T>;
  const int64_t rows = logits.shape()[0], cols = logits.shape()[1];
  const std::vector<C> grad = read_vector<C>(grad_loss);
  const T* src = logits.data<T>();
  const C* lses = lse.data<C>();
  T* dst = grad_logits.data<T>();
  parallel_for(rows, cols, [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      const T* x = src + r * cols;
      T* g = dst + r * cols;
      if (target[r] == ignore_index) {
        std::fill(g, g + cols, T(C(0)));
        continue;
      }
      scaled_softmax_row(x, g, cols, lses[r], grad[r]);
      // The target's entry again from its probability, not from the rounded value just stored.
      const int64_t t = target[r];
      g[t] = T((exp_of(static_cast<C>(x[t]) - lses[r]) - C(1)) * grad[r]);
    }
  });
}

template <typename T>
constexpr bool kFloating = std::is_floating_point_v<compute_t<T>>;

}  // namespace

void CpuBackend::cross_entropy(const Tensor& loss, const Tensor& lse, const Tensor& logits,
                               const Tensor& target, int64_t ignore_index) {
  const std::vector<int64_t> t = read_targets(target, logits.shape()[1], ignore_index);
  dispatch_dtype(logits.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if constexpr (!kFloating<T>)
      not_implemented("cross_entropy");
    else if (loss.dtype() == logits.dtype())
      cross_entropy_typed<T, T>(loss, lse, logits, t, ignore_index);
    else
      cross_entropy_typed<T, float>(loss, lse, logits, t, ignore_index);
  });
}

void CpuBackend::cross_entropy_backward(const Tensor& grad_logits, const Tensor& grad_loss,
                                        const Tensor& logits, const Tensor& lse,
                                        const Tensor& target, int64_t ignore_index) {
  const std::vector<int64_t> t = read_targets(target, logits.shape()[1], ignore_index);
  dispatch_dtype(logits.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if constexpr (kFloating<T>)
      cross_entropy_backward_typed<T>(grad_logits, grad_loss, logits, lse, t, ignore_index);
    else
      not_implemented("cross_entropy_backward");
  });
}

}  // namespace st::backend::cpu
