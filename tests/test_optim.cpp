// Optimizers over several steps against float64 loops of the update rules, their state dicts,
// gradient clipping and the learning-rate schedules. Run on every available device.

#include <spiraltorch/optim.h>

#include <cmath>
#include <numbers>

#include "reference.h"

namespace st_test {
namespace {

class Optim : public ::testing::TestWithParam<Device> {
 protected:
  Device device() const { return GetParam(); }
  Tensor leaf(const NDArray& a) {
    return make_tensor(a, DType::Float64, device()).set_requires_grad();
  }
  // Gives p the gradient g (as backward would).
  void set_grad(const Tensor& p, const NDArray& g) {
    p.set_grad(make_tensor(g, DType::Float64, device()));
  }
  std::mt19937 rng{99};
};

constexpr Tolerance kTol{1e-12, 1e-14};

TEST_P(Optim, AdamThreeStepsMatchTheHandComputedUpdate) {
  for (bool decoupled : {false, true}) {
    SCOPED_TRACE(decoupled ? "AdamW" : "Adam");
    NDArray p = uniform_random({4, 3}, rng);
    Tensor param = leaf(p);
    const st::optim::AdamOptions o{0.05, 0.8, 0.9, 1e-6, 0.1};
    std::unique_ptr<st::optim::Optimizer> opt;
    if (decoupled)
      opt = std::make_unique<st::optim::AdamW>(std::vector<Tensor>{param}, o);
    else
      opt = std::make_unique<st::optim::Adam>(std::vector<Tensor>{param}, o);
    NDArray m(p.shape, 0.0), v(p.shape, 0.0);
    for (int t = 1; t <= 3; ++t) {
      NDArray g = uniform_random(p.shape, rng);
      set_grad(param, g);
      opt->step();
      for (int64_t i = 0; i < p.numel(); ++i) {
        double d = g[i];
        if (decoupled)
          p[i] *= 1 - o.lr * o.weight_decay;
        else
          d += o.weight_decay * p[i];
        m[i] = o.beta1 * m[i] + (1 - o.beta1) * d;
        v[i] = o.beta2 * v[i] + (1 - o.beta2) * d * d;
        const double mhat = m[i] / (1 - std::pow(o.beta1, t));
        const double vhat = v[i] / (1 - std::pow(o.beta2, t));
        p[i] -= o.lr * mhat / (std::sqrt(vhat) + o.eps);
      }
      EXPECT_CLOSE(param, p, kTol);
    }
  }
}

TEST_P(Optim, AdamFirstStepMovesEachWeightByTheLearningRate) {
  // With zero state, step 1 gives mhat = g and vhat = g^2: every weight moves by lr * sign(g).
  Tensor param = leaf(NDArray({3}, {1, 2, 3}));
  st::optim::Adam adam({param}, {.lr = 0.1, .eps = 0});
  set_grad(param, NDArray({3}, {0.5, -2, 1e-3}));
  adam.step();
  EXPECT_CLOSE(param, NDArray({3}, {0.9, 2.1, 2.9}), kTol);
}

TEST_P(Optim, SgdMomentumNesterovAndWeightDecay) {
  for (bool nesterov : {false, true}) {
    SCOPED_TRACE(nesterov ? "nesterov" : "momentum");
    NDArray p = uniform_random({5}, rng);
    Tensor param = leaf(p);
    const st::optim::SGDOptions o{0.1, 0.9, 0, 0.01, nesterov};
    st::optim::SGD sgd({param}, o);
    NDArray buf(p.shape, 0.0);
    for (int t = 1; t <= 3; ++t) {
      NDArray g = uniform_random(p.shape, rng);
      set_grad(param, g);
      sgd.step();
      for (int64_t i = 0; i < p.numel(); ++i) {
        double d = g[i] + o.weight_decay * p[i];
        buf[i] = t == 1 ? d : o.momentum * buf[i] + d;
        d = nesterov ? d + o.momentum * buf[i] : buf[i];
        p[i] -= o.lr * d;
      }
      EXPECT_CLOSE(param, p, kTol);
    }
  }
  EXPECT_THROW(st::optim::SGD({leaf(NDArray({1}, std::vector<double>{0}))}, {.nesterov = true}),
               st::ValueError);
}

TEST_P(Optim, ParametersWithoutGradientsAreSkipped) {
  Tensor a = leaf(NDArray({2}, {1, 2})), b = leaf(NDArray({2}, {3, 4}));
  st::optim::Adam adam({a, b}, {.lr = 0.1});
  set_grad(a, NDArray({2}, {1, 1}));
  adam.step();
  EXPECT_EQ(to_f64(b), (std::vector<double>{3, 4}));
  // b's first step comes later and uses its own step count (bias correction of step 1).
  set_grad(b, NDArray({2}, {1, -1}));
  adam.step();
  EXPECT_CLOSE(b, NDArray({2}, {2.9, 4.1}), {1e-7, 1e-9});
  EXPECT_EQ(adam.state_dict().at("0.step").item<int64_t>(), 2);
  EXPECT_EQ(adam.state_dict().at("1.step").item<int64_t>(), 1);
}

TEST_P(Optim, StateDictResumesIdentically) {
  NDArray p = uniform_random({6}, rng);
  std::vector<NDArray> grads;
  for (int t = 0; t < 4; ++t) grads.push_back(uniform_random({6}, rng));
  Tensor full = leaf(p);
  st::optim::AdamW reference({full});
  for (const NDArray& g : grads) {
    set_grad(full, g);
    reference.step();
  }
  Tensor first = leaf(p);
  st::optim::AdamW before({first});
  for (int t = 0; t < 2; ++t) {
    set_grad(first, grads[t]);
    before.step();
  }
  Tensor resumed = leaf(from_tensor(first));
  st::optim::AdamW after({resumed});
  after.load_state_dict(before.state_dict());
  for (int t = 2; t < 4; ++t) {
    set_grad(resumed, grads[t]);
    after.step();
  }
  EXPECT_EQ(to_f64(resumed), to_f64(full));
  std::map<std::string, Tensor> bad = before.state_dict();
  bad.emplace("7.step", st::scalar_tensor(1, {DType::Int64}));
  EXPECT_THROW(after.load_state_dict(bad), st::ValueError);
}

TEST_P(Optim, ZeroGradClearsOrZeroes) {
  Tensor a = leaf(NDArray({2}, {1, 2}));
  st::optim::SGD sgd({a});
  set_grad(a, NDArray({2}, {1, 1}));
  sgd.zero_grad(/*set_to_none=*/false);
  EXPECT_EQ(to_f64(a.grad()), (std::vector<double>{0, 0}));
  sgd.zero_grad();
  EXPECT_FALSE(a.grad().defined());
  EXPECT_THROW(st::optim::SGD({a, a}), st::ValueError);
  EXPECT_THROW(st::optim::SGD({st::ones({2})}), st::ValueError);  // does not require grad
}

TEST_P(Optim, ClipGradNormScalesToTheMaximum) {
  Tensor a = leaf(NDArray({2}, {0, 0})), b = leaf(NDArray({1}, std::vector<double>{0}));
  set_grad(a, NDArray({2}, {3, 0}));
  set_grad(b, NDArray({1}, std::vector<double>{4}));
  Tensor norm = st::optim::clip_grad_norm_({a, b}, 1.0);
  EXPECT_NEAR(norm.item<double>(), 5, 1e-12);
  const double coef = 1 / (5 + 1e-6);
  EXPECT_CLOSE(a.grad(), NDArray({2}, {3 * coef, 0}), kTol);
  EXPECT_CLOSE(b.grad(), NDArray({1}, std::vector<double>{4 * coef}), kTol);
  // Below the maximum nothing changes.
  st::optim::clip_grad_norm_({a, b}, 10.0);
  EXPECT_CLOSE(b.grad(), NDArray({1}, std::vector<double>{4 * coef}), kTol);
}

TEST_P(Optim, Schedules) {
  Tensor a = leaf(NDArray({1}, std::vector<double>{0}));
  st::optim::SGD sgd({a}, {.lr = 1.0});
  st::optim::CosineAnnealingLR cosine(sgd, 10, 0.1);
  EXPECT_DOUBLE_EQ(sgd.lr(), 1.0);
  for (int i = 0; i < 5; ++i) cosine.step();
  EXPECT_NEAR(sgd.lr(), 0.55, 1e-12);  // halfway: the mean of base and eta_min
  for (int i = 0; i < 5; ++i) cosine.step();
  EXPECT_NEAR(sgd.lr(), 0.1, 1e-12);

  st::optim::SGD sgd2({a}, {.lr = 0.3});
  st::optim::LinearLR warm(sgd2, 0.5, 1.0, 4);
  std::vector<double> lrs{sgd2.lr()};
  for (int i = 0; i < 5; ++i) {
    warm.step();
    lrs.push_back(sgd2.lr());
  }
  const std::vector<double> expected{0.15, 0.1875, 0.225, 0.2625, 0.3, 0.3};
  for (size_t i = 0; i < lrs.size(); ++i) EXPECT_NEAR(lrs[i], expected[i], 1e-12) << i;

  st::optim::SGD sgd3({a}, {.lr = 2.0});
  st::optim::WarmupCosineLR schedule(sgd3, 4, 14, 0.2);
  EXPECT_NEAR(sgd3.lr(), 0.5, 1e-12);  // (0 + 1) / 4 of the peak
  schedule.set_step(3);
  EXPECT_NEAR(sgd3.lr(), 2.0, 1e-12);
  schedule.set_step(9);  // halfway through the decay
  EXPECT_NEAR(sgd3.lr(), 1.1, 1e-12);
  schedule.set_step(14);
  EXPECT_NEAR(sgd3.lr(), 0.2, 1e-12);
  schedule.set_step(20);
  EXPECT_NEAR(sgd3.lr(), 0.2, 1e-12);
  EXPECT_THROW(st::optim::WarmupCosineLR(sgd3, 5, 5), st::ValueError);
}

INSTANTIATE_TEST_SUITE_P(Optim, Optim, ::testing::ValuesIn(st::available_devices()), DeviceName());

}  // namespace
}  // namespace st_test
