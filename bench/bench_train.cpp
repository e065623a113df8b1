// Training-step benchmarks on the CPU: the 784-512-512-10 MLP with Adam (ms per step) and the small
// character GPT of spiraltorch-train (2 layers, d_model 128, 4 heads, context 64, batch 8: tokens
// per second). Run with OMP_NUM_THREADS=2 for the figures in bench/RESULTS.md.

#include <benchmark/benchmark.h>
#include <spiraltorch/nn.h>
#include <spiraltorch/optim.h>

#include "gpt.h"

namespace {

// n class ids cycling through [0, classes).
st::Tensor labels(int64_t n, int64_t classes) {
  std::vector<int64_t> ids(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) ids[static_cast<size_t>(i)] = (i * 7) % classes;
  return st::from_buffer<int64_t>(ids.data(), {n});
}

void BM_MlpAdamStep(benchmark::State& state) {
  st::manual_seed(0);
  st::nn::Sequential mlp(
      {std::make_shared<st::nn::Linear>(784, 512), std::make_shared<st::nn::ReLU>(),
       std::make_shared<st::nn::Linear>(512, 512), std::make_shared<st::nn::ReLU>(),
       std::make_shared<st::nn::Linear>(512, 10)});
  st::optim::Adam adam(mlp.parameters(), {.lr = 1e-3});
  const st::Tensor x = st::randn({128, 784});
  const st::Tensor y = labels(128, 10);
  for (auto _ : state) {
    adam.zero_grad();
    const st::Tensor loss = st::cross_entropy(mlp(x), y);
    loss.backward();
    adam.step();
    benchmark::DoNotOptimize(loss.item<float>());
  }
}
BENCHMARK(BM_MlpAdamStep)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_GptTrainStep(benchmark::State& state) {
  constexpr int64_t kBatch = 8, kContext = 64;
  st::manual_seed(0);
  st_train::GPT gpt(
      {.vocab_size = 65, .context = kContext, .layers = 2, .d_model = 128, .heads = 4});
  st::optim::AdamW adamw(gpt.parameters(), {.lr = 1e-3, .weight_decay = 0.1});
  const st::Tensor x = labels(kBatch * kContext, 65).view({kBatch, kContext});
  const st::Tensor tokens = labels(kBatch * kContext, 65);
  for (auto _ : state) {
    adamw.zero_grad();
    const st::Tensor logits = gpt(x);
    const st::Tensor loss = st::cross_entropy(logits.view({-1, 65}), tokens);
    loss.backward();
    st::optim::clip_grad_norm_(gpt.parameters(), 1.0);
    adamw.step();
    benchmark::DoNotOptimize(loss.item<float>());
  }
  state.counters["tokens/s"] = benchmark::Counter(static_cast<double>(kBatch * kContext),
                                                  benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_GptTrainStep)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
