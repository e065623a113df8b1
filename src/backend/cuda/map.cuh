#pragma once
// map<TOut, TIn...>(op, fn, out, in...): out[i] = fn(in[i]...) over tensors of one shape with any
// strides, fn taking and returning compute types (calc_t). Dense operands whose pointers are
// 16-byte aligned go through 16-byte vector loads and stores; the rest through a strided kernel
// that turns each linear index into per-operand offsets, in 32-bit arithmetic where the offsets
// fit, and a 16-byte pack at a time where every operand's innermost dim is contiguous (a transposed
// [B, T, H, E] copy moves rows of E).

#include <algorithm>
#include <initializer_list>
#include <optional>

#include "backend/cuda/common.cuh"

namespace st::backend::cuda {

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

template <int V, typename TOut, typename Fn, typename... TIn, size_t... K>
__device__ __forceinline__ void map_pack_at(const std::array<uint32_t, 1 + sizeof...(TIn)>& off,
                                            Fn fn, Pack<TOut, V>* out, std::index_sequence<K...>,
                                            const Pack<TIn, V>*... in) {
  // Whole packs in registers: one 16-byte load per operand and one store.
  Pack<TOut, V> o;
  apply_packs<V>(fn, o, Pack<TIn, V>(in[off[K + 1]])...);
  out[off[0]] = o;
}

// The strided kernel over packs of V elements (V = 1: single elements) with 32-bit offsets in
// units of packs.
template <int V, typename TOut, typename Fn, typename... TIn>
__global__ void map_strided32_kernel(Layout32<1 + sizeof...(TIn)> layout, uint32_t n, Fn fn,
                                     Pack<TOut, V>* out, const Pack<TIn, V>*... in) {
  const uint32_t step = gridDim.x * blockDim.x;
  for (uint32_t i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += step)
    map_pack_at<V>(layout.offsets(i), fn, out, std::index_sequence_for<TIn...>{}, in...);
}

// The layout in units of packs of V elements, when every operand's innermost dim is contiguous
// and a multiple of V, its other strides multiples of V and its pointer aligned to a pack, and
// when the packs' count and offsets fit in 31 bits; nullopt otherwise.
template <int N>
std::optional<Layout32<N>> packed_layout(const Layout<N>& layout, int v, bool aligned) {
  const int last = layout.ndim - 1;
  if (v > 1) {
    if (!aligned) return std::nullopt;
    for (int k = 0; k < N; ++k) {
      if (layout.strides[k][last] != 1 || layout.sizes[last] % v != 0) return std::nullopt;
      for (int d = 0; d < last; ++d)
        if (layout.strides[k][d] % v != 0) return std::nullopt;
    }
  }
  constexpr int64_t kLimit = int64_t{1} << 31;
  Layout32<N> packed;
  packed.ndim = layout.ndim;
  int64_t count = 1;
  std::array<int64_t, N> extent{};
  for (int d = 0; d < layout.ndim; ++d) {
    const int64_t size = d == last ? layout.sizes[d] / v : layout.sizes[d];
    count *= size;
    if (count >= kLimit) return std::nullopt;
    packed.sizes[d] = FastDivmod(static_cast<uint32_t>(size));
    for (int k = 0; k < N; ++k) {
      const int64_t stride = d == last ? layout.strides[k][d] : layout.strides[k][d] / v;
      extent[k] += (size - 1) * stride;
      if (extent[k] >= kLimit) return std::nullopt;
      packed.strides[k][d] = static_cast<uint32_t>(stride);
    }
  }
  return packed;
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
  } else if (const auto packed = packed_layout<N>(layout, V, aligned)) {
    const uint32_t packs = static_cast<uint32_t>(n / V);
    map_strided32_kernel<V><<<grid_for(packs, kMapThreads, device), kMapThreads, 0, stream>>>(
        *packed, packs, fn, reinterpret_cast<Pack<TOut, V>*>(o),
        static_cast<const Pack<TIn, V>*>(in.data_ptr())...);
  } else if (const auto single = packed_layout<N>(layout, 1, true)) {
    map_strided32_kernel<1><<<grid_for(n, kMapThreads, device), kMapThreads, 0, stream>>>(
        *single, static_cast<uint32_t>(n), fn, reinterpret_cast<Pack<TOut, 1>*>(o),
        static_cast<const Pack<TIn, 1>*>(in.data_ptr())...);
  } else {
    map_strided_kernel<<<grid_for(n, kMapThreads, device), kMapThreads, 0, stream>>>(
        layout, n, fn, o, static_cast<const TIn*>(in.data_ptr())...);
  }
  check_launch(op);
}

}  // namespace st::backend::cuda
