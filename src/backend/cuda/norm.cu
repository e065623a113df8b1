// layer_norm forward and backward.
//
// Rows that fit in registers (up to 8192 columns; f32, f16, bf16) are read once, by a warp per
// short row and a block per longer row, in a grid of resident blocks that each walk many rows. A
// thread serves the same columns in every row, so in the backward it accumulates their weight
// and bias gradients over its rows in shared-memory slots of its own: one partial sum per warp or
// block, added up by a small column reduction. The statistics are the mean first, then the centred
// sum of squares, which loses no digits to cancellation.
//
// Longer rows and f64 take a block per row that loops over the row, and the weight and bias
// gradients there are column sums over rows, taken in chunks of rows by 32-column tiles and
// combined by a second pass.

#include <algorithm>
#include <utility>

#include "backend/cuda/common.cuh"

namespace st::backend::cuda {
namespace {

int threads_for(int64_t cols) {
  const int64_t want = (cols + 7) / 8;
  return static_cast<int>(std::clamp<int64_t>((want + 31) / 32 * 32, 32, 1024));
}

// The weight and bias of the columns a thread holds are read beside each 16-byte group as they
// are used (from cache: every row reads the same ones) rather than held, which would cost
// registers that hold rows in flight. y is of type O: T, or f16/bf16 beside f32 x (autocast).
template <typename T, int E, typename O>
__device__ __forceinline__ void store_normalized(O* y, int64_t cols, int lane, int lanes, bool vec,
                                                 const calc_t<T> (&v)[E], calc_t<T> mean,
                                                 calc_t<T> rstd, const T* weight, const T* bias) {
  using C = calc_t<T>;
  constexpr int V = Vec16<T>::kCount;
  if (vec) {
#pragma unroll
    for (int k = 0; k < E / V; ++k) {
      const int64_t c = (static_cast<int64_t>(k) * lanes + lane) * V;
      if (c >= cols) continue;
      Vec16<T> w{}, b{};
      Pack<O, V> o;
      if (weight) w = *reinterpret_cast<const Vec16<T>*>(weight + c);
      if (bias) b = *reinterpret_cast<const Vec16<T>*>(bias + c);
#pragma unroll
      for (int e = 0; e < V; ++e) {
        C val = (v[k * V + e] - mean) * rstd;
        if (weight) val *= load(w.v[e]);
        if (bias) val += load(b.v[e]);
        o.v[e] = store<O>(val);
      }
      *reinterpret_cast<Pack<O, V>*>(y + c) = o;
    }
  } else {
#pragma unroll
    for (int j = 0; j < E; ++j) {
      const int64_t c = static_cast<int64_t>(j) * lanes + lane;
      if (c >= cols) continue;
      C val = (v[j] - mean) * rstd;
      if (weight) val *= load(weight[c]);
      if (bias) val += load(bias[c]);
      y[c] = store<O>(val);
    }
  }
}

// v *= weight for the columns a thread holds (0 past the row), read as store_normalized does.
template <typename T, int E>
__device__ __forceinline__ void multiply_by_weight(calc_t<T> (&v)[E], int64_t cols, int lane,
                                                   int lanes, bool vec, const T* weight) {
  constexpr int V = Vec16<T>::kCount;
  if (vec) {
#pragma unroll
    for (int k = 0; k < E / V; ++k) {
      const int64_t c = (static_cast<int64_t>(k) * lanes + lane) * V;
      if (c >= cols) continue;
      const Vec16<T> w = *reinterpret_cast<const Vec16<T>*>(weight + c);
#pragma unroll
      for (int e = 0; e < V; ++e) v[k * V + e] *= load(w.v[e]);
    }
  } else {
#pragma unroll
    for (int j = 0; j < E; ++j) {
      const int64_t c = static_cast<int64_t>(j) * lanes + lane;
      if (c < cols) v[j] *= load(weight[c]);
    }
  }
}

template <typename T, typename S, int E, int kGroup, typename O>
__global__ void __launch_bounds__(held_max_threads<kGroup>(), held_min_blocks<kGroup, 64>())
    layer_norm_held_kernel(int64_t rows, int64_t cols, calc_t<T> eps, bool vec, const T* in,
                           const T* weight, const T* bias, O* out, S* means, S* rstds) {
  using C = calc_t<T>;
  using Group = RowGroup<kGroup == kWarpRows>;
  __shared__ C shared[32];
  const int lane = Group::lane(), lanes = Group::lanes();
  for (int64_t r = Group::first_row(); r < rows; r += Group::row_step()) {
    C v[E];
    load_held<T, E>(in + r * cols, cols, lane, lanes, vec, v, C(0));
    C sum = 0;
#pragma unroll
    for (int j = 0; j < E; ++j) sum += v[j];
    const C mean = Group::sum(sum, shared) / static_cast<C>(cols);
    C sq = 0;
#pragma unroll
    for (int j = 0; j < E; ++j) {
      const C d = held_col<T>(j, lane, lanes, vec) < cols ? v[j] - mean : C(0);
      sq += d * d;
    }
    const C rstd = C(1) / ::sqrt(Group::sum(sq, shared) / static_cast<C>(cols) + eps);
    store_normalized<T, E>(out + r * cols, cols, lane, lanes, vec, v, mean, rstd, weight, bias);
    if (lane == 0) {
      means[r] = static_cast<S>(mean);
      rstds[r] = static_cast<S>(rstd);
    }
  }
}

// Rows too long to hold, and f64.
template <typename T, typename S, typename O>
__global__ void __launch_bounds__(1024)
    layer_norm_kernel(int64_t rows, int64_t cols, calc_t<T> eps, const T* in, const T* weight,
                      const T* bias, O* out, S* means, S* rstds) {
  using C = calc_t<T>;
  __shared__ C shared[32];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* x = in + r * cols;
    O* y = out + r * cols;
    C sum = 0;
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) sum += load(x[c]);
    const C mean = block_sum(sum, shared) / static_cast<C>(cols);
    C sq = 0;
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
      const C d = load(x[c]) - mean;
      sq += d * d;
    }
    const C rstd = C(1) / ::sqrt(block_sum(sq, shared) / static_cast<C>(cols) + eps);
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
      C o = (load(x[c]) - mean) * rstd;
      if (weight) o *= load(weight[c]);
      if (bias) o += load(bias[c]);
      y[c] = store<O>(o);
    }
    if (threadIdx.x == 0) {
      means[r] = static_cast<S>(mean);
      rstds[r] = static_cast<S>(rstd);
    }
  }
}

// grad_x = rstd * (g - mean(g) - xhat * mean(g * xhat)), g = grad_out * weight, for held rows;
// with partial_w and partial_b, each warp or block also writes its rows' sums of grad_out * xhat
// and of grad_out for its columns, as row `group` of [groups, cols]. Those running sums live in
// dynamic shared memory (held_backward_shared bytes), in a layout private to each thread (no
// bank conflicts, no synchronization): in registers they would take two thirds of the thread's
// registers and leave fewer rows in flight.
template <typename C, int E, int kGroup>
size_t held_backward_shared(int threads) {
  const int groups = kGroup == kWarpRows ? kHeldWarpsPerBlock : 1;
  const int lanes = kGroup == kWarpRows ? 32 : threads;
  return static_cast<size_t>(groups) * 2 * E * lanes * sizeof(C);
}

template <typename T, typename S, int E, int kGroup, typename G>
__global__ void __launch_bounds__(held_max_threads<kGroup>(), held_min_blocks<kGroup, 128>())
    layer_norm_backward_held_kernel(int64_t rows, int64_t cols, bool vec, const G* grad_out,
                                    const T* in, const S* means, const S* rstds, const T* weight,
                                    T* grad_in, S* partial_w, S* partial_b) {
  using C = calc_t<T>;
  using Group = RowGroup<kGroup == kWarpRows>;
  __shared__ C shared[32];
  extern __shared__ __align__(16) unsigned char dynamic_shared[];
  const int lane = Group::lane(), lanes = Group::lanes();
  const int group_in_block = kGroup == kWarpRows ? threadIdx.x >> 5 : 0;
  // Thread `lane`'s value j of the weight (then the bias) gradient: dw[j * lanes + lane].
  C* dw = reinterpret_cast<C*>(dynamic_shared) + group_in_block * 2 * E * lanes + lane;
  C* db = dw + E * lanes;
  const bool params = partial_w != nullptr;
  if (params)
    for (int j = 0; j < E; ++j) dw[j * lanes] = db[j * lanes] = C(0);
  for (int64_t r = Group::first_row(); r < rows; r += Group::row_step()) {
    C g[E], x[E];
    load_held<T, E>(grad_out + r * cols, cols, lane, lanes, vec, g, C(0));
    load_held<T, E>(in + r * cols, cols, lane, lanes, vec, x, C(0));
    const C mean = static_cast<C>(means[r]), rstd = static_cast<C>(rstds[r]);
#pragma unroll
    for (int j = 0; j < E; ++j) {
      x[j] = (x[j] - mean) * rstd;  // xhat; columns past the row hold grad_out = 0
      if (params) {
        dw[j * lanes] += g[j] * x[j];
        db[j * lanes] += g[j];
      }
    }
    if (weight) multiply_by_weight<T, E>(g, cols, lane, lanes, vec, weight);
    C sum_g = 0, sum_gx = 0;
#pragma unroll
    for (int j = 0; j < E; ++j) {
      sum_g += g[j];
      sum_gx += g[j] * x[j];
    }
    const C mean_g = Group::sum(sum_g, shared) / static_cast<C>(cols);
    const C mean_gx = Group::sum(sum_gx, shared) / static_cast<C>(cols);
    if (grad_in) {
#pragma unroll
      for (int j = 0; j < E; ++j) g[j] = rstd * (g[j] - mean_g - x[j] * mean_gx);
      store_held<T, E>(grad_in + r * cols, cols, lane, lanes, vec, g);
    }
  }
  if (!params) return;
  const int64_t group = kGroup == kWarpRows ? Group::first_row() : blockIdx.x;
#pragma unroll
  for (int j = 0; j < E; ++j) {
    const int64_t c = held_col<T>(j, lane, lanes, vec);
    if (c < cols) {
      partial_w[group * cols + c] = static_cast<S>(dw[j * lanes]);
      partial_b[group * cols + c] = static_cast<S>(db[j * lanes]);
    }
  }
}

// grad_x = rstd * (g - mean(g) - xhat * mean(g * xhat)), g = grad_out * weight.
template <typename T, typename S, typename G>
__global__ void __launch_bounds__(1024)
    layer_norm_backward_kernel(int64_t rows, int64_t cols, const G* grad_out, const T* in,
                               const S* means, const S* rstds, const T* weight, T* grad_in) {
  using C = calc_t<T>;
  __shared__ C shared[32];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const G* go = grad_out + r * cols;
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
template <typename T, typename S, typename G>
__global__ void layer_norm_params_kernel(int64_t rows, int64_t cols, int64_t chunk_rows,
                                         const G* grad_out, const T* in, const S* means,
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

// out[c] = the sum over k of partial[k, c]: a block sums 32 columns, its 32 rows of threads
// striding over k.
template <typename T, typename S>
__global__ void sum_chunks_kernel(int64_t cols, int64_t chunks, const S* partial, T* out) {
  __shared__ S tile[32][33];
  const int64_t c = static_cast<int64_t>(blockIdx.x) * 32 + threadIdx.x;
  S sum = 0;
  if (c < cols)
    for (int64_t k = threadIdx.y; k < chunks; k += 32) sum += partial[k * cols + c];
  tile[threadIdx.y][threadIdx.x] = sum;
  __syncthreads();
  if (threadIdx.y == 0 && c < cols) {
    for (int k = 1; k < 32; ++k) sum += tile[k][threadIdx.x];
    out[c] = store<T>(sum);
  }
}

template <typename T, typename S>
void sum_chunks(const Tensor& out, int64_t cols, int64_t chunks, const S* partial,
                cudaStream_t stream) {
  if (!out.defined()) return;
  sum_chunks_kernel<T, S><<<static_cast<unsigned>((cols + 31) / 32), dim3(32, 32), 0, stream>>>(
      cols, chunks, partial, static_cast<T*>(out.data_ptr()));
}

unsigned row_grid(int64_t rows) {
  return static_cast<unsigned>(std::min<int64_t>(rows, int64_t{1} << 30));
}

template <typename T>
const T* optional_ptr(const Tensor& t) {
  return t.defined() ? static_cast<const T*>(t.data_ptr()) : nullptr;
}

// fn(T{}, O{}) for x's type T and the type O of layer_norm's output (or of its gradient): T, or
// f16/bf16 for f32 x (autocast).
template <typename Fn>
void dispatch_norm(DType x, DType io, const char* op, Fn&& fn) {
  dispatch_float(x, op, [&](auto tag) {
    using T = decltype(tag);
    if constexpr (std::is_same_v<T, float>) {
      if (io == DType::BFloat16) return fn(T{}, __nv_bfloat16{});
      if (io == DType::Float16) return fn(T{}, __half{});
    }
    ST_CHECK(io == x, NotImplementedError, "[", op, "] not implemented for ", x, " input with ", io,
             " output on the cuda backend");
    fn(T{}, T{});
  });
}

}  // namespace

void CudaBackend::layer_norm(const Tensor& out, const Tensor& mean, const Tensor& rstd,
                             const Tensor& x, const Tensor& weight, const Tensor& bias,
                             double eps) {
  const int64_t rows = x.shape()[0], cols = x.shape()[1];
  if (rows == 0 || cols == 0) return;
  const int device = x.device().index;
  const cudaStream_t stream = stream_of(x);
  dispatch_norm(x.dtype(), out.dtype(), "layer_norm", [&](auto tag, auto out_tag) {
    using T = decltype(tag);
    using O = decltype(out_tag);
    using S = std::conditional_t<std::is_same_v<T, double>, double, float>;
    using C = calc_t<T>;
    const T* px = static_cast<const T*>(x.data_ptr());
    const T* pw = optional_ptr<T>(weight);
    const T* pb = optional_ptr<T>(bias);
    O* py = static_cast<O*>(out.data_ptr());
    S* pm = static_cast<S*>(mean.data_ptr());
    S* pr = static_cast<S*>(rstd.data_ptr());
    bool held = false;
    if constexpr (!std::is_same_v<T, double>) {
      const bool vec = held_vec_ok<T>(cols, px, py, pw, pb);
      // 64 bytes of the row a thread: 16 f32 or 32 bf16/f16 values.
      constexpr int kHeld = sizeof(T) == 2 ? 32 : 16;
      held = dispatch_held<kHeld, 8>(cols, [&](auto e, auto group, int threads) {
        constexpr int E = decltype(e)::value;
        constexpr int kGroup = decltype(group)::value;
        constexpr bool kWarp = kGroup == kWarpRows;
        const auto [grid, block] = held_launch<kWarp>(rows, threads, device);
        layer_norm_held_kernel<T, S, E, kGroup, O><<<grid, block, 0, stream>>>(
            rows, cols, static_cast<C>(eps), vec, px, pw, pb, py, pm, pr);
      });
    }
    if (!held)
      layer_norm_kernel<T, S, O><<<row_grid(rows), threads_for(cols), 0, stream>>>(
          rows, cols, static_cast<C>(eps), px, pw, pb, py, pm, pr);
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
  const bool params = grad_weight.defined() || grad_bias.defined();
  dispatch_norm(x.dtype(), grad_out.dtype(), "layer_norm_backward", [&](auto tag, auto g_tag) {
    using T = decltype(tag);
    using G = decltype(g_tag);
    using S = std::conditional_t<std::is_same_v<T, double>, double, float>;
    using C = calc_t<T>;
    const DType stats = std::is_same_v<S, double> ? DType::Float64 : DType::Float32;
    const G* go = static_cast<const G*>(grad_out.data_ptr());
    const T* px = static_cast<const T*>(x.data_ptr());
    const S* pm = static_cast<const S*>(mean.data_ptr());
    const S* pr = static_cast<const S*>(rstd.data_ptr());
    const T* pw = optional_ptr<T>(weight);
    T* gx = grad_x.defined() ? static_cast<T*>(grad_x.data_ptr()) : nullptr;
    bool held = false;
    if constexpr (!std::is_same_v<T, double>) {
      const bool vec = held_vec_ok<T>(cols, go, px, pw, gx);
      held = rows > 0 && dispatch_held<16, 8>(cols, [&](auto e, auto group, int threads) {
               constexpr int E = decltype(e)::value;
               constexpr int kGroup = decltype(group)::value;
               constexpr bool kWarp = kGroup == kWarpRows;
               const auto kernel = layer_norm_backward_held_kernel<T, S, E, kGroup, G>;
               const int block = kWarp ? 32 * kHeldWarpsPerBlock : threads;
               const size_t shared = params ? held_backward_shared<C, E, kGroup>(threads) : 0;
               if (shared > 48 * 1024)
                 check(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                            static_cast<int>(shared)),
                       "cudaFuncSetAttribute");
               int per_sm = 0;
               check(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, block, shared),
                     "cudaOccupancyMaxActiveBlocksPerMultiprocessor");
               // Each warp or block writes a row of partial sums: 16 rows or more per partial
               // keep them a small part of the traffic.
               const unsigned grid =
                   held_launch<kWarp>(rows, threads, device, params ? 16 : 1, per_sm).first;
               const int64_t groups = kWarp ? int64_t{grid} * kHeldWarpsPerBlock : grid;
               Tensor partial;
               S* part_w = nullptr;
               if (params) {
                 partial = scratch({2, groups, cols}, stats, x.device());
                 part_w = static_cast<S*>(partial.data_ptr());
               }
               S* part_b = params ? part_w + groups * cols : nullptr;
               kernel<<<grid, block, shared, stream>>>(rows, cols, vec, go, px, pm, pr, pw, gx,
                                                       part_w, part_b);
               check_launch("layer_norm_backward");
               if (params) {
                 sum_chunks<T, S>(grad_weight, cols, groups, part_w, stream);
                 sum_chunks<T, S>(grad_bias, cols, groups, part_b, stream);
               }
             });
    }
    if (held) {
      check_launch("layer_norm_backward");
      return;
    }
    if (gx && rows > 0) {
      layer_norm_backward_kernel<T, S, G>
          <<<row_grid(rows), threads_for(cols), 0, stream>>>(rows, cols, go, px, pm, pr, pw, gx);
      check_launch("layer_norm_backward");
    }
    if (!params) return;
    const int64_t col_tiles = (cols + kTileCols - 1) / kTileCols;
    // Enough row chunks to give every multiprocessor a few blocks.
    const int64_t chunks =
        std::clamp<int64_t>((4 * multiprocessors(device) + col_tiles - 1) / col_tiles, 1,
                            std::max<int64_t>(rows / 32, 1));
    const int64_t chunk_rows = rows == 0 ? 1 : (rows + chunks - 1) / chunks;
    const Tensor partial = scratch({2, chunks, cols}, stats, x.device());
    S* part_w = static_cast<S*>(partial.data_ptr());
    S* part_b = part_w + chunks * cols;
    layer_norm_params_kernel<T, S, G>
        <<<dim3(static_cast<unsigned>(col_tiles), static_cast<unsigned>(chunks)),
           dim3(kTileCols, kTileRows), 0, stream>>>(rows, cols, chunk_rows, go, px, pm, pr, part_w,
                                                    part_b);
    check_launch("layer_norm_backward");
    sum_chunks<T, S>(grad_weight, cols, chunks, part_w, stream);
    sum_chunks<T, S>(grad_bias, cols, chunks, part_b, stream);
    check_launch("layer_norm_backward");
  });
}

}  // namespace st::backend::cuda
