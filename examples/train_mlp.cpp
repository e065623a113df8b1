// Trains a small multilayer perceptron to tell apart the three arms of a spiral, a toy problem that
// no linear model solves. Full-batch gradient descent with momentum, written out with the tensor
// API alone: the forward pass records the graph, backward() fills each parameter's grad, and the
// update runs under NoGradGuard with in-place ops.

#include <chrono>
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "spiraltorch/spiraltorch.h"

namespace {

constexpr int64_t kClasses = 3;
constexpr int64_t kPointsPerClass = 200;
constexpr int kSteps = 1000;
constexpr int kLogEvery = 100;
constexpr double kLearningRate = 0.02;
constexpr double kMomentum = 0.9;

struct Dataset {
  st::Tensor points;  // [N, 2] float32
  st::Tensor labels;  // [N] int64
};

// Points along interleaved spiral arms in the plane, with noise on the angle; the seed fixes them.
Dataset make_spirals(uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> angle_noise(0.0f, 0.2f);
  std::vector<float> points;
  std::vector<int64_t> labels;
  for (int64_t arm = 0; arm < kClasses; ++arm) {
    for (int64_t i = 0; i < kPointsPerClass; ++i) {
      const float radius = static_cast<float>(i) / kPointsPerClass;
      const float angle = static_cast<float>(arm) * 4.0f + radius * 4.0f + angle_noise(rng);
      points.push_back(radius * std::sin(angle));
      points.push_back(radius * std::cos(angle));
      labels.push_back(arm);
    }
  }
  const int64_t n = kClasses * kPointsPerClass;
  return {st::from_buffer(points.data(), {n, 2}), st::from_buffer(labels.data(), {n})};
}

// A fully connected layer: weight [in, out] with He initialization (suited to ReLU), bias [out].
struct Linear {
  st::Tensor weight;
  st::Tensor bias;

  Linear(int64_t in, int64_t out)
      : weight(st::randn({in, out}) * std::sqrt(2.0 / static_cast<double>(in))),
        bias(st::zeros({out})) {
    weight.set_requires_grad(true);
    bias.set_requires_grad(true);
  }
  st::Tensor operator()(const st::Tensor& x) const { return st::matmul(x, weight) + bias; }
};

}  // namespace

int main() {
  std::printf("SpiralTorch %s: a 2-64-64-3 MLP learns %lld points on %lld spiral arms\n",
              st::kVersion, static_cast<long long>(kClasses * kPointsPerClass),
              static_cast<long long>(kClasses));
  st::manual_seed(0);
  const Dataset data = make_spirals(0);
  const Linear layer1(2, 64), layer2(64, 64), layer3(64, kClasses);
  const auto forward = [&](const st::Tensor& x) {
    return layer3(st::relu(layer2(st::relu(layer1(x)))));
  };

  const std::vector<st::Tensor> params = {layer1.weight, layer1.bias,   layer2.weight,
                                          layer2.bias,   layer3.weight, layer3.bias};
  std::vector<st::Tensor> velocity;
  for (const st::Tensor& p : params) velocity.push_back(st::zeros(p.shape()));

  const auto start = std::chrono::steady_clock::now();
  for (int step = 1; step <= kSteps; ++step) {
    const st::Tensor loss = st::cross_entropy(forward(data.points), data.labels);
    loss.backward();
    {
      // The update itself must not become part of the next step's graph.
      st::NoGradGuard no_grad;
      for (size_t i = 0; i < params.size(); ++i) {
        st::Tensor p = params[i];
        velocity[i].mul_(kMomentum).add_(p.grad());
        p.sub_(velocity[i] * kLearningRate);
        p.zero_grad();
      }
    }
    if (step == 1 || step % kLogEvery == 0) {
      std::printf("step %4d  loss %.4f\n", step, loss.item<double>());
    }
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  st::NoGradGuard no_grad;
  const st::Tensor predicted = st::argmax(forward(data.points), 1);
  const double accuracy =
      st::eq(predicted, data.labels).to(st::DType::Float32).mean().item<double>();
  std::printf("trained %d steps in %.2f s; training accuracy %.1f%%\n", kSteps, seconds,
              100.0 * accuracy);
  return accuracy > 0.9 ? 0 : 1;
}
