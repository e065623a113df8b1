#pragma once
// map<TOut, TIn...>(op, fn, out, in...): out[i] = fn(in[i]...) over tensors of one shape with any
// strides, fn taking and returning compute types (calc_t). Dense operands whose pointers are
// 16-byte aligned go through 16-byte vector loads and stores; the rest through a strided kernel
// that turns each linear index into per-operand offsets.

#include <algorithm>
#include <initializer_list>

#include "backend/cuda/common.cuh"

namespace st::backend::cuda {

template <typename T, int V>
struct alignas(sizeof(T) * V) Pack {
  T v[V];
};

template <int V, typename TOut, typename Fn, typename... P>
__device__ __forceinline__ void apply_packs(Fn fn, Pack<TOut, V>& out, const P&... in) {
#pragma unroll
  for (int j = 0; j < V; ++j) out.v[j] = store<TOut>(fn(load(in.v[j])...));
}

template <int V, typename TOut, typename Fn, typename... TIn>
__global__ void map_dense_kernel(int64_t n, Fn fn, TOut* out, const TIn*... in) {
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x * V;
  for (int64_t base = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) * V; base < n;
       base += step) {
    if (base + V <= n) {
      Pack<TOut, V> o;
      apply_packs<V>(fn, o, *reinterpret_cast<const Pack<TIn, V>*>(in + base)...);
      *reinterpret_cast<Pack<TOut, V>*>(out + base) = o;
    } else {
      for (int64_t i = base; i < n; ++i) out[i] = store<TOut>(fn(load(in[i])...));
    }
  }
}

template <typename TOut, typename Fn, typename... TIn, size_t... K>
__device__ __forceinline__ void map_one(const Layout<1 + sizeof...(TIn)>& layout, int64_t i, Fn fn,
                                        TOut* out, std::index_sequence<K...>, const TIn*... in) {
  const auto off = layout.offsets(i);
  out[off[0]] = store<TOut>(fn(load(in[off[K + 1]])...));
}

template <typename TOut, typename Fn, typename... TIn>
__global__ void map_strided_kernel(Layout<1 + sizeof...(TIn)> layout, int64_t n, Fn fn, TOut* out,
                                   const TIn*... in) {
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step)
    map_one(layout, i, fn, out, std::index_sequence_for<TIn...>{}, in...);
}

constexpr int kMapThreads = 256;

template <typename TOut, typename... TIn, typename Fn, typename... Tensors>
void map(const char* op, Fn fn, const Tensor& out, const Tensors&... in) {
  static_assert(sizeof...(TIn) == sizeof...(Tensors));
  const int64_t n = out.numel();
  if (n == 0) return;
  constexpr int N = 1 + sizeof...(TIn);
  const Layout<N> layout = make_layout<N>(out.shape(), {&out.strides(), &in.strides()...}, op);
  const int device = out.device().index;
  const cudaStream_t stream = stream_of(out);
  TOut* o = static_cast<TOut*>(out.data_ptr());
  constexpr int V = static_cast<int>(16 / std::max({sizeof(TOut), sizeof(TIn)...}));
  const bool aligned = ((reinterpret_cast<uintptr_t>(o) % (sizeof(TOut) * V) == 0) && ... &&
                        (reinterpret_cast<uintptr_t>(in.data_ptr()) % (sizeof(TIn) * V) == 0));
  if (is_dense(layout) && aligned) {
    map_dense_kernel<V><<<grid_for(n, kMapThreads * V, device), kMapThreads, 0, stream>>>(
        n, fn, o, static_cast<const TIn*>(in.data_ptr())...);
  } else {
    map_strided_kernel<<<grid_for(n, kMapThreads, device), kMapThreads, 0, stream>>>(
        layout, n, fn, o, static_cast<const TIn*>(in.data_ptr())...);
  }
  check_launch(op);
}

}  // namespace st::backend::cuda
