// Batched matmul on the CPU: f32 and f64 through OpenBLAS (cblas_?gemm per batch), f16 and bf16
// converted to f32 scratch around sgemm, int32/int64 by a plain loop. out is contiguous [B, M, N];
// a and b are read in place whenever BLAS can describe their layout, otherwise packed into
// contiguous scratch first.

#include <cblas.h>

#include <algorithm>
#include <climits>
#include <type_traits>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/parallel.h"

namespace st::backend::cpu {
namespace {

// OpenBLAS runs a GEMM of fewer multiply-adds than this on the calling thread alone
// (SMP_THRESHOLD_MIN times GEMM_MULTITHREAD_THRESHOLD); batches of such small matrices are spread
// over our threads instead.
constexpr int64_t kBlasSingleThreaded = 65536 * 4;

// One operand as a batch of rows x cols matrices.
struct Operand {
  const void* data;
  int64_t rows, cols, batch_stride, row_stride, col_stride;
};

Operand operand_of(const Tensor& t) {
  const Shape& s = t.strides();
  return {t.data_ptr(), t.shape()[1], t.shape()[2], s[0], s[1], s[2]};
}

// How row-major cblas reads a matrix in place: transposed or not, and the leading dimension.
struct BlasLayout {
  bool usable = false;
  CBLAS_TRANSPOSE trans = CblasNoTrans;
  int64_t ld = 1;
};

// The dims of size 1 may have any stride; a zero or overlapping stride elsewhere needs a copy,
// since BLAS requires ld >= max(1, columns of the stored matrix).
BlasLayout blas_layout(const Operand& m) {
  BlasLayout l;
  if (m.col_stride == 1 && (m.rows == 1 || m.row_stride >= std::max<int64_t>(1, m.cols)))
    l = {true, CblasNoTrans, m.rows == 1 ? std::max<int64_t>(1, m.cols) : m.row_stride};
  else if (m.row_stride == 1 && (m.cols == 1 || m.col_stride >= std::max<int64_t>(1, m.rows)))
    l = {true, CblasTrans, m.cols == 1 ? std::max<int64_t>(1, m.rows) : m.col_stride};
  if (l.ld > INT_MAX) l.usable = false;
  return l;
}

template <typename D, typename S>
D convert(S v) {
  return D(static_cast<compute_t<D>>(static_cast<compute_t<S>>(v)));
}

// Copies an operand into contiguous row-major scratch of type D (one matrix if batch stride 0).
template <typename D, typename S>
std::vector<D> pack(Operand& m, int64_t batches) {
  if (m.batch_stride == 0) batches = 1;
  std::vector<D> dst(batches * m.rows * m.cols);
  const S* src = static_cast<const S*>(m.data);
  parallel_for(batches * m.rows, m.cols, [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      const S* row = src + (r / m.rows) * m.batch_stride + (r % m.rows) * m.row_stride;
      D* out = dst.data() + r * m.cols;
      for (int64_t c = 0; c < m.cols; ++c) out[c] = convert<D>(row[c * m.col_stride]);
    }
  });
  m = {dst.data(), m.rows, m.cols, batches == 1 ? 0 : m.rows * m.cols, m.cols, 1};
  return dst;
}

template <typename T>
void gemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int64_t m, int64_t n, int64_t k, double alpha,
          const T* a, int64_t lda, const T* b, int64_t ldb, double beta, T* c, int64_t ldc) {
  const auto i = [](int64_t v) { return static_cast<blasint>(v); };
  if constexpr (std::is_same_v<T, float>)
    cblas_sgemm(CblasRowMajor, ta, tb, i(m), i(n), i(k), static_cast<float>(alpha), a, i(lda), b,
                i(ldb), static_cast<float>(beta), c, i(ldc));
  else
    cblas_dgemm(CblasRowMajor, ta, tb, i(m), i(n), i(k), alpha, a, i(lda), b, i(ldb), beta, c,
                i(ldc));
}

// out [B, M, N] = alpha * a @ b + beta * out with T = float or double.
template <typename T>
void gemm_batched(T* out, Operand a, Operand b, int64_t batches, double alpha, double beta) {
  const int64_t m = a.rows, k = a.cols, n = b.cols;
  BlasLayout la = blas_layout(a), lb = blas_layout(b);
  std::vector<T> a_scratch, b_scratch;
  if (!la.usable) {
    a_scratch = pack<T, T>(a, batches);
    la = blas_layout(a);
  }
  if (!lb.usable) {
    b_scratch = pack<T, T>(b, batches);
    lb = blas_layout(b);
  }
  const T* pa = static_cast<const T*>(a.data);
  const T* pb = static_cast<const T*>(b.data);
  const auto one = [&](int64_t i) {
    gemm<T>(la.trans, lb.trans, m, n, k, alpha, pa + i * a.batch_stride, la.ld,
            pb + i * b.batch_stride, lb.ld, beta, out + i * m * n, std::max<int64_t>(1, n));
  };
  if (batches > 1 && m * n * k < kBlasSingleThreaded) {
    parallel_for(batches, m * n * k, [&](int64_t b0, int64_t e) {
      for (int64_t i = b0; i < e; ++i) one(i);
    });
  } else {
    for (int64_t i = 0; i < batches; ++i) one(i);
  }
}

// f16 and bf16: sgemm on f32 copies, so products accumulate in f32.
template <typename T>
void gemm_half(T* out, Operand a, Operand b, int64_t batches, double alpha, double beta) {
  const int64_t size = batches * a.rows * b.cols;
  // a and b are repointed at these f32 copies.
  const std::vector<float> a32 = pack<float, T>(a, batches), b32 = pack<float, T>(b, batches);
  std::vector<float> out32(size);
  if (beta != 0) {
    parallel_for(size, 1, [&](int64_t s, int64_t e) {
      for (int64_t i = s; i < e; ++i) out32[i] = static_cast<float>(out[i]);
    });
  }
  gemm_batched<float>(out32.data(), a, b, batches, alpha, beta);
  parallel_for(size, 1, [&](int64_t s, int64_t e) {
    for (int64_t i = s; i < e; ++i) out[i] = T(out32[i]);
  });
}

// Integers: not performance critical. Unsigned 64-bit arithmetic wraps on overflow (as torch's
// integer matmul does) where signed arithmetic would be undefined.
template <typename T>
void matmul_integer(T* out, const Operand& a, const Operand& b, int64_t batches, double alpha,
                    double beta) {
  const int64_t m = a.rows, k = a.cols, n = b.cols;
  const T* pa = static_cast<const T*>(a.data);
  const T* pb = static_cast<const T*>(b.data);
  const auto u = [](auto v) { return static_cast<uint64_t>(static_cast<int64_t>(v)); };
  const uint64_t ualpha = u(alpha), ubeta = u(beta);
  parallel_for(batches * m, n * k, [&](int64_t s, int64_t e) {
    std::vector<uint64_t> acc(n);
    for (int64_t row = s; row < e; ++row) {
      const int64_t batch = row / m, i = row % m;
      std::fill(acc.begin(), acc.end(), 0);
      for (int64_t p = 0; p < k; ++p) {
        const uint64_t av = u(pa[batch * a.batch_stride + i * a.row_stride + p * a.col_stride]);
        const T* brow = pb + batch * b.batch_stride + p * b.row_stride;
        for (int64_t j = 0; j < n; ++j) acc[j] += av * u(brow[j * b.col_stride]);
      }
      T* c = out + row * n;
      for (int64_t j = 0; j < n; ++j)
        c[j] = static_cast<T>(ualpha * acc[j] + (ubeta == 0 ? 0 : ubeta * u(c[j])));
    }
  });
}

// K == 0: the product is empty, so out = beta * out (and exactly 0 when beta is 0, even over NaN).
template <typename T>
void scale_out(T* out, int64_t size, double beta) {
  parallel_for(size, 1, [&](int64_t s, int64_t e) {
    for (int64_t i = s; i < e; ++i) {
      if constexpr (std::is_same_v<T, bool>)
        out[i] = beta != 0 && out[i];
      else
        out[i] =
            beta == 0 ? T(0) : T(static_cast<compute_t<T>>(beta * static_cast<double>(out[i])));
    }
  });
}

}  // namespace

void CpuBackend::matmul(const Tensor& out, const Tensor& a, const Tensor& b, double alpha,
                        double beta) {
  ST_ASSERT(a.dtype() == out.dtype() && b.dtype() == out.dtype());
  const Operand oa = operand_of(a), ob = operand_of(b);
  const int64_t batches = out.shape()[0], m = oa.rows, k = oa.cols, n = ob.cols;
  if (batches == 0 || m == 0 || n == 0) return;
  dispatch_dtype(out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    T* dst = static_cast<T*>(out.data_ptr());
    if (k == 0) return scale_out(dst, batches * m * n, beta);
    if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double>)
      gemm_batched<T>(dst, oa, ob, batches, alpha, beta);
    else if constexpr (std::is_same_v<T, Half> || std::is_same_v<T, BFloat16>)
      gemm_half<T>(dst, oa, ob, batches, alpha, beta);
    else if constexpr (std::is_same_v<T, bool>)
      not_implemented("matmul");
    else
      matmul_integer<T>(dst, oa, ob, batches, alpha, beta);
  });
}

}  // namespace st::backend::cpu
