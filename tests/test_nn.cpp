// nn modules: the registry (names, state dicts, modes, moves), each layer's forward against
// float64 loops over its own parameters, PyTorch's initialization ranges, and causality of the
// attention block. Run on every available device.

#include <spiraltorch/nn.h>

#include <cmath>

#include "gradcheck.h"

namespace st_test {
namespace {

using st::nn::Module;

class NN : public ::testing::TestWithParam<Device> {
 protected:
  Device device() const { return GetParam(); }
  st::TensorOptions f64() const { return {DType::Float64, device()}; }
  std::mt19937 rng{2024};
};

// A module with a parameter, a buffer and nested children, as user code would write one.
class Net : public Module {
 public:
  explicit Net(const st::TensorOptions& options)
      : body(std::make_shared<st::nn::Sequential>(std::vector<std::shared_ptr<Module>>{
            std::make_shared<st::nn::Linear>(3, 4, true, options), std::make_shared<st::nn::ReLU>(),
            std::make_shared<st::nn::Linear>(4, 2, false, options)})),
        norm(std::make_shared<st::nn::LayerNorm>(Shape{2}, 1e-5, true, options)) {
    scale = st::ones({2}, options);
    steps = st::zeros({}, {DType::Int64, options.device});
    register_parameter("scale", scale);
    register_buffer("steps", steps);
    register_module("body", body);
    register_module("norm", norm);
  }
  std::string_view name() const override { return "Net"; }
  Tensor forward(const Tensor& x) override { return (*norm)(body->forward(x)) * scale; }

  Tensor scale, steps;
  std::shared_ptr<st::nn::Sequential> body;
  std::shared_ptr<st::nn::LayerNorm> norm;
};

std::vector<std::string> names(const st::nn::NamedTensors& named) {
  std::vector<std::string> out;
  for (const auto& [name, t] : named) out.push_back(name);
  return out;
}

TEST_P(NN, ParametersAndBuffersByDottedName) {
  Net net(f64());
  EXPECT_EQ(names(net.named_parameters()),
            (std::vector<std::string>{"scale", "body.0.weight", "body.0.bias", "body.2.weight",
                                      "norm.weight", "norm.bias"}));
  EXPECT_EQ(names(net.named_buffers()), std::vector<std::string>{"steps"});
  for (const Tensor& p : net.parameters()) {
    EXPECT_TRUE(p.requires_grad());
    EXPECT_TRUE(p.is_leaf());
  }
  EXPECT_FALSE(net.steps.requires_grad());
  // The named tensors are the module's own, not copies.
  EXPECT_TRUE(net.named_parameters()[0].second.is_same(net.scale));
  EXPECT_EQ(net.state_dict().size(), 7u);
}

TEST_P(NN, StateDictRoundTrip) {
  st::manual_seed(1);
  Net a(f64());
  st::manual_seed(2);
  Net b(f64());
  const Tensor x = make_tensor(uniform_random({5, 3}, rng), DType::Float64, device());
  const std::vector<double> before = to_f64(b(x));
  EXPECT_NE(to_f64(a(x)), before);
  b.load_state_dict(a.state_dict());
  EXPECT_EQ(to_f64(a(x)), to_f64(b(x)));
  // Loaded values are copies: changing a afterwards leaves b alone.
  {
    st::NoGradGuard no_grad;
    a.scale.fill_(3);
  }
  EXPECT_EQ(to_f64(b.scale), (std::vector<double>{1, 1}));
  // A state dict converts dtype on load.
  st::nn::StateDict f32;
  for (const auto& [name, t] : a.state_dict())
    f32.emplace(name, st::is_floating(t.dtype()) ? t.to(DType::Float32) : t);
  b.load_state_dict(f32);
  EXPECT_EQ(b.scale.dtype(), DType::Float64);
  EXPECT_EQ(to_f64(b.scale), (std::vector<double>{3, 3}));
}

TEST_P(NN, LoadStateDictRejectsMismatches) {
  Net net(f64());
  st::nn::StateDict state = net.state_dict();
  st::nn::StateDict missing = state;
  missing.erase("body.0.bias");
  try {
    net.load_state_dict(missing);
    ADD_FAILURE() << "expected ValueError";
  } catch (const st::ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("missing keys [body.0.bias]"), std::string::npos)
        << e.what();
  }
  net.load_state_dict(missing, /*strict=*/false);
  st::nn::StateDict extra = state;
  extra.emplace("head.weight", st::zeros({1}));
  try {
    net.load_state_dict(extra);
    ADD_FAILURE() << "expected ValueError";
  } catch (const st::ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("unexpected keys [head.weight]"), std::string::npos)
        << e.what();
  }
  st::nn::StateDict wrong = state;
  wrong["body.0.weight"] = st::zeros({3, 4}, f64());
  EXPECT_THROW(net.load_state_dict(wrong), st::ShapeError);
  EXPECT_THROW(net.load_state_dict(wrong, /*strict=*/false), st::ShapeError);
}

TEST_P(NN, TrainEvalReachesChildrenAndDropout) {
  st::nn::Sequential seq({std::make_shared<st::nn::Dropout>(0.5)});
  EXPECT_TRUE(seq.is_training());
  EXPECT_TRUE(seq[0].is_training());
  const Tensor x = st::ones({1000}, f64());
  const std::vector<double> trained = to_f64(seq(x));
  EXPECT_GT(std::count(trained.begin(), trained.end(), 0.0), 400);
  EXPECT_GT(std::count(trained.begin(), trained.end(), 2.0), 400);
  seq.eval();
  EXPECT_FALSE(seq[0].is_training());
  EXPECT_EQ(to_f64(seq(x)), std::vector<double>(1000, 1.0));
}

TEST_P(NN, ZeroGradAndMoves) {
  Net net(f64());
  const Tensor x = make_tensor(uniform_random({5, 3}, rng), DType::Float64, device());
  st::sum(net(x)).backward();
  for (const Tensor& p : net.parameters()) EXPECT_TRUE(p.grad().defined());
  net.zero_grad(/*set_to_none=*/false);
  for (const Tensor& p : net.parameters())
    EXPECT_EQ(to_f64(st::abs(p.grad()).sum()), std::vector<double>{0});
  net.zero_grad();
  for (const Tensor& p : net.parameters()) EXPECT_FALSE(p.grad().defined());
  const std::vector<double> before = to_f64(net(x));
  net.to(DType::Float32);
  EXPECT_EQ(net.body->named_parameters()[0].second.dtype(), DType::Float32);
  EXPECT_EQ(net.steps.dtype(), DType::Int64);  // integer buffers keep their dtype
  for (const Tensor& p : net.parameters()) EXPECT_TRUE(p.requires_grad() && p.is_leaf());
  EXPECT_CLOSE(net(x.to(DType::Float32)), NDArray({5, 2}, before), tolerance_for(DType::Float32));
  net.to(st::kCPU);
  EXPECT_EQ(net.scale.device(), st::kCPU);
}

TEST_P(NN, LinearForwardAndInitRange) {
  st::nn::Linear layer(50, 30, true, f64());
  EXPECT_EQ(layer.weight.shape(), (Shape{30, 50}));
  EXPECT_EQ(layer.bias.shape(), (Shape{30}));
  // PyTorch's rule: weight and bias uniform in +-1/sqrt(in_features).
  const double bound = 1 / std::sqrt(50.0);
  const std::vector<double> w = to_f64(layer.weight), b = to_f64(layer.bias);
  double squares = 0;
  for (double v : w) {
    EXPECT_LE(std::fabs(v), bound);
    squares += v * v;
  }
  for (double v : b) EXPECT_LE(std::fabs(v), bound);
  // Variance of U(-bound, bound) is bound^2 / 3; 1500 draws put the estimate within ~8%.
  EXPECT_NEAR(squares / static_cast<double>(w.size()), bound * bound / 3, 0.1 * bound * bound / 3);
  NDArray x = uniform_random({4, 50}, rng);
  NDArray expected({4, 30}, 0.0);
  for (int64_t i = 0; i < 4; ++i)
    for (int64_t o = 0; o < 30; ++o) {
      double s = b[o];
      for (int64_t k = 0; k < 50; ++k) s += x.at({i, k}) * w[o * 50 + k];
      expected.at({i, o}) = s;
    }
  EXPECT_CLOSE(layer(make_tensor(x, DType::Float64, device())), expected,
               tolerance_for(DType::Float64));
  EXPECT_EQ(layer.str(), "Linear(in_features=50, out_features=30, bias=true)");
}

TEST_P(NN, EmbeddingLayerNormAndGelu) {
  st::nn::Embedding table(400, 10, f64());
  std::vector<double> w = to_f64(table.weight);
  double mean = 0, squares = 0;
  for (double v : w) mean += v / 4000;
  for (double v : w) squares += (v - mean) * (v - mean) / 4000;
  EXPECT_NEAR(mean, 0, 0.06);  // N(0, 1): the mean of 4000 draws has sd 0.016
  EXPECT_NEAR(squares, 1, 0.1);
  const Tensor rows = table(make_tensor(NDArray({2}, {3, 399}), DType::Int64, device()));
  EXPECT_EQ(to_f64(rows.select(0, 1)), std::vector<double>(w.begin() + 3990, w.end()));

  st::nn::LayerNorm norm({4}, 1e-5, true, f64());
  EXPECT_EQ(to_f64(norm.weight), std::vector<double>(4, 1.0));
  EXPECT_EQ(to_f64(norm.bias), std::vector<double>(4, 0.0));
  NDArray x({1, 4}, {1, 2, 3, 6});
  const double mu = 3, var = (4 + 1 + 0 + 9) / 4.0;
  NDArray expected({1, 4}, {0, 0, 0, 0});
  for (int64_t i = 0; i < 4; ++i) expected[i] = (x[i] - mu) / std::sqrt(var + 1e-5);
  EXPECT_CLOSE(norm(make_tensor(x, DType::Float64, device())), expected,
               tolerance_for(DType::Float64));
  EXPECT_EQ(norm.str(), "LayerNorm((4,), eps=1e-05, elementwise_affine=true)");

  st::nn::GELU gelu;
  NDArray g({3}, {-1, 0, 2});
  NDArray ge({3}, {0, 0, 0});
  for (int64_t i = 0; i < 3; ++i) ge[i] = 0.5 * g[i] * (1 + std::erf(g[i] / std::sqrt(2.0)));
  EXPECT_CLOSE(gelu(make_tensor(g, DType::Float64, device())), ge, tolerance_for(DType::Float64));
}

// Causal self-attention computed from the block's own parameters with float64 loops.
NDArray attention_block_ref(const NDArray& x, const std::vector<double>& wqkv,
                            const std::vector<double>& bqkv, const std::vector<double>& wproj,
                            const std::vector<double>& bproj, int64_t heads) {
  const int64_t B = x.shape[0], T = x.shape[1], C = x.shape[2], D = C / heads;
  NDArray qkv({B, T, 3 * C}, 0.0), merged({B, T, C}, 0.0), out({B, T, C}, 0.0);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t)
      for (int64_t o = 0; o < 3 * C; ++o) {
        double s = bqkv[o];
        for (int64_t c = 0; c < C; ++c) s += x.at({b, t, c}) * wqkv[o * C + c];
        qkv.at({b, t, o}) = s;
      }
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t i = 0; i < T; ++i) {
        std::vector<double> w(i + 1);
        double hi = -INFINITY, total = 0;
        for (int64_t j = 0; j <= i; ++j) {
          double s = 0;
          for (int64_t d = 0; d < D; ++d)
            s += qkv.at({b, i, h * D + d}) * qkv.at({b, j, C + h * D + d});
          w[j] = s / std::sqrt(static_cast<double>(D));
          hi = std::max(hi, w[j]);
        }
        for (int64_t j = 0; j <= i; ++j) total += w[j] = std::exp(w[j] - hi);
        for (int64_t j = 0; j <= i; ++j)
          for (int64_t d = 0; d < D; ++d)
            merged.at({b, i, h * D + d}) += w[j] / total * qkv.at({b, j, 2 * C + h * D + d});
      }
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t)
      for (int64_t o = 0; o < C; ++o) {
        double s = bproj[o];
        for (int64_t c = 0; c < C; ++c) s += merged.at({b, t, c}) * wproj[o * C + c];
        out.at({b, t, o}) = s;
      }
  return out;
}

TEST_P(NN, CausalSelfAttentionMatchesReferenceAndIsCausal) {
  st::nn::CausalSelfAttention attn(8, 2, 0.0, true, f64());
  EXPECT_EQ(names(attn.named_parameters()),
            (std::vector<std::string>{"qkv.weight", "qkv.bias", "proj.weight", "proj.bias"}));
  NDArray x = uniform_random({2, 5, 8}, rng);
  const NDArray expected =
      attention_block_ref(x, to_f64(attn.qkv->weight), to_f64(attn.qkv->bias),
                          to_f64(attn.proj->weight), to_f64(attn.proj->bias), 2);
  const Tensor y = attn(make_tensor(x, DType::Float64, device()));
  EXPECT_CLOSE(y, expected, tolerance_for(DType::Float64));
  // Changing the last position changes no earlier output.
  NDArray changed = x;
  for (int64_t c = 0; c < 8; ++c) changed.at({1, 4, c}) += 1;
  const std::vector<double> a = to_f64(y),
                            b = to_f64(attn(make_tensor(changed, DType::Float64, device())));
  for (int64_t t = 0; t < 5; ++t)
    for (int64_t c = 0; c < 8; ++c) {
      const int64_t i = (1 * 5 + t) * 8 + c;
      if (t < 4)
        EXPECT_EQ(a[i], b[i]) << "position " << t;
      else
        EXPECT_NE(a[i], b[i]);
    }
  EXPECT_THROW(st::nn::CausalSelfAttention(10, 3), st::ValueError);
  EXPECT_THROW(attn(st::zeros({2, 5, 6}, f64())), st::ShapeError);
}

TEST_P(NN, CausalSelfAttentionGradients) {
  // The block's gradients with respect to its input and every parameter: the checked leaves are
  // put in the layers' parameter slots.
  st::nn::CausalSelfAttention attn(4, 2, 0.0, true, f64());
  const std::vector<NDArray> inputs{uniform_random({2, 3, 4}, rng), from_tensor(attn.qkv->weight),
                                    from_tensor(attn.qkv->bias), from_tensor(attn.proj->weight),
                                    from_tensor(attn.proj->bias)};
  EXPECT_TRUE(gradcheck(
      [&](const std::vector<Tensor>& in) {
        attn.qkv->weight = in[1];
        attn.qkv->bias = in[2];
        attn.proj->weight = in[3];
        attn.proj->bias = in[4];
        return attn(in[0]);
      },
      inputs, device()));
}

TEST_P(NN, ModuleStrPrintsTheTree) {
  Net net(f64());
  EXPECT_EQ(net.str(),
            "Net(\n"
            "  (body): Sequential(\n"
            "    (0): Linear(in_features=3, out_features=4, bias=true)\n"
            "    (1): ReLU()\n"
            "    (2): Linear(in_features=4, out_features=2, bias=false)\n"
            "  )\n"
            "  (norm): LayerNorm((2,), eps=1e-05, elementwise_affine=true)\n"
            ")");
  EXPECT_THROW(st::nn::Sequential().push_back(nullptr), st::ValueError);
}

INSTANTIATE_TEST_SUITE_P(NN, NN, ::testing::ValuesIn(st::available_devices()), DeviceName());

}  // namespace
}  // namespace st_test
