// CUDA benchmarks: GEMM TFLOP/s of the three paths (cuBLASLt, tiled, tensor cores) and the GB/s of
// the memory-bound kernels (copy, add, sum, softmax, layer_norm). One line per case on stdout,
// "name value unit", read by bench/torch_compare.py which times the same cases in PyTorch.
//
// Each case: warm-up, then 5 repetitions of a timed loop between device synchronizations; the
// median repetition is reported. Bytes count each input read once and each output written once.

#include <spiraltorch/cuda.h>
#include <spiraltorch/spiraltorch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

namespace {

double median_seconds(const std::function<void()>& body, int iters) {
  for (int i = 0; i < 2; ++i) body();
  st::cuda::synchronize();
  std::vector<double> reps;
  for (int r = 0; r < 5; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < iters; ++i) body();
    st::cuda::synchronize();
    const auto t1 = std::chrono::steady_clock::now();
    reps.push_back(std::chrono::duration<double>(t1 - t0).count() / iters);
  }
  std::sort(reps.begin(), reps.end());
  return reps[reps.size() / 2];
}

const char* short_name(st::DType d) {
  return d == st::DType::Float32 ? "f32" : d == st::DType::BFloat16 ? "bf16" : "f16";
}

}  // namespace

int main(int argc, char** argv) {
  if (!st::cuda::is_available()) {
    std::printf("no CUDA device\n");
    return 0;
  }
  const bool quick = argc > 1 && std::string(argv[1]) == "--quick";
  const st::Device cuda("cuda:0");
  st::manual_seed(0);

  // GEMM: C = A @ B, square, random normal inputs.
  const std::vector<int64_t> sizes =
      quick ? std::vector<int64_t>{1024} : std::vector<int64_t>{4096, 8192};
  for (int64_t n : sizes) {
    for (st::DType dtype : {st::DType::Float32, st::DType::BFloat16, st::DType::Float16}) {
      const st::Tensor a = st::randn({n, n}, {.dtype = dtype, .device = cuda});
      const st::Tensor b = st::randn({n, n}, {.dtype = dtype, .device = cuda});
      for (auto path : {st::cuda::GemmBackend::CublasLt, st::cuda::GemmBackend::Tiled,
                        st::cuda::GemmBackend::TensorCore}) {
        if (path == st::cuda::GemmBackend::TensorCore && dtype == st::DType::Float32) continue;
        st::cuda::set_gemm_backend(path);
        const char* name = path == st::cuda::GemmBackend::CublasLt ? "cublaslt"
                           : path == st::cuda::GemmBackend::Tiled  ? "tiled"
                                                                   : "tensorcore";
        const int iters = path == st::cuda::GemmBackend::Tiled ? 1 : (n >= 8192 ? 5 : 20);
        const double s = median_seconds([&] { st::matmul(a, b); }, iters);
        std::printf("gemm_%s_%s_%ld %.1f TFLOP/s\n", name, short_name(dtype), static_cast<long>(n),
                    2.0 * n * n * n / s / 1e12);
      }
      st::cuda::set_gemm_backend(st::cuda::GemmBackend::CublasLt);
    }
  }

  // Memory-bound kernels on 2^26 elements (256 MiB in f32): far beyond the 60 MB L2.
  const int64_t rows = quick ? 1024 : 16384, cols = 4096, n = rows * cols;
  for (st::DType dtype : {st::DType::Float32, st::DType::BFloat16}) {
    const double item = static_cast<double>(st::dtype_size(dtype));
    const st::Tensor x = st::randn({rows, cols}, {.dtype = dtype, .device = cuda});
    const st::Tensor y = st::randn({rows, cols}, {.dtype = dtype, .device = cuda});
    const st::Tensor w = st::randn({cols}, {.dtype = dtype, .device = cuda});
    const st::Tensor bias = st::randn({cols}, {.dtype = dtype, .device = cuda});
    const auto report = [&](const char* op, double bytes, const std::function<void()>& body) {
      const double s = median_seconds(body, 20);
      std::printf("%s_%s %.0f GB/s\n", op, short_name(dtype), bytes / s / 1e9);
    };
    report("copy", 2 * n * item, [&] { x.clone(); });
    report("add", 3 * n * item, [&] { st::add(x, y); });
    report("sum", n * item, [&] { x.sum(); });
    report("softmax", 2 * n * item, [&] { st::softmax(x, -1); });
    report("layer_norm", 2 * n * item, [&] { st::layer_norm(x, {cols}, w, bias, 1e-5); });
  }
  const st::MemoryStats m = st::cuda::memory_stats(0);
  std::printf("pool_peak_allocated %.0f MiB\n", m.peak_allocated_bytes / 1048576.0);
  return 0;
}
