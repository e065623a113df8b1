// Fused optimizer updates and the sum of squares behind gradient clipping. Each parameter's update
// is one pass over its elements (params, grads and state read once and written once), parallel
// within a tensor; the maths is stated in ops.h.

#include <algorithm>
#include <cmath>
#include <type_traits>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/parallel.h"

namespace st::backend::cpu {
namespace {

// Calls fn(tag) with the element type of a float tensor; other dtypes are the front-end's to
// refuse.
template <typename Fn>
void dispatch_float(const Tensor& t, const char* op, const Backend& self, Fn&& fn) {
  dispatch_dtype(t.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if constexpr (std::is_floating_point_v<compute_t<T>>)
      fn(tag);
    else
      throw NotImplementedError(detail::concat("[", op, "] not implemented for ", t.dtype(),
                                               " on backend '", self.name(), "'"));
  });
}

template <typename T>
ST_CPU_CLONES void sgd_run(T* p, const T* g, T* buf, int64_t n, const SgdUpdate& u) {
  using C = compute_t<T>;
  const C lr = static_cast<C>(u.lr), wd = static_cast<C>(u.weight_decay);
  const C momentum = static_cast<C>(u.momentum), keep = static_cast<C>(1 - u.dampening);
  for (int64_t i = 0; i < n; ++i) {
    const C x = static_cast<C>(p[i]);
    C d = static_cast<C>(g[i]) + wd * x;
    if (buf != nullptr) {
      const C b = u.first_step ? d : momentum * static_cast<C>(buf[i]) + keep * d;
      buf[i] = T(b);
      d = u.nesterov ? d + momentum * b : b;
    }
    p[i] = T(x - lr * d);
  }
}

template <typename T>
ST_CPU_CLONES void adam_run(T* p, const T* g, T* m, T* v, int64_t n, const AdamUpdate& u) {
  using C = compute_t<T>;
  const double bias1 = 1 - std::pow(u.beta1, static_cast<double>(u.step));
  const double bias2 = 1 - std::pow(u.beta2, static_cast<double>(u.step));
  const C step_size = static_cast<C>(u.lr / bias1);
  const C inv_sqrt_bias2 = static_cast<C>(1 / std::sqrt(bias2));
  const C b1 = static_cast<C>(u.beta1), b2 = static_cast<C>(u.beta2), eps = static_cast<C>(u.eps);
  const C coupled_wd = u.decoupled_weight_decay ? C(0) : static_cast<C>(u.weight_decay);
  const C shrink = u.decoupled_weight_decay ? static_cast<C>(1 - u.lr * u.weight_decay) : C(1);
  for (int64_t i = 0; i < n; ++i) {
    const C x = static_cast<C>(p[i]) * shrink;
    const C d = static_cast<C>(g[i]) + coupled_wd * static_cast<C>(p[i]);
    const C mi = b1 * static_cast<C>(m[i]) + (1 - b1) * d;
    const C vi = b2 * static_cast<C>(v[i]) + (1 - b2) * d * d;
    m[i] = T(mi);
    v[i] = T(vi);
    p[i] = T(x - step_size * mi / (std::sqrt(vi) * inv_sqrt_bias2 + eps));
  }
}

template <typename T>
ST_CPU_CLONES double squares_run(const T* x, int64_t n) {
  using C = compute_t<T>;
  C sum = 0;
#pragma omp simd reduction(+ : sum)
  for (int64_t i = 0; i < n; ++i) sum += static_cast<C>(x[i]) * static_cast<C>(x[i]);
  return static_cast<double>(sum);
}

// Runs fn(begin, end) over chunks of an n-element tensor (a few ops per element).
template <typename Fn>
void chunks(int64_t n, Fn&& fn) {
  parallel_for(n, 8, fn);
}

}  // namespace

void CpuBackend::sgd_update(const std::vector<Tensor>& params, const std::vector<Tensor>& grads,
                            const std::vector<Tensor>& momentum_buffers, const SgdUpdate& update) {
  for (size_t t = 0; t < params.size(); ++t) {
    dispatch_float(params[t], "sgd_update", *this, [&](auto tag) {
      using T = decltype(tag);
      T* p = params[t].data<T>();
      const T* g = grads[t].data<T>();
      T* buf = momentum_buffers.empty() ? nullptr : momentum_buffers[t].data<T>();
      chunks(params[t].numel(), [&](int64_t b, int64_t e) {
        sgd_run(p + b, g + b, buf == nullptr ? nullptr : buf + b, e - b, update);
      });
    });
  }
}

void CpuBackend::adam_update(const std::vector<Tensor>& params, const std::vector<Tensor>& grads,
                             const std::vector<Tensor>& exp_avgs,
                             const std::vector<Tensor>& exp_avg_sqs, const AdamUpdate& update) {
  for (size_t t = 0; t < params.size(); ++t) {
    dispatch_float(params[t], "adam_update", *this, [&](auto tag) {
      using T = decltype(tag);
      T* p = params[t].data<T>();
      const T* g = grads[t].data<T>();
      T* m = exp_avgs[t].data<T>();
      T* v = exp_avg_sqs[t].data<T>();
      chunks(params[t].numel(),
             [&](int64_t b, int64_t e) { adam_run(p + b, g + b, m + b, v + b, e - b, update); });
    });
  }
}

void CpuBackend::sum_of_squares(const Tensor& out, const std::vector<Tensor>& tensors) {
  // Blocks are summed in f32 (f64 for f64) and the blocks in f64, so a long list loses no digits.
  double total = 0;
  for (const Tensor& x : tensors) {
    dispatch_float(x, "sum_of_squares", *this, [&](auto tag) {
      using T = decltype(tag);
      const T* data = x.data<T>();
      constexpr int64_t kBlock = 1 << 14;
      const int64_t blocks = (x.numel() + kBlock - 1) / kBlock;
      std::vector<double> partial(static_cast<size_t>(blocks));
      parallel_for(blocks, kBlock, [&](int64_t b, int64_t e) {
        for (int64_t k = b; k < e; ++k) {
          const int64_t begin = k * kBlock, end = std::min(begin + kBlock, x.numel());
          partial[static_cast<size_t>(k)] = squares_run(data + begin, end - begin);
        }
      });
      for (double s : partial) total += s;
    });
  }
  if (out.dtype() == DType::Float64)
    *out.data<double>() = total;
  else
    *out.data<float>() = static_cast<float>(total);
}

}  // namespace st::backend::cpu
