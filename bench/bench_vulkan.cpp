// Vulkan backend figures for bench/RESULTS.md: GEMM f32 TFLOP/s, copy, add, transposed copy,
// softmax and layer_norm GB/s. A plain program (no Google Benchmark) so that it runs on a GPU
// machine with only the library beside it. Each figure is the best of several timed rounds after a
// warm-up; reading one value back makes the host wait for the device, so a round's time covers all
// its work.
//
//   bench_vulkan [device]     (default vulkan; `cuda` gives the CUDA backend's figures, same cases)

#include <spiraltorch/spiraltorch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <string>

namespace {

double best_seconds(int reps, const std::function<st::Tensor()>& run) {
  run().flatten().select(0, 0).item();  // warm-up: pipelines built, memory pooled
  double best = 1e30;
  for (int round = 0; round < 3; ++round) {
    const auto start = std::chrono::steady_clock::now();
    st::Tensor last;
    for (int i = 0; i < reps; ++i) last = run();
    last.flatten().select(0, 0).item();
    const std::chrono::duration<double> took = std::chrono::steady_clock::now() - start;
    best = std::min(best, took.count() / reps);
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  const st::Device vk(argc > 1 ? argv[1] : "vulkan");
  const st::TensorOptions f32{st::DType::Float32, vk};
  const std::string name = vk.str();
  st::manual_seed(0);

  for (int64_t n : {1024, 4096}) {
    st::Tensor a = st::randn({n, n}, f32), b = st::randn({n, n}, f32);
    const double s = best_seconds(10, [&] { return st::matmul(a, b); });
    std::printf("%s gemm_f32 n=%lld: %.3f ms, %.2f TFLOP/s\n", name.c_str(),
                static_cast<long long>(n), s * 1e3, 2.0 * n * n * n / s / 1e12);
  }
  {
    const int64_t numel = int64_t{1} << 26;  // 256 MiB of f32
    st::Tensor x = st::randn({numel}, f32), y = st::empty({numel}, f32);
    const double s = best_seconds(20, [&] {
      y.copy_(x);
      return y;
    });
    std::printf("%s copy_f32 256MiB: %.3f ms, %.1f GB/s (read + write)\n", name.c_str(), s * 1e3,
                2.0 * numel * 4 / s / 1e9);
    const double add_s = best_seconds(20, [&] { return x + y; });
    std::printf("%s add_f32 256MiB: %.3f ms, %.1f GB/s (2 reads + write)\n", name.c_str(),
                add_s * 1e3, 3.0 * numel * 4 / add_s / 1e9);
    st::Tensor xt = st::randn({8192, 8192}, f32);
    const double st_s = best_seconds(10, [&] { return xt.t().contiguous(); });
    std::printf("%s transpose_copy_f32 8192x8192: %.3f ms, %.1f GB/s\n", name.c_str(), st_s * 1e3,
                2.0 * 8192 * 8192 * 4 / st_s / 1e9);
  }
  for (int64_t cols : {1024, 8192}) {
    const int64_t rows = (int64_t{1} << 26) / cols;
    st::Tensor x = st::randn({rows, cols}, f32);
    const double s = best_seconds(10, [&] { return st::softmax(x, -1); });
    std::printf("%s softmax_f32 %lldx%lld: %.3f ms, %.1f GB/s\n", name.c_str(),
                static_cast<long long>(rows), static_cast<long long>(cols), s * 1e3,
                2.0 * rows * cols * 4 / s / 1e9);
    const double ln_s = best_seconds(10, [&] { return st::layer_norm(x, {cols}); });
    std::printf("%s layer_norm_f32 %lldx%lld: %.3f ms, %.1f GB/s\n", name.c_str(),
                static_cast<long long>(rows), static_cast<long long>(cols), ln_s * 1e3,
                2.0 * rows * cols * 4 / ln_s / 1e9);
  }
  return 0;
}
