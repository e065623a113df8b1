// Fused attention (flash attention): softmax(scale * q k^T) v, causal or not, without the scores in
// memory. The forward keeps a running maximum and sum per query row over blocks of keys (the online
// softmax) and saves each row's log-sum-exp; the backward recomputes the probabilities from it.
//
// f16/bf16 (tensor cores, mma.sync m16n8k16 with f32 accumulation): a block of 4 warps takes 64
// rows, 16 per warp, and steps over the other side's rows 64 at a time through shared memory.
//   forward: a block of queries; S = Q K^T, P = exp(S - max), O += P V.
//   dQ:      a block of queries; S and P again, dP = dO V^T, dS = P (dP - delta), dQ += dS K.
//   dK, dV:  a block of keys; S^T = K Q^T, P^T, dV += P^T dO, dP^T = V dO^T, dK += dS^T Q.
// Splitting dQ from dK/dV recomputes S once more but needs no atomics. delta = rowsum(dO * O).
// f64 (for gradient checks) takes plain kernels with one warp per row. f32 returns false: the
// composite of cuBLASLt GEMMs and the fused softmax is faster than a SIMT flash kernel.
//
// Operands, outputs and gradients: rows of E = 32, 64 or 128 elements with unit stride, otherwise
// strided, so that heads split from a [B, T, H * E] projection ([B, T, H, E] in memory) are read
// and written in place, with no transposed copies around the kernels.

#include <cmath>

#include "backend/cuda/common.cuh"
#include "backend/cuda/mma.cuh"

namespace st::backend::cuda {
namespace {

constexpr int kRows = 64;  // rows of a block, and of each step over the other side
constexpr int kThreads = 128;
constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

// A [B, H, T, E] tensor: element (b, h, t, e) at ptr + b * sb + h * sh + t * st + e. P is const T
// for operands read, T for outputs.
template <typename P>
struct Strided {
  P* ptr;
  int64_t sb, sh, st;
  __device__ __forceinline__ P* rows(int b, int h) const { return ptr + b * sb + h * sh; }
};
template <typename T>
using Operand = Strided<const T>;

template <typename T>
Operand<T> operand(const Tensor& t) {
  return {static_cast<const T*>(t.data_ptr()), t.strides()[0], t.strides()[1], t.strides()[2]};
}
template <typename T>
Strided<T> output(const Tensor& t) {
  return {static_cast<T*>(t.data_ptr()), t.strides()[0], t.strides()[1], t.strides()[2]};
}

// ---------------------------------------------------------------------------------------------
// Tensor-core pieces.

// Two floats as one register of two T, the first in the low half (the lower k index).
template <typename T>
__device__ __forceinline__ unsigned pack2(float lo, float hi) {
  if constexpr (std::is_same_v<T, __half>) {
    const __half2 v = __floats2half2_rn(lo, hi);
    return *reinterpret_cast<const unsigned*>(&v);
  } else {
    const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<const unsigned*>(&v);
  }
}

// Shared tiles are kRows x E, rows padded by 8 elements (16 bytes) so that the eight rows a
// fragment load touches fall in distinct banks.
template <int E>
constexpr int kLd = E + 8;

// The A fragment of the 16 x 16 block of a row-major tile at (row0, col0).
template <typename T, int E>
__device__ __forceinline__ void load_a(unsigned (&a)[4], const T* tile, int row0, int col0,
                                       int lane) {
  ldmatrix_x4(a, tile + (row0 + lane % 16) * kLd<E> + col0 + (lane / 16) * 8);
}

// The B fragments of two n8 tiles of B[k][n] = tile[n0 + n][k0 + k], the tile holding B
// transposed (rows along n): b[0], b[1] for columns n0..n0+7, b[2], b[3] for n0+8..n0+15.
template <typename T, int E>
__device__ __forceinline__ void load_b_rows_n(unsigned (&b)[4], const T* tile, int n0, int k0,
                                              int lane) {
  ldmatrix_x4(b, tile + (n0 + (lane / 16) * 8 + lane % 8) * kLd<E> + k0 + ((lane / 8) % 2) * 8);
}

// The B fragments of two n8 tiles of B[k][n] = tile[k0 + k][n0 + n] (rows along k), by ldmatrix
// .trans: b[0], b[1] for columns n0..n0+7, b[2], b[3] for n0+8..n0+15.
template <typename T, int E>
__device__ __forceinline__ void load_b_rows_k(unsigned (&b)[4], const T* tile, int k0, int n0,
                                              int lane) {
  ldmatrix_x4_trans(b, tile + (k0 + lane % 16) * kLd<E> + n0 + (lane / 16) * 8);
}

// The A fragment of k step `kk` (16 columns) from accumulators acc[n8 tile][4] of a 16 x 64
// product: the accumulator layout of two n8 tiles is the A layout of one k16 step.
template <typename T>
__device__ __forceinline__ void accumulators_as_a(unsigned (&a)[4], const float (&acc)[8][4],
                                                  int kk) {
  a[0] = pack2<T>(acc[2 * kk][0], acc[2 * kk][1]);
  a[1] = pack2<T>(acc[2 * kk][2], acc[2 * kk][3]);
  a[2] = pack2<T>(acc[2 * kk + 1][0], acc[2 * kk + 1][1]);
  a[3] = pack2<T>(acc[2 * kk + 1][2], acc[2 * kk + 1][3]);
}

// acc (16 x 64) += rows [row0, row0 + 16) of tile `a` times the kRows rows of tile `b`
// transposed: the product over E of a warp's rows with a block of the other side's rows.
template <typename T, int E>
__device__ __forceinline__ void mma_a_bt(float (&acc)[8][4], const T* a, int row0, const T* b,
                                         int lane) {
#pragma unroll
  for (int kk = 0; kk < E / 16; ++kk) {
    unsigned af[4];
    load_a<T, E>(af, a, row0, kk * 16, lane);
#pragma unroll
    for (int np = 0; np < 4; ++np) {
      unsigned bf[4];
      load_b_rows_n<T, E>(bf, b, np * 16, kk * 16, lane);
      mma<T>(acc[2 * np], af, bf[0], bf[1]);
      mma<T>(acc[2 * np + 1], af, bf[2], bf[3]);
    }
  }
}

// acc (16 x E) += p (16 x kRows, accumulators) times tile `b` (kRows x E, rows along k).
template <typename T, int E>
__device__ __forceinline__ void mma_p_b(float (&acc)[E / 8][4], const float (&p)[8][4], const T* b,
                                        int lane) {
#pragma unroll
  for (int kk = 0; kk < kRows / 16; ++kk) {
    unsigned af[4];
    accumulators_as_a<T>(af, p, kk);
#pragma unroll
    for (int dt = 0; dt < E / 16; ++dt) {
      unsigned bf[4];
      load_b_rows_k<T, E>(bf, b, kk * 16, dt * 16, lane);
      mma<T>(acc[2 * dt], af, bf[0], bf[1]);
      mma<T>(acc[2 * dt + 1], af, bf[2], bf[3]);
    }
  }
}

// Starts copying rows [row0, row0 + kRows) of a row-major [rows, E] matrix (row stride `stride`)
// into a shared tile; rows past the end are zeros.
template <typename T, int E>
__device__ __forceinline__ void load_tile(T* tile, const T* src, int64_t stride, int row0,
                                          int rows) {
  constexpr int kChunks = E / 8;  // 16-byte chunks per row
  for (int c = threadIdx.x; c < kRows * kChunks; c += kThreads) {
    const int r = c / kChunks, col = (c % kChunks) * 8;
    const bool valid = row0 + r < rows;
    cp_async16(tile + r * kLd<E> + col, valid ? src + (row0 + r) * stride + col : src, valid);
  }
}

// acc[E / 8][4] (16 rows x E of a warp) * factor, stored as T to rows [row0, row0 + 16) of a
// row-major [rows, E] matrix with row stride `stride`.
template <typename T, int E>
__device__ __forceinline__ void store_rows(T* dst, int64_t stride, const float (&acc)[E / 8][4],
                                           int row0, int rows, float factor_lo, float factor_hi,
                                           int lane) {
  const int r = row0 + lane / 4;
#pragma unroll
  for (int dt = 0; dt < E / 8; ++dt) {
    const int col = dt * 8 + 2 * (lane % 4);
    if (r < rows)
      *reinterpret_cast<unsigned*>(dst + r * stride + col) =
          pack2<T>(acc[dt][0] * factor_lo, acc[dt][1] * factor_lo);
    if (r + 8 < rows)
      *reinterpret_cast<unsigned*>(dst + (r + 8) * stride + col) =
          pack2<T>(acc[dt][2] * factor_hi, acc[dt][3] * factor_hi);
  }
}

// 2^x on the special-function unit with subnormal results flushed to zero: probabilities below
// 2^-126 add nothing to a row, and exp2f's care for them costs three instructions an element.
__device__ __forceinline__ float exp2_ftz(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}

// The number of 64-key steps query block `q0` takes: all keys, or under the causal mask those up
// to its last row.
__device__ __forceinline__ int key_steps(int q0, int L, int S, bool causal) {
  const int all = (S + kRows - 1) / kRows;
  if (!causal) return all;
  const int last = ::min(q0 + kRows, L) - 1;
  return ::min(all, last / kRows + 1);
}

template <typename T, int E>
__global__ void __launch_bounds__(kThreads)
    flash_forward_kernel(Operand<T> q, Operand<T> k, Operand<T> v, Strided<T> out, float* logsumexp,
                         int H, int L, int S, float scale_log2, bool causal) {
  extern __shared__ __align__(16) unsigned char smem[];
  T* sq = reinterpret_cast<T*>(smem);
  T* sk = sq + kRows * kLd<E>;
  T* sv = sk + kRows * kLd<E>;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  // Under the causal mask the last query blocks have the most keys: they start first.
  const int qb = causal ? gridDim.x - 1 - blockIdx.x : blockIdx.x;
  const int q0 = qb * kRows, b = blockIdx.y / H, h = blockIdx.y % H;
  const T* qp = q.rows(b, h);
  const T* kp = k.rows(b, h);
  const T* vp = v.rows(b, h);
  const int steps = key_steps(q0, L, S, causal);

  load_tile<T, E>(sq, qp, q.st, q0, L);
  load_tile<T, E>(sk, kp, k.st, 0, S);
  cp_async_commit();
  load_tile<T, E>(sv, vp, v.st, 0, S);
  cp_async_commit();

  unsigned qf[E / 16][4];
  float o[E / 8][4] = {};
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0, 0};  // rows g and g + 8, log2 domain
  const int row_lo = q0 + warp * 16 + lane / 4;

  for (int step = 0; step < steps; ++step) {
    const bool more = step + 1 < steps;
    cp_async_wait<1>();  // Q and this step's K
    __syncthreads();
    if (step == 0) {
#pragma unroll
      for (int kk = 0; kk < E / 16; ++kk) load_a<T, E>(qf[kk], sq, warp * 16, kk * 16, lane);
    }
    float s[8][4] = {};
#pragma unroll
    for (int kk = 0; kk < E / 16; ++kk) {
#pragma unroll
      for (int np = 0; np < 4; ++np) {
        unsigned b[4];
        load_b_rows_n<T, E>(b, sk, np * 16, kk * 16, lane);
        mma<T>(s[2 * np], qf[kk], b[0], b[1]);
        mma<T>(s[2 * np + 1], qf[kk], b[2], b[3]);
      }
    }
    __syncthreads();  // every warp is done with K: the next one may land
    if (more) {
      load_tile<T, E>(sk, kp, k.st, (step + 1) * kRows, S);
      cp_async_commit();
    }

    // Online softmax in the log2 domain: masked scores are -inf. Only the steps that reach the
    // end of the keys or the diagonal look at the mask.
    const bool edge = (step + 1) * kRows > S || (causal && (step + 1) * kRows - 1 > q0);
    float row_max[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int nt = 0; nt < 8; ++nt) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int col = step * kRows + nt * 8 + 2 * (lane % 4) + (e & 1);
        const int row = row_lo + (e >> 1) * 8;
        const bool masked = edge && (col >= S || (causal && col > row));
        s[nt][e] = masked ? -INFINITY : s[nt][e] * scale_log2;
        row_max[e >> 1] = fmaxf(row_max[e >> 1], s[nt][e]);
      }
    }
    float corr[2], base[2];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      row_max[r] = fmaxf(row_max[r], __shfl_xor_sync(0xffffffffu, row_max[r], 1));
      row_max[r] = fmaxf(row_max[r], __shfl_xor_sync(0xffffffffu, row_max[r], 2));
      const float m_new = fmaxf(m[r], row_max[r]);
      base[r] = m_new == -INFINITY ? 0.f : m_new;  // a row with nothing seen yet stays at 0
      corr[r] = exp2_ftz(m[r] - base[r]);
      m[r] = m_new;
      l[r] *= corr[r];
    }
#pragma unroll
    for (int nt = 0; nt < 8; ++nt) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        s[nt][e] = exp2_ftz(s[nt][e] - base[e >> 1]);
        l[e >> 1] += s[nt][e];
      }
    }
#pragma unroll
    for (int dt = 0; dt < E / 8; ++dt) {
      o[dt][0] *= corr[0];
      o[dt][1] *= corr[0];
      o[dt][2] *= corr[1];
      o[dt][3] *= corr[1];
    }

    if (more)
      cp_async_wait<1>();  // this step's V; the next K may still be in flight
    else
      cp_async_wait<0>();
    __syncthreads();
    mma_p_b<T, E>(o, s, sv, lane);
    __syncthreads();  // every warp is done with V
    if (more) {
      load_tile<T, E>(sv, vp, v.st, (step + 1) * kRows, S);
      cp_async_commit();
    }
  }

  // The four lanes of a row hold partial sums.
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    l[r] += __shfl_xor_sync(0xffffffffu, l[r], 1);
    l[r] += __shfl_xor_sync(0xffffffffu, l[r], 2);
  }
  const int64_t bh = blockIdx.y;
  store_rows<T, E>(out.rows(b, h), out.st, o, q0 + warp * 16, L, 1.f / l[0], 1.f / l[1], lane);
  if (lane % 4 == 0) {
    float* lse = logsumexp + bh * L;
    if (row_lo < L) lse[row_lo] = (m[0] + log2f(l[0])) * kLn2;
    if (row_lo + 8 < L) lse[row_lo + 8] = (m[1] + log2f(l[1])) * kLn2;
  }
}

// delta[row] = sum(grad_out[row] * out[row]) over rows of E, in f32 (f64 for f64). Rows are
// numbered (b * H + h) * L + t. A row is read in packs of P elements (16 bytes where the rows are
// aligned), by kLanes lanes, so that a warp reads several rows at once: a warp a row, 2 bytes a
// lane, ran at a quarter of the copy bandwidth.
template <int E, int P>
constexpr int kDeltaLanes = E / P < 32 ? E / P : 32;

template <typename T, typename A, int E, int P>
__global__ void attention_delta_kernel(Operand<T> grad_out, Operand<T> out, A* delta, int64_t rows,
                                       int H, int L) {
  constexpr int kLanes = kDeltaLanes<E, P>, kPacks = E / (P * kLanes);
  constexpr int kRowsPerWarp = 32 / kLanes;
  const int lane = threadIdx.x % kLanes;
  const int64_t first = static_cast<int64_t>(blockIdx.x) * (blockDim.x / kLanes) +
                        threadIdx.x / kLanes;
  const int64_t step = static_cast<int64_t>(gridDim.x) * (blockDim.x / kLanes);
  // The loop runs while the warp's first row does, so that all its lanes reach the shuffles.
  for (int64_t row = first; row - first % kRowsPerWarp < rows; row += step) {
    A sum = 0;
    if (row < rows) {
      const int64_t bh = row / L;
      const int t = static_cast<int>(row - bh * L), b = static_cast<int>(bh / H),
                h = static_cast<int>(bh % H);
      const auto* g = reinterpret_cast<const Pack<T, P>*>(grad_out.rows(b, h) + t * grad_out.st);
      const auto* y = reinterpret_cast<const Pack<T, P>*>(out.rows(b, h) + t * out.st);
#pragma unroll
      for (int k = 0; k < kPacks; ++k) {
        const Pack<T, P> gk = g[k * kLanes + lane], yk = y[k * kLanes + lane];
#pragma unroll
        for (int e = 0; e < P; ++e)
          sum += static_cast<A>(load(gk.v[e])) * static_cast<A>(load(yk.v[e]));
      }
    }
#pragma unroll
    for (int offset = kLanes / 2; offset > 0; offset >>= 1)
      sum += __shfl_xor_sync(0xffffffffu, sum, offset);
    if (row < rows && lane == 0) delta[row] = sum;
  }
}

// Three blocks per multiprocessor for E <= 64: registers capped at 168 a thread (from about 175).
template <int E>
constexpr int kBackwardBlocksPerSm = E <= 64 ? 3 : 1;

template <typename T, int E>
__global__ void __launch_bounds__(kThreads, kBackwardBlocksPerSm<E>)
    flash_backward_dq_kernel(Operand<T> q, Operand<T> k, Operand<T> v, Operand<T> grad_out,
                             const float* logsumexp, const float* delta, Strided<T> grad_q, int H,
                             int L, int S, float scale, bool causal) {
  extern __shared__ __align__(16) unsigned char smem[];
  constexpr int kTile = kRows * kLd<E>;
  // Q, dO, then K and V twice: the next step's pair lands while this one is used.
  T* sq = reinterpret_cast<T*>(smem);
  T* sdo = sq + kTile;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int qb = causal ? gridDim.x - 1 - blockIdx.x : blockIdx.x;
  const int q0 = qb * kRows, b = blockIdx.y / H, h = blockIdx.y % H;
  const int64_t bh = blockIdx.y;
  const T* kp = k.rows(b, h);
  const T* vp = v.rows(b, h);
  const float scale_log2 = scale * kLog2e;
  const int steps = key_steps(q0, L, S, causal);

  load_tile<T, E>(sq, q.rows(b, h), q.st, q0, L);
  load_tile<T, E>(sdo, grad_out.rows(b, h), grad_out.st, q0, L);
  load_tile<T, E>(sdo + kTile, kp, k.st, 0, S);
  load_tile<T, E>(sdo + 2 * kTile, vp, v.st, 0, S);
  cp_async_commit();

  const int row_lo = q0 + warp * 16 + lane / 4;
  float lse2[2], dl[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int row = row_lo + 8 * r;
    lse2[r] = row < L ? logsumexp[bh * L + row] * kLog2e : 0.f;
    dl[r] = row < L ? delta[bh * L + row] : 0.f;
  }
  unsigned qf[E / 16][4], dof[E / 16][4];
  float dq[E / 8][4] = {};

  for (int step = 0; step < steps; ++step) {
    const T* sk = sdo + (1 + 2 * (step & 1)) * kTile;
    const T* sv = sk + kTile;
    if (step + 1 < steps) {
      T* next = sdo + (1 + 2 * ((step + 1) & 1)) * kTile;
      load_tile<T, E>(next, kp, k.st, (step + 1) * kRows, S);
      load_tile<T, E>(next + kTile, vp, v.st, (step + 1) * kRows, S);
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    if (step == 0) {
#pragma unroll
      for (int kk = 0; kk < E / 16; ++kk) {
        load_a<T, E>(qf[kk], sq, warp * 16, kk * 16, lane);
        load_a<T, E>(dof[kk], sdo, warp * 16, kk * 16, lane);
      }
    }
    float p[8][4] = {}, dp[8][4] = {};
#pragma unroll
    for (int kk = 0; kk < E / 16; ++kk) {
#pragma unroll
      for (int np = 0; np < 4; ++np) {
        unsigned b[4];
        load_b_rows_n<T, E>(b, sk, np * 16, kk * 16, lane);
        mma<T>(p[2 * np], qf[kk], b[0], b[1]);
        mma<T>(p[2 * np + 1], qf[kk], b[2], b[3]);
        load_b_rows_n<T, E>(b, sv, np * 16, kk * 16, lane);
        mma<T>(dp[2 * np], dof[kk], b[0], b[1]);
        mma<T>(dp[2 * np + 1], dof[kk], b[2], b[3]);
      }
    }
    // dS = P (dP - delta), P recomputed from the saved log-sum-exp; masked entries are 0.
    const bool edge =
        (step + 1) * kRows > S || q0 + kRows > L || (causal && (step + 1) * kRows - 1 > q0);
#pragma unroll
    for (int nt = 0; nt < 8; ++nt) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int col = step * kRows + nt * 8 + 2 * (lane % 4) + (e & 1);
        const int row = row_lo + (e >> 1) * 8;
        const bool masked = edge && (col >= S || row >= L || (causal && col > row));
        const float prob = masked ? 0.f : exp2_ftz(p[nt][e] * scale_log2 - lse2[e >> 1]);
        p[nt][e] = prob * (dp[nt][e] - dl[e >> 1]);
      }
    }
    mma_p_b<T, E>(dq, p, sk, lane);
    __syncthreads();  // every warp is done with this K and V: the step after next reuses them
  }
  store_rows<T, E>(grad_q.rows(b, h), grad_q.st, dq, q0 + warp * 16, L, scale, scale, lane);
}

template <typename T, int E>
__global__ void __launch_bounds__(kThreads, kBackwardBlocksPerSm<E>)
    flash_backward_dkv_kernel(Operand<T> q, Operand<T> k, Operand<T> v, Operand<T> grad_out,
                              const float* logsumexp, const float* delta, Strided<T> grad_k,
                              Strided<T> grad_v, int H, int L, int S, float scale, bool causal) {
  extern __shared__ __align__(16) unsigned char smem[];
  constexpr int kTile = kRows * kLd<E>;
  // K, V, then Q and dO twice, then the queries' log-sum-exp and delta twice: the next query
  // block lands while this one is used.
  T* sk = reinterpret_cast<T*>(smem);
  T* sv = sk + kTile;
  float* stats = reinterpret_cast<float*>(sv + 5 * kTile);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int k0 = blockIdx.x * kRows, b = blockIdx.y / H, h = blockIdx.y % H;
  const int64_t bh = blockIdx.y;
  const T* qp = q.rows(b, h);
  const T* dop = grad_out.rows(b, h);
  const float scale_log2 = scale * kLog2e;
  // Under the causal mask only queries i >= the block's first key see its keys.
  const int first = causal ? k0 / kRows : 0;
  const int last = (L + kRows - 1) / kRows;

  // Starts loading query block qb into buffer `buf`.
  const auto load_queries = [&](int qb, int buf) {
    const int q0 = qb * kRows;
    T* dst = sv + (1 + 2 * buf) * kTile;
    load_tile<T, E>(dst, qp, q.st, q0, L);
    load_tile<T, E>(dst + kTile, dop, grad_out.st, q0, L);
    cp_async_commit();
    float* st = stats + 2 * kRows * buf;
    for (int i = threadIdx.x; i < kRows; i += kThreads) {
      const bool valid = q0 + i < L;
      st[i] = valid ? logsumexp[bh * L + q0 + i] * kLog2e : 0.f;
      st[kRows + i] = valid ? delta[bh * L + q0 + i] : 0.f;
    }
  };

  load_tile<T, E>(sk, k.rows(b, h), k.st, k0, S);
  load_tile<T, E>(sv, v.rows(b, h), v.st, k0, S);
  cp_async_commit();
  if (first < last) load_queries(first, 0);

  const int key_lo = k0 + warp * 16 + lane / 4;
  float dk[E / 8][4] = {}, dv[E / 8][4] = {};

  for (int qb = first; qb < last; ++qb) {
    const int q0 = qb * kRows, buf = (qb - first) & 1;
    const T* sq = sv + (1 + 2 * buf) * kTile;
    const T* sdo = sq + kTile;
    const float* slse = stats + 2 * kRows * buf;
    const float* sdelta = slse + kRows;
    if (qb + 1 < last) {
      load_queries(qb + 1, buf ^ 1);
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();

    // P^T = exp(K Q^T * scale - lse[query]), masked entries 0.
    float pt[8][4] = {};
    mma_a_bt<T, E>(pt, sk, warp * 16, sq, lane);
    const bool edge = q0 + kRows > L || (causal && k0 + kRows - 1 > q0);
#pragma unroll
    for (int nt = 0; nt < 8; ++nt) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int i = nt * 8 + 2 * (lane % 4) + (e & 1);  // query within the block
        const int key = key_lo + (e >> 1) * 8;
        const bool masked = edge && (q0 + i >= L || (causal && key > q0 + i));
        pt[nt][e] = masked ? 0.f : exp2_ftz(pt[nt][e] * scale_log2 - slse[i]);
      }
    }
    // dV += P^T dO.
    mma_p_b<T, E>(dv, pt, sdo, lane);
    // dP^T = V dO^T, then dS^T = P^T (dP^T - delta[query]).
    float dst[8][4] = {};
    mma_a_bt<T, E>(dst, sv, warp * 16, sdo, lane);
#pragma unroll
    for (int nt = 0; nt < 8; ++nt) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int i = nt * 8 + 2 * (lane % 4) + (e & 1);
        dst[nt][e] = pt[nt][e] * (dst[nt][e] - sdelta[i]);
      }
    }
    // dK += dS^T Q.
    mma_p_b<T, E>(dk, dst, sq, lane);
    __syncthreads();  // every warp is done with this buffer: the block after next reuses it
  }
  store_rows<T, E>(grad_k.rows(b, h), grad_k.st, dk, k0 + warp * 16, S, scale, scale, lane);
  store_rows<T, E>(grad_v.rows(b, h), grad_v.st, dv, k0 + warp * 16, S, 1.f, 1.f, lane);
}

// ---------------------------------------------------------------------------------------------
// f64: one warp per row, each lane holding E / 32 elements of it.

template <int E>
struct RowSlice {
  double v[E / 32];
};

template <int E>
__device__ __forceinline__ RowSlice<E> load_slice(const double* row) {
  RowSlice<E> s;
#pragma unroll
  for (int t = 0; t < E / 32; ++t) s.v[t] = row[threadIdx.x % 32 + 32 * t];
  return s;
}

template <int E>
__device__ __forceinline__ double dot(const RowSlice<E>& a, const double* row) {
  double sum = 0;
#pragma unroll
  for (int t = 0; t < E / 32; ++t) sum += a.v[t] * row[threadIdx.x % 32 + 32 * t];
  return warp_sum(sum);
}

template <int E>
__device__ __forceinline__ void axpy(RowSlice<E>& y, double a, const double* row) {
#pragma unroll
  for (int t = 0; t < E / 32; ++t) y.v[t] += a * row[threadIdx.x % 32 + 32 * t];
}

template <int E>
__device__ __forceinline__ void store_slice(double* row, const RowSlice<E>& s, double factor) {
#pragma unroll
  for (int t = 0; t < E / 32; ++t) row[threadIdx.x % 32 + 32 * t] = s.v[t] * factor;
}

// The warp's (b, h, row) over rows [0, B * H * rows), or false past the end.
__device__ __forceinline__ bool warp_row(int64_t total, int H, int rows, int& b, int& h, int& r,
                                         int64_t& flat) {
  flat = static_cast<int64_t>(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32;
  if (flat >= total) return false;
  r = static_cast<int>(flat % rows);
  const int64_t bh = flat / rows;
  b = static_cast<int>(bh / H);
  h = static_cast<int>(bh % H);
  return true;
}

template <int E>
__global__ void attention_forward_f64_kernel(Operand<double> q, Operand<double> k,
                                             Operand<double> v, Strided<double> out,
                                             double* logsumexp, int64_t total, int H, int L, int S,
                                             double scale, bool causal) {
  int b, h, i;
  int64_t flat;
  if (!warp_row(total, H, L, b, h, i, flat)) return;
  const RowSlice<E> qi = load_slice<E>(q.rows(b, h) + i * q.st);
  RowSlice<E> o{};
  double m = -INFINITY, l = 0;
  const int keys = causal ? ::min(S, i + 1) : S;
  for (int j = 0; j < keys; ++j) {
    const double s = dot<E>(qi, k.rows(b, h) + j * k.st) * scale;
    const double m_new = fmax(m, s), corr = ::exp(m - m_new), p = ::exp(s - m_new);
    l = l * corr + p;
#pragma unroll
    for (int t = 0; t < E / 32; ++t) o.v[t] *= corr;
    axpy<E>(o, p, v.rows(b, h) + j * v.st);
    m = m_new;
  }
  store_slice<E>(out.rows(b, h) + i * out.st, o, 1.0 / l);
  if (threadIdx.x % 32 == 0) logsumexp[flat] = m + ::log(l);
}

template <int E>
__global__ void attention_backward_dq_f64_kernel(Operand<double> q, Operand<double> k,
                                                 Operand<double> v, Operand<double> grad_out,
                                                 const double* logsumexp, const double* delta,
                                                 Strided<double> grad_q, int64_t total, int H,
                                                 int L, int S, double scale, bool causal) {
  int b, h, i;
  int64_t flat;
  if (!warp_row(total, H, L, b, h, i, flat)) return;
  const RowSlice<E> qi = load_slice<E>(q.rows(b, h) + i * q.st);
  const RowSlice<E> doi = load_slice<E>(grad_out.rows(b, h) + i * grad_out.st);
  RowSlice<E> dq{};
  const int keys = causal ? ::min(S, i + 1) : S;
  for (int j = 0; j < keys; ++j) {
    const double p = ::exp(dot<E>(qi, k.rows(b, h) + j * k.st) * scale - logsumexp[flat]);
    const double dp = dot<E>(doi, v.rows(b, h) + j * v.st);
    axpy<E>(dq, p * (dp - delta[flat]), k.rows(b, h) + j * k.st);
  }
  store_slice<E>(grad_q.rows(b, h) + i * grad_q.st, dq, scale);
}

template <int E>
__global__ void attention_backward_dkv_f64_kernel(Operand<double> q, Operand<double> k,
                                                  Operand<double> v, Operand<double> grad_out,
                                                  const double* logsumexp, const double* delta,
                                                  Strided<double> grad_k, Strided<double> grad_v,
                                                  int64_t total, int H, int L, int S, double scale,
                                                  bool causal) {
  int b, h, j;
  int64_t flat;
  if (!warp_row(total, H, S, b, h, j, flat)) return;
  const int64_t bh = flat / S;
  const RowSlice<E> kj = load_slice<E>(k.rows(b, h) + j * k.st);
  const RowSlice<E> vj = load_slice<E>(v.rows(b, h) + j * v.st);
  RowSlice<E> dk{}, dv{};
  for (int i = causal ? j : 0; i < L; ++i) {
    const int64_t row = bh * L + i;
    const double p = ::exp(dot<E>(kj, q.rows(b, h) + i * q.st) * scale - logsumexp[row]);
    const double* doi = grad_out.rows(b, h) + i * grad_out.st;
    const double dp = dot<E>(vj, doi);
    axpy<E>(dv, p, doi);
    axpy<E>(dk, p * (dp - delta[row]), q.rows(b, h) + i * q.st);
  }
  store_slice<E>(grad_k.rows(b, h) + j * grad_k.st, dk, scale);
  store_slice<E>(grad_v.rows(b, h) + j * grad_v.st, dv, 1.0);
}

// ---------------------------------------------------------------------------------------------
// Dispatch.

// Calls fn(std::integral_constant<int, E>) for a supported head dim.
template <typename Fn>
void dispatch_head_dim(int64_t E, Fn&& fn) {
  switch (E) {
    case 32: fn(std::integral_constant<int, 32>{}); return;
    case 64: fn(std::integral_constant<int, 64>{}); return;
    case 128: fn(std::integral_constant<int, 128>{}); return;
    default: break;
  }
}

bool supported(const Tensor& q, const Tensor& k) {
  const int64_t E = q.shape()[3];
  const DType dtype = q.dtype();
  return (E == 32 || E == 64 || E == 128) &&
         (dtype == DType::Float16 || dtype == DType::BFloat16 || dtype == DType::Float64) &&
         q.shape()[0] * q.shape()[1] <= 65535 && q.shape()[2] <= INT32_MAX &&
         k.shape()[2] <= INT32_MAX;
}

// The tensor-core kernels move 16-byte chunks: rows and batch strides in multiples of 8
// elements, 16-byte aligned data.
bool chunk_aligned(const Tensor& t) {
  return t.strides()[0] % 8 == 0 && t.strides()[1] % 8 == 0 && t.strides()[2] % 8 == 0 &&
         aligned16(t.data_ptr());
}

// Raises a kernel's dynamic shared memory limit once per device.
template <auto kernel>
void allow_shared_memory(size_t bytes, int device) {
  static bool done[64] = {};
  if (device < 64 && done[device]) return;
  check(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                             static_cast<int>(bytes)),
        "attention shared memory");
  if (device < 64) done[device] = true;
}

template <int E>
constexpr size_t tile_bytes() {
  return static_cast<size_t>(kRows) * kLd<E> * 2;
}

}  // namespace

bool CudaBackend::has_fused_attention(const Tensor& q, const Tensor& k) { return supported(q, k); }

void CudaBackend::attention_forward(const Tensor& out, const Tensor& logsumexp, const Tensor& q_in,
                                    const Tensor& k_in, const Tensor& v_in, double scale,
                                    bool causal) {
  const int H = static_cast<int>(q_in.shape()[1]);
  const int L = static_cast<int>(q_in.shape()[2]), S = static_cast<int>(k_in.shape()[2]);
  const int64_t BH = q_in.shape()[0] * H;
  const int device = out.device().index;
  const cudaStream_t stream = stream_of(out);
  if (q_in.dtype() == DType::Float64) {
    dispatch_head_dim(q_in.shape()[3], [&](auto e) {
      constexpr int E = decltype(e)::value;
      const int64_t total = BH * L;
      attention_forward_f64_kernel<E><<<static_cast<unsigned>((total + 3) / 4), 128, 0, stream>>>(
          operand<double>(q_in), operand<double>(k_in), operand<double>(v_in), output<double>(out),
          static_cast<double*>(logsumexp.data_ptr()), total, H, L, S, scale, causal);
    });
    check_launch("scaled_dot_product_attention (f64)");
    return;
  }
  const auto dense = [&](const Tensor& t) {
    if (chunk_aligned(t)) return t;
    Tensor c = scratch(t.shape(), t.dtype(), t.device());
    copy(c, t);
    return c;
  };
  const Tensor q = dense(q_in), k = dense(k_in), v = dense(v_in);
  const dim3 grid(static_cast<unsigned>((L + kRows - 1) / kRows), static_cast<unsigned>(BH));
  const float scale_log2 = static_cast<float>(scale) * kLog2e;
  const auto launch = [&](auto tag) {
    using T = decltype(tag);
    dispatch_head_dim(q.shape()[3], [&](auto e) {
      constexpr int E = decltype(e)::value;
      constexpr size_t bytes = 3 * tile_bytes<E>();
      allow_shared_memory<flash_forward_kernel<T, E>>(bytes, device);
      flash_forward_kernel<T, E><<<grid, kThreads, bytes, stream>>>(
          operand<T>(q), operand<T>(k), operand<T>(v), output<T>(out),
          static_cast<float*>(logsumexp.data_ptr()), H, L, S, scale_log2, causal);
    });
  };
  if (q.dtype() == DType::Float16)
    launch(__half{});
  else
    launch(__nv_bfloat16{});
  check_launch("scaled_dot_product_attention (flash forward)");
}

void CudaBackend::attention_backward(const Tensor& grad_q, const Tensor& grad_k,
                                     const Tensor& grad_v, const Tensor& grad_out,
                                     const Tensor& q_in, const Tensor& k_in, const Tensor& v_in,
                                     const Tensor& out, const Tensor& logsumexp, double scale,
                                     bool causal) {
  const int H = static_cast<int>(q_in.shape()[1]);
  const int L = static_cast<int>(q_in.shape()[2]), S = static_cast<int>(k_in.shape()[2]);
  const int64_t E = q_in.shape()[3], BH = q_in.shape()[0] * H;
  const int device = out.device().index;
  const cudaStream_t stream = stream_of(out);
  const DType dtype = q_in.dtype();
  Tensor delta = scratch({BH * L}, dtype == DType::Float64 ? dtype : DType::Float32, out.device());
  const bool packs = chunk_aligned(grad_out) && chunk_aligned(out);
  dispatch_float(dtype, "scaled_dot_product_attention", [&](auto tag) {
    using T = decltype(tag);
    using A = std::conditional_t<std::is_same_v<T, double>, double, float>;
    dispatch_head_dim(E, [&](auto e) {
      constexpr int kE = decltype(e)::value;
      const auto run = [&](auto pack) {
        constexpr int P = decltype(pack)::value;
        const unsigned grid = grid_for(BH * L, 256 / kDeltaLanes<kE, P>, device);
        attention_delta_kernel<T, A, kE, P><<<grid, 256, 0, stream>>>(
            operand<T>(grad_out), operand<T>(out), static_cast<A*>(delta.data_ptr()), BH * L, H,
            L);
      };
      if (packs)
        run(std::integral_constant<int, 16 / static_cast<int>(sizeof(T))>{});
      else
        run(std::integral_constant<int, 1>{});
    });
  });
  check_launch("scaled_dot_product_attention backward (delta)");

  if (dtype == DType::Float64) {
    dispatch_head_dim(E, [&](auto e) {
      constexpr int kE = decltype(e)::value;
      const auto d = [](const Tensor& t) { return static_cast<const double*>(t.data_ptr()); };
      const int64_t queries = BH * L, keys = BH * S;
      attention_backward_dq_f64_kernel<kE>
          <<<static_cast<unsigned>((queries + 3) / 4), 128, 0, stream>>>(
              operand<double>(q_in), operand<double>(k_in), operand<double>(v_in),
              operand<double>(grad_out), d(logsumexp), d(delta), output<double>(grad_q), queries, H,
              L, S, scale, causal);
      attention_backward_dkv_f64_kernel<kE>
          <<<static_cast<unsigned>((keys + 3) / 4), 128, 0, stream>>>(
              operand<double>(q_in), operand<double>(k_in), operand<double>(v_in),
              operand<double>(grad_out), d(logsumexp), d(delta), output<double>(grad_k),
              output<double>(grad_v), keys, H, L, S, scale, causal);
    });
    check_launch("scaled_dot_product_attention backward (f64)");
    return;
  }
  const auto dense = [&](const Tensor& t) {
    if (chunk_aligned(t)) return t;
    Tensor c = scratch(t.shape(), t.dtype(), t.device());
    copy(c, t);
    return c;
  };
  const Tensor q = dense(q_in), k = dense(k_in), v = dense(v_in), go = dense(grad_out);
  const float s = static_cast<float>(scale);
  const auto launch = [&](auto tag) {
    using T = decltype(tag);
    const auto f = [](const Tensor& t) { return static_cast<const float*>(t.data_ptr()); };
    dispatch_head_dim(E, [&](auto e) {
      constexpr int kE = decltype(e)::value;
      constexpr size_t dq_bytes = 6 * tile_bytes<kE>();
      constexpr size_t dkv_bytes = 6 * tile_bytes<kE>() + 4 * kRows * sizeof(float);
      allow_shared_memory<flash_backward_dq_kernel<T, kE>>(dq_bytes, device);
      allow_shared_memory<flash_backward_dkv_kernel<T, kE>>(dkv_bytes, device);
      flash_backward_dq_kernel<T, kE>
          <<<dim3(static_cast<unsigned>((L + kRows - 1) / kRows), static_cast<unsigned>(BH)),
             kThreads, dq_bytes, stream>>>(operand<T>(q), operand<T>(k), operand<T>(v),
                                           operand<T>(go), f(logsumexp), f(delta),
                                           output<T>(grad_q), H, L, S, s, causal);
      flash_backward_dkv_kernel<T, kE>
          <<<dim3(static_cast<unsigned>((S + kRows - 1) / kRows), static_cast<unsigned>(BH)),
             kThreads, dkv_bytes, stream>>>(
              operand<T>(q), operand<T>(k), operand<T>(v), operand<T>(go), f(logsumexp), f(delta),
              output<T>(grad_k), output<T>(grad_v), H, L, S, s, causal);
    });
  };
  if (dtype == DType::Float16)
    launch(__half{});
  else
    launch(__nv_bfloat16{});
  check_launch("scaled_dot_product_attention (flash backward)");
}

}  // namespace st::backend::cuda
