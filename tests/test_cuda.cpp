// CUDA-specific checks beyond the conformance suites (which run every op on cuda:0 already): the
// three GEMM paths against float64 references, TF32 opt-in, large reductions that take the
// two-pass path, the caching allocator's statistics, trace and caps, events, graph capture. Every
// test skips cleanly on a machine without a CUDA device.

#include <gtest/gtest.h>
#include <spiraltorch/cuda.h>
#include <spiraltorch/optim.h>
#include <spiraltorch/spiraltorch.h>

#include <cmath>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

namespace {

using st::DType;
using st::Tensor;

#define SKIP_WITHOUT_CUDA() \
  if (!st::cuda::is_available()) GTEST_SKIP() << "no CUDA device"

// Values on a grid of 1/8 in [-2, 2]: exact in every float dtype, so references need no rounding
// model.
std::vector<double> grid_values(int64_t n, unsigned seed) {
  std::mt19937 gen(seed);
  std::uniform_int_distribution<int> pick(-16, 16);
  std::vector<double> v(static_cast<size_t>(n));
  for (double& x : v) x = pick(gen) / 8.0;
  return v;
}

Tensor on_cuda(const std::vector<double>& values, const st::Shape& shape, DType dtype) {
  return st::from_buffer(values.data(), shape, {.dtype = DType::Float64})
      .to(st::Device("cuda:0"), dtype);
}

std::vector<double> host_values(const Tensor& t) {
  return t.to(st::kCPU, DType::Float64).contiguous().to_vector<double>();
}

double rel_error(const std::vector<double>& got, const std::vector<double>& want) {
  double num = 0, den = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    if (std::isnan(got[i])) return INFINITY;
    num += (got[i] - want[i]) * (got[i] - want[i]);
    den += want[i] * want[i];
  }
  return std::sqrt(num / std::max(den, 1e-300));
}

// out[b] = a[b] @ w for row-major a [B, M, K] and w [K, N].
std::vector<double> reference_matmul(const std::vector<double>& a, const std::vector<double>& w,
                                     int64_t B, int64_t M, int64_t K, int64_t N) {
  std::vector<double> out(static_cast<size_t>(B * M * N), 0.0);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t m = 0; m < M; ++m)
      for (int64_t k = 0; k < K; ++k) {
        const double x = a[(b * M + m) * K + k];
        for (int64_t n = 0; n < N; ++n) out[(b * M + m) * N + n] += x * w[k * N + n];
      }
  return out;
}

double tolerance(DType dtype) {
  // Inputs are exact; f32 accumulation over K <= 300 and one rounding of the output.
  return dtype == DType::Float32 ? 1e-5 : dtype == DType::Float16 ? 2e-3 : 1e-2;
}

struct GemmCase {
  int64_t B, M, K, N;
  bool transpose_w;  // pass w as a transposed view (unit stride along K)
};

class CudaGemm : public ::testing::TestWithParam<st::cuda::GemmBackend> {
 protected:
  void SetUp() override {
    if (st::cuda::is_available()) {
      saved_ = st::cuda::gemm_backend();
      st::cuda::set_gemm_backend(GetParam());
    }
  }
  void TearDown() override {
    if (st::cuda::is_available()) st::cuda::set_gemm_backend(saved_);
  }
  st::cuda::GemmBackend saved_{};
};

TEST_P(CudaGemm, MatchesFloat64Reference) {
  SKIP_WITHOUT_CUDA();
  const GemmCase cases[] = {{1, 128, 64, 128, false}, {3, 200, 72, 136, false},
                            {2, 33, 40, 17, true},    {1, 1, 24, 64, false},
                            {4, 130, 256, 8, true},   {1, 257, 300, 264, false}};
  for (DType dtype : {DType::Float32, DType::Float16, DType::BFloat16}) {
    for (const GemmCase& c : cases) {
      SCOPED_TRACE(::testing::Message() << st::dtype_name(dtype) << " B=" << c.B << " M=" << c.M
                                        << " K=" << c.K << " N=" << c.N << " wT=" << c.transpose_w);
      const auto a = grid_values(c.B * c.M * c.K, 1);
      const auto w = grid_values(c.K * c.N, 2);
      const Tensor ta = on_cuda(a, {c.B, c.M, c.K}, dtype);
      Tensor tw = on_cuda(w, {c.K, c.N}, dtype);
      if (c.transpose_w) tw = tw.t().contiguous().t();  // same values, column-major storage
      // w broadcasts over the batch: stride 0 in the kernel's batch dim.
      const Tensor out = st::matmul(ta, tw);
      EXPECT_LT(rel_error(host_values(out), reference_matmul(a, w, c.B, c.M, c.K, c.N)),
                tolerance(dtype));
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Cuda, CudaGemm,
                         ::testing::Values(st::cuda::GemmBackend::CublasLt,
                                           st::cuda::GemmBackend::Tiled,
                                           st::cuda::GemmBackend::TensorCore),
                         [](const auto& info) {
                           switch (info.param) {
                             case st::cuda::GemmBackend::CublasLt: return std::string("cublaslt");
                             case st::cuda::GemmBackend::Tiled: return std::string("tiled");
                             default: return std::string("tensorcore");
                           }
                         });

TEST(Cuda, Tf32IsOptIn) {
  SKIP_WITHOUT_CUDA();
  // Inputs with more than 10 significant bits: TF32 rounding shows, f32 does not.
  std::mt19937 gen(3);
  std::uniform_real_distribution<double> dist(-1, 1);
  const int64_t n = 256;
  std::vector<double> a(n * n), w(n * n);
  for (double& x : a) x = static_cast<float>(dist(gen));
  for (double& x : w) x = static_cast<float>(dist(gen));
  const auto want = reference_matmul(a, w, 1, n, n, n);
  const Tensor ta = on_cuda(a, {n, n}, DType::Float32), tw = on_cuda(w, {n, n}, DType::Float32);
  const st::cuda::GemmBackend saved = st::cuda::gemm_backend();
  st::cuda::set_gemm_backend(st::cuda::GemmBackend::CublasLt);
  ASSERT_FALSE(st::cuda::allow_tf32());
  const double exact = rel_error(host_values(st::matmul(ta, tw)), want);
  st::cuda::set_allow_tf32(true);
  const double tf32 = rel_error(host_values(st::matmul(ta, tw)), want);
  st::cuda::set_allow_tf32(false);
  st::cuda::set_gemm_backend(saved);
  EXPECT_LT(exact, 1e-5);
  EXPECT_LT(tf32, 1e-2);
  EXPECT_GT(tf32, 1e-5) << "TF32 should round the inputs to 10 mantissa bits";
}

TEST(Cuda, LargeReductionsTakeTheTwoPassPath) {
  SKIP_WITHOUT_CUDA();
  const int64_t rows = 3, cols = 3'000'001;
  const auto v = grid_values(rows * cols, 4);
  for (DType dtype : {DType::Float32, DType::BFloat16}) {
    const Tensor t = on_cuda(v, {rows, cols}, dtype);
    std::vector<double> row_sums(rows, 0.0), col_sums(cols, 0.0);
    double total = 0, biggest = -INFINITY;
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c) {
        const double x = v[r * cols + c];
        row_sums[r] += x;
        col_sums[c] += x;
        total += x;
        biggest = std::max(biggest, x);
      }
    // Sums accumulate in f64; what remains is one rounding of each output to the dtype.
    const double out_tol = dtype == DType::Float32 ? 1e-6 : 8e-3;
    EXPECT_NEAR(t.sum().item<double>(), total, out_tol * std::abs(total) + 1e-6);
    EXPECT_LT(rel_error(host_values(t.sum({1})), row_sums), out_tol);
    EXPECT_LT(rel_error(host_values(t.sum({0})), col_sums), out_tol);
    EXPECT_EQ(st::amax(t).item<double>(), biggest);
  }
}

TEST(Cuda, RowKernelsOnLongRows) {
  SKIP_WITHOUT_CUDA();
  const int64_t rows = 6;
  // 4096: vector loads from registers; 4100: element loads from registers; 9000: streamed rows.
  for (int64_t cols : {int64_t{4096}, int64_t{4100}, int64_t{9000}}) {
    const auto v = grid_values(rows * cols, 6);
    const auto w = grid_values(cols, 7), b = grid_values(cols, 8);
    std::vector<double> soft(v.size()), norm(v.size());
    for (int64_t r = 0; r < rows; ++r) {
      const double* x = v.data() + r * cols;
      double m = -INFINITY, s = 0, mean = 0, var = 0;
      for (int64_t c = 0; c < cols; ++c) m = std::max(m, x[c]), mean += x[c] / cols;
      for (int64_t c = 0; c < cols; ++c)
        s += std::exp(x[c] - m), var += (x[c] - mean) * (x[c] - mean) / cols;
      for (int64_t c = 0; c < cols; ++c) {
        soft[r * cols + c] = std::exp(x[c] - m) / s;
        norm[r * cols + c] = (x[c] - mean) / std::sqrt(var + 1e-5) * w[c] + b[c];
      }
    }
    for (DType dtype : {DType::Float32, DType::BFloat16}) {
      SCOPED_TRACE(::testing::Message() << st::dtype_name(dtype) << " cols=" << cols);
      const double tol = dtype == DType::Float32 ? 1e-5 : 1e-2;
      const Tensor x = on_cuda(v, {rows, cols}, dtype);
      EXPECT_LT(rel_error(host_values(st::softmax(x, -1)), soft), tol);
      EXPECT_LT(rel_error(host_values(st::layer_norm(x, {cols}, on_cuda(w, {cols}, dtype),
                                                     on_cuda(b, {cols}, dtype), 1e-5)),
                          norm),
                tol);
    }
  }
}

// Losses of a small MLP trained with SGD, one step at a time, on `device` from the same start.
std::vector<double> train_losses(const st::Device& device, int steps) {
  st::manual_seed(5);
  const Tensor x_cpu = st::randn({256, 16});
  const Tensor w_true = st::randn({16, 4});
  const Tensor y_cpu = st::argmax(st::matmul(x_cpu, w_true), 1);
  std::vector<Tensor> params = {st::randn({16, 32}) * 0.3, st::zeros({32}),
                                st::randn({32, 4}) * 0.3, st::zeros({4})};
  for (Tensor& p : params) p = p.to(device).detach().set_requires_grad(true);
  const Tensor x = x_cpu.to(device), y = y_cpu.to(device);
  std::vector<double> losses;
  for (int step = 0; step < steps; ++step) {
    const Tensor hidden = st::relu(st::matmul(x, params[0]) + params[1]);
    const Tensor loss = st::cross_entropy(st::matmul(hidden, params[2]) + params[3], y);
    loss.backward();
    losses.push_back(loss.item<double>());
    st::NoGradGuard no_grad;
    for (Tensor& p : params) {
      p.sub_(p.grad() * 0.5);
      p.zero_grad();
    }
  }
  return losses;
}

TEST(Cuda, TrainingFollowsTheCpuLossCurve) {
  SKIP_WITHOUT_CUDA();
  const std::vector<double> cpu = train_losses(st::kCPU, 60);
  const std::vector<double> gpu = train_losses(st::Device("cuda:0"), 60);
  ASSERT_EQ(cpu.size(), gpu.size());
  EXPECT_LT(cpu.back(), 0.8 * cpu.front()) << "the model should learn";
  for (size_t i = 0; i < cpu.size(); ++i)
    EXPECT_NEAR(gpu[i], cpu[i], 1e-4 * std::max(1.0, cpu[i])) << "step " << i;
}

TEST(CudaPool, StatisticsFollowTensors) {
  SKIP_WITHOUT_CUDA();
  st::cuda::empty_cache();
  const st::MemoryStats before = st::cuda::memory_stats(0);
  {
    Tensor t = st::empty({1 << 20}, {.dtype = DType::Float32, .device = st::Device("cuda:0")});
    const st::MemoryStats during = st::cuda::memory_stats(0);
    EXPECT_EQ(during.allocated_bytes - before.allocated_bytes, size_t{4} << 20);
    EXPECT_GE(during.reserved_bytes, during.allocated_bytes);
    EXPECT_GE(during.peak_allocated_bytes, during.allocated_bytes);
  }
  const st::MemoryStats after = st::cuda::memory_stats(0);
  EXPECT_EQ(after.allocated_bytes, before.allocated_bytes);
  {
    // The freed block is reused for a tensor of the same size class.
    Tensor again = st::empty({1 << 20}, {.dtype = DType::Float32, .device = st::Device("cuda:0")});
    EXPECT_EQ(st::cuda::memory_stats(0).cache_hits, after.cache_hits + 1);
  }
  st::cuda::empty_cache();
  EXPECT_EQ(st::cuda::memory_stats(0).cached_bytes, 0u);
}

TEST(CudaPool, OutOfMemoryIsAnErrorWithSizes) {
  SKIP_WITHOUT_CUDA();
  try {
    st::empty({int64_t{1} << 46}, {.dtype = DType::Float32, .device = st::Device("cuda:0")});
    ADD_FAILURE() << "expected OutOfMemoryError";
  } catch (const st::OutOfMemoryError& e) {
    EXPECT_NE(std::string(e.what()).find(std::to_string(uint64_t{1} << 48)), std::string::npos)
        << e.what();
  }
  EXPECT_EQ(st::ones({4}, {.device = st::Device("cuda:0")}).sum().item<double>(), 4.0);
}

// Run by CTest with ST_CUDA_POOL_TRACE=1 (see tests/CMakeLists.txt); skipped otherwise.
TEST(CudaPool, TraceLogsAllocationsAndReleases) {
  SKIP_WITHOUT_CUDA();
  if (!std::getenv("ST_CUDA_POOL_TRACE")) GTEST_SKIP() << "needs ST_CUDA_POOL_TRACE=1";
  ::testing::internal::CaptureStderr();
  { Tensor t = st::empty({1000}, {.device = st::Device("cuda:0")}); }
  const std::string log = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(log.find("[cuda:0 pool] alloc 4000 B as 4096 B"), std::string::npos) << log;
  EXPECT_NE(log.find("[cuda:0 pool] free 4096 B"), std::string::npos) << log;
}

// Run by CTest with ST_CUDA_POOL_MAX_BYTES=1M and ST_CUDA_POOL_MAX_PER_CLASS=1.
TEST(CudaPool, CapsFromTheEnvironment) {
  SKIP_WITHOUT_CUDA();
  if (!std::getenv("ST_CUDA_POOL_MAX_BYTES")) GTEST_SKIP() << "needs ST_CUDA_POOL_MAX_BYTES";
  st::cuda::empty_cache();
  const st::Device cuda("cuda:0");
  { Tensor big = st::empty({1 << 20}, {.device = cuda}); }  // 4 MiB: over the 1 MiB cap
  EXPECT_EQ(st::cuda::memory_stats(0).cached_bytes, 0u);
  {
    Tensor a = st::empty({1000}, {.device = cuda});
    Tensor b = st::empty({1000}, {.device = cuda});
  }
  // Two 4 KiB blocks of one class freed; the per-class cap keeps one.
  EXPECT_EQ(st::cuda::memory_stats(0).cached_bytes, 4096u);
}

TEST(CudaEvent, NeedsADevice) {
  if (!st::cuda::is_available()) {
    EXPECT_THROW(st::cuda::Event(), st::DeviceError);
    return;
  }
  EXPECT_THROW((void)st::cuda::Event(st::cuda::device_count()), st::DeviceError);
  st::cuda::Event event;
  EXPECT_THROW(event.wait(st::cuda::device_count()), st::DeviceError);
}

TEST(CudaEvent, TimesTheWorkBetweenTwoRecords) {
  SKIP_WITHOUT_CUDA();
  const st::Device cuda("cuda:0");
  const Tensor a = st::randn({2048, 2048}, {.device = cuda});
  st::cuda::Event start, end;
  EXPECT_TRUE(end.query()) << "an event never recorded has nothing to wait for";
  EXPECT_THROW(start.elapsed_time(end), st::ValueError);
  // One GEMM, then ten: the second span must take several times longer than the first.
  auto span_ms = [&](int gemms) {
    st::cuda::synchronize();
    start.record();
    Tensor c = a;
    for (int i = 0; i < gemms; ++i) c = st::matmul(a, c) * (1.0 / 2048);
    end.record();
    end.synchronize();
    EXPECT_TRUE(end.query());
    return start.elapsed_time(end);
  };
  span_ms(1);  // warm-up: plans and kernels loaded
  const double one = span_ms(1), ten = span_ms(10);
  EXPECT_GT(one, 0.0);
  EXPECT_GT(ten, 3 * one) << "one GEMM " << one << " ms, ten " << ten << " ms";
}

TEST(CudaEvent, WaitOrdersWorkOnAStream) {
  SKIP_WITHOUT_CUDA();
  const st::Device cuda("cuda:0");
  Tensor x = st::ones({1 << 20}, {.device = cuda});
  for (int i = 0; i < 4; ++i) x = x + x;
  st::cuda::Event done;
  done.record();
  // Every device's stream waits for the mark; work queued after it sees the finished sums.
  for (int d = 0; d < st::cuda::device_count(); ++d) done.wait(d);
  EXPECT_EQ(x.sum().item<double>(), 16.0 * (1 << 20));
  done.synchronize();
  EXPECT_TRUE(done.query());
}

TEST(CudaGraph, ReplaysTheCapturedWorkOnNewInput) {
  SKIP_WITHOUT_CUDA();
  const st::Device cuda("cuda:0");
  const std::vector<double> first = grid_values(1000, 1), second = grid_values(1000, 2);
  Tensor x = on_cuda(first, {10, 100}, DType::Float32);
  st::cuda::Graph graph;
  graph.capture_begin();
  EXPECT_TRUE(st::cuda::is_capturing(0));
  const Tensor y = st::relu(x * 2.0 - 1.0).sum({1});
  graph.capture_end();
  EXPECT_FALSE(st::cuda::is_capturing(0));
  ASSERT_TRUE(graph.captured());
  for (const auto* input : {&first, &second}) {
    x.copy_(on_cuda(*input, {10, 100}, DType::Float32));
    graph.replay();
    const std::vector<double> got = host_values(y);
    for (int r = 0; r < 10; ++r) {
      double want = 0;
      for (int c = 0; c < 100; ++c) want += std::max(0.0, 2 * (*input)[r * 100 + c] - 1);
      EXPECT_EQ(got[r], want) << "row " << r;
    }
  }
  graph.reset();
  EXPECT_FALSE(graph.captured());
  EXPECT_THROW(graph.replay(), st::ValueError);
}

// A small classifier (linear, GELU, dropout, linear, cross entropy) trained with AdamW under a
// warmup-cosine schedule, each step eager, or from step `warmup` on replayed from one graph.
struct TrainingRun {
  std::vector<double> losses;
  std::vector<std::vector<double>> params;
  int64_t steps_counted = 0;
};

TrainingRun train_mlp(bool graphed, int steps, int warmup) {
  const st::Device cuda("cuda:0");
  st::manual_seed(21);
  const Tensor w_true = st::randn({16, 4});
  std::vector<Tensor> xs, ys;
  for (int i = 0; i < steps; ++i) {
    xs.push_back(st::randn({32, 16}));
    ys.push_back(st::argmax(st::matmul(xs.back(), w_true), 1).to(cuda));
    xs.back() = xs.back().to(cuda);
  }
  std::vector<Tensor> params = {st::randn({16, 64}) * 0.2, st::zeros({64}),
                                st::randn({64, 4}) * 0.2, st::zeros({4})};
  for (Tensor& p : params) p = p.to(cuda).detach().set_requires_grad(true);
  st::optim::AdamW opt(params, {.lr = 1e-2, .weight_decay = 0.1});
  st::optim::WarmupCosineLR schedule(opt, 3, steps);
  const auto step = [&](const Tensor& x, const Tensor& y) {
    opt.zero_grad();
    const Tensor hidden = st::dropout(st::gelu(st::matmul(x, params[0]) + params[1]), 0.25);
    const Tensor loss = st::cross_entropy(st::matmul(hidden, params[2]) + params[3], y);
    loss.backward();
    opt.step();
    return loss.detach();
  };

  TrainingRun run;
  Tensor static_x = st::empty({32, 16}, {.device = cuda});
  Tensor static_y = st::empty({32}, {.dtype = DType::Int64, .device = cuda});
  Tensor static_loss;
  st::cuda::Graph graph;
  for (int i = 0; i < steps; ++i) {
    if (!graphed || i < warmup) {
      run.losses.push_back(step(xs[i], ys[i]).item<double>());
    } else {
      static_x.copy_(xs[i]);
      static_y.copy_(ys[i]);
      if (!graph.captured()) {
        graph.capture_begin();
        static_loss = step(static_x, static_y);
        graph.capture_end();
      }
      graph.replay();
      run.losses.push_back(static_loss.item<double>());
    }
    schedule.step();  // host work: outside the captured step
  }
  for (const Tensor& p : params) run.params.push_back(host_values(p));
  run.steps_counted = opt.state_dict().at("0.step").item<int64_t>();
  return run;
}

TEST(CudaGraph, TrainingStepReplaysAsEagerSteps) {
  SKIP_WITHOUT_CUDA();
  constexpr int kSteps = 10, kWarmup = 2;
  const TrainingRun eager = train_mlp(false, kSteps, kWarmup);
  const TrainingRun graphed = train_mlp(true, kSteps, kWarmup);
  EXPECT_LT(eager.losses.back(), eager.losses.front()) << "the model should learn";
  ASSERT_EQ(graphed.losses.size(), eager.losses.size());
  for (size_t i = 0; i < eager.losses.size(); ++i)
    EXPECT_NEAR(graphed.losses[i], eager.losses[i], 1e-5 * std::abs(eager.losses[i]))
        << "step " << i;
  for (size_t p = 0; p < eager.params.size(); ++p)
    EXPECT_LT(rel_error(graphed.params[p], eager.params[p]), 1e-5) << "parameter " << p;
  EXPECT_EQ(eager.steps_counted, kSteps);
  EXPECT_EQ(graphed.steps_counted, kSteps) << "each replay counts a step, the capture none";
}

TEST(CudaGraph, RandomOpsDrawWhatEagerCodeWouldDraw) {
  SKIP_WITHOUT_CUDA();
  const st::Device cuda("cuda:0");
  st::manual_seed(7);
  const std::vector<double> eager_first = host_values(st::rand({1000}, {.device = cuda}));
  const std::vector<double> eager_second = host_values(st::rand({1000}, {.device = cuda}));
  st::manual_seed(7);
  st::cuda::Graph graph;
  graph.capture_begin();
  const Tensor drawn = st::rand({1000}, {.device = cuda});
  graph.capture_end();
  graph.replay();
  EXPECT_EQ(host_values(drawn), eager_first);
  graph.replay();
  EXPECT_EQ(host_values(drawn), eager_second);
}

TEST(CudaGraph, HostWaitsInsideACaptureAreErrors) {
  SKIP_WITHOUT_CUDA();
  const st::Device cuda("cuda:0");
  const Tensor x = st::ones({4}, {.device = cuda});
  st::cuda::Graph graph;
  graph.capture_begin();
  try {
    (x * 2.0).sum().item<double>();
    ADD_FAILURE() << "expected DeviceError";
  } catch (const st::DeviceError& e) {
    EXPECT_NE(std::string(e.what()).find("is capturing a graph"), std::string::npos) << e.what();
  }
  EXPECT_THROW(st::cuda::synchronize(), st::DeviceError);
  st::cuda::Graph other;
  EXPECT_THROW(other.capture_begin(), st::ValueError) << "one capture per device";
  graph.capture_abort();
  EXPECT_FALSE(graph.captured());
  EXPECT_EQ((x * 3.0).sum().item<double>(), 12.0) << "the device works after an aborted capture";
}

TEST(CudaGraph, OptimizerStateMustExistBeforeCapture) {
  SKIP_WITHOUT_CUDA();
  const st::Device cuda("cuda:0");
  Tensor w = st::ones({8}, {.device = cuda}).set_requires_grad(true);
  st::optim::Adam opt({w});
  st::cuda::Graph graph;
  graph.capture_begin();
  (w * w).sum().backward();
  try {
    opt.step();
    ADD_FAILURE() << "expected ValueError";
  } catch (const st::ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("run one step before capturing"), std::string::npos)
        << e.what();
  }
  graph.capture_abort();
}

}  // namespace
