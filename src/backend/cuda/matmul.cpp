// matmul on CUDA: the choice of GEMM path (st::cuda::gemm_backend()) and the cuBLASLt path.
//
// Row-major out[M, N] is column-major out^T [N, M], so cuBLASLt computes out^T = b^T a^T with b as
// its first operand. Each operand matrix has unit stride in one dim (the contract), which maps to a
// transpose flag and a leading dimension; batch strides, 0 for a broadcast batch, are the layouts'
// strided-batch offsets. Plans (descriptors and the heuristic's algorithm) are cached per shape
// and epilogue. In that column-major view the bias of linear runs along D's rows, as cuBLASLt's
// bias epilogues want it, and the GELU input matrix (aux) has out's layout.

#include <cublasLt.h>

#include <map>
#include <mutex>
#include <tuple>

#include "backend/cuda/cuda_backend.h"
#include "spiraltorch/cuda.h"

namespace st::backend::cuda {
namespace {

constexpr size_t kWorkspaceBytes = size_t{32} << 20;

void check_blas(cublasStatus_t status, const char* what) {
  if (status == CUBLAS_STATUS_SUCCESS) return;
  throw DeviceError(detail::concat("[matmul] ", what, " failed: ", cublasLtGetStatusString(status),
                                   " (", cublasLtGetStatusName(status), ")"));
}

// One operand as cuBLASLt sees it: the stored column-major matrix, its transpose flag and ld.
struct Operand {
  bool transpose = false;
  int64_t rows = 0, cols = 0, ld = 0, batch_stride = 0;
  bool ok = false;
};

// Operand for x^T, x being a row-major [R, C] matrix with strides (sr, sc).
Operand transposed_operand(int64_t R, int64_t C, int64_t sr, int64_t sc, int64_t sb) {
  Operand op;
  op.batch_stride = sb;
  if ((sc == 1 || C == 1) && (R == 1 || sr >= C)) {
    // x^T (C x R) is column-major with ld sr: no transpose.
    op = {false, C, R, R == 1 ? std::max<int64_t>(C, 1) : sr, sb, true};
  } else if ((sr == 1 || R == 1) && (C == 1 || sc >= R)) {
    // x is column-major [R, C] with ld sc; cuBLASLt transposes it.
    op = {true, R, C, C == 1 ? std::max<int64_t>(R, 1) : sc, sb, true};
  }
  return op;
}

struct PlanKey {
  int device, dtype;
  bool tf32;
  int64_t m, n, k, batch;
  bool ta, tb;
  int64_t lda, ldb, sa, sb;
  int epilogue;
  auto tie() const {
    return std::tie(device, dtype, tf32, m, n, k, batch, ta, tb, lda, ldb, sa, sb, epilogue);
  }
  bool operator<(const PlanKey& o) const { return tie() < o.tie(); }
};

struct Plan {
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
  cublasLtMatmulAlgo_t algo{};
  bool has_algo = false;  // false: cuBLASLt offers no algorithm for this epilogue and shape
};

struct DeviceBlas {
  cublasLtHandle_t handle = nullptr;
  void* workspace = nullptr;
};

std::mutex blas_mutex;
// Handles, workspaces and plans live for the process: the driver releases them at exit.
std::map<int, DeviceBlas>& device_blas() {
  static auto* all = new std::map<int, DeviceBlas>();
  return *all;
}
std::map<PlanKey, Plan>& plans() {
  static auto* all = new std::map<PlanKey, Plan>();
  return *all;
}

cudaDataType_t data_type(DType dtype) {
  switch (dtype) {
    case DType::Float64: return CUDA_R_64F;
    case DType::Float16: return CUDA_R_16F;
    case DType::BFloat16: return CUDA_R_16BF;
    default: return CUDA_R_32F;
  }
}

cublasLtMatrixLayout_t make_layout(cudaDataType_t type, int64_t rows, int64_t cols, int64_t ld,
                                   int64_t batch, int64_t batch_stride) {
  cublasLtMatrixLayout_t layout;
  check_blas(cublasLtMatrixLayoutCreate(&layout, type, rows, cols, ld),
             "cublasLtMatrixLayoutCreate");
  const int32_t count = static_cast<int32_t>(batch);
  check_blas(cublasLtMatrixLayoutSetAttribute(layout, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count,
                                              sizeof(count)),
             "cublasLtMatrixLayoutSetAttribute");
  check_blas(cublasLtMatrixLayoutSetAttribute(layout, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET,
                                              &batch_stride, sizeof(batch_stride)),
             "cublasLtMatrixLayoutSetAttribute");
  return layout;
}

}  // namespace

void CudaBackend::matmul(const Tensor& out, const Tensor& a, const Tensor& b, double alpha,
                         double beta) {
  if (out.numel() == 0) return;
  if (a.shape()[2] == 0) {  // an empty sum: out = beta * out
    if (beta == 0)
      fill(out, 0);
    else
      unary(UnaryOp::Affine, out, out, beta, 0);
    return;
  }
  if (!is_floating(a.dtype())) {  // cuBLASLt has no integer GEMM of this kind
    gemm_tiled(out, a, b, alpha, beta);
    return;
  }
  switch (st::cuda::gemm_backend()) {
    case st::cuda::GemmBackend::CublasLt: gemm_cublaslt(out, a, b, alpha, beta); break;
    case st::cuda::GemmBackend::Tiled: gemm_tiled(out, a, b, alpha, beta); break;
    case st::cuda::GemmBackend::TensorCore:
      if (!gemm_tensorcore(out, a, b, alpha, beta)) gemm_tiled(out, a, b, alpha, beta);
      break;
  }
}

void CudaBackend::linear(const Tensor& out, const Tensor& pre_activation, const Tensor& a,
                         const Tensor& b, const Tensor& bias, LinearActivation act) {
  const DType dtype = out.dtype();
  const int64_t N = out.shape()[2];
  const bool lt =
      st::cuda::gemm_backend() == st::cuda::GemmBackend::CublasLt &&
      (dtype == DType::Float32 || dtype == DType::Float16 || dtype == DType::BFloat16) &&
      a.shape()[2] > 0;
  if (lt && (bias.defined() || act == LinearActivation::GeluTanh)) {
    // cuBLASLt reads the bias as N contiguous elements from data_ptr() (its [1, M, N] view has
    // strides (0, 0, 1)); an unaligned one, a view into a larger storage, is copied first.
    Tensor vector = bias;
    if (bias.defined() && reinterpret_cast<uintptr_t>(bias.data_ptr()) % 16 != 0) {
      vector = scratch({N}, dtype, out.device());
      check(cudaMemcpyAsync(vector.data_ptr(), bias.data_ptr(), N * dtype_size(dtype),
                            cudaMemcpyDeviceToDevice, stream_of(out)),
            "cudaMemcpyAsync of the linear bias");
    }
    Epilogue epilogue;
    if (bias.defined()) epilogue.bias = &vector;
    const bool fused_gelu = act == LinearActivation::GeluTanh && N % 8 == 0;
    if (fused_gelu) epilogue.gelu_aux = &pre_activation;
    const Tensor& gemm_out = act == LinearActivation::None || fused_gelu ? out : pre_activation;
    if ((epilogue.bias || epilogue.gelu_aux) &&
        gemm_cublaslt_epilogue(gemm_out, a, b, 1.0, 0.0, epilogue)) {
      if (act != LinearActivation::None && !fused_gelu)
        unary(act == LinearActivation::Gelu ? UnaryOp::GeluErf : UnaryOp::GeluTanh, out,
              pre_activation, 0, 0);
      return;
    }
  }
  Backend::linear(out, pre_activation, a, b, bias, act);
}

void CudaBackend::gemm_cublaslt(const Tensor& out, const Tensor& a, const Tensor& b, double alpha,
                                double beta) {
  gemm_cublaslt_epilogue(out, a, b, alpha, beta, {});
}

bool CudaBackend::gemm_cublaslt_epilogue(const Tensor& out, const Tensor& a_in, const Tensor& b_in,
                                         double alpha, double beta, const Epilogue& epilogue) {
  const int64_t batch = out.shape()[0], M = out.shape()[1], N = out.shape()[2];
  const int64_t K = a_in.shape()[2];
  Operand opb = transposed_operand(K, N, b_in.strides()[1], b_in.strides()[2], b_in.strides()[0]);
  Operand opa = transposed_operand(M, K, a_in.strides()[1], a_in.strides()[2], a_in.strides()[0]);
  // A matrix whose rows overlap (a broadcast row, stride 0) has no leading dimension: copy it.
  Tensor a = a_in, b = b_in;
  if (!opa.ok) {
    a = scratch(a_in.shape(), a_in.dtype(), a_in.device());
    copy(a, a_in);
    opa = transposed_operand(M, K, K, 1, M * K);
  }
  if (!opb.ok) {
    b = scratch(b_in.shape(), b_in.dtype(), b_in.device());
    copy(b, b_in);
    opb = transposed_operand(K, N, N, 1, K * N);
  }
  const int device = out.device().index;
  const cudaStream_t stream = stream_of(out);
  const DType dtype = out.dtype();
  const bool tf32 = dtype == DType::Float32 && st::cuda::allow_tf32();
  const cublasLtEpilogue_t epilogue_kind =
      epilogue.gelu_aux
          ? (epilogue.bias ? CUBLASLT_EPILOGUE_GELU_AUX_BIAS : CUBLASLT_EPILOGUE_GELU_AUX)
      : epilogue.bias ? CUBLASLT_EPILOGUE_BIAS
                      : CUBLASLT_EPILOGUE_DEFAULT;

  std::lock_guard lock(blas_mutex);
  DeviceBlas& blas = device_blas()[device];
  if (!blas.handle) {
    check_blas(cublasLtCreate(&blas.handle), "cublasLtCreate");
    check(cudaMalloc(&blas.workspace, kWorkspaceBytes), "cudaMalloc of the cuBLASLt workspace");
  }
  const PlanKey key{device,
                    static_cast<int>(dtype),
                    tf32,
                    M,
                    N,
                    K,
                    batch,
                    opb.transpose,
                    opa.transpose,
                    opb.ld,
                    opa.ld,
                    opb.batch_stride,
                    opa.batch_stride,
                    static_cast<int>(epilogue_kind)};
  auto found = plans().find(key);
  if (found == plans().end()) {
    Plan plan;
    const cudaDataType_t type = data_type(dtype);
    const bool f64 = dtype == DType::Float64;
    const cublasComputeType_t compute = f64    ? CUBLAS_COMPUTE_64F
                                        : tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32
                                               : CUBLAS_COMPUTE_32F;
    check_blas(cublasLtMatmulDescCreate(&plan.desc, compute, f64 ? CUDA_R_64F : CUDA_R_32F),
               "cublasLtMatmulDescCreate");
    const cublasOperation_t ta = opb.transpose ? CUBLAS_OP_T : CUBLAS_OP_N;
    const cublasOperation_t tb = opa.transpose ? CUBLAS_OP_T : CUBLAS_OP_N;
    check_blas(
        cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof(ta)),
        "cublasLtMatmulDescSetAttribute");
    check_blas(
        cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof(tb)),
        "cublasLtMatmulDescSetAttribute");
    check_blas(cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_EPILOGUE,
                                              &epilogue_kind, sizeof(epilogue_kind)),
               "cublasLtMatmulDescSetAttribute");
    if (epilogue.gelu_aux) {
      const int64_t aux_ld = N;
      check_blas(cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD,
                                                &aux_ld, sizeof(aux_ld)),
                 "cublasLtMatmulDescSetAttribute");
    }
    plan.a = make_layout(type, opb.rows, opb.cols, opb.ld, batch, opb.batch_stride);
    plan.b = make_layout(type, opa.rows, opa.cols, opa.ld, batch, opa.batch_stride);
    plan.c = make_layout(type, N, M, N, batch, M * N);
    cublasLtMatmulPreference_t preference;
    check_blas(cublasLtMatmulPreferenceCreate(&preference), "cublasLtMatmulPreferenceCreate");
    const uint64_t workspace = kWorkspaceBytes;
    check_blas(
        cublasLtMatmulPreferenceSetAttribute(preference, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                             &workspace, sizeof(workspace)),
        "cublasLtMatmulPreferenceSetAttribute");
    cublasLtMatmulHeuristicResult_t result{};
    int found_count = 0;
    const cublasStatus_t status =
        cublasLtMatmulAlgoGetHeuristic(blas.handle, plan.desc, plan.a, plan.b, plan.c, plan.c,
                                       preference, 1, &result, &found_count);
    cublasLtMatmulPreferenceDestroy(preference);
    // An epilogue the heuristic cannot serve is not an error: the caller composes it instead.
    if (status != CUBLAS_STATUS_NOT_SUPPORTED || epilogue_kind == CUBLASLT_EPILOGUE_DEFAULT)
      check_blas(status, "cublasLtMatmulAlgoGetHeuristic");
    plan.has_algo = status == CUBLAS_STATUS_SUCCESS && found_count > 0;
    ST_CHECK(plan.has_algo || epilogue_kind != CUBLASLT_EPILOGUE_DEFAULT, NotImplementedError,
             "[matmul] cuBLASLt has no algorithm for ", dtype, " [", batch, ", ", M, ", ", K,
             "] @ [", batch, ", ", K, ", ", N, "]");
    plan.algo = result.algo;
    found = plans().emplace(key, plan).first;
  }
  const Plan& plan = found->second;
  if (!plan.has_algo) return false;
  // The pointers change per call: set on the cached descriptor, under the lock.
  if (epilogue.bias) {
    const void* bias = epilogue.bias->data_ptr();
    check_blas(cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias,
                                              sizeof(bias)),
               "cublasLtMatmulDescSetAttribute");
  }
  if (epilogue.gelu_aux) {
    void* aux = epilogue.gelu_aux->data_ptr();
    check_blas(cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER,
                                              &aux, sizeof(aux)),
               "cublasLtMatmulDescSetAttribute");
  }
  const float alpha32 = static_cast<float>(alpha), beta32 = static_cast<float>(beta);
  const bool f64 = dtype == DType::Float64;
  const void* pa = f64 ? static_cast<const void*>(&alpha) : &alpha32;
  const void* pb = f64 ? static_cast<const void*>(&beta) : &beta32;
  check_blas(cublasLtMatmul(blas.handle, plan.desc, pa, b.data_ptr(), plan.a, a.data_ptr(), plan.b,
                            pb, out.data_ptr(), plan.c, out.data_ptr(), plan.c, &plan.algo,
                            blas.workspace, kWorkspaceBytes, stream),
             "cublasLtMatmul");
  return true;
}

}  // namespace st::backend::cuda
