// The autograd hooks data parallelism is built on: post-accumulate-grad hooks on leaves (run once
// per backward after the leaf's .grad is final, also when a backward GEMM accumulated into it in
// place) and callbacks queued to run at the end of a backward.

#include "reference.h"

namespace st_test {
namespace {

class Hooks : public ::testing::TestWithParam<Device> {
 protected:
  Tensor leaf(const Shape& shape) const {
    Tensor t = st::randn(shape, {DType::Float64, GetParam()});
    t.set_requires_grad(true);
    return t;
  }
};

TEST_P(Hooks, PostAccumulateGradHookSeesTheFinalGradientOnce) {
  // x is used twice: the hook must run after both contributions are summed, and once.
  Tensor x = leaf({3});
  std::vector<std::vector<double>> seen;
  x.register_post_accumulate_grad_hook(
      [&seen](const Tensor& t) { seen.push_back(t.grad().to_vector<double>()); });
  (x * 2 + x * x).sum().backward();
  ASSERT_EQ(seen.size(), 1u);
  const std::vector<double> v = x.detach().to_vector<double>();
  for (size_t i = 0; i < v.size(); ++i) EXPECT_NEAR(seen[0][i], 2 + 2 * v[i], 1e-12);
  (x * 3).sum().backward();
  ASSERT_EQ(seen.size(), 2u);
  for (size_t i = 0; i < v.size(); ++i) EXPECT_NEAR(seen[1][i], 5 + 2 * v[i], 1e-12);
}

TEST_P(Hooks, HookRunsWhenAGemmAccumulatedInPlace) {
  // The second backward of a linear layer accumulates its weight gradient straight into .grad;
  // the hook must still run, after that accumulation.
  Tensor w = leaf({2, 3});
  Tensor x = st::randn({4, 3}, {DType::Float64, GetParam()});
  int calls = 0;
  double last_sum = 0;
  w.register_post_accumulate_grad_hook([&](const Tensor& t) {
    ++calls;
    last_sum = t.grad().sum().item<double>();
  });
  st::linear(x, w).sum().backward();
  const double once = w.grad().sum().item<double>();
  st::linear(x, w).sum().backward();
  EXPECT_EQ(calls, 2);
  EXPECT_NEAR(last_sum, 2 * once, 1e-9);
}

TEST_P(Hooks, RemovedHookNoLongerRuns) {
  Tensor x = leaf({2});
  int calls = 0;
  const uint64_t id = x.register_post_accumulate_grad_hook([&calls](const Tensor&) { ++calls; });
  x.sum().backward();
  x.remove_post_accumulate_grad_hook(id);
  x.sum().backward();
  EXPECT_EQ(calls, 1);
}

TEST_P(Hooks, QueuedCallbackRunsAfterEveryNode) {
  // The callback queued by a's hook must see b's gradient too, though b is reached later.
  Tensor a = leaf({2});
  Tensor b = leaf({2});
  bool b_had_grad = false;
  int callbacks = 0;
  a.register_post_accumulate_grad_hook([&](const Tensor&) {
    st::queue_backward_callback([&] {
      ++callbacks;
      b_had_grad = b.grad().defined();
    });
  });
  (a.sum() + (b * b).exp().sum()).backward();
  EXPECT_EQ(callbacks, 1);
  EXPECT_TRUE(b_had_grad);
}

TEST_P(Hooks, Errors) {
  Tensor plain = st::zeros({2}, {DType::Float64, GetParam()});
  EXPECT_TRUE(throws_named([&] { plain.register_post_accumulate_grad_hook(nullptr); },
                           {"register_post_accumulate_grad_hook", "leaf"}));
  Tensor x = leaf({2});
  Tensor y = x * 2;
  EXPECT_TRUE(throws_named([&] { y.register_post_accumulate_grad_hook(nullptr); },
                           {"register_post_accumulate_grad_hook"}));
  EXPECT_TRUE(throws_named([] { st::queue_backward_callback([] {}); },
                           {"queue_backward_callback", "no backward"}));
}

INSTANTIATE_TEST_SUITE_P(AllDevices, Hooks, ::testing::ValuesIn(st::available_devices()),
                         [](const auto& info) { return device_name(info.param); });

}  // namespace
}  // namespace st_test
