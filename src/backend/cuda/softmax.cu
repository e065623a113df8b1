// Row-wise softmax and log_softmax (scaled, optionally causal) with their backward, and the fused
// cross_entropy forward and backward.
//
// Rows that fit in registers (up to 32768 columns forward, 16384 backward; f32, f16, bf16) are
// read once: a warp per row of up to 1024 columns, reducing with shuffles alone, a block per
// longer row (common.cuh's dispatch_held). The forward takes the row maximum, then the sum of
// exponentials, one exponential per element; the backward reduces one dot product and writes the
// gradient from the held values. Longer rows and f64 take a block per row that loops over the row:
// the forward keeps a running maximum and a sum rescaled to it (one read of the row for both
// statistics, then one read and one write for the output), the backward reads the row twice.

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

template <typename T, int E, int kGroup>
__global__ void __launch_bounds__(held_max_threads<kGroup>(), held_min_blocks<kGroup, 64>())
    softmax_held_kernel(int64_t rows, int64_t cols, calc_t<T> scale, int64_t causal_rows, bool log,
                        bool vec, const T* in, T* out) {
  using C = calc_t<T>;
  using Group = RowGroup<kGroup == kWarpRows>;
  __shared__ C shared[32];
  const int lane = Group::lane(), lanes = Group::lanes();
  for (int64_t r = Group::first_row(); r < rows; r += Group::row_step()) {
    // Causal rows see columns up to their position in the group of queries.
    const int64_t visible = causal_rows > 0 ? ::min(cols, r % causal_rows + 1) : cols;
    C v[E];
    load_held<T, E>(in + r * cols, cols, lane, lanes, vec, v, C(0));
    C m = C(-INFINITY);
#pragma unroll
    for (int j = 0; j < E; ++j) {
      v[j] = held_col<T>(j, lane, lanes, vec) < visible ? scale * v[j] : C(-INFINITY);
      m = ::fmax(m, v[j]);
    }
    m = Group::max(m, shared);
    // Every row sees at least its first column, so m is finite unless the input holds -inf.
    const C shift = m == C(-INFINITY) ? C(0) : m;
    C s = 0;
#pragma unroll
    for (int j = 0; j < E; ++j) {
      const C e = ::exp(v[j] - shift);
      s += e;
      if (!log) v[j] = e;
    }
    s = Group::sum(s, shared);
    if (log) {
      const C lse = shift + ::log(s);
#pragma unroll
      for (int j = 0; j < E; ++j) v[j] -= lse;
    } else {
      const C inv = C(1) / s;
#pragma unroll
      for (int j = 0; j < E; ++j) v[j] *= inv;
    }
    store_held<T, E>(out + r * cols, cols, lane, lanes, vec, v);
  }
}

// Rows too long to hold, and f64.
template <typename T>
__global__ void __launch_bounds__(1024)
    softmax_kernel(int64_t rows, int64_t cols, calc_t<T> scale, int64_t causal_rows, bool log,
                   const T* in, T* out) {
  using C = calc_t<T>;
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* x = in + r * cols;
    T* y = out + r * cols;
    const int64_t visible = causal_rows > 0 ? ::min(cols, r % causal_rows + 1) : cols;
    MaxSum<C> ms{C(-INFINITY), C(0)};
    for (int64_t c = threadIdx.x; c < visible; c += blockDim.x)
      ms = add_value(ms, scale * load(x[c]));
    ms = block_max_sum(ms);
    const C shift = ms.m + ::log(ms.s), inv = C(1) / ms.s;
    if (log) {
      for (int64_t c = threadIdx.x; c < cols; c += blockDim.x)
        y[c] = store<T>(scale * load(x[c]) - shift);
    } else {
      for (int64_t c = threadIdx.x; c < cols; c += blockDim.x)
        y[c] = store<T>(c < visible ? ::exp(scale * load(x[c]) - ms.m) * inv : C(0));
    }
  }
}

// Up to 128 registers a thread: a thread keeps the values of two rows.
template <typename T, int E, int kGroup>
__global__ void __launch_bounds__(held_max_threads<kGroup>(), held_min_blocks<kGroup, 128>())
    softmax_backward_held_kernel(int64_t rows, int64_t cols, calc_t<T> scale, bool log, bool vec,
                                 const T* grad_out, const T* out, T* grad_in) {
  using C = calc_t<T>;
  using Group = RowGroup<kGroup == kWarpRows>;
  __shared__ C shared[32];
  const int lane = Group::lane(), lanes = Group::lanes();
  for (int64_t r = Group::first_row(); r < rows; r += Group::row_step()) {
    C g[E], y[E];
    load_held<T, E>(grad_out + r * cols, cols, lane, lanes, vec, g, C(0));
    load_held<T, E>(out + r * cols, cols, lane, lanes, vec, y, C(0));
    C dot = 0;
#pragma unroll
    for (int j = 0; j < E; ++j) dot += log ? g[j] : g[j] * y[j];
    dot = Group::sum(dot, shared);
#pragma unroll
    for (int j = 0; j < E; ++j)
      g[j] = log ? scale * (g[j] - ::exp(y[j]) * dot) : scale * y[j] * (g[j] - dot);
    store_held<T, E>(grad_in + r * cols, cols, lane, lanes, vec, g);
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

// L: the loss's dtype, T's or f32 (autocast on f16/bf16 logits); S: the statistics dtype.
template <typename T, typename L, typename S, typename I>
__global__ void __launch_bounds__(1024)
    cross_entropy_kernel(int64_t rows, int64_t cols, const T* logits, const I* target,
                         int64_t target_stride, int64_t ignore_index, L* loss, S* lse,
                         DeviceFault* fault, bool vec) {
  using C = calc_t<T>;
  constexpr int V = Vec16<T>::kCount;
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* x = logits + r * cols;
    MaxSum<C> ms{C(-INFINITY), C(0)};
    if (vec) {
      // A pack's maximum first, then one exp2 per element against the running maximum (with
      // add_value's exp and compare per element, bf16 [16384, 50304] read at 1.5 TB/s). Four
      // loads in flight a thread were slower (0.97 ms against 0.79 on that shape): the registers
      // they take leave one block of 1024 threads a multiprocessor instead of two.
      constexpr C kLog2e = C(1.4426950408889634);
#pragma unroll 4
      for (int64_t k = threadIdx.x; k < cols / V; k += blockDim.x) {
        const Vec16<T> w = reinterpret_cast<const Vec16<T>*>(x)[k];
        C v[V], pack_max = C(-INFINITY);
#pragma unroll
        for (int e = 0; e < V; ++e) {
          v[e] = load(w.v[e]);
          pack_max = ::fmax(pack_max, v[e]);
        }
        if (pack_max > ms.m) {
          ms.s *= ::exp2((ms.m - pack_max) * kLog2e);
          ms.m = pack_max;
        }
        if (ms.m == C(-INFINITY)) continue;  // all -inf so far: nothing to add
        const C shift = ms.m * kLog2e;
#pragma unroll
        for (int e = 0; e < V; ++e)  // v == max: 1, also for an infinite max (not inf - inf)
          ms.s += v[e] == ms.m ? C(1) : ::exp2(::fma(v[e], kLog2e, -shift));
      }
    } else {
      for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) ms = add_value(ms, load(x[c]));
    }
    ms = block_max_sum(ms);
    if (threadIdx.x == 0) {
      const int64_t t = static_cast<int64_t>(target[r * target_stride]);
      const C row_lse = ms.m + ::log(ms.s);
      lse[r] = static_cast<S>(row_lse);
      if (t == ignore_index) {
        loss[r] = store<L>(C(0));
      } else if (t < 0 || t >= cols) {
        report_fault(fault, FaultKind::CrossEntropyTarget, t, cols);
        loss[r] = store<L>(C(0));
      } else {
        loss[r] = store<L>(row_lse - load(x[t]));
      }
    }
  }
}

template <typename T, typename L, typename S, typename I>
__global__ void __launch_bounds__(1024)
    cross_entropy_backward_kernel(int64_t rows, int64_t cols, const T* logits, const S* lse,
                                  const I* target, int64_t target_stride, const L* grad_loss,
                                  int64_t grad_stride, int64_t ignore_index, T* grad_logits,
                                  bool vec) {
  using C = calc_t<T>;
  constexpr int V = Vec16<T>::kCount;
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* x = logits + r * cols;
    T* gx = grad_logits + r * cols;
    const int64_t t = static_cast<int64_t>(target[r * target_stride]);
    // An ignored row's gradient is 0: scale 0 and no target (exp of finite logits stays finite).
    const bool ignored = t == ignore_index;
    const C g = ignored ? C(0) : static_cast<C>(load(grad_loss[r * grad_stride]));
    const C shift = static_cast<C>(lse[r]);
    const auto grad = [&](C v, int64_t c) {
      return store<T>(ignored ? C(0) : (::exp(v - shift) - (c == t ? C(1) : C(0))) * g);
    };
    if (vec) {
#pragma unroll 4
      for (int64_t k = threadIdx.x; k < cols / V; k += blockDim.x) {
        const Vec16<T> w = reinterpret_cast<const Vec16<T>*>(x)[k];
        Vec16<T> out;
#pragma unroll
        for (int e = 0; e < V; ++e) out.v[e] = grad(load(w.v[e]), k * V + e);
        reinterpret_cast<Vec16<T>*>(gx)[k] = out;
      }
    } else {
      for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) gx[c] = grad(load(x[c]), c);
    }
  }
}

unsigned row_grid(int64_t rows) {
  return static_cast<unsigned>(std::min<int64_t>(rows, int64_t{1} << 30));
}

int64_t stride_of_1d(const Tensor& t) { return t.dim() == 0 ? 0 : t.strides()[0]; }

// Calls run(L{}, I{}) for the loss dtype L (T's, or f32 under autocast) and the target's index
// type I.
template <typename T, typename Run>
void dispatch_loss_and_index(const Tensor& loss, const Tensor& target, const Run& run) {
  const auto with_index = [&](auto loss_tag) {
    if (target.dtype() == DType::Int32)
      run(loss_tag, int32_t{});
    else
      run(loss_tag, int64_t{});
  };
  if constexpr (std::is_same_v<T, double> || std::is_same_v<T, float>)
    with_index(T{});
  else if (loss.dtype() == DType::Float32)
    with_index(float{});
  else
    with_index(T{});
}

}  // namespace

void CudaBackend::softmax(const Tensor& out, const Tensor& in, bool log, double scale,
                          int64_t causal_rows) {
  const int64_t rows = in.shape()[0], cols = in.shape()[1];
  if (rows == 0 || cols == 0) return;
  const int device = in.device().index;
  const cudaStream_t stream = stream_of(in);
  dispatch_float(in.dtype(), "softmax", [&](auto tag) {
    using T = decltype(tag);
    using C = calc_t<T>;
    const T* x = static_cast<const T*>(in.data_ptr());
    T* y = static_cast<T*>(out.data_ptr());
    bool held = false;
    if constexpr (!std::is_same_v<T, double>) {
      const bool vec = held_vec_ok<T>(cols, x, y);
      held = dispatch_held<32, 32>(cols, [&](auto e, auto group, int threads) {
        constexpr int E = decltype(e)::value;
        constexpr int kGroup = decltype(group)::value;
        constexpr bool kWarp = kGroup == kWarpRows;
        const auto [grid, block] = held_launch<kWarp>(rows, threads, device);
        softmax_held_kernel<T, E, kGroup><<<grid, block, 0, stream>>>(
            rows, cols, static_cast<C>(scale), causal_rows, log, vec, x, y);
      });
    }
    if (!held)
      softmax_kernel<T><<<row_grid(rows), threads_for(cols), 0, stream>>>(
          rows, cols, static_cast<C>(scale), causal_rows, log, x, y);
    check_launch("softmax");
  });
}

void CudaBackend::softmax_backward(const Tensor& grad_in, const Tensor& grad_out, const Tensor& out,
                                   bool log, double scale) {
  const int64_t rows = out.shape()[0], cols = out.shape()[1];
  if (rows == 0 || cols == 0) return;
  const int device = out.device().index;
  const cudaStream_t stream = stream_of(out);
  dispatch_float(out.dtype(), "softmax_backward", [&](auto tag) {
    using T = decltype(tag);
    using C = calc_t<T>;
    const T* g = static_cast<const T*>(grad_out.data_ptr());
    const T* y = static_cast<const T*>(out.data_ptr());
    T* gi = static_cast<T*>(grad_in.data_ptr());
    bool held = false;
    if constexpr (!std::is_same_v<T, double>) {
      const bool vec = held_vec_ok<T>(cols, g, y, gi);
      held = dispatch_held<32, 16>(cols, [&](auto e, auto group, int threads) {
        constexpr int E = decltype(e)::value;
        constexpr int kGroup = decltype(group)::value;
        constexpr bool kWarp = kGroup == kWarpRows;
        const auto [grid, block] = held_launch<kWarp>(rows, threads, device);
        softmax_backward_held_kernel<T, E, kGroup>
            <<<grid, block, 0, stream>>>(rows, cols, static_cast<C>(scale), log, vec, g, y, gi);
      });
    }
    if (!held)
      softmax_backward_kernel<T><<<row_grid(rows), threads_for(cols), 0, stream>>>(
          rows, cols, static_cast<C>(scale), log, g, y, gi);
    check_launch("softmax_backward");
  });
}

void CudaBackend::cross_entropy(const Tensor& loss, const Tensor& lse, const Tensor& logits,
                                const Tensor& target, int64_t ignore_index) {
  const int64_t rows = logits.shape()[0], cols = logits.shape()[1];
  if (rows == 0) return;
  const cudaStream_t stream = stream_of(logits);
  DeviceFault* fault = device_fault(logits.device().index);
  dispatch_float(logits.dtype(), "cross_entropy", [&](auto tag) {
    using T = decltype(tag);
    using S = std::conditional_t<std::is_same_v<T, double>, double, float>;
    const auto run = [&](auto loss_tag, auto index_tag) {
      using L = decltype(loss_tag);
      using I = decltype(index_tag);
      cross_entropy_kernel<T, L, S, I><<<row_grid(rows), threads_for(cols), 0, stream>>>(
          rows, cols, static_cast<const T*>(logits.data_ptr()),
          static_cast<const I*>(target.data_ptr()), stride_of_1d(target), ignore_index,
          static_cast<L*>(loss.data_ptr()), static_cast<S*>(lse.data_ptr()), fault,
          held_vec_ok<T>(cols, logits.data_ptr()));
    };
    dispatch_loss_and_index<T>(loss, target, run);
    check_launch("cross_entropy");
  });
}

void CudaBackend::cross_entropy_backward(const Tensor& grad_logits, const Tensor& grad_loss,
                                         const Tensor& logits, const Tensor& lse,
                                         const Tensor& target, int64_t ignore_index) {
  const int64_t rows = logits.shape()[0], cols = logits.shape()[1];
  if (rows == 0 || cols == 0) return;
  dispatch_float(logits.dtype(), "cross_entropy_backward", [&](auto tag) {
    using T = decltype(tag);
    using S = std::conditional_t<std::is_same_v<T, double>, double, float>;
    const auto run = [&](auto loss_tag, auto index_tag) {
      using L = decltype(loss_tag);
      using I = decltype(index_tag);
      cross_entropy_backward_kernel<T, L, S, I>
          <<<row_grid(rows), threads_for(cols), 0, stream_of(logits)>>>(
              rows, cols, static_cast<const T*>(logits.data_ptr()),
              static_cast<const S*>(lse.data_ptr()), static_cast<const I*>(target.data_ptr()),
              stride_of_1d(target), static_cast<const L*>(grad_loss.data_ptr()),
              stride_of_1d(grad_loss), ignore_index, static_cast<T*>(grad_logits.data_ptr()),
              held_vec_ok<T>(cols, logits.data_ptr(), grad_logits.data_ptr()));
    };
    dispatch_loss_and_index<T>(grad_loss, target, run);
    check_launch("cross_entropy_backward");
  });
}

}  // namespace st::backend::cuda
