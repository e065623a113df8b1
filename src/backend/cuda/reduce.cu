// Reductions: sum, mean, max and min over a set of dims; argmax and argmin along one; the sum of
// squares of a list of tensors.
//
// Floats accumulate in f64 and integers in int64, as on the CPU. Two loop shapes, chosen by which
// dims walk memory with unit stride:
// - rows: the reduced elements of one output are contiguous (or at least closest in memory): a
//   block per output reduces them with warp shuffles;
// - columns: neighbouring outputs are contiguous (reducing the outer dims, e.g. bias gradients):
//   a thread per output walks the reduced dims, so each warp's loads are coalesced (16-byte packs
//   of outputs, a block's rows split among its threads, when they are contiguous and one dim is
//   reduced).
// When there are too few outputs to fill the chip, the reduced elements are split into chunks
// (grid dim y) whose partial results a second pass combines.

#include <algorithm>
#include <limits>
#include <vector>

#include "backend/cuda/common.cuh"

namespace st::backend::cuda {
namespace {

constexpr int kThreads = 256;

// Sizes and strides of a group of dims, size-1 dims dropped and neighbours merged.
struct Dims {
  int ndim = 0;
  int64_t sizes[kMaxDims];
  int64_t strides[kMaxDims];

  __host__ __device__ __forceinline__ int64_t offset(int64_t i) const {
    int64_t off = 0;
    for (int d = ndim - 1; d >= 0; --d) {
      const int64_t q = i / sizes[d];
      off += (i - q * sizes[d]) * strides[d];
      i = q;
    }
    return off;
  }
  int64_t numel() const {
    int64_t n = 1;
    for (int d = 0; d < ndim; ++d) n *= sizes[d];
    return n;
  }
  int64_t inner_stride() const { return ndim ? strides[ndim - 1] : 0; }
  void push(int64_t size, int64_t stride, const char* op) {
    if (size == 1) return;
    if (ndim > 0 && strides[ndim - 1] == size * stride) {
      sizes[ndim - 1] *= size;
      strides[ndim - 1] = stride;
      return;
    }
    ST_CHECK(ndim < kMaxDims, NotImplementedError, "[", op,
             "] the cuda backend reduces over at most ", kMaxDims, " non-mergeable dims");
    sizes[ndim] = size;
    strides[ndim] = stride;
    ++ndim;
  }
};

template <typename A>
__device__ __forceinline__ bool is_nan(A v) {
  if constexpr (std::is_floating_point_v<A>)
    return v != v;
  else
    return false;
}

template <ReduceOp Op, typename A>
__device__ __forceinline__ A identity() {
  if constexpr (Op == ReduceOp::Sum || Op == ReduceOp::Mean) {
    return A(0);
  } else if constexpr (std::is_floating_point_v<A>) {
    return Op == ReduceOp::Max ? A(-INFINITY) : A(INFINITY);
  } else {
    return Op == ReduceOp::Max ? std::numeric_limits<A>::lowest() : std::numeric_limits<A>::max();
  }
}

// NaN wins max and min, as in torch; a NaN already held stays.
template <ReduceOp Op, typename A>
__device__ __forceinline__ A combine(A acc, A v) {
  if constexpr (Op == ReduceOp::Sum || Op == ReduceOp::Mean) {
    return acc + v;
  } else {
    if (is_nan(acc)) return acc;
    if (is_nan(v)) return v;
    return (Op == ReduceOp::Max ? v > acc : v < acc) ? v : acc;
  }
}

template <ReduceOp Op, typename A>
__device__ __forceinline__ A warp_combine(A v) {
  for (int offset = 16; offset > 0; offset >>= 1)
    v = combine<Op>(v, __shfl_xor_sync(0xffffffffu, v, offset));
  return v;
}

template <ReduceOp Op, typename A>
__device__ __forceinline__ A block_combine(A v) {
  __shared__ A shared[32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  v = warp_combine<Op>(v);
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  const int warps = (blockDim.x + 31) >> 5;
  v = lane < warps ? shared[lane] : identity<Op, A>();
  return warp_combine<Op>(v);
}

// The final value of an output from its accumulator.
template <ReduceOp Op, typename TOut, typename A>
__device__ __forceinline__ TOut finish(A acc, int64_t count) {
  if constexpr (Op == ReduceOp::Mean)
    return store<TOut>(acc / static_cast<A>(count));
  else
    return store<TOut>(acc);
}

// Writes output o's result, or its chunk's partial when the reduction is split.
template <ReduceOp Op, typename TOut, typename A>
__device__ __forceinline__ void emit(A acc, int64_t o, int chunk, int chunks, int64_t count,
                                     TOut* out, A* partial) {
  if (chunks == 1)
    out[o] = finish<Op, TOut>(acc, count);
  else
    partial[o * chunks + chunk] = acc;
}

template <ReduceOp Op, typename T, typename TOut>
__global__ void reduce_rows_kernel(Dims kept, Dims reduced, int64_t outputs, int64_t count,
                                   int64_t chunk_len, int chunks, const T* in, TOut* out,
                                   acc_t<T>* partial) {
  using A = acc_t<T>;
  const int chunk = blockIdx.y;
  const int64_t begin = chunk * chunk_len, end = ::min(count, begin + chunk_len);
  for (int64_t o = blockIdx.x; o < outputs; o += gridDim.x) {
    const T* base = in + kept.offset(o);
    A acc = identity<Op, A>();
    if (reduced.ndim == 1 && reduced.strides[0] == 1) {
      // Contiguous: 16-byte loads over the aligned middle, single elements at the two ends.
      constexpr int V = Vec16<T>::kCount;
      const T* p = base + begin;
      const int64_t len = end - begin;
      const uintptr_t misalign = reinterpret_cast<uintptr_t>(p) & 15;
      const int64_t head = misalign % sizeof(T)
                               ? len
                               : ::min(len, static_cast<int64_t>((16 - misalign) & 15) /
                                                static_cast<int64_t>(sizeof(T)));
      const int64_t vectors = (len - head) / V;
      for (int64_t r = threadIdx.x; r < head; r += blockDim.x)
        acc = combine<Op>(acc, static_cast<A>(load(p[r])));
      const Vec16<T>* pv = reinterpret_cast<const Vec16<T>*>(p + head);
      // kUnroll loads in flight per thread before the first is used: one at a time leaves the
      // memory system idle between them (sum of 2^28 f32 at 0.7 of PyTorch).
      constexpr int kUnroll = 4;
      const int64_t stride = blockDim.x;
      int64_t i = threadIdx.x;
      for (; i + (kUnroll - 1) * stride < vectors; i += kUnroll * stride) {
        Vec16<T> w[kUnroll];
#pragma unroll
        for (int u = 0; u < kUnroll; ++u) w[u] = pv[i + u * stride];
#pragma unroll
        for (int u = 0; u < kUnroll; ++u)
#pragma unroll
          for (int k = 0; k < V; ++k) acc = combine<Op>(acc, static_cast<A>(load(w[u].v[k])));
      }
      for (; i < vectors; i += stride) {
        const Vec16<T> w = pv[i];
#pragma unroll
        for (int k = 0; k < V; ++k) acc = combine<Op>(acc, static_cast<A>(load(w.v[k])));
      }
      for (int64_t r = head + vectors * V + threadIdx.x; r < len; r += blockDim.x)
        acc = combine<Op>(acc, static_cast<A>(load(p[r])));
    } else {
      for (int64_t r = begin + threadIdx.x; r < end; r += blockDim.x)
        acc = combine<Op>(acc, static_cast<A>(load(base[reduced.offset(r)])));
    }
    acc = block_combine<Op>(acc);
    if (threadIdx.x == 0) emit<Op>(acc, o, chunk, chunks, count, out, partial);
    __syncthreads();  // `shared` of block_combine is reused by the next output
  }
}

template <ReduceOp Op, typename T, typename TOut>
__global__ void reduce_columns_kernel(Dims kept, Dims reduced, int64_t outputs, int64_t count,
                                      int64_t chunk_len, int chunks, const T* in, TOut* out,
                                      acc_t<T>* partial) {
  using A = acc_t<T>;
  const int chunk = blockIdx.y;
  const int64_t begin = chunk * chunk_len, end = ::min(count, begin + chunk_len);
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t o = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; o < outputs;
       o += step) {
    const T* base = in + kept.offset(o);
    A acc = identity<Op, A>();
    if (reduced.ndim == 1) {
      // One reduced dim (a bias gradient's rows): a multiply per element instead of a 64-bit
      // division, and several loads in flight (this was 4x slower than PyTorch at 16384 x 3072).
      const int64_t stride = reduced.strides[0];
#pragma unroll 8
      for (int64_t r = begin; r < end; ++r)
        acc = combine<Op>(acc, static_cast<A>(load(base[r * stride])));
    } else {
      for (int64_t r = begin; r < end; ++r)
        acc = combine<Op>(acc, static_cast<A>(load(base[reduced.offset(r)])));
    }
    // Partials chunk-major: neighbouring threads hold neighbouring outputs, so both the writes
    // here and the reads of reduce_partials_kernel are coalesced.
    if (chunks == 1)
      out[o] = finish<Op, TOut>(acc, count);
    else
      partial[chunk * outputs + o] = acc;
  }
}

// The columns kernel for a contiguous [count, outputs] view reduced over its rows (bias gradients):
// each load moves a 16-byte pack of neighbouring outputs, not one element (one element a thread
// summed the bias gradients of a GPT-2 step at a fifth of the copy bandwidth). A block is kPackLanes packs wide and
// splits its chunk of rows among kRowLanes threads per pack, combined in shared memory, so that
// few chunks (partial results) fill the chip.
constexpr int kPackLanes = 32, kRowLanes = 8;

template <ReduceOp Op, typename T, typename TOut>
__global__ void __launch_bounds__(kPackLanes* kRowLanes)
    reduce_column_packs_kernel(int64_t packs, int64_t row_stride, int64_t count,
                               int64_t chunk_len, int chunks, const T* in, TOut* out,
                               acc_t<T>* partial) {
  constexpr int V = Vec16<T>::kCount, kWidth = kPackLanes * V;
  using A = acc_t<T>;
  __shared__ A shared[kRowLanes][kWidth];
  const int chunk = blockIdx.y;
  const int64_t begin = chunk * chunk_len, end = ::min(count, begin + chunk_len);
  const int64_t k = static_cast<int64_t>(blockIdx.x) * kPackLanes + threadIdx.x;
  A acc[V];
#pragma unroll
  for (int e = 0; e < V; ++e) acc[e] = identity<Op, A>();
  if (k < packs) {
    const T* base = in + k * V;
#pragma unroll 4
    for (int64_t r = begin + threadIdx.y; r < end; r += kRowLanes) {
      const Vec16<T> w = *reinterpret_cast<const Vec16<T>*>(base + r * row_stride);
#pragma unroll
      for (int e = 0; e < V; ++e) acc[e] = combine<Op>(acc[e], static_cast<A>(load(w.v[e])));
    }
  }
#pragma unroll
  for (int e = 0; e < V; ++e) shared[threadIdx.y][threadIdx.x * V + e] = acc[e];
  __syncthreads();
  // Every thread of the block adds up columns of `shared`, so the writes are coalesced.
  const int64_t outputs = packs * V, first = static_cast<int64_t>(blockIdx.x) * kWidth;
  for (int j = threadIdx.y * kPackLanes + threadIdx.x; j < kWidth; j += kPackLanes * kRowLanes) {
    if (first + j >= outputs) break;
    A a = shared[0][j];
#pragma unroll
    for (int y = 1; y < kRowLanes; ++y) a = combine<Op>(a, shared[y][j]);
    if (chunks == 1)
      out[first + j] = finish<Op, TOut>(a, count);
    else
      partial[chunk * outputs + first + j] = a;
  }
}

// A thread per output; partials output-major (the rows kernel's) or chunk-major (the columns').
template <ReduceOp Op, typename TOut, typename A>
__global__ void reduce_partials_kernel(int64_t outputs, int chunks, int64_t count, const A* partial,
                                       bool chunk_major, TOut* out) {
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const int64_t output_stride = chunk_major ? 1 : chunks, chunk_stride = chunk_major ? outputs : 1;
  for (int64_t o = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; o < outputs;
       o += step) {
    A acc = identity<Op, A>();
    for (int c = 0; c < chunks; ++c)
      acc = combine<Op>(acc, partial[o * output_stride + c * chunk_stride]);
    out[o] = finish<Op, TOut>(acc, count);
  }
}

// The same with a block per output, for few outputs of many partials each (a full reduction
// has 4 per multiprocessor): a thread adding them one after another took 20 us of the 270 us
// sum of 2^28 f32.
template <ReduceOp Op, typename TOut, typename A>
__global__ void reduce_partials_block_kernel(int64_t outputs, int chunks, int64_t count,
                                             const A* partial, bool chunk_major, TOut* out) {
  const int64_t output_stride = chunk_major ? 1 : chunks, chunk_stride = chunk_major ? outputs : 1;
  for (int64_t o = blockIdx.x; o < outputs; o += gridDim.x) {
    A acc = identity<Op, A>();
    for (int c = threadIdx.x; c < chunks; c += blockDim.x)
      acc = combine<Op>(acc, partial[o * output_stride + c * chunk_stride]);
    acc = block_combine<Op>(acc);
    if (threadIdx.x == 0) out[o] = finish<Op, TOut>(acc, count);
    __syncthreads();  // `shared` of block_combine is reused by the next output
  }
}

template <ReduceOp Op, typename T, typename TOut>
void reduce_typed(const Tensor& out, const Tensor& in, const std::vector<int64_t>& dims) {
  using A = acc_t<T>;
  Dims kept, reduced;
  for (int64_t d = 0; d < in.dim(); ++d) {
    const bool is_reduced = std::binary_search(dims.begin(), dims.end(), d);
    (is_reduced ? reduced : kept).push(in.shape()[d], in.strides()[d], "reduce");
  }
  const int64_t outputs = kept.numel(), count = reduced.numel();
  if (outputs == 0) return;
  const int device = in.device().index;
  const cudaStream_t stream = stream_of(in);
  const int64_t sms = multiprocessors(device);
  const T* x = static_cast<const T*>(in.data_ptr());
  TOut* y = static_cast<TOut*>(out.data_ptr());
  // Rows when the reduced dims are the ones closest in memory, columns otherwise.
  const int64_t r_stride = reduced.ndim ? std::abs(reduced.inner_stride()) : INT64_MAX;
  const int64_t k_stride = kept.ndim ? std::abs(kept.inner_stride()) : INT64_MAX;
  const bool rows = r_stride <= k_stride;
  constexpr int V = Vec16<T>::kCount;
  const bool packs = !rows && reduced.ndim == 1 && kept.ndim == 1 && kept.strides[0] == 1 &&
                     outputs % V == 0 && reduced.strides[0] % V == 0 && aligned16(x);
  int chunks = 1;
  if (rows) {
    const int64_t want = (4 * sms + outputs - 1) / outputs;
    chunks = static_cast<int>(std::clamp<int64_t>(std::min(want, count / (kThreads * 8)), 1, 1024));
  } else if (packs) {
    // Four blocks a multiprocessor, each thread walking at least 32 rows.
    const int64_t blocks = (outputs / V + kPackLanes - 1) / kPackLanes;
    const int64_t want = (4 * sms + blocks - 1) / blocks;
    chunks = static_cast<int>(
        std::clamp<int64_t>(std::min(want, count / (32 * kRowLanes)), 1, 1024));
  } else {
    const int64_t want = (sms * 2048 + outputs - 1) / outputs;
    chunks = static_cast<int>(std::clamp<int64_t>(std::min(want, count / 32), 1, 1024));
  }
  const int64_t chunk_len = (count + chunks - 1) / chunks;
  Tensor partial;
  A* p = nullptr;
  if (chunks > 1) {
    partial = scratch({outputs * chunks}, kIsFloat<T> ? DType::Float64 : DType::Int64, in.device());
    p = static_cast<A*>(partial.data_ptr());
  }
  if (rows) {
    const dim3 grid(static_cast<unsigned>(std::min<int64_t>(outputs, 1 << 30)),
                    static_cast<unsigned>(chunks));
    reduce_rows_kernel<Op, T, TOut>
        <<<grid, kThreads, 0, stream>>>(kept, reduced, outputs, count, chunk_len, chunks, x, y, p);
  } else if (packs) {
    const int64_t pack_count = outputs / V;
    const dim3 grid(static_cast<unsigned>((pack_count + kPackLanes - 1) / kPackLanes),
                    static_cast<unsigned>(chunks));
    reduce_column_packs_kernel<Op, T, TOut><<<grid, dim3(kPackLanes, kRowLanes), 0, stream>>>(
        pack_count, reduced.strides[0], count, chunk_len, chunks, x, y, p);
  } else {
    const dim3 grid(grid_for(outputs, kThreads, device), static_cast<unsigned>(chunks));
    reduce_columns_kernel<Op, T, TOut>
        <<<grid, kThreads, 0, stream>>>(kept, reduced, outputs, count, chunk_len, chunks, x, y, p);
  }
  check_launch("reduce");
  if (chunks > 1) {
    if (outputs < 4 * sms && chunks >= 32)
      reduce_partials_block_kernel<Op, TOut, A>
          <<<static_cast<unsigned>(outputs), kThreads, 0, stream>>>(outputs, chunks, count, p,
                                                                    !rows, y);
    else
      reduce_partials_kernel<Op, TOut, A>
          <<<grid_for(outputs, kThreads, device), kThreads, 0, stream>>>(outputs, chunks, count, p,
                                                                         !rows, y);
    check_launch("reduce");
  }
}

template <typename T, typename TOut>
void reduce_op(ReduceOp op, const Tensor& out, const Tensor& in, const std::vector<int64_t>& dims) {
  switch (op) {
    case ReduceOp::Sum: reduce_typed<ReduceOp::Sum, T, TOut>(out, in, dims); break;
    case ReduceOp::Mean: reduce_typed<ReduceOp::Mean, T, TOut>(out, in, dims); break;
    case ReduceOp::Max: reduce_typed<ReduceOp::Max, T, TOut>(out, in, dims); break;
    case ReduceOp::Min: reduce_typed<ReduceOp::Min, T, TOut>(out, in, dims); break;
  }
}

// One warp per output: lanes stride along the dim, then the warp picks the first extreme.
template <bool kMax, typename T>
__global__ void arg_reduce_kernel(int64_t outputs, int64_t inner, int64_t size,
                                  int64_t outer_stride, int64_t dim_stride, int64_t inner_stride,
                                  const T* in, T* values, int64_t* indices) {
  using C = calc_t<T>;
  const int lane = threadIdx.x & 31;
  const int64_t warps = static_cast<int64_t>(gridDim.x) * (blockDim.x >> 5);
  for (int64_t o = static_cast<int64_t>(blockIdx.x) * (blockDim.x >> 5) + (threadIdx.x >> 5);
       o < outputs; o += warps) {
    const T* base = in + (o / inner) * outer_stride + (o % inner) * inner_stride;
    C best = C(0);
    int64_t best_index = -1;
    for (int64_t i = lane; i < size; i += 32) {
      const C v = load(base[i * dim_stride]);
      // The first NaN wins; otherwise a strictly better value (a lane sees ascending indices).
      const bool better =
          best_index < 0 || (!is_nan(best) && (is_nan(v) || (kMax ? v > best : v < best)));
      if (better) {
        best = v;
        best_index = i;
      }
    }
    for (int offset = 16; offset > 0; offset >>= 1) {
      const C v = __shfl_xor_sync(0xffffffffu, best, offset);
      const int64_t vi = __shfl_xor_sync(0xffffffffu, best_index, offset);
      bool take;
      if (vi < 0)
        take = false;
      else if (best_index < 0)
        take = true;
      else if (is_nan(best) || is_nan(v))
        take = is_nan(v) && (!is_nan(best) || vi < best_index);
      else if (v == best)
        take = vi < best_index;
      else
        take = kMax ? v > best : v < best;
      if (take) {
        best = v;
        best_index = vi;
      }
    }
    if (lane == 0) {
      values[o] = store<T>(best);
      indices[o] = best_index;
    }
  }
}

template <typename T>
__global__ void squares_kernel(int64_t n, const T* x, double* total) {
  double sum = 0;
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step) {
    const double v = static_cast<double>(load(x[i]));
    sum += v * v;
  }
  __shared__ double shared[32];
  sum = block_sum(sum, shared);
  if (threadIdx.x == 0) atomicAdd(total, sum);
}

__global__ void store_total_kernel(const double* total, float* out32, double* out64) {
  if (out32) *out32 = static_cast<float>(*total);
  if (out64) *out64 = *total;
}

}  // namespace

void CudaBackend::reduce(ReduceOp op, const Tensor& out, const Tensor& in,
                         const std::vector<int64_t>& dims) {
  dispatch(in.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if constexpr (kIsFloat<T>) {
      reduce_op<T, T>(op, out, in, dims);
    } else {
      if (out.dtype() == DType::Int64)
        reduce_op<T, int64_t>(op, out, in, dims);
      else
        reduce_op<T, T>(op, out, in, dims);
    }
  });
}

void CudaBackend::arg_reduce(ArgReduceOp op, const Tensor& values, const Tensor& indices,
                             const Tensor& in, int64_t dim) {
  const int64_t outputs = values.numel();
  if (outputs == 0) return;
  // in viewed as [outer, size, inner]: contiguous outputs are (outer, inner) pairs.
  int64_t inner = 1;
  for (int64_t d = dim + 1; d < in.dim(); ++d) inner *= in.shape()[d];
  const int64_t size = in.dim() == 0 ? 1 : in.shape()[dim];
  // The outer and inner dims need single strides: true for the contiguous inputs the front-end
  // sends, otherwise the input is copied to a contiguous scratch first.
  Tensor x = in;
  if (!in.is_contiguous()) {
    x = scratch(in.shape(), in.dtype(), in.device());
    copy(x, in);
  }
  const int64_t dim_stride = inner, outer_stride = size * inner;
  const int device = in.device().index;
  dispatch(in.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* px = static_cast<const T*>(x.data_ptr());
    T* pv = static_cast<T*>(values.data_ptr());
    int64_t* pi = static_cast<int64_t*>(indices.data_ptr());
    const unsigned grid = grid_for(outputs, kThreads / 32, device);
    if (op == ArgReduceOp::Max)
      arg_reduce_kernel<true, T><<<grid, kThreads, 0, stream_of(in)>>>(
          outputs, inner, size, outer_stride, dim_stride, 1, px, pv, pi);
    else
      arg_reduce_kernel<false, T><<<grid, kThreads, 0, stream_of(in)>>>(
          outputs, inner, size, outer_stride, dim_stride, 1, px, pv, pi);
    check_launch("arg_reduce");
  });
}

void CudaBackend::sum_of_squares(const Tensor& out, const std::vector<Tensor>& tensors) {
  const Tensor total = scratch({}, DType::Float64, out.device());
  const cudaStream_t stream = stream_of(out);
  check(cudaMemsetAsync(total.data_ptr(), 0, sizeof(double), stream), "cudaMemsetAsync");
  double* t = static_cast<double*>(total.data_ptr());
  for (const Tensor& x : tensors) {
    if (x.numel() == 0) continue;
    dispatch_float(x.dtype(), "sum_of_squares", [&](auto tag) {
      using T = decltype(tag);
      squares_kernel<T>
          <<<grid_for(x.numel(), kThreads * 8, out.device().index), kThreads, 0, stream>>>(
              x.numel(), static_cast<const T*>(x.data_ptr()), t);
      check_launch("sum_of_squares");
    });
  }
  const bool f64 = out.dtype() == DType::Float64;
  store_total_kernel<<<1, 1, 0, stream>>>(t, f64 ? nullptr : static_cast<float*>(out.data_ptr()),
                                          f64 ? static_cast<double*>(out.data_ptr()) : nullptr);
  check_launch("sum_of_squares");
}

}  // namespace st::backend::cuda
