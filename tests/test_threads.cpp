// Thread safety: ops, autograd and checkpoints on separate tensors from several std::threads at
// once give the results they give alone (float64 references); threads may share read-only inputs.
// What is not safe (one graph or one .grad from two threads at once) is documented in the README.

#include <spiraltorch/serialize.h>

#include <filesystem>
#include <thread>

#include "reference.h"

namespace st_test {
namespace {

constexpr int kThreads = 4;
constexpr int kIterations = 25;

struct Case {
  NDArray a, b;     // inputs
  NDArray y, grad;  // tanh(a @ b) and the gradient of sum(tanh(a @ b)^2) with respect to a
};

Case make_case(int seed, const NDArray& shared_b) {
  std::mt19937 rng(seed);
  Case c{uniform_random({16, 32}, rng), shared_b, {}, {}};
  NDArray ab = matmul(c.a, c.b);
  c.y = ab;
  NDArray dy(ab.shape);
  for (int64_t i = 0; i < ab.numel(); ++i) {
    c.y[i] = std::tanh(ab[i]);
    dy[i] = 2 * c.y[i] * (1 - c.y[i] * c.y[i]);
  }
  NDArray bt = transpose(c.b, 0, 1);
  c.grad = matmul(dy, bt);
  return c;
}

TEST(Threads, OpsAndBackwardOnSeparateTensors) {
  std::mt19937 rng(99);
  const NDArray b_values = uniform_random({32, 8}, rng);
  const Tensor shared_b = make_tensor(b_values, DType::Float64);  // read by every thread
  std::vector<Case> cases;
  for (int t = 0; t < kThreads; ++t) cases.push_back(make_case(t, b_values));

  std::vector<std::vector<Tensor>> ys(kThreads), grads(kThreads);
  std::vector<std::string> errors(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      try {
        for (int i = 0; i < kIterations; ++i) {
          Tensor a = make_tensor(cases[t].a, DType::Float64).set_requires_grad();
          Tensor y = st::tanh(st::matmul(a, shared_b));
          st::sum(st::mul(y, y)).backward();
          ys[t].push_back(y.detach());
          grads[t].push_back(a.grad());
        }
      } catch (const std::exception& e) {
        errors[t] = e.what();
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < kThreads; ++t) {
    SCOPED_TRACE("thread " + std::to_string(t));
    ASSERT_EQ(errors[t], "");
    ASSERT_EQ(ys[t].size(), size_t{kIterations});
    for (int i = 0; i < kIterations; ++i) {
      EXPECT_TRUE(all_close(ys[t][i], cases[t].y, {1e-12, 1e-12}));
      EXPECT_TRUE(all_close(grads[t][i], cases[t].grad, {1e-10, 1e-12}));
    }
  }
}

TEST(Threads, LargeKernelsAndNoGradScopesPerThread) {
  // Big enough for the CPU kernels' OpenMP teams; no_grad is per thread, so the other threads
  // keep recording.
  std::vector<double> sums(kThreads);
  std::vector<bool> recorded(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      Tensor x = st::full({1 << 18}, static_cast<double>(t + 1), {.dtype = DType::Float64});
      x.set_requires_grad();
      std::optional<st::NoGradGuard> guard;
      if (t % 2 == 0) guard.emplace();
      Tensor s = st::sum(st::softmax(st::mul(x, 2.0), 0));
      for (int i = 0; i < 10; ++i) s = st::add(s, st::mean(st::exp(st::mul(x, 0.0))));
      sums[t] = s.item<double>();
      recorded[t] = s.requires_grad();
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < kThreads; ++t) {
    EXPECT_NEAR(sums[t], 11.0, 1e-9) << "thread " << t;
    EXPECT_EQ(recorded[t], t % 2 == 1) << "thread " << t;
  }
}

TEST(Threads, CheckpointsToSeparateFilesAndRandomNumbers) {
  const auto dir =
      std::filesystem::temp_directory_path() / ("st_threads_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  std::vector<std::string> errors(kThreads);
  std::vector<Tensor> draws(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      try {
        const std::string path = (dir / ("t" + std::to_string(t) + ".safetensors")).string();
        for (int i = 0; i < 10; ++i) {
          Tensor w = st::full({1000}, static_cast<double>(t * 100 + i));
          st::save_safetensors(path, {{"w", w}});
          Tensor back = st::load_safetensors(path).tensors.at("w");
          if (st::sum(st::eq(back, w)).item<int64_t>() != 1000) errors[t] = "checkpoint differs";
        }
        // The generator is shared and locked: each draw takes its own stretch of the stream.
        draws[t] = st::rand({4096});
      } catch (const std::exception& e) {
        errors[t] = e.what();
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(errors[t], "") << "thread " << t;
  // No two threads got the same numbers.
  for (int t = 1; t < kThreads; ++t)
    EXPECT_LT(st::sum(st::eq(draws[0], draws[t])).item<int64_t>(), 10) << "thread " << t;
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace st_test
