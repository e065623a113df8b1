// Row-wise softmax and log_softmax (scaled, optionally causal) with their backward, and the fused
// cross_entropy forward and backward. One block per row: the forward keeps a running maximum and
// a sum rescaled to it (one read of the row for both statistics, then one read and one write for
// the output, the second read mostly from cache); the backward reduces one dot product per row
// and writes the gradient in the same pass over the row.

#include <algorithm>

#include "backend/cuda/common.cuh"

namespace st::backend::cuda {
namespace {

// Threads per row: enough for about eight elements each, at most 1024, whole warps.
int threads_for(int64_t cols) {
  const int64_t want = (cols + 7) / 8;
  return static_cast<int>(std::clamp<int64_t>((want + 31) / 32 * 32, 32, 1024));
}

// Running maximum m and the sum s of exp(v - m) seen so far.
template <typename C>
struct MaxSum {
  C m;
  C s;
};

template <typename C>
__device__ __forceinline__ MaxSum<C> merge(MaxSum<C> a, MaxSum<C> b) {
  const C m = a.m > b.m ? a.m : b.m;
  if (m == C(-INFINITY)) return {m, C(0)};
  return {m, a.s * ::exp(a.m - m) + b.s * ::exp(b.m - m)};
}

template <typename C>
__device__ __forceinline__ MaxSum<C> add_value(MaxSum<C> a, C v) {
  if (v > a.m) return {v, a.s * ::exp(a.m - v) + C(1)};
  if (v == C(-INFINITY)) return a;  // contributes exp(-inf) = 0; avoids -inf - -inf
  return {a.m, a.s + ::exp(v - a.m)};
}

template <typename C>
__device__ __forceinline__ MaxSum<C> block_max_sum(MaxSum<C> v) {
  __shared__ MaxSum<C> shared[32];
  for (int offset = 16; offset > 0; offset >>= 1) {
    MaxSum<C> other{__shfl_xor_sync(0xffffffffu, v.m, offset),
                    __shfl_xor_sync(0xffffffffu, v.s, offset)};
    v = merge(v, other);
  }
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  __syncthreads();
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  const int warps = (blockDim.x + 31) >> 5;
  v = lane < warps ? shared[lane] : MaxSum<C>{C(-INFINITY), C(0)};
  for (int offset = 16; offset > 0; offset >>= 1) {
    MaxSum<C> other{__shfl_xor_sync(0xffffffffu, v.m, offset),
                    __shfl_xor_sync(0xffffffffu, v.s, offset)};
    v = merge(v, other);
  }
  return v;
}

template <typename T>
__global__ void __launch_bounds__(1024)
    softmax_kernel(int64_t rows, int64_t cols, calc_t<T> scale, int64_t causal_rows, bool log,
                   const T* in, T* out) {
  using C = calc_t<T>;
  const bool cached = cols <= kRowPerThread * static_cast<int64_t>(blockDim.x);
  const bool vec = cached && row_vec_ok<T>(cols, in, out);
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* x = in + r * cols;
    T* y = out + r * cols;
    // Causal rows see columns up to their position in the group of queries.
    const int64_t visible = causal_rows > 0 ? ::min(cols, r % causal_rows + 1) : cols;
    MaxSum<C> ms{C(-INFINITY), C(0)};
    C v[kRowPerThread];
    if (cached) {
      load_row(x, cols, vec, v, C(0));
#pragma unroll
      for (int j = 0; j < kRowPerThread; ++j) {
        v[j] = row_col(j, vec) < visible ? scale * v[j] : C(-INFINITY);
        ms = add_value(ms, v[j]);
      }
    } else {
      for (int64_t c = threadIdx.x; c < visible; c += blockDim.x)
        ms = add_value(ms, scale * load(x[c]));
    }
    ms = block_max_sum(ms);
    const C shift = ms.m + ::log(ms.s), inv = C(1) / ms.s;
    if (cached) {
#pragma unroll
      for (int j = 0; j < kRowPerThread; ++j)
        v[j] = log ? v[j] - shift : row_col(j, vec) < visible ? ::exp(v[j] - ms.m) * inv : C(0);
      store_row(y, cols, vec, v);
    } else if (log) {
      for (int64_t c = threadIdx.x; c < cols; c += blockDim.x)
        y[c] = store<T>(scale * load(x[c]) - shift);
    } else {
      for (int64_t c = threadIdx.x; c < cols; c += blockDim.x)
        y[c] = store<T>(c < visible ? ::exp(scale * load(x[c]) - ms.m) * inv : C(0));
    }
  }
}

template <typename T>
__global__ void __launch_bounds__(1024)
    softmax_backward_kernel(int64_t rows, int64_t cols, calc_t<T> scale, bool log,
                            const T* grad_out, const T* out, T* grad_in) {
  using C = calc_t<T>;
  __shared__ C shared[32];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* g = grad_out + r * cols;
    const T* y = out + r * cols;
    T* gi = grad_in + r * cols;
    C dot = 0;
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x)
      dot += log ? load(g[c]) : load(g[c]) * load(y[c]);
    dot = block_sum(dot, shared);
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
      const C gc = load(g[c]), yc = load(y[c]);
      gi[c] = store<T>(log ? scale * (gc - ::exp(yc) * dot) : scale * yc * (gc - dot));
    }
  }
}

template <typename I>
__device__ __forceinline__ void flag_index(int64_t* flag, int64_t value) {
  if (atomicCAS(reinterpret_cast<unsigned long long*>(flag), 0ull, 1ull) == 0ull) flag[1] = value;
}

template <typename T, typename S, typename I>
__global__ void __launch_bounds__(1024)
    cross_entropy_kernel(int64_t rows, int64_t cols, const T* logits, const I* target,
                         int64_t target_stride, int64_t ignore_index, T* loss, S* lse,
                         int64_t* flag) {
  using C = calc_t<T>;
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* x = logits + r * cols;
    MaxSum<C> ms{C(-INFINITY), C(0)};
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) ms = add_value(ms, load(x[c]));
    ms = block_max_sum(ms);
    if (threadIdx.x == 0) {
      const int64_t t = static_cast<int64_t>(target[r * target_stride]);
      const C row_lse = ms.m + ::log(ms.s);
      lse[r] = static_cast<S>(row_lse);
      if (t == ignore_index) {
        loss[r] = store<T>(C(0));
      } else if (t < 0 || t >= cols) {
        flag_index<I>(flag, t);
        loss[r] = store<T>(C(0));
      } else {
        loss[r] = store<T>(row_lse - load(x[t]));
      }
    }
  }
}

template <typename T, typename S, typename I>
__global__ void __launch_bounds__(1024)
    cross_entropy_backward_kernel(int64_t rows, int64_t cols, const T* logits, const S* lse,
                                  const I* target, int64_t target_stride, const T* grad_loss,
                                  int64_t grad_stride, int64_t ignore_index, T* grad_logits) {
  using C = calc_t<T>;
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* x = logits + r * cols;
    T* gx = grad_logits + r * cols;
    const int64_t t = static_cast<int64_t>(target[r * target_stride]);
    if (t == ignore_index) {
      for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) gx[c] = store<T>(C(0));
      continue;
    }
    const C g = load(grad_loss[r * grad_stride]);
    const C shift = static_cast<C>(lse[r]);
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x)
      gx[c] = store<T>((::exp(load(x[c]) - shift) - (c == t ? C(1) : C(0))) * g);
  }
}

unsigned row_grid(int64_t rows) {
  return static_cast<unsigned>(std::min<int64_t>(rows, int64_t{1} << 30));
}

int64_t stride_of_1d(const Tensor& t) { return t.dim() == 0 ? 0 : t.strides()[0]; }

}  // namespace

void CudaBackend::softmax(const Tensor& out, const Tensor& in, bool log, double scale,
                          int64_t causal_rows) {
  const int64_t rows = in.shape()[0], cols = in.shape()[1];
  if (rows == 0 || cols == 0) return;
  dispatch_float(in.dtype(), "softmax", [&](auto tag) {
    using T = decltype(tag);
    softmax_kernel<T><<<row_grid(rows), threads_for(cols), 0, stream_of(in)>>>(
        rows, cols, static_cast<calc_t<T>>(scale), causal_rows, log,
        static_cast<const T*>(in.data_ptr()), static_cast<T*>(out.data_ptr()));
    check_launch("softmax");
  });
}

void CudaBackend::softmax_backward(const Tensor& grad_in, const Tensor& grad_out, const Tensor& out,
                                   bool log, double scale) {
  const int64_t rows = out.shape()[0], cols = out.shape()[1];
  if (rows == 0 || cols == 0) return;
  dispatch_float(out.dtype(), "softmax_backward", [&](auto tag) {
    using T = decltype(tag);
    softmax_backward_kernel<T><<<row_grid(rows), threads_for(cols), 0, stream_of(out)>>>(
        rows, cols, static_cast<calc_t<T>>(scale), log, static_cast<const T*>(grad_out.data_ptr()),
        static_cast<const T*>(out.data_ptr()), static_cast<T*>(grad_in.data_ptr()));
    check_launch("softmax_backward");
  });
}

void CudaBackend::cross_entropy(const Tensor& loss, const Tensor& lse, const Tensor& logits,
                                const Tensor& target, int64_t ignore_index) {
  const int64_t rows = logits.shape()[0], cols = logits.shape()[1];
  if (rows == 0) return;
  const Tensor flag = scratch({2}, DType::Int64, logits.device());
  const cudaStream_t stream = stream_of(logits);
  check(cudaMemsetAsync(flag.data_ptr(), 0, 2 * sizeof(int64_t), stream), "cudaMemsetAsync");
  dispatch_float(logits.dtype(), "cross_entropy", [&](auto tag) {
    using T = decltype(tag);
    using S = std::conditional_t<std::is_same_v<T, double>, double, float>;
    const auto run = [&](auto index_tag) {
      using I = decltype(index_tag);
      cross_entropy_kernel<T, S, I><<<row_grid(rows), threads_for(cols), 0, stream>>>(
          rows, cols, static_cast<const T*>(logits.data_ptr()),
          static_cast<const I*>(target.data_ptr()), stride_of_1d(target), ignore_index,
          static_cast<T*>(loss.data_ptr()), static_cast<S*>(lse.data_ptr()),
          static_cast<int64_t*>(flag.data_ptr()));
    };
    if (target.dtype() == DType::Int32)
      run(int32_t{});
    else
      run(int64_t{});
    check_launch("cross_entropy");
  });
  raise_if_flagged(flag, "cross_entropy", "target", cols);
}

void CudaBackend::cross_entropy_backward(const Tensor& grad_logits, const Tensor& grad_loss,
                                         const Tensor& logits, const Tensor& lse,
                                         const Tensor& target, int64_t ignore_index) {
  const int64_t rows = logits.shape()[0], cols = logits.shape()[1];
  if (rows == 0 || cols == 0) return;
  dispatch_float(logits.dtype(), "cross_entropy_backward", [&](auto tag) {
    using T = decltype(tag);
    using S = std::conditional_t<std::is_same_v<T, double>, double, float>;
    const auto run = [&](auto index_tag) {
      using I = decltype(index_tag);
      cross_entropy_backward_kernel<T, S, I>
          <<<row_grid(rows), threads_for(cols), 0, stream_of(logits)>>>(
              rows, cols, static_cast<const T*>(logits.data_ptr()),
              static_cast<const S*>(lse.data_ptr()), static_cast<const I*>(target.data_ptr()),
              stride_of_1d(target), static_cast<const T*>(grad_loss.data_ptr()),
              stride_of_1d(grad_loss), ignore_index, static_cast<T*>(grad_logits.data_ptr()));
    };
    if (target.dtype() == DType::Int32)
      run(int32_t{});
    else
      run(int64_t{});
    check_launch("cross_entropy_backward");
  });
}

}  // namespace st::backend::cuda
