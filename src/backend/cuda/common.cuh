#pragma once
// What the CUDA kernels share: the element types per dtype, conversions with the CPU backend's
// semantics, strided operand layouts, warp and block reductions, and launch sizing.

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <limits>
#include <type_traits>
#include <utility>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/fast_divmod.h"

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

// Records an operand fault; the first one wins, and the host raises it when it next waits for the
// stream (cuda_backend.h).
__device__ __forceinline__ void report_fault(DeviceFault* fault, FaultKind kind, int64_t value,
                                             int64_t limit) {
  if (atomicCAS(&fault->set, 0ull, 1ull) != 0ull) return;
  fault->value = value;
  fault->limit = limit;
  fault->kind = kind;
  __threadfence_system();
}

// Dims a kernel indexes at most, after merging dims that step through memory as one.
constexpr int kMaxDims = 10;

// Division of an index by a dim's size: 64-bit, or 32-bit by multiply-high (FastDivmod).
__device__ __forceinline__ int64_t quotient(int64_t i, int64_t size) { return i / size; }
__device__ __forceinline__ uint32_t quotient(uint32_t i, const FastDivmod& size) {
  return size.div(i);
}
__host__ __device__ __forceinline__ int64_t divisor_of(int64_t size) { return size; }
__host__ __device__ __forceinline__ uint32_t divisor_of(const FastDivmod& size) {
  return size.divisor;
}

// N operands of one shape with their strides (elements; 0 for broadcast dims). Operand k's element
// for linear index i (row-major over `sizes`) is at offsets(i)[k]. Index is int64_t with int64_t
// sizes (Layout), or uint32_t with FastDivmod sizes when the element count and every operand's
// offsets fit in 31 bits (Layout32).
template <int N, typename Index, typename Size>
struct StridedLayout {
  int ndim = 0;
  Size sizes[kMaxDims];
  Index strides[N][kMaxDims];

  __device__ __forceinline__ std::array<Index, N> offsets(Index i) const {
    std::array<Index, N> off{};
    for (int d = ndim - 1; d >= 0; --d) {
      const Index q = quotient(i, sizes[d]), r = i - q * divisor_of(sizes[d]);
      for (int k = 0; k < N; ++k) off[k] += r * strides[k][d];
      i = q;
    }
    return off;
  }
};

template <int N>
using Layout = StridedLayout<N, int64_t, int64_t>;
template <int N>
using Layout32 = StridedLayout<N, uint32_t, FastDivmod>;

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

// N elements of T moved by one load or store of their whole size.
template <typename T, int N>
struct alignas(sizeof(T) * N) Pack {
  static constexpr int kCount = N;
  T v[N];
};

// A 16-byte group of T, for vector loads and stores of contiguous data.
template <typename T>
using Vec16 = Pack<T, 16 / sizeof(T)>;

inline bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15) == 0; }

// Row kernels (softmax, layer_norm) hold a row in registers, so that it is read from memory once.
// The threads serving one row, a warp for short rows or the whole block, each keep E of its values.
// With `vec` (the row length a multiple of the 16-byte group, the rows 16-byte aligned), thread
// `lane` of `lanes` holds the groups lane, lane + lanes, lane + 2 lanes, ...: every load of a warp
// reads 512 contiguous bytes. Otherwise it holds the columns lane, lane + lanes, ...
template <typename T>
__device__ __forceinline__ int64_t held_col(int j, int lane, int lanes, bool vec) {
  constexpr int V = Vec16<T>::kCount;
  return vec ? (static_cast<int64_t>(j / V) * lanes + lane) * V + j % V
             : static_cast<int64_t>(j) * lanes + lane;
}

// Loads the values a thread holds of row `x`; columns past the row take `fill`. The row is laid
// out in T's groups; its elements in memory may be of another type M (an f16/bf16 row beside
// f32 ones, in groups of 8 bytes).
template <typename T, int E, typename M>
__device__ __forceinline__ void load_held(const M* x, int64_t cols, int lane, int lanes, bool vec,
                                          calc_t<T> (&v)[E], calc_t<T> fill) {
  constexpr int V = Vec16<T>::kCount;
  static_assert(E % V == 0, "a thread holds whole 16-byte groups");
  if (vec) {
#pragma unroll
    for (int k = 0; k < E / V; ++k) {
      const int64_t c = (static_cast<int64_t>(k) * lanes + lane) * V;
      if (c < cols) {
        const Pack<M, V> w = *reinterpret_cast<const Pack<M, V>*>(x + c);
#pragma unroll
        for (int e = 0; e < V; ++e) v[k * V + e] = load(w.v[e]);
      } else {
#pragma unroll
        for (int e = 0; e < V; ++e) v[k * V + e] = fill;
      }
    }
  } else {
#pragma unroll
    for (int j = 0; j < E; ++j) {
      const int64_t c = static_cast<int64_t>(j) * lanes + lane;
      v[j] = c < cols ? load(x[c]) : fill;
    }
  }
}

// Stores the values a thread holds as elements of M, in T's layout (see load_held).
template <typename T, int E, typename M>
__device__ __forceinline__ void store_held(M* y, int64_t cols, int lane, int lanes, bool vec,
                                           const calc_t<T> (&v)[E]) {
  constexpr int V = Vec16<T>::kCount;
  if (vec) {
#pragma unroll
    for (int k = 0; k < E / V; ++k) {
      const int64_t c = (static_cast<int64_t>(k) * lanes + lane) * V;
      if (c >= cols) continue;
      Pack<M, V> w;
#pragma unroll
      for (int e = 0; e < V; ++e) w.v[e] = store<M>(v[k * V + e]);
      *reinterpret_cast<Pack<M, V>*>(y + c) = w;
    }
  } else {
#pragma unroll
    for (int j = 0; j < E; ++j) {
      const int64_t c = static_cast<int64_t>(j) * lanes + lane;
      if (c < cols) y[c] = store<M>(v[j]);
    }
  }
}

// Whether rows of `cols` elements at the given pointers can take the vector path of load_held.
template <typename T, typename... P>
bool held_vec_ok(int64_t cols, const P*... ptrs) {
  return cols % Vec16<T>::kCount == 0 && (... && aligned16(ptrs));
}

// The threads serving one row of a held-row kernel: a warp (kWarpRow) or the block. Reductions
// over them; `shared` (32 values) serves the block's.
template <bool kWarpRow>
struct RowGroup {
  __device__ __forceinline__ static int lane() { return kWarpRow ? threadIdx.x & 31 : threadIdx.x; }
  __device__ __forceinline__ static int lanes() { return kWarpRow ? 32 : blockDim.x; }
  // The first row of this group and the step between its rows.
  __device__ __forceinline__ static int64_t first_row() {
    return kWarpRow ? static_cast<int64_t>(blockIdx.x) * (blockDim.x >> 5) + (threadIdx.x >> 5)
                    : blockIdx.x;
  }
  __device__ __forceinline__ static int64_t row_step() {
    return kWarpRow ? static_cast<int64_t>(gridDim.x) * (blockDim.x >> 5) : gridDim.x;
  }
  template <typename C>
  __device__ __forceinline__ static C sum(C v, C* shared) {
    return kWarpRow ? warp_sum(v) : block_sum(v, shared);
  }
  template <typename C>
  __device__ __forceinline__ static C max(C v, C* shared) {
    return kWarpRow ? warp_max(v) : block_max(v, shared);
  }
};

// A block of a held-row kernel serving warp rows runs kHeldWarpsPerBlock of them at a time.
constexpr int kHeldWarpsPerBlock = 4;

// How a held-row kernel serves rows of `cols`: a thread holds E = 8, 16 or 32 values, and kGroup
// says which threads share a row: kWarpRows (a warp per row, up to 32 * kMaxHeld columns), or a
// block of up to kGroup threads (256 or 1024), which also bounds the kernel's threads and so sets
// the registers it may use (a block of 1024 threads has 64 a thread). More values a thread in
// fewer threads keep more bytes in flight for the same registers: a block of 128 to 256 threads
// is taken where it fits, else a block of up to 1024 holding at most kMaxWideHeld values each.
// Calls fn(std::integral_constant<int, E>{}, std::integral_constant<int, kGroup>{}, threads per
// row) and returns true, or returns false for rows too long to hold.
constexpr int kWarpRows = 0;

template <int kGroup>
constexpr int held_max_threads() {
  return kGroup == kWarpRows ? 32 * kHeldWarpsPerBlock : kGroup;
}

// Resident blocks for a held-row kernel of up to kRegs registers a thread (of 64K a
// multiprocessor), for __launch_bounds__: left to itself, ptxas spends up to twice that on some
// shapes, and fewer rows are in flight.
template <int kGroup, int kRegs>
constexpr int held_min_blocks() {
  return std::max(1, 65536 / (kRegs * held_max_threads<kGroup>()));
}

template <int kMaxHeld, int kMaxWideHeld, typename Fn>
bool dispatch_held(int64_t cols, Fn&& fn) {
  static_assert(kMaxHeld == 8 || kMaxHeld == 16 || kMaxHeld == 32);
  static_assert(kMaxWideHeld == 8 || kMaxWideHeld == 16 || kMaxWideHeld == 32);
  using E8 = std::integral_constant<int, 8>;
  using E16 = std::integral_constant<int, 16>;
  using E32 = std::integral_constant<int, 32>;
  using Warp = std::integral_constant<int, kWarpRows>;
  using Narrow = std::integral_constant<int, 256>;
  using Wide = std::integral_constant<int, 1024>;
  const auto threads = [&](int held) {
    return static_cast<int>(std::min<int64_t>(((cols + held - 1) / held + 31) / 32 * 32, 2048));
  };
  const auto narrow = [&](int held) {
    return held <= kMaxHeld && threads(held) <= 256 && (threads(held) >= 128 || held == 8);
  };
  const auto wide = [&](int held) { return held <= kMaxWideHeld && threads(held) <= 1024; };
  if (cols <= 32 * 8) {
    fn(E8{}, Warp{}, 32);
  } else if (kMaxHeld >= 16 && cols <= 32 * 16) {
    if constexpr (kMaxHeld >= 16) fn(E16{}, Warp{}, 32);
  } else if (kMaxHeld >= 32 && cols <= 32 * 32) {
    if constexpr (kMaxHeld >= 32) fn(E32{}, Warp{}, 32);
  } else if (narrow(32)) {
    if constexpr (kMaxHeld >= 32) fn(E32{}, Narrow{}, threads(32));
  } else if (narrow(16)) {
    if constexpr (kMaxHeld >= 16) fn(E16{}, Narrow{}, threads(16));
  } else if (narrow(8)) {
    fn(E8{}, Narrow{}, threads(8));
  } else if (wide(8)) {
    fn(E8{}, Wide{}, threads(8));
  } else if (wide(16)) {
    if constexpr (kMaxWideHeld >= 16) fn(E16{}, Wide{}, threads(16));
  } else if (wide(32)) {
    if constexpr (kMaxWideHeld >= 32) fn(E32{}, Wide{}, threads(32));
  } else {
    return false;
  }
  return true;
}

// Grid and block size of a held-row kernel: no more blocks than the multiprocessors hold at
// once (`per_sm` each, by default as many as their threads allow), each walking many rows, and
// at least `min_rows` rows for each warp or block that serves rows.
template <bool kWarpRow>
std::pair<unsigned, int> held_launch(int64_t rows, int threads, int device, int64_t min_rows = 1,
                                     int per_sm = 0) {
  const int block = kWarpRow ? 32 * kHeldWarpsPerBlock : threads;
  const int64_t groups = (rows + min_rows - 1) / min_rows;
  const int64_t wanted = kWarpRow ? (groups + kHeldWarpsPerBlock - 1) / kHeldWarpsPerBlock : groups;
  if (per_sm <= 0) per_sm = std::max(2048 / block, 1);
  const int64_t cap = static_cast<int64_t>(multiprocessors(device)) * per_sm;
  return {static_cast<unsigned>(std::clamp<int64_t>(wanted, 1, cap)), block};
}

}  // namespace st::backend::cuda
