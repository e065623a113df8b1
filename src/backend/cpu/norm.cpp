// Layer norm over the last dim of [rows, cols], forward and backward; rows run in parallel.
// Row statistics use two passes (mean, then squared deviations) accumulated in compute_t over SIMD
// lanes; the variance is the biased one, as in torch. The weight and bias gradients sum over all
// rows: in the compute type over blocks of 32 rows, then in double, in per-chunk partial sums added
// in chunk order afterwards.

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

// O is the output's type: T, or f16/bf16 for f32 x (autocast).
template <typename T, typename O>
void layer_norm_typed(const Tensor& out, const Tensor& mean, const Tensor& rstd, const Tensor& x,
                      const Tensor& weight, const Tensor& bias, double eps) {
  using C = compute_t<T>;
  const int64_t rows = mean.numel(), cols = rows == 0 ? 0 : x.numel() / rows;
  // An absent weight or bias acts as ones or zeros: one multiply-add is cheaper than a branch.
  const std::vector<C> w = weight.defined() ? read_vector<C>(weight) : std::vector<C>(cols, C(1));
  const std::vector<C> b = bias.defined() ? read_vector<C>(bias) : std::vector<C>(cols, C(0));
  const T* src = x.data<T>();
  O* dst = out.data<O>();
  C* mean_out = mean.data<C>();
  C* rstd_out = rstd.data<C>();
  const C* wp = w.data();  // raw pointers let the compiler vectorize the loops below
  const C* bp = b.data();
  parallel_for(rows, cols, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const T* xr = src + r * cols;
      O* y = dst + r * cols;
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
        y[c] = O((static_cast<C>(xr[c]) - mu) * rs * wp[c] + bp[c]);
    }
  });
}

// With xhat = (x - mean) * rstd and g = grad_out * weight:
//   grad_x = rstd * (g - mean(g) - xhat * mean(g * xhat)),
//   grad_weight = sum over rows of grad_out * xhat,  grad_bias = sum over rows of grad_out.
// Rows whose weight and bias terms are summed in the compute type before joining the double
// partials: short enough to keep f32 sums accurate, long enough to keep the row loop vectorized.
constexpr int64_t kBlockRows = 32;

// One row of the backward: writes grad_x and adds the row's terms to the block sums bw, bb.
template <typename T, typename G, typename C = compute_t<T>>
ST_CPU_CLONES void layer_norm_backward_row(const G* go, const T* xr, T* gx, const C* w, C mu, C rs,
                                           int64_t cols, C* xhat, C* bw, C* bb) {
  C sum_g = 0, sum_gx = 0;
#pragma omp simd reduction(+ : sum_g, sum_gx)
  for (int64_t c = 0; c < cols; ++c) {
    xhat[c] = (static_cast<C>(xr[c]) - mu) * rs;
    const C g = static_cast<C>(go[c]) * w[c];
    sum_g += g;
    sum_gx += g * xhat[c];
  }
  const C mean_g = sum_g / static_cast<C>(cols), mean_gx = sum_gx / static_cast<C>(cols);
  for (int64_t c = 0; c < cols; ++c) {
    const C g = static_cast<C>(go[c]);
    gx[c] = T(rs * (g * w[c] - mean_g - xhat[c] * mean_gx));
    bw[c] += g * xhat[c];
    bb[c] += g;
  }
}

// G is grad_out's type, the forward output's.
template <typename T, typename G>
void layer_norm_backward_typed(const Tensor& grad_x, const Tensor& grad_weight,
                               const Tensor& grad_bias, const Tensor& grad_out, const Tensor& x,
                               const Tensor& mean, const Tensor& rstd, const Tensor& weight) {
  using C = compute_t<T>;
  const int64_t rows = mean.numel(), cols = rows == 0 ? 0 : x.numel() / rows;
  const std::vector<C> w = weight.defined() ? read_vector<C>(weight) : std::vector<C>(cols, C(1));
  const G* grads = grad_out.data<G>();
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
    std::vector<C> xhat(cols), block_w(cols), block_b(cols);
    for (int64_t chunk = chunk_begin; chunk < chunk_end; ++chunk) {
      double* pw = part_w.data() + chunk * cols;
      double* pb = part_b.data() + chunk * cols;
      const int64_t first = rows * chunk / chunks, last = rows * (chunk + 1) / chunks;
      for (int64_t r = first; r < last; ++r) {
        layer_norm_backward_row(grads + r * cols, src + r * cols, dst + r * cols, w.data(),
                                means[r], rstds[r], cols, xhat.data(), block_w.data(),
                                block_b.data());
        if ((r - first) % kBlockRows == kBlockRows - 1 || r == last - 1) {
          for (int64_t c = 0; c < cols; ++c) {
            pw[c] += static_cast<double>(block_w[c]);
            pb[c] += static_cast<double>(block_b[c]);
          }
          std::fill(block_w.begin(), block_w.end(), C(0));
          std::fill(block_b.begin(), block_b.end(), C(0));
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

// fn(T{}, O{}) for x's type T and the type O of the output (or of its gradient): T, or f16/bf16
// for f32 x.
template <typename Fn>
void dispatch_norm(DType x, DType io, const char* op, Fn&& fn) {
  dispatch_dtype(x, [&](auto tag) {
    using T = decltype(tag);
    if constexpr (kFloating<T>) {
      if (io == x) return fn(T{}, T{});
      if constexpr (std::is_same_v<T, float>) {
        if (io == DType::BFloat16) return fn(T{}, BFloat16{});
        if (io == DType::Float16) return fn(T{}, Half{});
      }
    }
    throw NotImplementedError(detail::concat("[", op, "] not implemented for ", x, " input with ",
                                             io, " output on the cpu backend"));
  });
}

}  // namespace

void CpuBackend::layer_norm(const Tensor& out, const Tensor& mean, const Tensor& rstd,
                            const Tensor& x, const Tensor& weight, const Tensor& bias, double eps) {
  dispatch_norm(x.dtype(), out.dtype(), "layer_norm", [&](auto t, auto o) {
    layer_norm_typed<decltype(t), decltype(o)>(out, mean, rstd, x, weight, bias, eps);
  });
}

void CpuBackend::layer_norm_backward(const Tensor& grad_x, const Tensor& grad_weight,
                                     const Tensor& grad_bias, const Tensor& grad_out,
                                     const Tensor& x, const Tensor& mean, const Tensor& rstd,
                                     const Tensor& weight) {
  dispatch_norm(x.dtype(), grad_out.dtype(), "layer_norm_backward", [&](auto t, auto g) {
    layer_norm_backward_typed<decltype(t), decltype(g)>(grad_x, grad_weight, grad_bias, grad_out, x,
                                                        mean, rstd, weight);
  });
}

}  // namespace st::backend::cpu
