// Autocast: the dtype each op computes in inside a scope, the scope's nesting and per-device-type
// state, gradients of f32 leaves through the casts against float64 loops, and training steps of an
// MLP and a GPT block under autocast against the same steps in f32.

#include <array>
#include <cmath>

#include "reference.h"

namespace st_test {
namespace {

using st::AutocastGuard;
using st::DeviceType;

// The devices whose kernels take f16 and bf16 GEMMs (the CPU's accumulate in f32).
std::vector<Device> autocast_devices() {
  std::vector<Device> devices;
  for (const Device& d : st::available_devices())
    if (d.type != DeviceType::Vulkan) devices.push_back(d);
  return devices;
}

class Autocast : public ::testing::TestWithParam<Device> {
 protected:
  Device device() const { return GetParam(); }
  Tensor random(const Shape& shape, DType dtype = DType::Float32, uint32_t seed = 1) const {
    std::mt19937 rng(seed);
    return make_tensor(uniform_random(shape, rng), dtype, device());
  }
};

TEST_P(Autocast, EachOpComputesInItsListedDtype) {
  const Tensor a = random({4, 8}), b = random({8, 6}, DType::Float32, 2);
  const Tensor w = random({6, 8}, DType::Float32, 3), bias = random({6}, DType::Float32, 4);
  const Tensor q = random({2, 3, 5, 8}, DType::Float32, 5);
  const Tensor half = random({4, 6}, DType::BFloat16, 6);
  const Tensor target = make_tensor(NDArray({4}, {0, 5, 2, 3}), DType::Int64, device());
  const Tensor norm_w = random({6}, DType::Float32, 7);
  AutocastGuard autocast(device().type);
  EXPECT_EQ(st::matmul(a, b).dtype(), DType::BFloat16);
  EXPECT_EQ(st::linear(a, w, bias).dtype(), DType::BFloat16);
  EXPECT_EQ(st::linear(a, w, bias, st::LinearActivation::Gelu).dtype(), DType::BFloat16);
  EXPECT_EQ(st::scaled_dot_product_attention(q, q, q, true).dtype(), DType::BFloat16);
  EXPECT_EQ(st::softmax(half, -1).dtype(), DType::Float32);
  EXPECT_EQ(st::log_softmax(half, 0).dtype(), DType::Float32);
  // layer_norm computes in f32 and writes the scope's dtype (AutocastLayerNorm below).
  EXPECT_EQ(st::layer_norm(half, {6}, norm_w, norm_w).dtype(), DType::BFloat16);
  EXPECT_EQ(st::cross_entropy(half, target).dtype(), DType::Float32);
  EXPECT_EQ(st::sum(half).dtype(), DType::Float32);
  EXPECT_EQ(st::mean(half, {1}).dtype(), DType::Float32);
  // Everything else follows its inputs.
  EXPECT_EQ(st::relu(half).dtype(), DType::BFloat16);
  EXPECT_EQ(st::add(half, a.narrow(1, 0, 6)).dtype(), DType::Float32);
  EXPECT_EQ(st::amax(half).dtype(), DType::BFloat16);
  // f64 is never cast; integers neither.
  EXPECT_EQ(st::matmul(a.to(DType::Float64), b.to(DType::Float64)).dtype(), DType::Float64);
  EXPECT_EQ(st::sum(target).dtype(), DType::Int64);
}

TEST_P(Autocast, Float16ScopeAndMixedOperands) {
  const Tensor a = random({4, 8}), b = random({8, 6}, DType::BFloat16, 2);
  // Outside a scope, operands of two dtypes are an error; inside, both are cast.
  EXPECT_THROW(st::matmul(a, b), st::DTypeError);
  AutocastGuard autocast(device().type, DType::Float16);
  const Tensor out = st::matmul(a, b);
  EXPECT_EQ(out.dtype(), DType::Float16);
  // The product of the cast operands, which the kernel accumulates in f32.
  NDArray expected({4, 6});
  const NDArray x = from_tensor(a.to(DType::Float16)), y = from_tensor(b.to(DType::Float16));
  for (int64_t i = 0; i < 4; ++i)
    for (int64_t j = 0; j < 6; ++j) {
      double s = 0;
      for (int64_t k = 0; k < 8; ++k) s += x.at({i, k}) * y.at({k, j});
      expected.at({i, j}) = s;
    }
  EXPECT_CLOSE(out, expected, tolerance_for(DType::Float16));
}

TEST_P(Autocast, ScopesNestAndRestore) {
  const DeviceType type = device().type;
  const Tensor a = random({3, 3});
  EXPECT_FALSE(st::is_autocast_enabled(type));
  {
    AutocastGuard outer(type);
    EXPECT_TRUE(st::is_autocast_enabled(type));
    EXPECT_EQ(st::matmul(a, a).dtype(), DType::BFloat16);
    {
      AutocastGuard inner(type, DType::Float16);
      EXPECT_EQ(st::get_autocast_dtype(type), DType::Float16);
      EXPECT_EQ(st::matmul(a, a).dtype(), DType::Float16);
      {
        AutocastGuard off(type, DType::BFloat16, /*enabled=*/false);
        EXPECT_FALSE(st::is_autocast_enabled(type));
        EXPECT_EQ(st::matmul(a, a).dtype(), DType::Float32);
      }
      EXPECT_EQ(st::matmul(a, a).dtype(), DType::Float16);
    }
    EXPECT_EQ(st::get_autocast_dtype(type), DType::BFloat16);
    EXPECT_EQ(st::matmul(a, a).dtype(), DType::BFloat16);
  }
  EXPECT_FALSE(st::is_autocast_enabled(type));
  EXPECT_EQ(st::matmul(a, a).dtype(), DType::Float32);
  EXPECT_THROW(AutocastGuard(type, DType::Float32), st::DTypeError);
}

TEST_P(Autocast, StateIsPerDeviceType) {
  const Tensor a = random({3, 3});
  const DeviceType other = device().type == DeviceType::CPU ? DeviceType::CUDA : DeviceType::CPU;
  AutocastGuard autocast(other);
  EXPECT_FALSE(st::is_autocast_enabled(device().type));
  EXPECT_EQ(st::matmul(a, a).dtype(), DType::Float32);
}

// loss = sum(softmax(x W^T + b)[:, 0] * c): f32 leaves, a bf16 linear, an f32 softmax. The
// gradients of x, W and b come out f32 and match the float64 derivative of the same loss within
// bf16 rounding.
TEST_P(Autocast, GradientsReachFloat32LeavesInFloat32) {
  std::mt19937 rng(11);
  const NDArray x = uniform_random({5, 8}, rng), w = uniform_random({4, 8}, rng);
  const NDArray b = uniform_random({4}, rng), c = uniform_random({5}, rng);
  Tensor tx = make_tensor(x, DType::Float32, device()).set_requires_grad(true);
  Tensor tw = make_tensor(w, DType::Float32, device()).set_requires_grad(true);
  Tensor tb = make_tensor(b, DType::Float32, device()).set_requires_grad(true);
  Tensor loss;
  {
    AutocastGuard autocast(device().type);
    const Tensor logits = st::linear(tx, tw, tb);
    ASSERT_EQ(logits.dtype(), DType::BFloat16);
    const Tensor p = st::softmax(logits, -1);
    ASSERT_EQ(p.dtype(), DType::Float32);
    loss = st::sum(st::mul(p.select(1, 0), make_tensor(c, DType::Float32, device())));
    loss.backward();  // inside the scope: backward runs without autocast all the same
  }
  for (const Tensor* t : {&tx, &tw, &tb}) ASSERT_EQ(t->grad().dtype(), DType::Float32);

  // float64: z = x W^T + b, p = softmax(z), dL/dz_ij = c_i p_i0 ([j == 0] - p_ij).
  NDArray dz({5, 4}), gx({5, 8}), gw({4, 8}), gb({4});
  for (int64_t i = 0; i < 5; ++i) {
    double z[4], m = -1e300, s = 0;
    for (int64_t j = 0; j < 4; ++j) {
      z[j] = b[j];
      for (int64_t k = 0; k < 8; ++k) z[j] += x.at({i, k}) * w.at({j, k});
      m = std::max(m, z[j]);
    }
    for (double& v : z) s += (v = std::exp(v - m));
    for (int64_t j = 0; j < 4; ++j) dz.at({i, j}) = c[i] * z[0] / s * ((j == 0) - z[j] / s);
  }
  for (int64_t i = 0; i < 5; ++i)
    for (int64_t j = 0; j < 4; ++j) {
      gb[j] += dz.at({i, j});
      for (int64_t k = 0; k < 8; ++k) {
        gx.at({i, k}) += dz.at({i, j}) * w.at({j, k});
        gw.at({j, k}) += dz.at({i, j}) * x.at({i, k});
      }
    }
  // bf16 operands carry 2^-9 relative error; gradients near zero are judged on the row's scale.
  const Tolerance tol{3e-2, 6e-3};
  EXPECT_CLOSE(tx.grad(), gx, tol);
  EXPECT_CLOSE(tw.grad(), gw, tol);
  EXPECT_CLOSE(tb.grad(), gb, tol);
}

// The relative distance of two tensors' values: max |a - b| / max |b|.
double relative_error(const Tensor& a, const Tensor& b) {
  const std::vector<double> x = to_f64(a), y = to_f64(b);
  double diff = 0, scale = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    diff = std::max(diff, std::fabs(x[i] - y[i]));
    scale = std::max(scale, std::fabs(y[i]));
  }
  return scale > 0 ? diff / scale : diff;
}

// Runs `steps` SGD steps of loss(model) twice from the same parameters, in f32 and under autocast,
// and compares the losses, the first step's gradients and the parameters' total change. (SGD: its
// updates scale with the gradient, where Adam's first steps move every parameter by about lr
// whatever the gradient's size, so tiny gradients would differ in sign only.)
template <typename Model, typename Loss>
void expect_training_matches(Device device, Model make_model, Loss loss_of, int steps) {
  st::manual_seed(3);
  auto reference = make_model();
  auto mixed = make_model();
  mixed->load_state_dict(reference->state_dict());
  st::nn::Module& r = *reference;
  st::nn::Module& m = *mixed;
  r.to(device);
  m.to(device);
  std::vector<Tensor> initial;
  for (const Tensor& p : r.parameters()) initial.push_back(p.detach().clone());
  st::optim::SGD opt_r(r.parameters(), {.lr = 0.1, .momentum = 0.9});
  st::optim::SGD opt_m(m.parameters(), {.lr = 0.1, .momentum = 0.9});
  for (int step = 0; step < steps; ++step) {
    opt_r.zero_grad();
    opt_m.zero_grad();
    const Tensor loss_r = loss_of(*reference);
    Tensor loss_m;
    {
      AutocastGuard autocast(device.type);
      loss_m = loss_of(*mixed);
    }
    ASSERT_EQ(loss_m.dtype(), DType::Float32);
    loss_r.backward();
    loss_m.backward();
    const double lr = to_f64(loss_r)[0], lm = to_f64(loss_m)[0];
    EXPECT_NEAR(lm, lr, 2e-2 * std::fabs(lr) + 1e-3) << "step " << step;
    if (step == 0) {
      const auto pr = r.named_parameters(), pm = m.named_parameters();
      for (size_t i = 0; i < pr.size(); ++i) {
        ASSERT_EQ(pm[i].second.grad().dtype(), DType::Float32) << pm[i].first;
        EXPECT_LT(relative_error(pm[i].second.grad(), pr[i].second.grad()), 5e-2) << pm[i].first;
      }
    }
    opt_r.step();
    opt_m.step();
  }
  const auto pr = r.named_parameters(), pm = m.named_parameters();
  for (size_t i = 0; i < pr.size(); ++i) {
    ASSERT_EQ(pm[i].second.dtype(), DType::Float32) << pm[i].first;
    EXPECT_LT(relative_error(st::sub(pm[i].second, initial[i]), st::sub(pr[i].second, initial[i])),
              5e-2)
        << pm[i].first;
  }
}

TEST_P(Autocast, MlpTrainingStepsMatchFloat32) {
  std::mt19937 rng(5);
  const Tensor x = make_tensor(uniform_random({32, 20}, rng), DType::Float32, device());
  NDArray labels({32});
  for (int64_t i = 0; i < 32; ++i) labels[i] = static_cast<double>(i % 10);
  const Tensor y = make_tensor(labels, DType::Int64, device());
  const auto make = [] {
    return std::make_shared<st::nn::Sequential>(std::vector<std::shared_ptr<st::nn::Module>>{
        std::make_shared<st::nn::Linear>(20, 64), std::make_shared<st::nn::GELU>(),
        std::make_shared<st::nn::Linear>(64, 10)});
  };
  expect_training_matches(
      device(), make, [&](st::nn::Module& m) { return st::cross_entropy(m.forward(x), y); }, 5);
}

// One pre-norm transformer block as the GPT's: x + attn(ln1(x)), then + mlp(ln2(.)).
class Block : public st::nn::Module {
 public:
  explicit Block(int64_t d, int64_t heads) {
    ln1 = register_module("ln1", std::make_shared<st::nn::LayerNorm>(Shape{d}));
    attn = register_module("attn", std::make_shared<st::nn::CausalSelfAttention>(d, heads));
    ln2 = register_module("ln2", std::make_shared<st::nn::LayerNorm>(Shape{d}));
    fc = register_module("fc", std::make_shared<st::nn::Linear>(d, 4 * d));
    proj = register_module("proj", std::make_shared<st::nn::Linear>(4 * d, d));
  }
  std::string_view name() const override { return "Block"; }
  Tensor forward(const Tensor& x) override {
    const Tensor h = st::add(x, attn->forward(ln1->forward(x)));
    return st::add(h, proj->forward(st::gelu(fc->forward(ln2->forward(h)))));
  }
  std::shared_ptr<st::nn::LayerNorm> ln1, ln2;
  std::shared_ptr<st::nn::CausalSelfAttention> attn;
  std::shared_ptr<st::nn::Linear> fc, proj;
};

TEST_P(Autocast, GptBlockTrainingStepsMatchFloat32) {
  std::mt19937 rng(9);
  // Heads of 32: on CUDA the attention takes the flash kernels in bf16.
  const Tensor x = make_tensor(uniform_random({2, 16, 64}, rng), DType::Float32, device());
  const Tensor target = make_tensor(uniform_random({2, 16, 64}, rng), DType::Float32, device());
  expect_training_matches(
      device(), [] { return std::make_shared<Block>(64, 2); },
      [&](st::nn::Module& m) {
        const Tensor out = m.forward(x);
        return st::mean(st::mul(st::sub(out, target), st::sub(out, target)));
      },
      3);
}

INSTANTIATE_TEST_SUITE_P(Autocast, Autocast, ::testing::ValuesIn(autocast_devices()), DeviceName());

// Under autocast, cross_entropy reads f16/bf16 logits as they are (no f32 copy) and returns an f32
// loss; the loss and the logits' gradient (in the logits' dtype) equal float64 loops over the
// rounded logits. Every backend, Vulkan included.
class AutocastCrossEntropy : public DeviceDTypeTest {
 protected:
  void expect_autocast_cross_entropy(int64_t classes) const {
    constexpr int64_t kRows = 6, kIgnore = -100;
    std::mt19937 rng(21);
    NDArray x = uniform_random({kRows, classes}, rng);
    for (double& v : x.data) v *= 4;
    const std::vector<int64_t> targets = {3, 0, 36, kIgnore, 5, 17};
    NDArray t({kRows});
    for (int64_t r = 0; r < kRows; ++r) t[r] = static_cast<double>(targets[r]);
    const Tensor target = make_tensor(t, DType::Int64, device());
    Tensor logits = input(x).set_requires_grad(true);
    const NDArray rounded = from_tensor(logits);

    // float64: per-row loss lse - x[t], the mean over the rows not ignored, and its gradient.
    NDArray rows({kRows}), grad({kRows, classes});
    double total = 0;
    const double counted = kRows - 1;
    for (int64_t r = 0; r < kRows; ++r) {
      if (targets[r] == kIgnore) continue;
      double m = -1e300, s = 0;
      for (int64_t c = 0; c < classes; ++c) m = std::max(m, rounded.at({r, c}));
      for (int64_t c = 0; c < classes; ++c) s += std::exp(rounded.at({r, c}) - m);
      const double lse = m + std::log(s);
      rows[r] = lse - rounded.at({r, targets[r]});
      total += rows[r];
      for (int64_t c = 0; c < classes; ++c)
        grad.at({r, c}) = (std::exp(rounded.at({r, c}) - lse) - (c == targets[r])) / counted;
    }

    Tensor mean, per_row;
    {
      AutocastGuard autocast(device().type, dtype());
      mean = st::cross_entropy(logits, target, kIgnore);
      per_row = st::cross_entropy(logits, target, kIgnore, st::Reduction::None);
    }
    ASSERT_EQ(mean.dtype(), DType::Float32);
    ASSERT_EQ(per_row.dtype(), DType::Float32);
    // f32 arithmetic: a loss rounded to the logits' dtype would be off by 2^-9 (bf16) or 2^-12.
    EXPECT_CLOSE(per_row, rows, Tolerance{1e-5, 1e-5});
    EXPECT_NEAR(to_f64(mean)[0], total / counted, 1e-5 * total / counted);
    mean.backward();
    ASSERT_EQ(logits.grad().dtype(), dtype());
    EXPECT_CLOSE(logits.grad(), grad, tolerance_for(dtype()));
  }
};

TEST_P(AutocastCrossEntropy, ReadsLowPrecisionLogitsAndReturnsAFloat32Loss) {
  // 40 classes: rows of whole 16-byte packs on the GPUs; 37: element by element.
  for (const int64_t classes : {int64_t{37}, int64_t{40}}) {
    SCOPED_TRACE(std::to_string(classes) + " classes");
    expect_autocast_cross_entropy(classes);
  }
}

INSTANTIATE_TEST_SUITE_P(AutocastCrossEntropy, AutocastCrossEntropy,
                         ::testing::Combine(::testing::ValuesIn(st::available_devices()),
                                            ::testing::Values(DType::Float16, DType::BFloat16)),
                         DeviceDTypeName());

class AutocastLayerNorm : public DeviceDTypeTest {};

// Under autocast layer_norm's statistics and normalization run in f32 and its output is the f32
// result rounded once to the scope's dtype; the output's gradient is read in that dtype, and the
// input and parameter gradients are those of the f32 op given the same gradient. Widths: element
// by element (37), 16-byte packs held in registers (64, 768), rows too long to hold (8200).
TEST_P(AutocastLayerNorm, ComputesInFloat32AndWritesTheScopeDtype) {
  std::mt19937 rng(5);
  constexpr int64_t kRows = 5;
  for (const int64_t cols : {int64_t{37}, int64_t{64}, int64_t{768}, int64_t{8200}}) {
    SCOPED_TRACE(std::to_string(cols) + " columns");
    const NDArray x = uniform_random({kRows, cols}, rng, -3, 3);
    const NDArray w = uniform_random({cols}, rng), b = uniform_random({cols}, rng);
    // A gradient exact in f16 and bf16, so that both paths see the same values.
    const Tensor g = make_tensor(grid_random({kRows, cols}, rng, -1, 1), dtype(), device());
    const auto leaves = [&] {
      return std::array{make_tensor(x, DType::Float32, device()).set_requires_grad(true),
                        make_tensor(w, DType::Float32, device()).set_requires_grad(true),
                        make_tensor(b, DType::Float32, device()).set_requires_grad(true)};
    };
    const auto f32 = leaves(), mixed = leaves();
    const Tensor y32 = st::layer_norm(f32[0], {cols}, f32[1], f32[2]);
    y32.backward(g.to(DType::Float32));
    Tensor y;
    {
      AutocastGuard autocast(device().type, dtype());
      y = st::layer_norm(mixed[0], {cols}, mixed[1], mixed[2]);
    }
    ASSERT_EQ(y.dtype(), dtype());
    EXPECT_EXACT(y, from_tensor(y32.detach().to(dtype())));
    // And against float64 loops, to the scope dtype's rounding.
    NDArray expected({kRows, cols});
    for (int64_t r = 0; r < kRows; ++r) {
      double mean = 0, var = 0;
      for (int64_t c = 0; c < cols; ++c) mean += x.at({r, c}) / static_cast<double>(cols);
      for (int64_t c = 0; c < cols; ++c) var += std::pow(x.at({r, c}) - mean, 2) / cols;
      for (int64_t c = 0; c < cols; ++c)
        expected.at({r, c}) = (x.at({r, c}) - mean) / std::sqrt(var + 1e-5) * w[c] + b[c];
    }
    EXPECT_CLOSE(y, expected, tolerance_for(dtype()));
    y.backward(g);
    for (int i = 0; i < 3; ++i) {
      SCOPED_TRACE(i == 0 ? "grad x" : i == 1 ? "grad weight" : "grad bias");
      ASSERT_EQ(mixed[i].grad().dtype(), DType::Float32);
      EXPECT_CLOSE(mixed[i].grad(), from_tensor(f32[i].grad()), tolerance_for(DType::Float32));
    }
  }
}

INSTANTIATE_TEST_SUITE_P(AutocastLayerNorm, AutocastLayerNorm,
                         ::testing::Combine(::testing::ValuesIn(st::available_devices()),
                                            ::testing::Values(DType::Float16, DType::BFloat16)),
                         DeviceDTypeName());

}  // namespace
}  // namespace st_test
