// Layer norm over the last dim of [rows, cols], forward and backward; rows run in parallel.
// Row statistics use two passes (mean, then squared deviations) accumulated in compute_t over SIMD
// lanes; the variance is the biased one, as in torch. The weight and bias gradients sum over all
// rows, so they accumulate in double, in per-chunk partial sums added in chunk order afterwards.

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <type_traits>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/parallel.h"
#include "backend/cpu/strided.h"

namespace st::backend::cpu {
namespace {

// Writes values to a contiguous tensor of any floating dtype, in row-major order.
void write_vector(const Tensor& t, const std::vector<double>& v) {
  dispatch_dtype(t.dtype(), [&](auto tag) {
    using T = decltype(tag);
    T* p = static_cast<T*>(t.data_ptr());
    for (size_t i = 0; i < v.size(); ++i) p[i] = T(static_cast<compute_t<T>>(v[i]));
  });
}

template <typename T>
void layer_norm_typed(const Tensor& out, const Tensor& mean, const Tensor& rstd, const Tensor& x,
                      const Tensor& weight, const Tensor& bias, double eps) {
  using C = compute_t<T>;
  const int64_t rows = mean.numel(), cols = rows == 0 ? 0 : x.numel() / rows;
  // An absent weight or bias acts as ones or zeros: one multiply-add is cheaper than a branch.
  const std::vector<C> w = weight.defined() ? read_vector<C>(weight) : std::vector<C>(cols, C(1));
  const std::vector<C> b = bias.defined() ? read_vector<C>(bias) : std::vector<C>(cols, C(0));
  const T* src = x.data<T>();
  T* dst = out.data<T>();
  C* mean_out = mean.data<C>();
  C* rstd_out = rstd.data<C>();
  const C* wp = w.data();  // raw pointers let the compiler vectorize the loops below
  const C* bp = b.data();
  parallel_for(rows, cols, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const T* xr = src + r * cols;
      T* y = dst + r * cols;
      C sum = 0;
#pragma omp simd reduction(+ : sum)
      for (int64_t c = 0; c < cols; ++c) sum += static_cast<C>(xr[c]);
      const C mu = sum / static_cast<C>(cols);
      C sq = 0;
#pragma omp simd reduction(+ : sq)
      for (int64_t c = 0; c < cols; ++c) {
        const C d = static_cast<C>(xr[c]) - mu;
        sq += d * d;
      }
      const C rs = C(1) / std::sqrt(sq / static_cast<C>(cols) + static_cast<C>(eps));
      mean_out[r] = mu;
      rstd_out[r] = rs;
      for (int64_t c = 0; c < cols; ++c)
        y[c] = T((static_cast<C>(xr[c]) - mu) * rs * wp[c] + bp[c]);
    }
  });
}

// With xhat = (x - mean) * rstd and g = grad_out * weight:
//   grad_x = rstd * (g - mean(g) - xhat * mean(g * xhat)),
//   grad_weight = sum over rows of grad_out * xhat,  grad_bias = sum over rows of grad_out.
template <typename T>
void layer_norm_backward_typed(const Tensor& grad_x, const Tensor& grad_weight,
                               const Tensor& grad_bias, const Tensor& grad_out, const Tensor& x,
                               const Tensor& mean, const Tensor& rstd, const Tensor& weight) {
  using C = compute_t<T>;
  const int64_t rows = mean.numel(), cols = rows == 0 ? 0 : x.numel() / rows;
  const std::vector<C> w = weight.defined() ? read_vector<C>(weight) : std::vector<C>(cols, C(1));
  const T* grads = grad_out.data<T>();
  const T* src = x.data<T>();
  T* dst = grad_x.data<T>();
  const C* means = mean.data<C>();
  const C* rstds = rstd.data<C>();

  // Rows split into chunks, each with its own column partials, so no two threads add to one sum.
  // The partials are kept even when a gradient is not wanted: one branch-free pass is cheaper.
  const int64_t threads = omp_get_max_threads();
  const int64_t max_chunks = std::max<int64_t>(1, std::min(threads, rows));
  const int64_t chunks = std::clamp(rows * cols / kParallelGrain, int64_t{1}, max_chunks);
  std::vector<double> part_w(chunks * cols), part_b(chunks * cols);
  parallel_for(chunks, rows * cols / chunks, [&](int64_t chunk_begin, int64_t chunk_end) {
    std::vector<C> xhat_row(cols);
    C* xhat = xhat_row.data();  // raw pointers let the compiler vectorize the loops below
    const C* wp = w.data();
    for (int64_t chunk = chunk_begin; chunk < chunk_end; ++chunk) {
      double* pw = part_w.data() + chunk * cols;
      double* pb = part_b.data() + chunk * cols;
      for (int64_t r = rows * chunk / chunks; r < rows * (chunk + 1) / chunks; ++r) {
        const T* go = grads + r * cols;
        const T* xr = src + r * cols;
        T* gx = dst + r * cols;
        const C mu = means[r];
        const C rs = rstds[r];
        C sum_g = 0, sum_gx = 0;
#pragma omp simd reduction(+ : sum_g, sum_gx)
        for (int64_t c = 0; c < cols; ++c) {
          xhat[c] = (static_cast<C>(xr[c]) - mu) * rs;
          const C g = static_cast<C>(go[c]) * wp[c];
          sum_g += g;
          sum_gx += g * xhat[c];
        }
        const C mean_g = sum_g / static_cast<C>(cols), mean_gx = sum_gx / static_cast<C>(cols);
        for (int64_t c = 0; c < cols; ++c) {
          const C g = static_cast<C>(go[c]);
          gx[c] = T(rs * (g * wp[c] - mean_g - xhat[c] * mean_gx));
          pw[c] += static_cast<double>(g * xhat[c]);
          pb[c] += static_cast<double>(g);
        }
      }
    }
  });

  const auto finish = [&](const Tensor& grad, const std::vector<double>& part) {
    std::vector<double> total(cols, 0.0);
    for (int64_t chunk = 0; chunk < chunks; ++chunk)
      for (int64_t c = 0; c < cols; ++c) total[c] += part[chunk * cols + c];
    write_vector(grad, total);
  };
  if (grad_weight.defined()) finish(grad_weight, part_w);
  if (grad_bias.defined()) finish(grad_bias, part_b);
}

template <typename T>
constexpr bool kFloating = std::is_floating_point_v<compute_t<T>>;

}  // namespace

void CpuBackend::layer_norm(const Tensor& out, const Tensor& mean, const Tensor& rstd,
                            const Tensor& x, const Tensor& weight, const Tensor& bias, double eps) {
  dispatch_dtype(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if constexpr (kFloating<T>)
      layer_norm_typed<T>(out, mean, rstd, x, weight, bias, eps);
    else
      not_implemented("layer_norm");
  });
}

void CpuBackend::layer_norm_backward(const Tensor& grad_x, const Tensor& grad_weight,
                                     const Tensor& grad_bias, const Tensor& grad_out,
                                     const Tensor& x, const Tensor& mean, const Tensor& rstd,
                                     const Tensor& weight) {
  dispatch_dtype(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if constexpr (kFloating<T>)
      layer_norm_backward_typed<T>(grad_x, grad_weight, grad_bias, grad_out, x, mean, rstd, weight);
    else
      not_implemented("layer_norm_backward");
  });
}

}  // namespace st::backend::cpu
