// Our own shared-memory GEMM, 16x16 tiles, for every dtype matmul takes and any shape and strides:
// each block stages a 16x16 tile of a and of b in shared memory per step along K, and each thread
// accumulates one output (f32 for f16/bf16/f32, f64 for f64, int64 for integers). The portable
// path, and the reference the tensor-core kernel is measured against.

#include "backend/cuda/common.cuh"

namespace st::backend::cuda {
namespace {

constexpr int kTile = 16;

template <typename T>
using gemm_acc_t = std::conditional_t<kIsFloat<T>, calc_t<T>, int64_t>;

struct Strides3 {
  int64_t batch, row, col;
};

template <typename T>
__global__ void gemm_tiled_kernel(int64_t batches, int64_t M, int64_t N, int64_t K,
                                  gemm_acc_t<T> alpha, gemm_acc_t<T> beta, const T* a, Strides3 sa,
                                  const T* b, Strides3 sb, T* out) {
  using A = gemm_acc_t<T>;
  __shared__ A tile_a[kTile][kTile + 1];
  __shared__ A tile_b[kTile][kTile + 1];
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int64_t row = static_cast<int64_t>(blockIdx.y) * kTile + ty;
  const int64_t col = static_cast<int64_t>(blockIdx.x) * kTile + tx;
  for (int64_t batch = blockIdx.z; batch < batches; batch += gridDim.z) {
    const T* pa = a + batch * sa.batch;
    const T* pb = b + batch * sb.batch;
    A acc = 0;
    for (int64_t k0 = 0; k0 < K; k0 += kTile) {
      const int64_t ka = k0 + tx, kb = k0 + ty;
      tile_a[ty][tx] =
          row < M && ka < K ? static_cast<A>(load(pa[row * sa.row + ka * sa.col])) : A(0);
      tile_b[ty][tx] =
          kb < K && col < N ? static_cast<A>(load(pb[kb * sb.row + col * sb.col])) : A(0);
      __syncthreads();
#pragma unroll
      for (int k = 0; k < kTile; ++k) acc += tile_a[ty][k] * tile_b[k][tx];
      __syncthreads();
    }
    if (row < M && col < N) {
      T* o = out + (batch * M + row) * N + col;
      A v = alpha * acc;
      if (beta != A(0)) v += beta * static_cast<A>(load(*o));
      *o = store<T>(v);
    }
  }
}

}  // namespace

void CudaBackend::gemm_tiled(const Tensor& out, const Tensor& a, const Tensor& b, double alpha,
                             double beta) {
  const int64_t batches = out.shape()[0], M = out.shape()[1], N = out.shape()[2];
  const int64_t K = a.shape()[2];
  const dim3 block(kTile, kTile);
  const dim3 grid(static_cast<unsigned>((N + kTile - 1) / kTile),
                  static_cast<unsigned>((M + kTile - 1) / kTile),
                  static_cast<unsigned>(std::min<int64_t>(batches, 65535)));
  ST_CHECK(grid.y <= 65535, NotImplementedError, "[matmul] the tiled GEMM takes at most ",
           65535 * kTile, " rows, got ", M);
  dispatch(out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if constexpr (std::is_same_v<T, bool>) {
      not_implemented("matmul for bool");
    } else {
      using A = gemm_acc_t<T>;
      gemm_tiled_kernel<T><<<grid, block, 0, stream_of(out)>>>(
          batches, M, N, K, static_cast<A>(alpha), static_cast<A>(beta),
          static_cast<const T*>(a.data_ptr()),
          Strides3{a.strides()[0], a.strides()[1], a.strides()[2]},
          static_cast<const T*>(b.data_ptr()),
          Strides3{b.strides()[0], b.strides()[1], b.strides()[2]},
          static_cast<T*>(out.data_ptr()));
      check_launch("matmul (tiled)");
    }
  });
}

}  // namespace st::backend::cuda
