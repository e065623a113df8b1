// Our own tensor-core GEMM for f16 and bf16 with f32 accumulation: mma.sync m16n8k16 (sm_80 and
// later, Hopper included). A block computes a 128x128 tile of out with 8 warps (2 x 4, each 64x32),
// stepping 32 along K; a and b tiles are staged in shared memory by cp.async, two stages deep, and
// read into fragments with ldmatrix (.trans for b). Rows are padded by 16 bytes so that ldmatrix's
// eight row addresses fall in distinct banks.
//
// Operands must be a with unit stride along K and b with unit stride along N, K and N multiples of
// 8 and 16-byte aligned rows (cp.async moves 16 bytes); other layouts are first copied into that
// form, and shapes that cannot take it are left to the tiled kernel.

#include "backend/cuda/common.cuh"
#include "backend/cuda/mma.cuh"

namespace st::backend::cuda {
namespace {

constexpr int kBM = 128, kBN = 128, kBK = 32, kThreads = 256;
constexpr int kPadA = kBK + 8, kPadB = kBN + 8;  // row lengths in shared memory, in elements

// a [M, K] with row stride lda, b [K, N] with row stride ldb, out [M, N] contiguous; per batch.
template <typename T>
__global__ void __launch_bounds__(kThreads)
    gemm_mma_kernel(int64_t batches, int M, int N, int K, float alpha, float beta, const T* a,
                    int64_t lda, int64_t batch_a, const T* b, int64_t ldb, int64_t batch_b,
                    T* out) {
  __shared__ alignas(16) T smem_a[2][kBM][kPadA];
  __shared__ alignas(16) T smem_b[2][kBK][kPadB];
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int warp_m = warp / 4, warp_n = warp % 4;  // 2 x 4 warps of 64 x 32
  const int m0 = blockIdx.y * kBM, n0 = blockIdx.x * kBN;

  for (int64_t batch = blockIdx.z; batch < batches; batch += gridDim.z) {
    const T* pa = a + batch * batch_a;
    const T* pb = b + batch * batch_b;
    float acc[4][4][4] = {};

    // Each thread moves two 16-byte chunks of the a tile (128 x 32) and two of the b tile
    // (32 x 128); rows or columns past the matrix are filled with zeros.
    const auto load_stage = [&](int stage, int k0) {
#pragma unroll
      for (int i = 0; i < 2; ++i) {
        const int chunk = tid + i * kThreads;
        const int r = chunk / (kBK / 8), c = (chunk % (kBK / 8)) * 8;
        const int gm = m0 + r, gk = k0 + c;
        const bool valid = gm < M && gk < K;
        cp_async16(&smem_a[stage][r][c], valid ? pa + gm * lda + gk : pa, valid);
      }
#pragma unroll
      for (int i = 0; i < 2; ++i) {
        const int chunk = tid + i * kThreads;
        const int r = chunk / (kBN / 8), c = (chunk % (kBN / 8)) * 8;
        const int gk = k0 + r, gn = n0 + c;
        const bool valid = gk < K && gn < N;
        cp_async16(&smem_b[stage][r][c], valid ? pb + gk * ldb + gn : pb, valid);
      }
      cp_async_commit();
    };

    const int steps = (K + kBK - 1) / kBK;
    load_stage(0, 0);
    for (int s = 0; s < steps; ++s) {
      const int stage = s & 1;
      if (s + 1 < steps) {
        load_stage(stage ^ 1, (s + 1) * kBK);
        cp_async_wait<1>();
      } else {
        cp_async_wait<0>();
      }
      __syncthreads();
#pragma unroll
      for (int kk = 0; kk < kBK; kk += 16) {
        unsigned fa[4][4], fb[2][4];
#pragma unroll
        for (int i = 0; i < 4; ++i) {
          const int r = warp_m * 64 + i * 16 + (lane % 16);
          ldmatrix_x4(fa[i], &smem_a[stage][r][kk + (lane / 16) * 8]);
        }
#pragma unroll
        for (int j = 0; j < 2; ++j) {
          const int c = warp_n * 32 + j * 16 + (lane / 16) * 8;
          ldmatrix_x4_trans(fb[j], &smem_b[stage][kk + (lane % 16)][c]);
        }
#pragma unroll
        for (int i = 0; i < 4; ++i) {
#pragma unroll
          for (int j = 0; j < 4; ++j)
            mma<T>(acc[i][j], fa[i], fb[j / 2][(j % 2) * 2], fb[j / 2][(j % 2) * 2 + 1]);
        }
      }
      __syncthreads();  // the stage just read is the next one written
    }

    // Accumulator layout of m16n8: c0, c1 at row lane / 4, columns 2 (lane % 4) + {0, 1}; c2, c3
    // eight rows below.
    T* po = out + batch * static_cast<int64_t>(M) * N;
#pragma unroll
    for (int i = 0; i < 4; ++i) {
#pragma unroll
      for (int j = 0; j < 4; ++j) {
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          const int row = m0 + warp_m * 64 + i * 16 + lane / 4 + h * 8;
          if (row >= M) continue;
#pragma unroll
          for (int e = 0; e < 2; ++e) {
            const int col = n0 + warp_n * 32 + j * 8 + (lane % 4) * 2 + e;
            if (col >= N) continue;
            T* o = po + static_cast<int64_t>(row) * N + col;
            float v = alpha * acc[i][j][h * 2 + e];
            if (beta != 0.0f) v += beta * load(*o);
            *o = store<T>(v);
          }
        }
      }
    }
  }
}

}  // namespace

bool CudaBackend::gemm_tensorcore(const Tensor& out, const Tensor& a_in, const Tensor& b_in,
                                  double alpha, double beta) {
  const DType dtype = out.dtype();
  if (dtype != DType::Float16 && dtype != DType::BFloat16) return false;
  const int64_t batches = out.shape()[0], M = out.shape()[1], N = out.shape()[2];
  const int64_t K = a_in.shape()[2];
  if (K % 8 != 0 || N % 8 != 0 || M > INT32_MAX || N > INT32_MAX || K > INT32_MAX) return false;
  // a needs unit stride along K, b along N, rows and batches 16-byte aligned; else a dense copy.
  const auto suits = [](const Tensor& t) {
    return t.strides()[2] == 1 && t.strides()[1] % 8 == 0 && t.strides()[0] % 8 == 0 &&
           aligned16(t.data_ptr());
  };
  Tensor a = a_in, b = b_in;
  if (!suits(a)) {
    a = scratch(a_in.shape(), dtype, a_in.device());
    copy(a, a_in);
  }
  if (!suits(b)) {
    b = scratch(b_in.shape(), dtype, b_in.device());
    copy(b, b_in);
  }
  const dim3 grid(static_cast<unsigned>((N + kBN - 1) / kBN),
                  static_cast<unsigned>((M + kBM - 1) / kBM),
                  static_cast<unsigned>(std::min<int64_t>(batches, 65535)));
  if (grid.y > 65535) return false;
  const cudaStream_t stream = stream_of(out);
  const auto launch = [&](auto tag) {
    using T = decltype(tag);
    gemm_mma_kernel<T><<<grid, kThreads, 0, stream>>>(
        batches, static_cast<int>(M), static_cast<int>(N), static_cast<int>(K),
        static_cast<float>(alpha), static_cast<float>(beta), static_cast<const T*>(a.data_ptr()),
        a.strides()[1], a.strides()[0], static_cast<const T*>(b.data_ptr()), b.strides()[1],
        b.strides()[0], static_cast<T*>(out.data_ptr()));
  };
  if (dtype == DType::Float16)
    launch(__half{});
  else
    launch(__nv_bfloat16{});
  check_launch("matmul (tensor cores)");
  return true;
}

}  // namespace st::backend::cuda
