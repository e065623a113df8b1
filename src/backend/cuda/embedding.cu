// Embedding lookup and its gradient, a block per looked-up row. An index outside the table is
// reported as a DeviceFault (IndexError at the host's next wait) and its row is zeroed. The
// gradient scatters rows with atomic adds; f16 and bf16 gradients are summed in an f32 buffer
// first, so repeated indices do not round at every addition.

#include <algorithm>

#include "backend/cuda/common.cuh"

namespace st::backend::cuda {
namespace {

constexpr int kThreads = 256;

// Threads for a row of `dim` elements: whole warps, at most kThreads.
unsigned row_threads(int64_t dim) {
  return static_cast<unsigned>(std::min<int64_t>(kThreads, (dim + 31) / 32 * 32));
}

template <typename T, typename I>
__global__ void embedding_kernel(int64_t n, int64_t dim, int64_t rows, const T* weight,
                                 const I* indices, T* out, DeviceFault* fault) {
  for (int64_t r = blockIdx.x; r < n; r += gridDim.x) {
    const int64_t index = static_cast<int64_t>(indices[r]);
    T* dst = out + r * dim;
    if (index < 0 || index >= rows) {
      if (threadIdx.x == 0) report_fault(fault, FaultKind::EmbeddingIndex, index, rows);
      for (int64_t c = threadIdx.x; c < dim; c += blockDim.x) dst[c] = T{};
      continue;
    }
    const T* src = weight + index * dim;
    for (int64_t c = threadIdx.x; c < dim; c += blockDim.x) dst[c] = src[c];
  }
}

// grad[indices[row]] += grad_out[row], into an accumulator of type A.
template <typename T, typename A, typename I>
__global__ void embedding_backward_kernel(int64_t n, int64_t dim, const T* grad_out,
                                          const I* indices, A* grad) {
  for (int64_t r = blockIdx.x; r < n; r += gridDim.x) {
    A* dst = grad + static_cast<int64_t>(indices[r]) * dim;
    const T* src = grad_out + r * dim;
    for (int64_t c = threadIdx.x; c < dim; c += blockDim.x)
      atomicAdd(dst + c, static_cast<A>(load(src[c])));
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
  const cudaStream_t stream = stream_of(out);
  DeviceFault* fault = device_fault(out.device().index);
  dispatch(weight.dtype(), [&](auto tag) {
    using T = decltype(tag);
    dispatch_index(indices.dtype(), [&](auto index_tag) {
      using I = decltype(index_tag);
      embedding_kernel<T, I><<<grid_for(n, 1, out.device().index), row_threads(dim), 0, stream>>>(
          n, dim, rows, static_cast<const T*>(weight.data_ptr()),
          static_cast<const I*>(indices.data_ptr()), static_cast<T*>(out.data_ptr()), fault);
      check_launch("embedding");
    });
  });
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
            <<<grid_for(n, 1, device), row_threads(dim), 0, stream>>>(
                n, dim, go, idx, static_cast<float*>(acc.data_ptr()));
        add_f32_kernel<T><<<grid_for(total, kThreads, device), kThreads, 0, stream>>>(
            total, static_cast<const float*>(acc.data_ptr()),
            static_cast<T*>(grad_weight.data_ptr()));
      } else {
        embedding_backward_kernel<T, T, I><<<grid_for(n, 1, device), row_threads(dim), 0, stream>>>(
            n, dim, go, idx, static_cast<T*>(grad_weight.data_ptr()));
      }
      check_launch("embedding_backward");
    });
  });
}

}  // namespace st::backend::cuda
