// layer_norm forward and backward. A block per row computes the statistics (mean first, then the
// centred sum of squares, which loses no digits to cancellation) and writes the row; the weight and
// bias gradients are column sums over rows, taken in chunks of rows by 32-column tiles and
// combined by a second pass.

#include <algorithm>

#include "backend/cuda/common.cuh"

namespace st::backend::cuda {
namespace {

int threads_for(int64_t cols) {
  const int64_t want = (cols + 7) / 8;
  return static_cast<int>(std::clamp<int64_t>((want + 31) / 32 * 32, 32, 1024));
}

template <typename T, typename S>
__global__ void __launch_bounds__(1024)
    layer_norm_kernel(int64_t rows, int64_t cols, calc_t<T> eps, const T* in, const T* weight,
                      const T* bias, T* out, S* means, S* rstds) {
  using C = calc_t<T>;
  __shared__ C shared[32];
  const bool cached = cols <= kRowPerThread * static_cast<int64_t>(blockDim.x);
  // Element loads: the 16-byte path measured slower here (1.16 against 1.61 TB/s in f32).
  const bool vec = false;
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* x = in + r * cols;
    T* y = out + r * cols;
    C v[kRowPerThread];
    C sum = 0;
    if (cached) {
      load_row(x, cols, vec, v, C(0));
#pragma unroll
      for (int j = 0; j < kRowPerThread; ++j) sum += v[j];
    } else {
      for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) sum += load(x[c]);
    }
    const C mean = block_sum(sum, shared) / static_cast<C>(cols);
    C sq = 0;
    if (cached) {
#pragma unroll
      for (int j = 0; j < kRowPerThread; ++j) {
        const C d = row_col(j, vec) < cols ? v[j] - mean : C(0);
        sq += d * d;
      }
    } else {
      for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
        const C d = load(x[c]) - mean;
        sq += d * d;
      }
    }
    const C rstd = C(1) / ::sqrt(block_sum(sq, shared) / static_cast<C>(cols) + eps);
    if (cached) {
#pragma unroll
      for (int j = 0; j < kRowPerThread; ++j) {
        const int64_t c = row_col(j, vec);
        C o = (v[j] - mean) * rstd;
        if (c < cols) {
          if (weight) o *= load(weight[c]);
          if (bias) o += load(bias[c]);
        }
        v[j] = o;
      }
      store_row(y, cols, vec, v);
    } else {
      for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
        C o = (load(x[c]) - mean) * rstd;
        if (weight) o *= load(weight[c]);
        if (bias) o += load(bias[c]);
        y[c] = store<T>(o);
      }
    }
    if (threadIdx.x == 0) {
      means[r] = static_cast<S>(mean);
      rstds[r] = static_cast<S>(rstd);
    }
  }
}

// grad_x = rstd * (g - mean(g) - xhat * mean(g * xhat)), g = grad_out * weight.
template <typename T, typename S>
__global__ void __launch_bounds__(1024)
    layer_norm_backward_kernel(int64_t rows, int64_t cols, const T* grad_out, const T* in,
                               const S* means, const S* rstds, const T* weight, T* grad_in) {
  using C = calc_t<T>;
  __shared__ C shared[32];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* go = grad_out + r * cols;
    const T* x = in + r * cols;
    T* gx = grad_in + r * cols;
    const C mean = static_cast<C>(means[r]), rstd = static_cast<C>(rstds[r]);
    C sum_g = 0, sum_gx = 0;
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
      const C g = weight ? load(go[c]) * load(weight[c]) : load(go[c]);
      sum_g += g;
      sum_gx += g * (load(x[c]) - mean) * rstd;
    }
    const C mean_g = block_sum(sum_g, shared) / static_cast<C>(cols);
    const C mean_gx = block_sum(sum_gx, shared) / static_cast<C>(cols);
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
      const C g = weight ? load(go[c]) * load(weight[c]) : load(go[c]);
      const C xhat = (load(x[c]) - mean) * rstd;
      gx[c] = store<T>(rstd * (g - mean_g - xhat * mean_gx));
    }
  }
}

constexpr int kTileCols = 32, kTileRows = 8;

// Partial column sums over one chunk of rows: partial_w[chunk, c] of grad_out * xhat and
// partial_b[chunk, c] of grad_out.
template <typename T, typename S>
__global__ void layer_norm_params_kernel(int64_t rows, int64_t cols, int64_t chunk_rows,
                                         const T* grad_out, const T* in, const S* means,
                                         const S* rstds, S* partial_w, S* partial_b) {
  __shared__ S tile_w[kTileRows][kTileCols + 1];
  __shared__ S tile_b[kTileRows][kTileCols + 1];
  const int64_t c = static_cast<int64_t>(blockIdx.x) * kTileCols + threadIdx.x;
  const int64_t begin = blockIdx.y * chunk_rows, end = ::min(rows, begin + chunk_rows);
  S sw = 0, sb = 0;
  if (c < cols) {
    for (int64_t r = begin + threadIdx.y; r < end; r += kTileRows) {
      const S g = static_cast<S>(load(grad_out[r * cols + c]));
      const S xhat = (static_cast<S>(load(in[r * cols + c])) - means[r]) * rstds[r];
      sw += g * xhat;
      sb += g;
    }
  }
  tile_w[threadIdx.y][threadIdx.x] = sw;
  tile_b[threadIdx.y][threadIdx.x] = sb;
  __syncthreads();
  if (threadIdx.y == 0 && c < cols) {
    for (int k = 1; k < kTileRows; ++k) {
      sw += tile_w[k][threadIdx.x];
      sb += tile_b[k][threadIdx.x];
    }
    partial_w[blockIdx.y * cols + c] = sw;
    partial_b[blockIdx.y * cols + c] = sb;
  }
}

template <typename T, typename S>
__global__ void sum_chunks_kernel(int64_t cols, int64_t chunks, const S* partial, T* out) {
  const int64_t c = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= cols) return;
  S sum = 0;
  for (int64_t k = 0; k < chunks; ++k) sum += partial[k * cols + c];
  out[c] = store<T>(sum);
}

unsigned row_grid(int64_t rows) {
  return static_cast<unsigned>(std::min<int64_t>(rows, int64_t{1} << 30));
}

template <typename T>
const T* optional_ptr(const Tensor& t) {
  return t.defined() ? static_cast<const T*>(t.data_ptr()) : nullptr;
}

}  // namespace

void CudaBackend::layer_norm(const Tensor& out, const Tensor& mean, const Tensor& rstd,
                             const Tensor& x, const Tensor& weight, const Tensor& bias,
                             double eps) {
  const int64_t rows = x.shape()[0], cols = x.shape()[1];
  if (rows == 0 || cols == 0) return;
  dispatch_float(x.dtype(), "layer_norm", [&](auto tag) {
    using T = decltype(tag);
    using S = std::conditional_t<std::is_same_v<T, double>, double, float>;
    layer_norm_kernel<T, S><<<row_grid(rows), threads_for(cols), 0, stream_of(x)>>>(
        rows, cols, static_cast<calc_t<T>>(eps), static_cast<const T*>(x.data_ptr()),
        optional_ptr<T>(weight), optional_ptr<T>(bias), static_cast<T*>(out.data_ptr()),
        static_cast<S*>(mean.data_ptr()), static_cast<S*>(rstd.data_ptr()));
    check_launch("layer_norm");
  });
}

void CudaBackend::layer_norm_backward(const Tensor& grad_x, const Tensor& grad_weight,
                                      const Tensor& grad_bias, const Tensor& grad_out,
                                      const Tensor& x, const Tensor& mean, const Tensor& rstd,
                                      const Tensor& weight) {
  const int64_t rows = x.shape()[0], cols = x.shape()[1];
  if (cols == 0) return;
  const int device = x.device().index;
  const cudaStream_t stream = stream_of(x);
  dispatch_float(x.dtype(), "layer_norm_backward", [&](auto tag) {
    using T = decltype(tag);
    using S = std::conditional_t<std::is_same_v<T, double>, double, float>;
    const T* go = static_cast<const T*>(grad_out.data_ptr());
    const T* px = static_cast<const T*>(x.data_ptr());
    const S* pm = static_cast<const S*>(mean.data_ptr());
    const S* pr = static_cast<const S*>(rstd.data_ptr());
    if (grad_x.defined() && rows > 0) {
      layer_norm_backward_kernel<T, S><<<row_grid(rows), threads_for(cols), 0, stream>>>(
          rows, cols, go, px, pm, pr, optional_ptr<T>(weight), static_cast<T*>(grad_x.data_ptr()));
      check_launch("layer_norm_backward");
    }
    if (!grad_weight.defined() && !grad_bias.defined()) return;
    const DType stats = std::is_same_v<S, double> ? DType::Float64 : DType::Float32;
    const int64_t col_tiles = (cols + kTileCols - 1) / kTileCols;
    // Enough row chunks to give every multiprocessor a few blocks.
    const int64_t chunks =
        std::clamp<int64_t>((4 * multiprocessors(device) + col_tiles - 1) / col_tiles, 1,
                            std::max<int64_t>(rows / 32, 1));
    const int64_t chunk_rows = rows == 0 ? 1 : (rows + chunks - 1) / chunks;
    const Tensor partial = scratch({2, chunks, cols}, stats, x.device());
    S* pw = static_cast<S*>(partial.data_ptr());
    S* pb = pw + chunks * cols;
    layer_norm_params_kernel<T, S>
        <<<dim3(static_cast<unsigned>(col_tiles), static_cast<unsigned>(chunks)),
           dim3(kTileCols, kTileRows), 0, stream>>>(rows, cols, chunk_rows, go, px, pm, pr, pw, pb);
    check_launch("layer_norm_backward");
    const unsigned grid = static_cast<unsigned>((cols + 255) / 256);
    if (grad_weight.defined())
      sum_chunks_kernel<T, S>
          <<<grid, 256, 0, stream>>>(cols, chunks, pw, static_cast<T*>(grad_weight.data_ptr()));
    if (grad_bias.defined())
      sum_chunks_kernel<T, S>
          <<<grid, 256, 0, stream>>>(cols, chunks, pb, static_cast<T*>(grad_bias.data_ptr()));
    check_launch("layer_norm_backward");
  });
}

}  // namespace st::backend::cuda
