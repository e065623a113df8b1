// Layer norm over the last dim of [rows, cols], forward and backward; rows run in parallel.
// Row statistics use two passes (mean, then squared deviations) accumulated in compute_t over SIMD lanes;
// the variance is the biased one, as in torch. The weight and bias gradients sum over all rows, so they
// accumulate in double: per-chunk partial sums, added in chunk order after the parallel loop.

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <type_traits>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/parallel.h"

namespace st::backend::cpu {
namespace {

// A 1-D tensor of any dtype and stride (weight, bias) as values of type C.
template <typename C>
std::vector<C> read_vector(const Tensor& t) {
  std::vector<C> v(t.numel());
  dispatch_dtype(t.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* p = static_cast<const T*>(t.data_ptr());
    const int64_t stride = t.strides()[0];
    for (int64_t i = 0; i < static_cast<int64_t>(v.size()); ++i) v[i] = static_cast<C>(static_cast<compute_t<T>>(p[i * stride]));
  });
  return v;
}

// Writes values to a contiguous 1-D tensor of any floating dtype.
void write_vector(const Tensor& t, const std::vector<double>& v) {
  dispatch_dtype(t.dtype(), [&](auto tag) {
    using T = decltype(tag);
    T* p = static_cast<T*>(t.data_ptr());
    for (size_t i = 0; i < v.size(); ++i) p[i] = T(static_cast<compute_t<T>>(v[i]));
  });
}

// The rows of a 2-D input. Gradients arriving from a broadcast may be strided; such a row is gathered
// into a buffer so that the row loops below always see unit stride.
template <typename T>
struct Rows {
  const T* base;
  int64_t row_stride, col_stride, cols;

  explicit Rows(const Tensor& t)
      : base(static_cast<const T*>(t.data_ptr())), row_stride(t.strides()[0]), col_stride(t.strides()[1]),
        cols(t.shape()[1]) {}
  const T* row(int64_t r, std::vector<T>& buf) const {
    const T* p = base + r * row_stride;
    if (col_stride == 1 || cols <= 1) return p;
    buf.resize(cols);
    for (int64_t c = 0; c < cols; ++c) buf[c] = p[c * col_stride];
    return buf.data();
  }
};

template <typename T>
void layer_norm_typed(const Tensor& out, const Tensor& mean, const Tensor& rstd, const Tensor& x,
                      const Tensor& weight, const Tensor& bias, double eps) {
  using C = compute_t<T>;
  const int64_t rows = x.shape()[0], cols = x.shape()[1];
  // An absent weight or bias acts as ones or zeros; the extra multiply-add is cheaper than branching.
  const std::vector<C> w = weight.defined() ? read_vector<C>(weight) : std::vector<C>(cols, C(1));
  const std::vector<C> b = bias.defined() ? read_vector<C>(bias) : std::vector<C>(cols, C(0));
  const T* src = static_cast<const T*>(x.data_ptr());
  T* dst = static_cast<T*>(out.data_ptr());
  float* mean_out = static_cast<float*>(mean.data_ptr());
  float* rstd_out = static_cast<float*>(rstd.data_ptr());
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
      mean_out[r] = static_cast<float>(mu);
      rstd_out[r] = static_cast<float>(rs);
      for (int64_t c = 0; c < cols; ++c) y[c] = T((static_cast<C>(xr[c]) - mu) * rs * w[c] + b[c]);
    }
  });
}

// With xhat = (x - mean) * rstd and g = grad_out * weight:
//   grad_x = rstd * (g - mean(g) - xhat * mean(g * xhat)),
//   grad_weight = sum over rows of grad_out * xhat,  grad_bias = sum over rows of grad_out.
template <typename T>
void layer_norm_backward_typed(const Tensor& grad_x, const Tensor& grad_weight, const Tensor& grad_bias,
                               const Tensor& grad_out, const Tensor& x, const Tensor& mean,
                               const Tensor& rstd, const Tensor& weight) {
  using C = compute_t<T>;
  const int64_t rows = x.shape()[0], cols = x.shape()[1];
  const std::vector<C> w = weight.defined() ? read_vector<C>(weight) : std::vector<C>(cols, C(1));
  const bool want_w = grad_weight.defined(), want_b = grad_bias.defined();
  const Rows<T> grads(grad_out);
  const T* src = static_cast<const T*>(x.data_ptr());
  T* dst = static_cast<T*>(grad_x.data_ptr());
  const float* means = static_cast<const float*>(mean.data_ptr());
  const float* rstds = static_cast<const float*>(rstd.data_ptr());

  // Rows split into chunks, each with its own column partials, so no two threads add to one sum.
  const int64_t threads = omp_get_max_threads();
  const int64_t max_chunks = std::max<int64_t>(1, std::min(threads, rows));
  const int64_t chunks = std::clamp(rows * cols / kParallelGrain, int64_t{1}, max_chunks);
  std::vector<double> part_w(want_w ? chunks * cols : 0), part_b(want_b ? chunks * cols : 0);
  parallel_for(chunks, rows * cols / chunks, [&](int64_t chunk_begin, int64_t chunk_end) {
    std::vector<T> buf;
    std::vector<C> xhat(cols);
    for (int64_t chunk = chunk_begin; chunk < chunk_end; ++chunk) {
      double* pw = want_w ? part_w.data() + chunk * cols : nullptr;
      double* pb = want_b ? part_b.data() + chunk * cols : nullptr;
      for (int64_t r = rows * chunk / chunks; r < rows * (chunk + 1) / chunks; ++r) {
        const T* go = grads.row(r, buf);
        const T* xr = src + r * cols;
        T* gx = dst + r * cols;
        const C mu = means[r], rs = rstds[r];
        C sum_g = 0, sum_gx = 0;
#pragma omp simd reduction(+ : sum_g, sum_gx)
        for (int64_t c = 0; c < cols; ++c) {
          xhat[c] = (static_cast<C>(xr[c]) - mu) * rs;
          const C g = static_cast<C>(go[c]) * w[c];
          sum_g += g;
          sum_gx += g * xhat[c];
        }
        const C mean_g = sum_g / static_cast<C>(cols), mean_gx = sum_gx / static_cast<C>(cols);
        for (int64_t c = 0; c < cols; ++c)
          gx[c] = T(rs * (static_cast<C>(go[c]) * w[c] - mean_g - xhat[c] * mean_gx));
        if (pw)
          for (int64_t c = 0; c < cols; ++c) pw[c] += static_cast<double>(go[c]) * static_cast<double>(xhat[c]);
        if (pb)
          for (int64_t c = 0; c < cols; ++c) pb[c] += static_cast<double>(go[c]);
      }
    }
  });

  const auto finish = [&](const Tensor& grad, const std::vector<double>& part) {
    std::vector<double> total(cols, 0.0);
    for (int64_t chunk = 0; chunk < chunks; ++chunk)
      for (int64_t c = 0; c < cols; ++c) total[c] += part[chunk * cols + c];
    write_vector(grad, total);
  };
  if (want_w) finish(grad_weight, part_w);
  if (want_b) finish(grad_bias, part_b);
}

template <typename T>
constexpr bool kFloating = std::is_floating_point_v<compute_t<T>>;

}  // namespace

void CpuBackend::layer_norm(const Tensor& out, const Tensor& mean, const Tensor& rstd, const Tensor& x,
                            const Tensor& weight, const Tensor& bias, double eps) {
  dispatch_dtype(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if constexpr (kFloating<T>) layer_norm_typed<T>(out, mean, rstd, x, weight, bias, eps);
    else not_implemented("layer_norm");
  });
}

void CpuBackend::layer_norm_backward(const Tensor& grad_x, const Tensor& grad_weight, const Tensor& grad_bias,
                                     const Tensor& grad_out, const Tensor& x, const Tensor& mean,
                                     const Tensor& rstd, const Tensor& weight) {
  dispatch_dtype(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if constexpr (kFloating<T>)
      layer_norm_backward_typed<T>(grad_x, grad_weight, grad_bias, grad_out, x, mean, rstd, weight);
    else not_implemented("layer_norm_backward");
  });
}

}  // namespace st::backend::cpu
