// The autograd engine's behaviour: accumulation over shared subgraphs, repeated backward calls,
// retain_graph, explicit gradients, no_grad, detach, requires_grad propagation, multi-output
// nodes, the version check on saved tensors, long chains and retain_grad. Expected gradients are
// closed forms computed here in float64.

#include <cmath>

#include "reference.h"

namespace st_test {
namespace {

class Engine : public ::testing::TestWithParam<Device> {
 protected:
  Device device() const { return GetParam(); }
  // A float64 leaf that requires grad.
  Tensor leaf(const NDArray& values) const {
    Tensor t = make_tensor(values, DType::Float64, device());
    t.set_requires_grad(true);
    return t;
  }
  Tensor constant(const NDArray& values) const {
    return make_tensor(values, DType::Float64, device());
  }
  NDArray u(const Shape& shape) { return uniform_random(shape, rng, -1, 1); }
  static constexpr Tolerance kExact{1e-12, 1e-14};
  std::mt19937 rng{1618};
};

TEST_P(Engine, SharedSubgraphAccumulates) {
  // y = x*x + x uses x three times: dy/dx = 2x + 1.
  NDArray v = u({4});
  Tensor x = leaf(v);
  (x * x + x).sum().backward();
  EXPECT_CLOSE(x.grad(), map(v, [](double t) { return 2 * t + 1; }), kExact);
  EXPECT_EQ(x.grad().device(), device());
  EXPECT_EQ(x.grad().dtype(), DType::Float64);
}

TEST_P(Engine, DiamondGraph) {
  // a = 2x feeds both b = 3a and c = exp(a): d(b + c)/dx = 2 (3 + exp(2x)).
  NDArray v = u({2, 3});
  Tensor x = leaf(v);
  Tensor a = x * 2;
  Tensor b = a * 3;
  Tensor c = st::exp(a);
  st::sum(b + c).backward();
  EXPECT_CLOSE(x.grad(), map(v, [](double t) { return 2 * (3 + std::exp(2 * t)); }), kExact);
}

TEST_P(Engine, GradAccumulatesAcrossBackwardCalls) {
  NDArray v = u({3});
  Tensor x = leaf(v);
  (x * x).sum().backward();
  (x * x).sum().backward();
  EXPECT_CLOSE(x.grad(), map(v, [](double t) { return 4 * t; }), kExact);
  x.zero_grad();
  (x * 3).sum().backward();
  EXPECT_CLOSE(x.grad(), NDArray({3}, 3.0), kExact);
}

TEST_P(Engine, WeightGradientsAccumulateIntoTheExistingGrad) {
  // The second backward's GEMM adds into the .grad tensor the first one made (beta = 1): same
  // storage, and the sum of both products, for linear and for a 2-D matmul, and alongside a second
  // use of the same weight in the same graph.
  NDArray w = u({4, 3}), x1 = u({5, 3}), x2 = u({2, 3}), m = u({3, 2});
  Tensor weight = leaf(w), mat = leaf(m);
  st::sum(st::linear(constant(x1), weight)).backward();
  st::sum(st::matmul(constant(x1), mat)).backward();
  const Tensor first = weight.grad();
  const void* storage = first.storage()->data();
  const void* mat_storage = mat.grad().storage()->data();
  (st::sum(st::linear(constant(x2), weight)) * 2 + st::sum(st::linear(constant(x1), weight)))
      .backward();
  st::sum(st::matmul(constant(x2), mat)).backward();
  EXPECT_EQ(weight.grad().storage()->data(), storage);
  EXPECT_EQ(mat.grad().storage()->data(), mat_storage);
  // d/dW sum(x W^T) = ones^T x: each row of W's gradient is the column sums of x.
  NDArray expected({4, 3}, 0.0), expected_m({3, 2}, 0.0);
  for (int64_t o = 0; o < 4; ++o)
    for (int64_t k = 0; k < 3; ++k) {
      for (int64_t r = 0; r < 5; ++r) expected.at({o, k}) += 2 * x1.at({r, k});
      for (int64_t r = 0; r < 2; ++r) expected.at({o, k}) += 2 * x2.at({r, k});
    }
  for (int64_t k = 0; k < 3; ++k)
    for (int64_t n = 0; n < 2; ++n) {
      for (int64_t r = 0; r < 5; ++r) expected_m.at({k, n}) += x1.at({r, k});
      for (int64_t r = 0; r < 2; ++r) expected_m.at({k, n}) += x2.at({r, k});
    }
  EXPECT_CLOSE(weight.grad(), expected, tolerance_for(DType::Float64));
  EXPECT_CLOSE(mat.grad(), expected_m, tolerance_for(DType::Float64));
}

TEST_P(Engine, ExplicitGradientOnNonScalar) {
  NDArray v = u({2, 3}), g = u({2, 3});
  Tensor x = leaf(v);
  Tensor y = x * x;
  y.backward(constant(g));
  EXPECT_CLOSE(x.grad(), zip(v, g, [](double t, double s) { return 2 * t * s; }), kExact);
}

TEST_P(Engine, NonScalarNeedsAGradient) {
  Tensor x = leaf(u({3}));
  Tensor y = x * 2;
  try {
    y.backward();
    ADD_FAILURE() << "backward() on a non-scalar without a gradient did not throw";
  } catch (const st::Error& e) {
    EXPECT_NE(std::string(e.what()).find("backward"), std::string::npos) << e.what();
  }
}

TEST_P(Engine, BackwardOnATensorWithoutGradThrows) {
  Tensor x = constant(u({3}));
  EXPECT_TRUE(throws_named([&] { x.sum().backward(); }, {"backward"}));
}

TEST_P(Engine, BackwardTwiceNeedsRetainGraph) {
  NDArray v = u({3});
  Tensor x = leaf(v);
  Tensor z = (x * x).sum();
  z.backward();
  EXPECT_TRUE(throws_named([&] { z.backward(); }, {}));

  Tensor x2 = leaf(v);
  Tensor z2 = (x2 * x2).sum();
  z2.backward({}, /*retain_graph=*/true);
  z2.backward();
  EXPECT_CLOSE(x2.grad(), map(v, [](double t) { return 4 * t; }), kExact);
}

TEST_P(Engine, NoGradGuard) {
  Tensor x = leaf(u({3}));
  EXPECT_TRUE(st::is_grad_enabled());
  {
    st::NoGradGuard guard;
    EXPECT_FALSE(st::is_grad_enabled());
    Tensor y = x * 2 + 1;
    EXPECT_FALSE(y.requires_grad());
    EXPECT_EQ(y.grad_fn(), nullptr);
    EXPECT_TRUE(y.is_leaf());
    {
      st::NoGradGuard nested;
      EXPECT_FALSE(st::is_grad_enabled());
    }
    EXPECT_FALSE(st::is_grad_enabled());
    // In-place updates of leaves are how optimizers step.
    x.add_(1.0);
    x.mul_(2.0);
  }
  EXPECT_TRUE(st::is_grad_enabled());
  EXPECT_TRUE(x.requires_grad());
  EXPECT_TRUE(x.is_leaf());
  st::set_grad_enabled(false);
  EXPECT_FALSE((x * 2).requires_grad());
  st::set_grad_enabled(true);
  EXPECT_TRUE((x * 2).requires_grad());
}

TEST_P(Engine, Detach) {
  NDArray v = u({4});
  Tensor x = leaf(v);
  Tensor d = x.detach();
  EXPECT_FALSE(d.requires_grad());
  EXPECT_TRUE(d.is_leaf());
  EXPECT_EQ(d.storage().get(), x.storage().get());
  // Gradients flow only through the attached operand: d/dx sum(detach(x) * x) = x.
  st::sum(d * x).backward();
  EXPECT_CLOSE(x.grad(), v, kExact);
  Tensor e = (x * 3).detach();
  EXPECT_FALSE(e.requires_grad());
  EXPECT_EQ(e.grad_fn(), nullptr);
}

TEST_P(Engine, RequiresGradPropagation) {
  Tensor a = leaf(u({3}));
  Tensor b = constant(u({3}));
  EXPECT_TRUE(a.requires_grad());
  EXPECT_TRUE(a.is_leaf());
  EXPECT_EQ(a.grad_fn(), nullptr);
  Tensor c = a + b;
  EXPECT_TRUE(c.requires_grad());
  EXPECT_FALSE(c.is_leaf());
  EXPECT_NE(c.grad_fn(), nullptr);
  Tensor d = b * b;
  EXPECT_FALSE(d.requires_grad());
  EXPECT_TRUE(d.is_leaf());
  EXPECT_FALSE(st::lt(a, b).requires_grad());  // bool results are not differentiable
  EXPECT_FALSE(st::argmax(a).requires_grad());
  EXPECT_TRUE(st::matmul(a, b).requires_grad());
  EXPECT_TRUE(st::cat({b, a}).requires_grad());
  EXPECT_TRUE(a.view({3, 1}).requires_grad());
  EXPECT_FALSE(a.grad().defined());
  EXPECT_TRUE(throws_named([&] { c.set_requires_grad(false); }, {}));  // only leaves
}

TEST_P(Engine, MaxWithIndicesOnlyValuesAreDifferentiable) {
  NDArray v = distinct_random({3, 4}, rng);
  Tensor x = leaf(v);
  auto [values, indices] = st::max(x, 1);
  EXPECT_TRUE(values.requires_grad());
  EXPECT_FALSE(indices.requires_grad());
  NDArray w = u({3});
  st::sum(values * constant(w)).backward();
  NDArray expected({3, 4});
  for (int64_t r = 0; r < 3; ++r) {
    int64_t best = 0;
    for (int64_t c = 1; c < 4; ++c) {
      if (v[r * 4 + c] > v[r * 4 + best]) best = c;
    }
    expected[r * 4 + best] = w[r];
  }
  EXPECT_CLOSE(x.grad(), expected, kExact);
}

TEST_P(Engine, FullMaxSharesTheGradientAmongTies) {
  // As torch.max(x) (no dim): the gradient is split evenly among all maximal elements; with a dim,
  // it goes to the returned index only.
  Tensor x = leaf(NDArray({5}, {1, 3, -2, 3, 0}));
  st::max(x).backward();
  EXPECT_CLOSE(x.grad(), NDArray({5}, {0, 0.5, 0, 0.5, 0}), kExact);
  Tensor y = leaf(NDArray({1, 5}, {1, 3, -2, 3, 0}));
  std::get<0>(st::max(y, 1)).sum().backward();
  EXPECT_CLOSE(y.grad(), NDArray({1, 5}, {0, 1, 0, 0, 0}), kExact);
  // amax over some dims splits among the ties of each reduced slice.
  Tensor z = leaf(NDArray({2, 3}, {4, 4, 1, 0, 2, 2}));
  st::amax(z, {1}).sum().backward();
  EXPECT_CLOSE(z.grad(), NDArray({2, 3}, {0.5, 0.5, 0, 0, 0.5, 0.5}), kExact);
}

TEST_P(Engine, SplitWithOnlySomeOutputsUsed) {
  NDArray v = u({5, 2});
  Tensor x = leaf(v);
  std::vector<Tensor> parts = st::split(x, 2);
  ASSERT_EQ(parts.size(), 3u);
  for (const auto& p : parts) EXPECT_TRUE(p.requires_grad());
  // Only the middle piece: the other rows get zero.
  (parts[1] * 3).sum().backward();
  NDArray expected({5, 2});
  for (int64_t i = 4; i < 8; ++i) expected[i] = 3;
  EXPECT_CLOSE(x.grad(), expected, kExact);
}

TEST_P(Engine, SplitPiecesInSeparateBackwardCalls) {
  // split saves no tensors, so (as in PyTorch) a second backward through its node needs no
  // retain_graph; the two calls accumulate.
  NDArray v = u({5, 2});
  Tensor x = leaf(v);
  std::vector<Tensor> parts = st::split(x, 2);
  (parts[1] * 3).sum().backward();
  parts[2].sum().backward();
  NDArray expected({5, 2});
  for (int64_t i = 4; i < 8; ++i) expected[i] = 3;
  expected[8] = expected[9] = 1;
  EXPECT_CLOSE(x.grad(), expected, kExact);
}

TEST_P(Engine, OpsWithoutSavedTensorsCanBackwardTwice) {
  // As in PyTorch: only nodes whose saved tensors were freed refuse a second pass.
  NDArray v = u({3});
  Tensor x = leaf(v);
  Tensor y = (x + 1).sum();
  y.backward();
  y.backward();
  EXPECT_CLOSE(x.grad(), NDArray({3}, 2.0), kExact);
}

TEST_P(Engine, MultipleRoots) {
  NDArray v = u({3});
  Tensor x = leaf(v);
  Tensor a = (x * 2).sum();
  Tensor b = (x * x).sum();
  st::backward({a, b});
  EXPECT_CLOSE(x.grad(), map(v, [](double t) { return 2 + 2 * t; }), kExact);
  Tensor y = leaf(v);
  NDArray g = u({3});
  st::backward({y * 3, (y * y).sum()}, {constant(g), Tensor()});
  EXPECT_CLOSE(y.grad(), zip(v, g, [](double t, double s) { return 3 * s + 2 * t; }), kExact);
}

TEST_P(Engine, InPlaceChangeOfASavedTensorIsAnError) {
  Tensor x = leaf(u({3}));
  Tensor a = x * 1;  // a non-leaf
  Tensor b = a * a;  // saves a
  a.mul_(2);
  try {
    b.sum().backward();
    ADD_FAILURE() << "backward through a tensor modified in place did not throw";
  } catch (const st::Error& e) {
    std::string msg = lower(e.what());
    EXPECT_TRUE(
        msg.find("in place") != std::string::npos || msg.find("in-place") != std::string::npos ||
        msg.find("inplace") != std::string::npos || msg.find("modified") != std::string::npos)
        << e.what();
  }
}

TEST_P(Engine, InPlaceOnASavedOutputIsAnError) {
  // exp saves its output.
  Tensor x = leaf(u({3}));
  Tensor y = st::exp(x);
  Tensor z = y * 1;
  (void)z;
  y.add_(1);
  EXPECT_TRUE(throws_named([&] { y.sum().backward(); }, {}));
}

TEST_P(Engine, InPlaceOnALeafThatRequiresGradIsAnError) {
  Tensor x = leaf(u({3}));
  EXPECT_TRUE(throws_named([&] { x.add_(1.0); }, {}));
  EXPECT_TRUE(throws_named([&] { x.mul_(constant(u({3}))); }, {}));
  EXPECT_TRUE(throws_named([&] { x.zero_(); }, {}));
  // A view of such a leaf is not a leaf, but writing through it would change the leaf.
  EXPECT_TRUE(throws_named([&] { x.narrow(0, 0, 1).add_(1.0); }, {}));
}

TEST_P(Engine, InPlaceThroughADetachedAliasIsCaught) {
  // detach() shares storage, so it shares the version counter: changing the alias must invalidate
  // the saved x, as in PyTorch.
  Tensor x = leaf(u({3}));
  Tensor y = x * x;  // saves x
  x.detach().mul_(2);
  EXPECT_TRUE(throws_named([&] { y.sum().backward(); }, {}));
  // The same through a no-grad in-place update.
  Tensor w = leaf(u({3}));
  Tensor z = st::exp(w) * w;
  {
    st::NoGradGuard guard;
    w.add_(1.0);
  }
  EXPECT_TRUE(throws_named([&] { z.sum().backward(); }, {}));
}

TEST_P(Engine, InPlaceOnANonLeafIsDifferentiable) {
  // y = 2x, then y += x (in place): d sum(y)/dx = 3, as PyTorch records the in-place op.
  NDArray v = u({4});
  Tensor x = leaf(v);
  Tensor y = x * 2;
  y.add_(x);
  y.sum().backward();
  EXPECT_CLOSE(x.grad(), NDArray({4}, 3.0), kExact);
}

TEST_P(Engine, InPlaceWithLiveViewsIsRefusedNotWrong) {
  // A view made before an in-place change would keep the old history and give a wrong gradient
  // (1 instead of 2 here); until views are rebased the change is refused with a clear error.
  Tensor a = leaf(u({4}));
  Tensor x = a * 1;
  {
    Tensor view = x.narrow(0, 0, 2);
    EXPECT_TRUE(throws<st::NotImplementedError>([&] { x.mul_(2); }, {"mul_", "views"}));
    EXPECT_TRUE(throws<st::NotImplementedError>([&] { view.mul_(2); }, {"mul_", "view"}));
    EXPECT_TRUE(throws<st::NotImplementedError>([&] { x.fill_(1); }, {"fill_"}));
  }
  // With the view gone the same change is recorded and differentiable.
  x.mul_(2);
  x.narrow(0, 0, 2).sum().backward();
  EXPECT_CLOSE(a.grad(), NDArray(Shape{4}, std::vector<double>{2, 2, 0, 0}), kExact);
  // Without a graph, writing through a view is plain data and reaches the base.
  Tensor base = constant(NDArray({4}, 1.0));
  base.narrow(0, 1, 2).mul_(3);
  EXPECT_CLOSE(base, NDArray(Shape{4}, std::vector<double>{1, 3, 3, 1}), kExact);
}

TEST_P(Engine, CopyIntoATensorWithHistoryTakesTheSourcesHistory) {
  // x = 2a, then overwritten with a constant: x no longer depends on a, so d sum(x * a)/da = x = 0.
  Tensor a = leaf(u({3}));
  Tensor x = a * 2;
  x.copy_(constant(NDArray({3}, 0.0)));
  (x * a).sum().backward();
  EXPECT_CLOSE(a.grad(), NDArray({3}, 0.0), kExact);
  // Overwritten from a leaf, the gradient goes to that leaf.
  Tensor b = leaf(u({3}));
  Tensor y = constant(u({3}));
  y.copy_(b);
  (y * 3).sum().backward();
  EXPECT_CLOSE(b.grad(), NDArray({3}, 3.0), kExact);
}

TEST_P(Engine, LongChain) {
  NDArray v = u({3});
  Tensor x = leaf(v);
  Tensor y = x;
  for (int i = 0; i < 50; ++i) y = y * 1.01 + 0.001;  // 100 ops
  y.sum().backward();
  EXPECT_CLOSE(x.grad(), NDArray({3}, std::pow(1.01, 50)), kExact);
}

TEST_P(Engine, VeryLongChainNeedsNoDeepRecursion) {
  // 20000 nodes: an engine or a graph destructor that recurses per node would overflow the stack.
  Tensor x = leaf(NDArray({1}, 0.5));
  Tensor y = x;
  for (int i = 0; i < 20000; ++i) y = y + 0.0001;
  y.sum().backward();
  EXPECT_CLOSE(x.grad(), NDArray({1}, 1.0), kExact);
  y = Tensor();  // releases the whole graph
}

TEST_P(Engine, DeepGraphWithSavedTensorsIsFreedWithoutBackward) {
  // 200k nodes that each save their inputs, dropped without a backward: freeing the graph must not
  // recurse once per node through edges or through saved tensors' history.
  Tensor x = leaf(NDArray({1}, 1.0));
  Tensor factor = constant(NDArray({1}, 1.0));
  Tensor y = x;
  for (int i = 0; i < 200000; ++i) y = y * factor;
  EXPECT_EQ(y.item<double>(), 1.0);
  y = Tensor();
}

TEST_P(Engine, RetainGradOnANonLeaf) {
  NDArray v = u({3});
  Tensor x = leaf(v);
  Tensor y = x * 2;
  y.retain_grad();
  Tensor h = y + 1;  // not retained
  Tensor z = (h * y).sum();
  z.backward();
  // dz/dy = h + y = 4x + 1; dz/dx = 2 (4x + 1).
  EXPECT_CLOSE(y.grad(), map(v, [](double t) { return 4 * t + 1; }), kExact);
  EXPECT_CLOSE(x.grad(), map(v, [](double t) { return 2 * (4 * t + 1); }), kExact);
  EXPECT_FALSE(h.grad().defined());
}

TEST_P(Engine, SetGradAndZeroGrad) {
  NDArray v = u({3}), g = u({3});
  Tensor x = leaf(v);
  x.set_grad(constant(g));
  EXPECT_CLOSE(x.grad(), g, kExact);
  (x * 2).sum().backward();
  EXPECT_CLOSE(x.grad(), map(g, [](double s) { return s + 2; }), kExact);
  x.zero_grad();
  EXPECT_TRUE(!x.grad().defined() || all_close(x.grad(), NDArray({3}, 0.0), kExact));
}

TEST_P(Engine, GradOfAFloat32LeafIsFloat32) {
  Tensor x = make_tensor(NDArray({2}, {1.5, -2}), DType::Float32, device());
  x.set_requires_grad(true);
  (x * x).sum().backward();
  EXPECT_EQ(x.grad().dtype(), DType::Float32);
  EXPECT_EQ(x.grad().device(), device());
  EXPECT_CLOSE(x.grad(), NDArray({2}, {3, -4}), {0.0, 0.0});
}

TEST_P(Engine, GradientOfABroadcastLeafIsReducedToItsShape) {
  Tensor b = leaf(u({1, 3}));
  Tensor s = leaf(u({}));
  Tensor a = constant(u({4, 3}));
  (a * b + s).sum().backward();
  EXPECT_EQ(b.grad().shape(), (Shape{1, 3}));
  EXPECT_EQ(s.grad().shape(), (Shape{}));
  EXPECT_CLOSE(s.grad(), scalar_array(12), kExact);
  EXPECT_CLOSE(b.grad(), reduce_dims(from_tensor(a), {0}, true, sum_of), kExact);
}

INSTANTIATE_TEST_SUITE_P(Autograd, Engine, ::testing::ValuesIn(st::available_devices()),
                         DeviceName());

}  // namespace
}  // namespace st_test
