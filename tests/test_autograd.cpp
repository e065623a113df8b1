// Gradient checks: for every differentiable op, backward() against central finite differences in
// float64, on every available device, with broadcast, non-contiguous and several shapes of input.

#include <cmath>
#include <functional>

#include "gradcheck.h"

namespace st_test {
namespace {

using Inputs = std::vector<Tensor>;

class Gradcheck : public ::testing::TestWithParam<Device> {
 public:
  Device device() const { return GetParam(); }
  NDArray u(const Shape& shape, double lo = -1, double hi = 1) {
    return uniform_random(shape, rng, lo, hi);
  }
  // Magnitudes in [lo, hi] with random signs: keeps inputs away from kinks at 0.
  NDArray away(const Shape& shape, double lo = 0.2, double hi = 1.5) {
    NDArray a = uniform_random(shape, rng, lo, hi);
    std::bernoulli_distribution sign(0.5);
    for (auto& v : a.data) v = sign(rng) ? v : -v;
    return a;
  }
  // Multiples of 0.25 (or offset by 0.125): two such arrays never tie, so max/min have no kinks.
  NDArray ladder(const Shape& shape, double offset) {
    return map(int_random(shape, rng, -8, 8), [offset](double k) { return k * 0.25 + offset; });
  }
  void check(const std::string& name, const GradFn& f, const std::vector<NDArray>& inputs,
             GradcheckOptions options = {}) {
    SCOPED_TRACE(name);
    EXPECT_TRUE(gradcheck(f, inputs, device(), options));
  }
  std::mt19937 rng{8675309};
};

// Unary ops on a contiguous input, a transposed view, a strided slice and a 0-d tensor.
void check_unary(Gradcheck& g, const std::string& name, std::function<Tensor(const Tensor&)> op,
                 std::function<NDArray(const Shape&)> make) {
  g.check(name + " [3, 4]", [op](const Inputs& x) { return op(x[0]); }, {make({3, 4})});
  g.check(name + " transposed", [op](const Inputs& x) { return op(x[0].t()); }, {make({4, 3})});
  g.check(name + " strided",
          [op](const Inputs& x) { return op(x[0].slice(1, 1, std::nullopt, 2)); }, {make({3, 5})});
  g.check(name + " 0-d", [op](const Inputs& x) { return op(x[0]); }, {make({})});
}

TEST_P(Gradcheck, UnaryOps) {
  auto any = [&](const Shape& s) { return u(s, -2, 2); };
  auto positive = [&](const Shape& s) { return u(s, 0.5, 2); };
  auto nonzero = [&](const Shape& s) { return away(s); };
  check_unary(
      *this, "neg", [](const Tensor& x) { return st::neg(x); }, any);
  check_unary(
      *this, "operator-", [](const Tensor& x) { return -x; }, any);
  check_unary(
      *this, "exp", [](const Tensor& x) { return st::exp(x); }, any);
  check_unary(
      *this, "log", [](const Tensor& x) { return st::log(x); }, positive);
  check_unary(
      *this, "sqrt", [](const Tensor& x) { return st::sqrt(x); }, positive);
  check_unary(
      *this, "rsqrt", [](const Tensor& x) { return st::rsqrt(x); }, positive);
  check_unary(
      *this, "abs", [](const Tensor& x) { return st::abs(x); }, nonzero);
  check_unary(
      *this, "tanh", [](const Tensor& x) { return st::tanh(x); }, any);
  check_unary(
      *this, "sigmoid", [](const Tensor& x) { return st::sigmoid(x); }, any);
  check_unary(
      *this, "relu", [](const Tensor& x) { return st::relu(x); }, nonzero);
  check_unary(
      *this, "gelu erf", [](const Tensor& x) { return st::gelu(x); }, any);
  check_unary(
      *this, "gelu tanh", [](const Tensor& x) { return st::gelu(x, st::GeluApproximate::Tanh); },
      any);
  check_unary(
      *this, "pow 2", [](const Tensor& x) { return st::pow(x, 2); }, any);
  check_unary(
      *this, "pow 3", [](const Tensor& x) { return st::pow(x, 3.0); }, any);
  check_unary(
      *this, "pow 0.5", [](const Tensor& x) { return st::pow(x, 0.5); }, positive);
  check_unary(
      *this, "pow -1.5", [](const Tensor& x) { return st::pow(x, -1.5); }, positive);
  check_unary(
      *this, "pow 0", [](const Tensor& x) { return st::pow(x, 0) * x; }, any);
  // Bounds at +-0.5; inputs have magnitudes in [0.6, 1.5] or [0, 0.4], never near a bound.
  auto off_bounds = [&](const Shape& s) {
    NDArray a = away(s, 0.0, 0.4);
    NDArray b = away(s, 0.6, 1.5);
    std::bernoulli_distribution pick(0.5);
    for (int64_t i = 0; i < a.numel(); ++i) a[i] = pick(rng) ? a[i] : b[i];
    return a;
  };
  check_unary(
      *this, "clamp", [](const Tensor& x) { return st::clamp(x, -0.5, 0.5); }, off_bounds);
  check_unary(
      *this, "clamp min", [](const Tensor& x) { return st::clamp(x, -0.5, std::nullopt); },
      off_bounds);
  check_unary(
      *this, "clamp max", [](const Tensor& x) { return st::clamp(x, std::nullopt, 0.5); },
      off_bounds);
  check_unary(
      *this, "x + 2.5", [](const Tensor& x) { return x + 2.5; }, any);
  check_unary(
      *this, "x - 1", [](const Tensor& x) { return st::sub(x, st::Scalar(1)); }, any);
  check_unary(
      *this, "x * 3", [](const Tensor& x) { return x * 3; }, any);
  check_unary(
      *this, "x / 4", [](const Tensor& x) { return x / 4.0; }, any);
  check_unary(
      *this, "2 - x", [](const Tensor& x) { return 2.0 - x; }, any);
  check_unary(
      *this, "3 / x", [](const Tensor& x) { return 3.0 / x; }, nonzero);
  check_unary(
      *this, "methods", [](const Tensor& x) { return x.exp().tanh().sigmoid().abs().neg(); }, any);
}

// Binary ops with equal shapes, broadcasting on either side, 0-d operands and transposed views.
void check_binary(Gradcheck& g, const std::string& name,
                  std::function<Tensor(const Tensor&, const Tensor&)> op,
                  std::function<NDArray(const Shape&)> make_a,
                  std::function<NDArray(const Shape&)> make_b) {
  struct Case {
    Shape a, b;
  };
  for (const auto& c : std::vector<Case>{
           {{3, 4}, {3, 4}}, {{3, 1, 4}, {2, 1}}, {{4}, {3, 4}}, {{}, {2, 3}}, {{2, 3}, {}}}) {
    g.check(name + " " + shape_str(c.a) + " " + shape_str(c.b),
            [op](const Inputs& x) { return op(x[0], x[1]); }, {make_a(c.a), make_b(c.b)});
  }
  g.check(name + " transposed", [op](const Inputs& x) { return op(x[0].t(), x[1]); },
          {make_a({4, 3}), make_b({3, 4})});
  g.check(name + " expanded",
          [op](const Inputs& x) {
            return op(x[0].expand({3, 4}), x[1]);
          },
          {make_a({3, 1}), make_b({3, 4})});
  g.check(name + " same tensor twice", [op](const Inputs& x) { return op(x[0], x[0]); },
          {make_b({2, 3})});
  g.check(name + " only a requires grad", [op](const Inputs& x) { return op(x[0], x[1]); },
          {make_a({2, 3}), make_b({3})}, {.requires_grad = {true, false}});
  g.check(name + " only b requires grad", [op](const Inputs& x) { return op(x[0], x[1]); },
          {make_a({2, 3}), make_b({3})}, {.requires_grad = {false, true}});
}

TEST_P(Gradcheck, BinaryOps) {
  auto any = [&](const Shape& s) { return u(s, -2, 2); };
  auto positive = [&](const Shape& s) { return u(s, 0.5, 2); };
  auto nonzero = [&](const Shape& s) { return away(s, 0.5, 2); };
  check_binary(
      *this, "add", [](const Tensor& a, const Tensor& b) { return a + b; }, any, any);
  check_binary(
      *this, "add alpha", [](const Tensor& a, const Tensor& b) { return st::add(a, b, 2.5); }, any,
      any);
  check_binary(
      *this, "sub", [](const Tensor& a, const Tensor& b) { return a - b; }, any, any);
  check_binary(
      *this, "sub alpha", [](const Tensor& a, const Tensor& b) { return st::sub(a, b, -3); }, any,
      any);
  check_binary(
      *this, "mul", [](const Tensor& a, const Tensor& b) { return a * b; }, any, any);
  check_binary(
      *this, "div", [](const Tensor& a, const Tensor& b) { return a / b; }, any, nonzero);
  check_binary(
      *this, "pow", [](const Tensor& a, const Tensor& b) { return st::pow(a, b); }, positive,
      positive);
}

TEST_P(Gradcheck, MaximumMinimum) {
  auto on_quarters = [&](const Shape& s) { return ladder(s, 0.0); };
  auto between = [&](const Shape& s) { return ladder(s, 0.125); };
  check_binary(
      *this, "maximum", [](const Tensor& a, const Tensor& b) { return st::maximum(a, b); },
      on_quarters, between);
  check_binary(
      *this, "minimum", [](const Tensor& a, const Tensor& b) { return st::minimum(a, b); },
      on_quarters, between);
}

TEST_P(Gradcheck, Where) {
  NDArray cond = int_random({3, 4}, rng, 0, 1);
  Tensor c = make_tensor(cond, DType::Bool, device());
  check("where same shapes", [c](const Inputs& x) { return st::where(c, x[0], x[1]); },
        {u({3, 4}), u({3, 4})});
  check("where broadcast", [c](const Inputs& x) { return st::where(c, x[0], x[1]); },
        {u({3, 1}), u({4})});
  check("where 0-d b", [c](const Inputs& x) { return st::where(c, x[0].t(), x[1]); },
        {u({4, 3}), u({})});
}

TEST_P(Gradcheck, Reductions) {
  for (const Shape& dims : std::vector<Shape>{{}, {0}, {1}, {-1}, {0, 2}, {1, -1}, {0, 1, 2}}) {
    for (bool keepdim : {false, true}) {
      std::string tag = shape_str(dims) + (keepdim ? " keepdim" : "");
      check("sum " + tag, [dims, keepdim](const Inputs& x) { return st::sum(x[0], dims, keepdim); },
            {u({2, 3, 4})});
      check("mean " + tag,
            [dims, keepdim](const Inputs& x) { return st::mean(x[0], dims, keepdim); },
            {u({2, 3, 4})});
    }
  }
  check("sum of transposed", [](const Inputs& x) { return st::sum(x[0].transpose(0, 2), {0}); },
        {u({2, 3, 4})});
  check("mean method", [](const Inputs& x) { return x[0].mean({1}, true); }, {u({3, 5})});
  check("sum_to", [](const Inputs& x) { return st::sum_to(x[0], {4, 1}); }, {u({3, 4, 5})});
  check("sum_to same", [](const Inputs& x) { return st::sum_to(x[0], {3, 4}); }, {u({3, 4})});
}

TEST_P(Gradcheck, MaxMin) {
  for (int64_t dim : {0, 1, -1}) {
    for (bool keepdim : {false, true}) {
      std::string tag = std::to_string(dim) + (keepdim ? " keepdim" : "");
      check("max dim " + tag,
            [dim, keepdim](const Inputs& x) { return std::get<0>(st::max(x[0], dim, keepdim)); },
            {distinct_random({3, 4, 2}, rng)});
      check("min dim " + tag,
            [dim, keepdim](const Inputs& x) { return std::get<0>(st::min(x[0], dim, keepdim)); },
            {distinct_random({3, 4, 2}, rng)});
    }
  }
  check("max full", [](const Inputs& x) { return st::max(x[0]); }, {distinct_random({4, 5}, rng)});
  check("amax dims 0 2",
        [](const Inputs& x) {
          return st::amax(x[0], {0, 2});
        },
        {distinct_random({3, 4, 2}, rng)});
  check("amin dim -1 keepdim", [](const Inputs& x) { return st::amin(x[0], {-1}, true); },
        {distinct_random({3, 4, 2}, rng)});
  check("min full", [](const Inputs& x) { return st::min(x[0]); }, {distinct_random({4, 5}, rng)});
  check("min full transposed", [](const Inputs& x) { return st::min(x[0].t()); },
        {distinct_random({3, 5}, rng)});
}

TEST_P(Gradcheck, Matmul) {
  struct Case {
    Shape a, b;
  };
  for (const auto& c : std::vector<Case>{{{5}, {5}},
                                         {{4}, {4, 3}},
                                         {{3, 4}, {4}},
                                         {{3, 4}, {4, 5}},
                                         {{2, 3, 4}, {2, 4, 5}},
                                         {{2, 1, 3, 4}, {5, 4, 2}},
                                         {{3, 4}, {2, 4, 5}},
                                         {{2, 3, 4}, {4}},
                                         {{4}, {2, 4, 3}}}) {
    check("matmul " + shape_str(c.a) + " @ " + shape_str(c.b),
          [](const Inputs& x) { return st::matmul(x[0], x[1]); }, {u(c.a), u(c.b)});
  }
  check("matmul transposed operands",
        [](const Inputs& x) { return st::matmul(x[0].t(), x[1].t()); }, {u({4, 3}), u({5, 4})});
  check("matmul batched transposed",
        [](const Inputs& x) { return st::matmul(x[0], x[1].transpose(1, 2)); },
        {u({2, 3, 4}), u({2, 5, 4})});
  check("matmul expanded batch",
        [](const Inputs& x) {
          return st::matmul(x[0].expand({3, 2, 4}), x[1]);
        },
        {u({1, 2, 4}), u({3, 4, 2})});
  check("matmul x @ x", [](const Inputs& x) { return x[0].matmul(x[0]); }, {u({3, 3})});
}

TEST_P(Gradcheck, SoftmaxAndLogSoftmax) {
  for (int64_t dim : {0, 1, 2, -1}) {
    check("softmax " + std::to_string(dim),
          [dim](const Inputs& x) { return st::softmax(x[0], dim); }, {u({2, 3, 4}, -2, 2)});
    check("log_softmax " + std::to_string(dim),
          [dim](const Inputs& x) { return st::log_softmax(x[0], dim); }, {u({2, 3, 4}, -2, 2)});
  }
  check("softmax transposed", [](const Inputs& x) { return st::softmax(x[0].t(), 1); },
        {u({5, 3}, -2, 2)});
  check("log_softmax strided",
        [](const Inputs& x) { return st::log_softmax(x[0].slice(1, 0, std::nullopt, 2), -1); },
        {u({3, 7}, -2, 2)});
}

TEST_P(Gradcheck, LayerNorm) {
  check("layer_norm weight bias",
        [](const Inputs& x) { return st::layer_norm(x[0], {6}, x[1], x[2]); },
        {u({3, 6}, -2, 2), u({6}, 0.5, 1.5), u({6})});
  check("layer_norm 2 dims",
        [](const Inputs& x) {
          return st::layer_norm(x[0], {3, 4}, x[1], x[2]);
        },
        {u({2, 3, 4}, -2, 2), u({3, 4}, 0.5, 1.5), u({3, 4})});
  check("layer_norm plain", [](const Inputs& x) { return st::layer_norm(x[0], {5}); },
        {u({4, 5}, -2, 2)});
  check("layer_norm weight only", [](const Inputs& x) { return st::layer_norm(x[0], {5}, x[1]); },
        {u({4, 5}, -2, 2), u({5}, 0.5, 1.5)});
  check("layer_norm bias only",
        [](const Inputs& x) { return st::layer_norm(x[0], {5}, Tensor(), x[1]); },
        {u({4, 5}, -2, 2), u({5})});
  check("layer_norm transposed, eps 0.1",
        [](const Inputs& x) { return st::layer_norm(x[0].t(), {3}, x[1], x[2], 0.1); },
        {u({3, 4}, -2, 2), u({3}, 0.5, 1.5), u({3})});
  check("layer_norm x only requires grad",
        [](const Inputs& x) { return st::layer_norm(x[0], {6}, x[1], x[2]); },
        {u({3, 6}, -2, 2), u({6}, 0.5, 1.5), u({6})}, {.requires_grad = {true, false, false}});
}

TEST_P(Gradcheck, Embedding) {
  for (DType index_dtype : {DType::Int64, DType::Int32}) {
    Tensor indices = make_tensor(NDArray({2, 4}, {0, 2, 0, 5, 2, 2, 1, 0}), index_dtype, device());
    check(std::string("embedding ") + std::string(st::dtype_name(index_dtype)),
          [indices](const Inputs& x) { return st::embedding(x[0], indices); }, {u({6, 3})});
  }
  Tensor one = make_tensor(scalar_array(4), DType::Int64, device());
  check("embedding 0-d index", [one](const Inputs& x) { return st::embedding(x[0], one).exp(); },
        {u({6, 3})});
}

TEST_P(Gradcheck, EmbeddingRepeatedIndicesAccumulate) {
  // Closed form: row r of the weight's grad is the sum of the output grads of every position that
  // picked r.
  NDArray w = u({5, 3});
  Tensor weight = make_tensor(w, DType::Float64, device());
  weight.set_requires_grad(true);
  Tensor indices = make_tensor(NDArray({4}, {0, 2, 0, 0}), DType::Int64, device());
  NDArray g = u({4, 3});
  st::embedding(weight, indices).backward(make_tensor(g, DType::Float64, device()));
  NDArray expected({5, 3});
  for (int64_t j = 0; j < 3; ++j) {
    expected[0 * 3 + j] = g[0 * 3 + j] + g[2 * 3 + j] + g[3 * 3 + j];
    expected[2 * 3 + j] = g[1 * 3 + j];
  }
  EXPECT_CLOSE(weight.grad(), expected, {1e-12, 1e-14});
}

TEST_P(Gradcheck, CrossEntropy) {
  Tensor target = make_tensor(NDArray({5}, {1, 3, -100, 0, 3}), DType::Int64, device());
  for (auto [reduction, name] :
       std::vector<std::pair<st::Reduction, const char*>>{{st::Reduction::Mean, "mean"},
                                                          {st::Reduction::Sum, "sum"},
                                                          {st::Reduction::None, "none"}}) {
    check(std::string("cross_entropy ") + name,
          [target, reduction = reduction](const Inputs& x) {
            return st::cross_entropy(x[0], target, -100, reduction);
          },
          {u({5, 4}, -2, 2)});
  }
  Tensor t32 = make_tensor(NDArray({4}, {2, 2, 0, 1}), DType::Int32, device());
  check("cross_entropy ignore_index 2",
        [t32](const Inputs& x) { return st::cross_entropy(x[0], t32, 2, st::Reduction::Mean); },
        {u({4, 3}, -2, 2)});
  check("cross_entropy transposed logits",
        [t32](const Inputs& x) { return st::cross_entropy(x[0].t(), t32); }, {u({3, 4}, -2, 2)});
  Tensor single = make_tensor(scalar_array(2), DType::Int64, device());
  check("cross_entropy [C]", [single](const Inputs& x) { return st::cross_entropy(x[0], single); },
        {u({5}, -2, 2)});
}

TEST_P(Gradcheck, JoinAndSplit) {
  check("cat dim 0",
        [](const Inputs& x) {
          return st::cat({x[0], x[1].t(), x[2]}, 0);
        },
        {u({2, 3}), u({3, 1}), u({4, 3})});
  check("cat dim -1",
        [](const Inputs& x) {
          return st::cat({x[0], x[1]}, -1).exp();
        },
        {u({2, 3}), u({2, 2})});
  check("cat same tensor", [](const Inputs& x) { return st::cat({x[0], x[0]}, 1); }, {u({2, 3})});
  check("stack dim 1",
        [](const Inputs& x) {
          return st::stack({x[0], x[1], x[0]}, 1);
        },
        {u({2, 3}), u({2, 3})});
  check("split all pieces",
        [](const Inputs& x) {
          auto p = st::split(x[0], 2);
          return st::cat({p[0] * 2, p[1].exp(), p[2]}, 0);
        },
        {u({5, 3})});
  // One node with three outputs, of which only two are used: the unused rows get zero gradient.
  check("split some pieces",
        [](const Inputs& x) {
          auto p = st::split(x[0], Shape{2, 3, 1}, 0);
          return st::cat({p[0] * 3, p[2]}, 0);
        },
        {u({6, 2})});
  check("split one piece", [](const Inputs& x) { return st::split(x[0], 2, 1)[1].exp(); },
        {u({3, 5})});
  check("chunk",
        [](const Inputs& x) {
          auto p = st::chunk(x[0], 3, 0);
          return p[0] * p[1] + p[2];
        },
        {u({6, 4})});
}

// A view of Tensor x, for the table below.
#define VIEW(expr) [](const Tensor& x) { return expr; }

TEST_P(Gradcheck, Views) {
  using View = std::function<Tensor(const Tensor&)>;
  const std::vector<std::pair<const char*, View>> views = {
      {"permute", VIEW(x.permute({2, 0, 1}))},
      {"transpose", VIEW(x.transpose(0, 2))},
      {"narrow", VIEW(x.narrow(1, 1, 2))},
      {"slice step", VIEW(x.slice(2, 0, std::nullopt, 3))},
      {"select", VIEW(x.select(1, -1))},
      {"expand", VIEW(x.narrow(1, 0, 1).expand({2, 5, 4}))},
      {"view", VIEW(x.view({6, 4}))},
      {"reshape of transposed", VIEW(x.transpose(1, 2).reshape({8, 3}))},
      {"flatten", VIEW(x.flatten())},
      {"squeeze", VIEW(x.narrow(1, 2, 1).squeeze(1))},
      {"unsqueeze", VIEW(x.unsqueeze(1))},
      {"contiguous", VIEW(x.t().contiguous())},
      {"clone", VIEW(x.clone())},
      {"chain", VIEW(x.transpose(0, 1).slice(0, 1, std::nullopt, 2).select(2, 0))},
  };
  for (const auto& [name, view] : views) {
    const Shape shape = std::string(name) == "contiguous" ? Shape{3, 4} : Shape{2, 3, 4};
    check(name, [view = view](const Inputs& x) { return view(x[0]).exp(); }, {u(shape)});
  }
}

TEST_P(Gradcheck, DropoutScalesTheGradient) {
  NDArray a = away({50, 40}, 0.5, 1.5);
  Tensor x = make_tensor(a, DType::Float64, device());
  x.set_requires_grad(true);
  st::manual_seed(5);
  Tensor y = st::dropout(x, 0.25);
  NDArray g = u({50, 40});
  y.backward(make_tensor(g, DType::Float64, device()));
  std::vector<double> out = to_f64(y);
  NDArray expected({50, 40});
  for (int64_t i = 0; i < a.numel(); ++i) expected[i] = out[i] == 0 ? 0.0 : g[i] / 0.75;
  EXPECT_CLOSE(x.grad(), expected, {1e-12, 1e-14});
}

TEST_P(Gradcheck, ToDtypeBetweenFloat32AndFloat64) {
  // f64 leaf through f32: the grad comes back as f64, equal to the f32 weights.
  NDArray w = u({3, 4});
  Tensor x64 = make_tensor(u({3, 4}), DType::Float64, device());
  x64.set_requires_grad(true);
  Tensor w32 = make_tensor(w, DType::Float32, device());
  st::sum(x64.to(DType::Float32) * w32).backward();
  ASSERT_TRUE(x64.grad().defined());
  EXPECT_EQ(x64.grad().dtype(), DType::Float64);
  EXPECT_CLOSE(x64.grad(), from_tensor(w32), {0.0, 0.0});
  // f32 leaf through f64.
  Tensor x32 = make_tensor(u({3, 4}), DType::Float32, device());
  x32.set_requires_grad(true);
  st::sum(x32.to(DType::Float64) * make_tensor(w, DType::Float64, device())).backward();
  ASSERT_TRUE(x32.grad().defined());
  EXPECT_EQ(x32.grad().dtype(), DType::Float32);
  EXPECT_CLOSE(x32.grad(), w, tolerance_for(DType::Float32));
  // And through a whole f32 computation: d/dx sum(exp(x) * 2) = 2 exp(x).
  NDArray v = u({5});
  Tensor y = make_tensor(v, DType::Float64, device());
  y.set_requires_grad(true);
  st::sum(st::exp(y.to(DType::Float32)) * 2).backward();
  EXPECT_CLOSE(
      y.grad(),
      map(v, [](double t) { return 2 * std::exp(static_cast<double>(static_cast<float>(t))); }),
      tolerance_for(DType::Float32));
}

TEST_P(Gradcheck, Composite) {
  // A small MLP with a loss: many rules composed.
  Tensor target = make_tensor(NDArray({4}, {0, 2, 1, 2}), DType::Int64, device());
  check("mlp",
        [target](const Inputs& x) {
          Tensor h = st::gelu(st::matmul(x[0], x[1]) + x[2]);
          Tensor n = st::layer_norm(h, {5});
          return st::cross_entropy(st::matmul(n, x[3]), target);
        },
        {u({4, 3}), u({3, 5}), u({5}), u({5, 3})}, {.atol = 1e-6});
}

// The backward kernels of f32, f16 and bf16 against float64 finite differences: the gradchecks
// above run in float64 only, and these dtypes have kernels of their own (fused derivatives,
// polynomial exp/erf in f32, 16-bit storage with f32 arithmetic).
class LowPrecisionGrad : public ::testing::TestWithParam<std::tuple<Device, DType>> {
 public:
  Device device() const { return std::get<0>(GetParam()); }
  DType dtype() const { return std::get<1>(GetParam()); }
  // Gradients are compared with a tolerance relative to their largest element; 16-bit results
  // carry 8 (bf16) or 11 (f16) significant bits through several rounded steps.
  Tolerance tol() const {
    switch (dtype()) {
      case DType::Float32: return {1e-4, 1e-6};
      case DType::Float16: return {1e-2, 1e-4};
      default: return {6e-2, 1e-3};
    }
  }
  NDArray g(const Shape& shape, double lo = -2, double hi = 2) {
    return grid_random(shape, rng, lo, hi);
  }
  void check(const std::string& name, const GradFn& f, const std::vector<NDArray>& inputs) {
    SCOPED_TRACE(name);
    EXPECT_TRUE(gradcheck_in(dtype(), f, inputs, device(), tol()));
  }
  std::mt19937 rng{2718};
};

TEST_P(LowPrecisionGrad, ElementwiseFusedDerivatives) {
  check("tanh", [](const Inputs& x) { return st::tanh(x[0]); }, {g({4, 6})});
  check("sigmoid", [](const Inputs& x) { return st::sigmoid(x[0]); }, {g({4, 6})});
  check("relu", [](const Inputs& x) { return st::relu(x[0]); },
        {grid_random_away_from_zero({4, 6}, rng, 0.25, 2)});
  check("gelu erf", [](const Inputs& x) { return st::gelu(x[0]); }, {g({4, 6}, -4, 4)});
  check("gelu tanh", [](const Inputs& x) { return st::gelu(x[0], st::GeluApproximate::Tanh); },
        {g({4, 6}, -4, 4)});
  check("exp", [](const Inputs& x) { return st::exp(x[0]); }, {g({4, 6})});
  check("log sqrt", [](const Inputs& x) { return st::log(x[0]) + st::sqrt(x[0]); },
        {g({4, 6}, 0.5, 3)});
  check("mul div broadcast", [](const Inputs& x) { return x[0] * x[1] / x[2]; },
        {g({3, 4}), g({4}), g({3, 1}, 1, 2)});
}

TEST_P(LowPrecisionGrad, RowWiseKernels) {
  check("softmax", [](const Inputs& x) { return st::softmax(x[0], -1); }, {g({5, 16})});
  check("log_softmax dim 0", [](const Inputs& x) { return st::log_softmax(x[0], 0); }, {g({6, 5})});
  check("layer_norm", [](const Inputs& x) { return st::layer_norm(x[0], {24}, x[1], x[2]); },
        {g({40, 24}), g({24}, 0.5, 1.5), g({24})});
  Tensor target = make_tensor(NDArray({6}, {1, 3, -100, 0, 3, 7}), DType::Int64, device());
  check("cross_entropy", [target](const Inputs& x) { return st::cross_entropy(x[0], target); },
        {g({6, 8})});
  Tensor indices = make_tensor(NDArray({5}, {0, 2, 0, 3, 2}), DType::Int64, device());
  check("embedding", [indices](const Inputs& x) { return st::embedding(x[0], indices); },
        {g({4, 6})});
}

TEST_P(LowPrecisionGrad, MatmulAndReductions) {
  check("matmul batched", [](const Inputs& x) { return st::matmul(x[0], x[1].transpose(-1, -2)); },
        {g({2, 3, 8}), g({2, 5, 8})});
  check("sum mean", [](const Inputs& x) { return st::sum(x[0], {1}) + st::mean(x[0], {1}); },
        {g({4, 7})});
  check("amax", [](const Inputs& x) { return st::amax(x[0], {0}); },
        {NDArray({3, 2}, {1, -1, 2, 0.5, -3, 0.25})});
  // 16 output features: where the backend fuses GELU into the GEMM, its saved input is used.
  for (auto act : {st::LinearActivation::Gelu, st::LinearActivation::GeluTanh})
    check(act == st::LinearActivation::Gelu ? "linear gelu" : "linear gelu tanh",
          [act](const Inputs& x) { return st::linear(x[0], x[1], x[2], act); },
          {g({6, 8}), g({16, 8}, -0.5, 0.5), g({16})});
}

TEST_P(Gradcheck, LinearAndAttention) {
  check("linear", [](const Inputs& x) { return st::linear(x[0], x[1], x[2]); },
        {u({2, 3, 5}), u({4, 5}), u({4})});
  check("linear transposed input, no bias",
        [](const Inputs& x) { return st::linear(x[0].t(), x[1]); }, {u({5, 3}), u({4, 5})});
  check("linear gelu",
        [](const Inputs& x) { return st::linear(x[0], x[1], x[2], st::LinearActivation::Gelu); },
        {u({2, 3, 5}), u({8, 5}), u({8})});
  check("linear gelu tanh, no bias",
        [](const Inputs& x) {
          return st::linear(x[0].t(), x[1], {}, st::LinearActivation::GeluTanh);
        },
        {u({5, 3}), u({8, 5})});
  check("attention",
        [](const Inputs& x) { return st::scaled_dot_product_attention(x[0], x[1], x[2]); },
        {u({2, 3, 4}), u({2, 5, 4}), u({2, 5, 3})});
  check("causal attention, scaled",
        [](const Inputs& x) {
          return st::scaled_dot_product_attention(x[0], x[1].transpose(1, 2), x[2], true, 0.7);
        },
        {u({2, 4, 3}), u({2, 3, 4}), u({2, 4, 2})});
}

TEST_P(Gradcheck, DropoutGradientIsTheMask) {
  // Finite differences would redraw the mask; the rule is checked directly: d(sum(y * w))/dx = w *
  // mask, where mask = y / x (x has no zeros).
  NDArray a = away({30, 20}), w = u({30, 20});
  Tensor x = make_tensor(a, DType::Float64, device()).set_requires_grad();
  Tensor y = st::dropout(x, 0.4);
  st::sum(y * make_tensor(w, DType::Float64, device())).backward();
  std::vector<double> yv = to_f64(y), grad = to_f64(x.grad());
  int64_t zeros = 0;
  for (int64_t i = 0; i < a.numel(); ++i) {
    const double mask = yv[i] / a[i];
    EXPECT_TRUE(mask == 0 || std::fabs(mask - 1 / 0.6) < 1e-12) << i;
    EXPECT_NEAR(grad[i], w[i] * mask, 1e-12) << i;
    zeros += mask == 0;
  }
  EXPECT_GT(zeros, 0);
}

INSTANTIATE_TEST_SUITE_P(Autograd, LowPrecisionGrad,
                         ::testing::Combine(::testing::ValuesIn(st::available_devices()),
                                            ::testing::Values(DType::Float32, DType::Float16,
                                                              DType::BFloat16)),
                         DeviceDTypeName());

INSTANTIATE_TEST_SUITE_P(Autograd, Gradcheck, ::testing::ValuesIn(st::available_devices()),
                         DeviceName());

}  // namespace
}  // namespace st_test
