// Embedding lookup and its gradient. An index outside the table sets a device flag that the host
// reads after the launch (the contract asks for an IndexError, so the lookup waits for the
// device). The gradient scatters rows with atomic adds; f16 and bf16 gradients are summed in an
// f32 buffer first, so repeated indices do not round at every addition.

#include "backend/cuda/common.cuh"

namespace st::backend::cuda {
namespace {

constexpr int kThreads = 256;

template <typename T, typename I>
__global__ void embedding_kernel(int64_t n, int64_t dim, int64_t rows, const T* weight,
                                 const I* indices, T* out, int64_t* flag) {
  const int64_t total = n * dim;
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += step) {
    const int64_t row = i / dim, col = i - row * dim;
    const int64_t index = static_cast<int64_t>(indices[row]);
    if (index < 0 || index >= rows) {
      if (col == 0 && atomicCAS(reinterpret_cast<unsigned long long*>(flag), 0ull, 1ull) == 0ull)
        flag[1] = index;
      continue;
    }
    out[i] = weight[index * dim + col];
  }
}

// grad[indices[row]] += grad_out[row], into an accumulator of type A.
template <typename T, typename A, typename I>
__global__ void embedding_backward_kernel(int64_t n, int64_t dim, const T* grad_out,
                                          const I* indices, A* grad) {
  const int64_t total = n * dim;
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += step) {
    const int64_t row = i / dim, col = i - row * dim;
    atomicAdd(grad + static_cast<int64_t>(indices[row]) * dim + col,
              static_cast<A>(load(grad_out[i])));
  }
}

// dst += src (f32) as T, elementwise over n.
template <typename T>
__global__ void add_f32_kernel(int64_t n, const float* src, T* dst) {
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step)
    dst[i] = store<T>(load(dst[i]) + src[i]);
}

template <typename Fn>
void dispatch_index(DType dtype, Fn&& fn) {
  if (dtype == DType::Int32)
    fn(int32_t{});
  else
    fn(int64_t{});
}

}  // namespace

void CudaBackend::embedding(const Tensor& out, const Tensor& weight, const Tensor& indices) {
  const int64_t n = indices.numel(), dim = weight.shape()[1], rows = weight.shape()[0];
  if (n == 0 || dim == 0) return;
  const Tensor flag = scratch({2}, DType::Int64, out.device());
  const cudaStream_t stream = stream_of(out);
  check(cudaMemsetAsync(flag.data_ptr(), 0, 2 * sizeof(int64_t), stream), "cudaMemsetAsync");
  dispatch(weight.dtype(), [&](auto tag) {
    using T = decltype(tag);
    dispatch_index(indices.dtype(), [&](auto index_tag) {
      using I = decltype(index_tag);
      embedding_kernel<T, I>
          <<<grid_for(n * dim, kThreads, out.device().index), kThreads, 0, stream>>>(
              n, dim, rows, static_cast<const T*>(weight.data_ptr()),
              static_cast<const I*>(indices.data_ptr()), static_cast<T*>(out.data_ptr()),
              static_cast<int64_t*>(flag.data_ptr()));
      check_launch("embedding");
    });
  });
  raise_if_flagged(flag, "embedding", "index", rows);
}

void CudaBackend::embedding_backward(const Tensor& grad_weight, const Tensor& grad_out,
                                     const Tensor& indices) {
  const int64_t n = indices.numel(), dim = grad_weight.shape()[1];
  if (n == 0 || dim == 0) return;
  const int device = grad_weight.device().index;
  const cudaStream_t stream = stream_of(grad_weight);
  dispatch_float(grad_weight.dtype(), "embedding_backward", [&](auto tag) {
    using T = decltype(tag);
    dispatch_index(indices.dtype(), [&](auto index_tag) {
      using I = decltype(index_tag);
      const T* go = static_cast<const T*>(grad_out.data_ptr());
      const I* idx = static_cast<const I*>(indices.data_ptr());
      if constexpr (kIsHalfLike<T>) {
        const int64_t total = grad_weight.numel();
        const Tensor acc = scratch(grad_weight.shape(), DType::Float32, grad_weight.device());
        check(cudaMemsetAsync(acc.data_ptr(), 0, total * sizeof(float), stream), "cudaMemsetAsync");
        embedding_backward_kernel<T, float, I>
            <<<grid_for(n * dim, kThreads, device), kThreads, 0, stream>>>(
                n, dim, go, idx, static_cast<float*>(acc.data_ptr()));
        add_f32_kernel<T><<<grid_for(total, kThreads, device), kThreads, 0, stream>>>(
            total, static_cast<const float*>(acc.data_ptr()),
            static_cast<T*>(grad_weight.data_ptr()));
      } else {
        embedding_backward_kernel<T, T, I>
            <<<grid_for(n * dim, kThreads, device), kThreads, 0, stream>>>(
                n, dim, go, idx, static_cast<T*>(grad_weight.data_ptr()));
      }
      check_launch("embedding_backward");
    });
  });
}

}  // namespace st::backend::cuda
