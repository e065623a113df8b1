// CPU measurements of the costs that bound eager training: the fixed overhead of one tiny op, what
// autograd adds per op, GEMM throughput next to OpenBLAS called directly, and the row-wise and
// elementwise kernels against copy bandwidth. See RESULTS.md.

#include <benchmark/benchmark.h>
#include <cblas.h>
#include <omp.h>

#include <string>
#include <vector>

#include "spiraltorch/spiraltorch.h"

namespace {

constexpr int kChainLength = 100;
constexpr int kGemmThreads = 2;

// One add of two 4-element tensors: allocation, dispatch and the kernel call, nothing to compute.
void BM_TinyAdd(benchmark::State& state) {
  const st::Tensor a = st::ones({4});
  const st::Tensor b = st::ones({4});
  for (auto _ : state) {
    st::Tensor c = st::add(a, b);
    benchmark::DoNotOptimize(c.data_ptr());
  }
}
BENCHMARK(BM_TinyAdd);

// The same add through an in-place op: no output allocation.
void BM_TinyAddInPlace(benchmark::State& state) {
  st::Tensor a = st::zeros({4});
  const st::Tensor b = st::ones({4});
  for (auto _ : state) {
    a.add_(b);
    benchmark::DoNotOptimize(a.data_ptr());
  }
}
BENCHMARK(BM_TinyAddInPlace);

// A float tensor times a number: one fused x * alpha + beta kernel, no 0-dim tensor made.
void BM_TinyMulScalar(benchmark::State& state) {
  const st::Tensor a = st::ones({4});
  for (auto _ : state) {
    st::Tensor c = a * 1.0001;
    benchmark::DoNotOptimize(c.data_ptr());
  }
}
BENCHMARK(BM_TinyMulScalar);

// kChainLength small elementwise ops in a row, alternating mul and add so that each one's backward
// rule is cheap; the counter reports time per op.
st::Tensor chain(const st::Tensor& x) {
  st::Tensor y = x;
  for (int i = 0; i < kChainLength; i += 2) y = (y * 1.0001) + 0.5;
  return y;
}

void set_per_op_counter(benchmark::State& state) {
  state.counters["per_op"] = benchmark::Counter(
      kChainLength, benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
}

// The chain's forward alone with no graph: the floor the autograd cost is measured against.
void BM_ChainForwardNoGrad(benchmark::State& state) {
  const st::Tensor x = st::randn({4});
  st::NoGradGuard no_grad;
  for (auto _ : state) {
    st::Tensor y = chain(x);
    benchmark::DoNotOptimize(y.data_ptr());
  }
  set_per_op_counter(state);
}
BENCHMARK(BM_ChainForwardNoGrad);

// The chain's forward recording the graph, then backward to the leaf.
void BM_ChainForwardBackward(benchmark::State& state) {
  st::Tensor x = st::randn({4});
  x.set_requires_grad(true);
  for (auto _ : state) {
    chain(x).sum().backward();
    x.zero_grad();
  }
  set_per_op_counter(state);
}
BENCHMARK(BM_ChainForwardBackward);

void set_gemm_counter(benchmark::State& state, int64_t n) {
  state.counters["FLOP/s"] = benchmark::Counter(
      2.0 * static_cast<double>(n) * static_cast<double>(n) * static_cast<double>(n),
      benchmark::Counter::kIsIterationInvariantRate);
}

// C = A @ B, square float32, through the library.
void BM_MatmulF32(benchmark::State& state) {
  const int64_t n = state.range(0);
  const st::Tensor a = st::randn({n, n});
  const st::Tensor b = st::randn({n, n});
  for (auto _ : state) {
    st::Tensor c = st::matmul(a, b);
    benchmark::DoNotOptimize(c.data_ptr());
  }
  set_gemm_counter(state, n);
}
BENCHMARK(BM_MatmulF32)->Arg(2048)->Unit(benchmark::kMillisecond)->UseRealTime();

// The same product with cblas_sgemm on buffers the caller owns: the speed of light on this machine.
void BM_CblasSgemm(benchmark::State& state) {
  const int64_t n = state.range(0);
  const std::vector<float> a = st::randn({n, n}).to_vector<float>();
  const std::vector<float> b = st::randn({n, n}).to_vector<float>();
  std::vector<float> c(static_cast<size_t>(n * n));
  const auto dim = static_cast<int>(n);
  for (auto _ : state) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, dim, dim, dim, 1.0f, a.data(), dim,
                b.data(), dim, 0.0f, c.data(), dim);
    benchmark::DoNotOptimize(c.data());
    benchmark::ClobberMemory();
  }
  set_gemm_counter(state, n);
}
BENCHMARK(BM_CblasSgemm)->Arg(2048)->Unit(benchmark::kMillisecond)->UseRealTime();

// Row-wise and elementwise kernels on a [4096, 1024] float32 tensor (16 MiB). Each reports the
// bytes it must move (read input, write output; cross_entropy's backward also reads the logits
// again) as bytes/s, read against BM_Copy, the memory floor.
constexpr int64_t kRows = 4096, kCols = 1024;
constexpr double kTensorBytes = kRows * kCols * 4.0;

void set_bytes(benchmark::State& state, double bytes_per_iteration) {
  state.counters["bytes/s"] =
      benchmark::Counter(bytes_per_iteration, benchmark::Counter::kIsIterationInvariantRate);
}

void BM_Copy(benchmark::State& state) {
  const st::Tensor x = st::randn({kRows, kCols});
  for (auto _ : state) benchmark::DoNotOptimize(x.clone().data_ptr());
  set_bytes(state, 2 * kTensorBytes);
}
BENCHMARK(BM_Copy)->Unit(benchmark::kMicrosecond)->UseRealTime();

// contiguous() of a transposed view: the same bytes as a copy, read across rows.
void BM_TransposedCopy(benchmark::State& state) {
  const st::Tensor x = st::randn({kCols, kRows}).t();
  for (auto _ : state) benchmark::DoNotOptimize(x.contiguous().data_ptr());
  set_bytes(state, 2 * kTensorBytes);
}
BENCHMARK(BM_TransposedCopy)->Unit(benchmark::kMicrosecond)->UseRealTime();

void BM_Gelu(benchmark::State& state) {
  const st::Tensor x = st::randn({kRows, kCols});
  for (auto _ : state) benchmark::DoNotOptimize(st::gelu(x).data_ptr());
  set_bytes(state, 2 * kTensorBytes);
}
BENCHMARK(BM_Gelu)->Unit(benchmark::kMicrosecond)->UseRealTime();

void BM_Softmax(benchmark::State& state) {
  const st::Tensor x = st::randn({kRows, kCols});
  for (auto _ : state) benchmark::DoNotOptimize(st::softmax(x, -1).data_ptr());
  set_bytes(state, 2 * kTensorBytes);
}
BENCHMARK(BM_Softmax)->Unit(benchmark::kMicrosecond)->UseRealTime();

// Forward and backward of the fused loss: logits read twice, their gradient written once.
void BM_CrossEntropy(benchmark::State& state) {
  st::Tensor logits = st::randn({kRows, kCols});
  logits.set_requires_grad(true);
  const st::Tensor target = st::argmax(st::randn({kRows, kCols}), -1);
  for (auto _ : state) {
    st::cross_entropy(logits, target).backward();
    benchmark::DoNotOptimize(logits.grad().data_ptr());
  }
  set_bytes(state, 3 * kTensorBytes);
}
BENCHMARK(BM_CrossEntropy)->Unit(benchmark::kMicrosecond)->UseRealTime();

}  // namespace

int main(int argc, char** argv) {
  // Both the library's OpenMP loops and OpenBLAS (which keeps its own pool) run on kGemmThreads.
  omp_set_num_threads(kGemmThreads);
  openblas_set_num_threads(kGemmThreads);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::AddCustomContext("spiraltorch", st::kVersion);
  benchmark::AddCustomContext("threads", std::to_string(kGemmThreads));
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
