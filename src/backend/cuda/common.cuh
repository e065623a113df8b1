#pragma once
// What the CUDA kernels share: the element types per dtype, conversions with the CPU backend's
// semantics, strided operand layouts, warp and block reductions, and launch sizing.

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <array>
#include <cstdint>
#include <limits>
#include <type_traits>

#include "backend/cuda/cuda_backend.h"

namespace st::backend::cuda {

// Calls fn(T{}) with T the device element type of `dtype` (f16 and bf16 as CUDA's types, which
// store the same bits as st::Half and st::BFloat16).
template <typename Fn>
decltype(auto) dispatch(DType dtype, Fn&& fn) {
  switch (dtype) {
    case DType::Float32: return fn(float{});
    case DType::Float64: return fn(double{});
    case DType::Float16: return fn(__half{});
    case DType::BFloat16: return fn(__nv_bfloat16{});
    case DType::Int32: return fn(int32_t{});
    case DType::Int64: return fn(int64_t{});
    case DType::Bool: return fn(bool{});
  }
  __builtin_unreachable();
}

// The same over the float dtypes only; others throw NotImplementedError naming the op.
template <typename Fn>
void dispatch_float(DType dtype, const char* op, Fn&& fn) {
  switch (dtype) {
    case DType::Float32: fn(float{}); return;
    case DType::Float64: fn(double{}); return;
    case DType::Float16: fn(__half{}); return;
    case DType::BFloat16: fn(__nv_bfloat16{}); return;
    default:
      throw NotImplementedError(
          detail::concat("[", op, "] not implemented for ", dtype, " on the cuda backend"));
  }
}

template <typename T>
inline constexpr bool kIsHalfLike = std::is_same_v<T, __half> || std::is_same_v<T, __nv_bfloat16>;
template <typename T>
inline constexpr bool kIsFloat = kIsHalfLike<T> || std::is_floating_point_v<T>;

// What arithmetic on T is done in: f32 for f16/bf16, int for bool, T otherwise.
template <typename T>
using calc_t =
    std::conditional_t<kIsHalfLike<T>, float, std::conditional_t<std::is_same_v<T, bool>, int, T>>;
// Accumulators of sums: f64 for every float (as the CPU backend), int64 for integers and bool.
template <typename T>
using acc_t = std::conditional_t<kIsFloat<T>, double, int64_t>;

template <typename T>
__device__ __forceinline__ calc_t<T> load(T v) {
  if constexpr (std::is_same_v<T, __half>)
    return __half2float(v);
  else if constexpr (std::is_same_v<T, __nv_bfloat16>)
    return __bfloat162float(v);
  else
    return static_cast<calc_t<T>>(v);
}

// A computed value (float, double or integer) stored as T: f16/bf16 round to nearest even through
// f32, bool is "nonzero", float to integer saturates with NaN giving 0 (the CPU's element_cast).
template <typename T, typename V>
__device__ __forceinline__ T store(V v) {
  if constexpr (std::is_same_v<T, V>) {
    return v;
  } else if constexpr (std::is_same_v<T, bool>) {
    return v != V(0);
  } else if constexpr (std::is_same_v<T, __half>) {
    return __float2half_rn(static_cast<float>(v));
  } else if constexpr (std::is_same_v<T, __nv_bfloat16>) {
    return __float2bfloat16_rn(static_cast<float>(v));
  } else if constexpr (std::is_integral_v<T> && std::is_floating_point_v<V>) {
    const double d = static_cast<double>(v);
    constexpr double lowest = static_cast<double>(std::numeric_limits<T>::lowest());
    if (d != d) return T(0);
    if (d <= lowest) return std::numeric_limits<T>::lowest();
    if (d >= -lowest) return std::numeric_limits<T>::max();
    return static_cast<T>(d);
  } else {
    return static_cast<T>(v);
  }
}

// Element conversion between storage types, as copies between dtypes do.
template <typename To, typename From>
__device__ __forceinline__ To convert(From v) {
  if constexpr (std::is_same_v<To, From>)
    return v;
  else
    return store<To>(load(v));
}

// Dims a kernel indexes at most, after merging dims that step through memory as one.
constexpr int kMaxDims = 10;

// N operands of one shape with their strides (elements; 0 for broadcast dims). Operand k's element
// for linear index i (row-major over `sizes`) is at offset(k, i).
template <int N>
struct Layout {
  int ndim = 0;
  int64_t sizes[kMaxDims];
  int64_t strides[N][kMaxDims];

  __device__ __forceinline__ std::array<int64_t, N> offsets(int64_t i) const {
    std::array<int64_t, N> off{};
    for (int d = ndim - 1; d >= 0; --d) {
      const int64_t size = sizes[d];
      const int64_t q = i / size, r = i - q * size;
      for (int k = 0; k < N; ++k) off[k] += r * strides[k][d];
      i = q;
    }
    return off;
  }
};

// The layout of tensors of one shape; size-1 dims dropped, mergeable neighbours merged. A layout
// with ndim <= 1 and unit strides everywhere is dense. Throws NotImplementedError past kMaxDims.
template <int N>
Layout<N> make_layout(const Shape& shape, const std::array<const Shape*, N>& strides,
                      const char* op) {
  Layout<N> layout;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 1) continue;
    bool merges = layout.ndim > 0;
    for (int k = 0; k < N && merges; ++k)
      merges = layout.strides[k][layout.ndim - 1] == (*strides[k])[d] * shape[d];
    if (merges) {
      layout.sizes[layout.ndim - 1] *= shape[d];
      for (int k = 0; k < N; ++k) layout.strides[k][layout.ndim - 1] = (*strides[k])[d];
      continue;
    }
    ST_CHECK(layout.ndim < kMaxDims, NotImplementedError, "[", op,
             "] the cuda backend indexes at most ", kMaxDims, " non-mergeable dims, got shape ",
             shape);
    layout.sizes[layout.ndim] = shape[d];
    for (int k = 0; k < N; ++k) layout.strides[k][layout.ndim] = (*strides[k])[d];
    ++layout.ndim;
  }
  return layout;
}

template <int N>
bool is_dense(const Layout<N>& layout) {
  if (layout.ndim == 0) return true;
  if (layout.ndim > 1) return false;
  for (int k = 0; k < N; ++k)
    if (layout.strides[k][0] != 1) return false;
  return true;
}

// Grid size for n items of `per_block` each: enough blocks to fill the chip a few times over, the
// rest covered by grid-stride loops.
inline unsigned grid_for(int64_t n, int per_block, int device) {
  const int64_t blocks = (n + per_block - 1) / per_block;
  const int64_t cap = static_cast<int64_t>(multiprocessors(device)) * 32;
  return static_cast<unsigned>(blocks < 1 ? 1 : (blocks < cap ? blocks : cap));
}

template <typename T>
__device__ __forceinline__ T warp_sum(T v) {
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

// Sum over a block of up to 1024 threads; every thread gets the result. `shared` holds 32 values.
template <typename T>
__device__ __forceinline__ T block_sum(T v, T* shared) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int warps = (blockDim.x + 31) >> 5;
  v = warp_sum(v);
  __syncthreads();  // `shared` may still be read from a previous call
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  v = lane < warps ? shared[lane] : T(0);
  return warp_sum(v);
}

template <typename T>
__device__ __forceinline__ T warp_max(T v) {
  for (int offset = 16; offset > 0; offset >>= 1)
    v = fmax(v, __shfl_xor_sync(0xffffffffu, v, offset));
  return v;
}

template <typename T>
__device__ __forceinline__ T block_max(T v, T* shared) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int warps = (blockDim.x + 31) >> 5;
  v = warp_max(v);
  __syncthreads();
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  v = lane < warps ? shared[lane] : T(-INFINITY);
  return warp_max(v);
}

// A 16-byte group of T, for vector loads and stores of contiguous data.
template <typename T>
struct alignas(16) Vec16 {
  static constexpr int kCount = 16 / sizeof(T);
  T v[kCount];
};

inline bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15) == 0; }

// Row kernels (softmax, layer_norm) keep up to kRowPerThread values per thread in registers, so a
// row is read from memory once. With `vec`, thread t holds the contiguous columns [8t, 8t + 8),
// moved by 16-byte loads and stores (the row length a multiple of 8, the rows 16-byte aligned);
// otherwise columns t + j * blockDim.x, one element at a time.
constexpr int kRowPerThread = 8;

__device__ __forceinline__ int64_t row_col(int j, bool vec) {
  return vec ? static_cast<int64_t>(threadIdx.x) * kRowPerThread + j
             : threadIdx.x + static_cast<int64_t>(j) * blockDim.x;
}

template <typename T>
__device__ __forceinline__ void load_row(const T* x, int64_t cols, bool vec,
                                         calc_t<T> (&v)[kRowPerThread], calc_t<T> fill) {
  if (vec) {
    constexpr int kPer = Vec16<T>::kCount;
    const int64_t c0 = static_cast<int64_t>(threadIdx.x) * kRowPerThread;
#pragma unroll
    for (int k = 0; k < kRowPerThread / kPer; ++k) {
      if (c0 < cols) {
        const Vec16<T> w = reinterpret_cast<const Vec16<T>*>(x + c0)[k];
#pragma unroll
        for (int e = 0; e < kPer; ++e) v[k * kPer + e] = load(w.v[e]);
      } else {
#pragma unroll
        for (int e = 0; e < kPer; ++e) v[k * kPer + e] = fill;
      }
    }
  } else {
#pragma unroll
    for (int j = 0; j < kRowPerThread; ++j) {
      const int64_t c = row_col(j, false);
      v[j] = c < cols ? load(x[c]) : fill;
    }
  }
}

template <typename T>
__device__ __forceinline__ void store_row(T* y, int64_t cols, bool vec,
                                          const calc_t<T> (&v)[kRowPerThread]) {
  if (vec) {
    constexpr int kPer = Vec16<T>::kCount;
    const int64_t c0 = static_cast<int64_t>(threadIdx.x) * kRowPerThread;
    if (c0 >= cols) return;
#pragma unroll
    for (int k = 0; k < kRowPerThread / kPer; ++k) {
      Vec16<T> w;
#pragma unroll
      for (int e = 0; e < kPer; ++e) w.v[e] = store<T>(v[k * kPer + e]);
      reinterpret_cast<Vec16<T>*>(y + c0)[k] = w;
    }
  } else {
#pragma unroll
    for (int j = 0; j < kRowPerThread; ++j) {
      const int64_t c = row_col(j, false);
      if (c < cols) y[c] = store<T>(v[j]);
    }
  }
}

// Whether rows of `cols` elements at `a` and `b` can take the vector path of load_row/store_row.
template <typename T>
__device__ __forceinline__ bool row_vec_ok(int64_t cols, const void* a, const void* b) {
  return cols % kRowPerThread == 0 &&
         ((reinterpret_cast<uintptr_t>(a) | reinterpret_cast<uintptr_t>(b)) & 15) == 0;
}

}  // namespace st::backend::cuda
