// Conformance suite, elementwise part: unary math, binary arithmetic with broadcasting, scalar
// operands, comparisons, where, clamp, integer inputs and type promotion. Every case runs on each
// device of st::available_devices() and compares with float64 loops written here.

#include <cmath>
#include <functional>
#include <numbers>

#include "reference.h"

namespace st_test {
namespace {

using st::Scalar;

class Elementwise : public DeviceDTypeTest {
 protected:
  // Runs op on random inputs in [lo, hi] of several shapes and layouts (size-0 and size-1 dims,
  // 0-d, transposed, strided with an offset, expanded) and compares with ref applied per element.
  void check_unary(const std::function<Tensor(const Tensor&)>& op,
                   const std::function<double(double)>& ref, double lo, double hi) {
    struct Case {
      Shape shape;
      Layout layout;
    };
    const std::vector<Case> cases = {
        {{}, Layout::Contiguous},        {{0}, Layout::Contiguous},
        {{1}, Layout::Contiguous},       {{7}, Layout::Contiguous},
        {{3, 1, 5}, Layout::Contiguous}, {{4, 0, 3}, Layout::Contiguous},
        {{2, 3, 4}, Layout::Transposed}, {{3, 5}, Layout::Strided},
        {{1, 1}, Layout::Contiguous},
    };
    for (const auto& c : cases) {
      SCOPED_TRACE(shape_str(c.shape) + " " + layout_name(c.layout));
      NDArray a = grid_random(c.shape, rng, lo, hi);
      Tensor y = op(input(a, c.layout));
      EXPECT_EQ(y.dtype(), dtype());
      EXPECT_EQ(y.device(), device());
      EXPECT_CLOSE(y, map(a, ref), tol());
    }
    SCOPED_TRACE("expanded [3, 1] -> [2, 3, 4]");
    NDArray small = grid_random({3, 1}, rng, lo, hi);
    Tensor y = op(input(small).expand({2, 3, 4}));
    EXPECT_CLOSE(y, map(broadcast_to(small, {2, 3, 4}), ref), tol());
  }

  // Runs op on pairs of random inputs whose shapes broadcast in various ways, including
  // non-contiguous and expanded operands, and compares with ref per element.
  void check_binary(const std::function<Tensor(const Tensor&, const Tensor&)>& op,
                    const std::function<double(double, double)>& ref, double alo, double ahi,
                    double blo, double bhi, bool b_away_from_zero = false) {
    struct Case {
      Shape a, b;
      Layout la = Layout::Contiguous, lb = Layout::Contiguous;
    };
    const std::vector<Case> cases = {
        {{2, 3}, {2, 3}},
        {{3, 1, 5}, {4, 1}},
        {{}, {2, 3}},
        {{2, 3}, {}},
        {{}, {}},
        {{0, 3}, {1, 3}},
        {{4, 0, 1}, {1, 3}},
        {{1}, {5}},
        {{5}, {1}},
        {{2, 3, 4}, {3, 4}, Layout::Transposed, Layout::Strided},
        {{4, 3}, {4, 1}, Layout::Strided, Layout::Transposed},
        {{2, 1, 4}, {3, 1}, Layout::Transposed, Layout::Contiguous},
    };
    auto make_b = [&](const Shape& shape) {
      if (!b_away_from_zero) return grid_random(shape, rng, blo, bhi);
      return grid_random_away_from_zero(shape, rng, blo, bhi);
    };
    for (const auto& c : cases) {
      SCOPED_TRACE(shape_str(c.a) + " " + layout_name(c.la) + " with " + shape_str(c.b) + " " +
                   layout_name(c.lb));
      NDArray a = grid_random(c.a, rng, alo, ahi);
      NDArray b = make_b(c.b);
      Tensor y = op(input(a, c.la), input(b, c.lb));
      EXPECT_EQ(y.dtype(), dtype());
      EXPECT_EQ(y.device(), device());
      EXPECT_CLOSE(y, zip(a, b, ref), tol());
    }
    SCOPED_TRACE("expanded operands");
    NDArray a = grid_random({1, 4}, rng, alo, ahi);
    NDArray b = make_b({3, 1});
    Tensor y = op(input(a).expand({3, 4}), input(b).expand({3, 4}));
    EXPECT_CLOSE(y, zip(a, b, ref), tol());
  }

  std::mt19937 rng{20240601};
};

// Each call leaves its line in the failure trace, so a test with several calls tells which failed.
#define CHECK_UNARY(...)      \
  do {                        \
    SCOPED_TRACE("call");     \
    check_unary(__VA_ARGS__); \
  } while (0)
#define CHECK_BINARY(...)      \
  do {                         \
    SCOPED_TRACE("call");      \
    check_binary(__VA_ARGS__); \
  } while (0)

double gelu_erf(double x) { return 0.5 * x * (1.0 + std::erf(x / std::sqrt(2.0))); }
double gelu_tanh(double x) {
  const double k = std::sqrt(2.0 / std::numbers::pi);
  return 0.5 * x * (1.0 + std::tanh(k * (x + 0.044715 * x * x * x)));
}
double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }

TEST_P(Elementwise, Neg) {
  CHECK_UNARY([](const Tensor& x) { return st::neg(x); }, [](double x) { return -x; }, -4, 4);
  CHECK_UNARY([](const Tensor& x) { return -x; }, [](double x) { return -x; }, -4, 4);
}
TEST_P(Elementwise, Exp) {
  CHECK_UNARY([](const Tensor& x) { return st::exp(x); }, [](double x) { return std::exp(x); }, -4,
              4);
  CHECK_UNARY([](const Tensor& x) { return x.exp(); }, [](double x) { return std::exp(x); }, -4, 4);
}
TEST_P(Elementwise, Log) {
  CHECK_UNARY([](const Tensor& x) { return st::log(x); }, [](double x) { return std::log(x); },
              0.125, 8);
}
TEST_P(Elementwise, Sqrt) {
  CHECK_UNARY([](const Tensor& x) { return st::sqrt(x); }, [](double x) { return std::sqrt(x); }, 0,
              8);
}
TEST_P(Elementwise, Rsqrt) {
  CHECK_UNARY([](const Tensor& x) { return st::rsqrt(x); },
              [](double x) { return 1 / std::sqrt(x); }, 0.125, 8);
}
TEST_P(Elementwise, Abs) {
  CHECK_UNARY([](const Tensor& x) { return st::abs(x); }, [](double x) { return std::fabs(x); }, -4,
              4);
}
TEST_P(Elementwise, Tanh) {
  CHECK_UNARY([](const Tensor& x) { return st::tanh(x); }, [](double x) { return std::tanh(x); },
              -4, 4);
}
TEST_P(Elementwise, Sigmoid) {
  CHECK_UNARY([](const Tensor& x) { return st::sigmoid(x); }, sigmoid, -8, 8);
}
TEST_P(Elementwise, Relu) {
  CHECK_UNARY([](const Tensor& x) { return st::relu(x); }, [](double x) { return x > 0 ? x : 0.0; },
              -4, 4);
}
TEST_P(Elementwise, GeluErf) {
  CHECK_UNARY([](const Tensor& x) { return st::gelu(x); }, gelu_erf, -4, 4);
  CHECK_UNARY([](const Tensor& x) { return st::gelu(x, st::GeluApproximate::None); }, gelu_erf, -4,
              4);
}
TEST_P(Elementwise, GeluTanh) {
  CHECK_UNARY([](const Tensor& x) { return st::gelu(x, st::GeluApproximate::Tanh); }, gelu_tanh, -4,
              4);
}
TEST_P(Elementwise, GeluFormsDiffer) {
  // The two forms differ by up to ~5e-4 near |x| = 2; a backend mixing them up must fail.
  NDArray a(Shape{1}, std::vector<double>{2.0});
  double erf_form = to_f64(st::gelu(input(a)))[0];
  double tanh_form = to_f64(st::gelu(input(a), st::GeluApproximate::Tanh))[0];
  if (dtype() == DType::Float32 || dtype() == DType::Float64) {
    EXPECT_NEAR(erf_form, gelu_erf(2.0), 1e-5);
    EXPECT_NEAR(tanh_form, gelu_tanh(2.0), 1e-5);
  }
}
TEST_P(Elementwise, PowScalar) {
  for (double e : {2.0, 3.0, -1.0, 0.0, 1.0}) {
    SCOPED_TRACE("exponent " + std::to_string(e));
    // Integral exponents accept negative bases.
    CHECK_UNARY([e](const Tensor& x) { return st::pow(x, e); },
                [e](double x) { return std::pow(x, e); }, e < 0 ? 0.25 : -3, 3);
  }
  CHECK_UNARY([](const Tensor& x) { return st::pow(x, 0.5); },
              [](double x) { return std::sqrt(x); }, 0, 8);
  CHECK_UNARY([](const Tensor& x) { return x.pow(2); }, [](double x) { return x * x; }, -3, 3);
  CHECK_UNARY([](const Tensor& x) { return st::pow(x, -1.5); },
              [](double x) { return std::pow(x, -1.5); }, 0.25, 4);
}

TEST_P(Elementwise, Add) {
  CHECK_BINARY([](const Tensor& a, const Tensor& b) { return st::add(a, b); },
               [](double a, double b) { return a + b; }, -4, 4, -4, 4);
  CHECK_BINARY([](const Tensor& a, const Tensor& b) { return a + b; },
               [](double a, double b) { return a + b; }, -4, 4, -4, 4);
  CHECK_BINARY([](const Tensor& a, const Tensor& b) { return st::add(a, b, 2.5); },
               [](double a, double b) { return a + 2.5 * b; }, -4, 4, -4, 4);
}
TEST_P(Elementwise, Sub) {
  CHECK_BINARY([](const Tensor& a, const Tensor& b) { return st::sub(a, b); },
               [](double a, double b) { return a - b; }, -4, 4, -4, 4);
  CHECK_BINARY([](const Tensor& a, const Tensor& b) { return a - b; },
               [](double a, double b) { return a - b; }, -4, 4, -4, 4);
  CHECK_BINARY([](const Tensor& a, const Tensor& b) { return st::sub(a, b, -0.5); },
               [](double a, double b) { return a + 0.5 * b; }, -4, 4, -4, 4);
}
TEST_P(Elementwise, Mul) {
  CHECK_BINARY([](const Tensor& a, const Tensor& b) { return st::mul(a, b); },
               [](double a, double b) { return a * b; }, -4, 4, -4, 4);
  CHECK_BINARY([](const Tensor& a, const Tensor& b) { return a * b; },
               [](double a, double b) { return a * b; }, -4, 4, -4, 4);
}
TEST_P(Elementwise, Div) {
  CHECK_BINARY([](const Tensor& a, const Tensor& b) { return st::div(a, b); },
               [](double a, double b) { return a / b; }, -4, 4, 0.25, 4, true);
  CHECK_BINARY([](const Tensor& a, const Tensor& b) { return a / b; },
               [](double a, double b) { return a / b; }, -4, 4, 0.25, 4, true);
}
TEST_P(Elementwise, DivByZeroGivesInfAndNan) {
  NDArray a(Shape{3}, {1.0, -1.0, 0.0}), b(Shape{3}, 0.0);
  Tensor y = st::div(input(a), input(b));
  const double inf = std::numeric_limits<double>::infinity();
  EXPECT_CLOSE(y, NDArray(Shape{3}, {inf, -inf, std::nan("")}), tol());
}
TEST_P(Elementwise, PowTensor) {
  CHECK_BINARY([](const Tensor& a, const Tensor& b) { return st::pow(a, b); },
               [](double a, double b) { return std::pow(a, b); }, 0.25, 4, -2, 2);
}
TEST_P(Elementwise, Maximum) {
  CHECK_BINARY([](const Tensor& a, const Tensor& b) { return st::maximum(a, b); },
               [](double a, double b) { return std::max(a, b); }, -4, 4, -4, 4);
}
TEST_P(Elementwise, Minimum) {
  CHECK_BINARY([](const Tensor& a, const Tensor& b) { return st::minimum(a, b); },
               [](double a, double b) { return std::min(a, b); }, -4, 4, -4, 4);
}

TEST_P(Elementwise, RandomBroadcastShapes) {
  const Layout layouts[] = {Layout::Contiguous, Layout::Transposed, Layout::Strided};
  std::uniform_int_distribution<int> pick(0, 2);
  for (int trial = 0; trial < 30; ++trial) {
    auto [sa, sb] = random_broadcast_pair(rng);
    Layout la = layouts[pick(rng)], lb = layouts[pick(rng)];
    SCOPED_TRACE("trial " + std::to_string(trial) + ": " + shape_str(sa) + " " + layout_name(la) +
                 " with " + shape_str(sb) + " " + layout_name(lb));
    NDArray a = grid_random(sa, rng), b = grid_random(sb, rng);
    NDArray nz = grid_random_away_from_zero(sb, rng, 0.25, 4);
    Tensor x = input(a, la), y = input(b, lb), z = input(nz, lb);
    EXPECT_CLOSE(x + y, zip(a, b, [](double u, double v) { return u + v; }), tol());
    EXPECT_CLOSE(x - y, zip(a, b, [](double u, double v) { return u - v; }), tol());
    EXPECT_CLOSE(x * y, zip(a, b, [](double u, double v) { return u * v; }), tol());
    EXPECT_CLOSE(x / z, zip(a, nz, [](double u, double v) { return u / v; }), tol());
    EXPECT_CLOSE(st::maximum(x, y), zip(a, b, [](double u, double v) { return std::max(u, v); }),
                 tol());
    EXPECT_EXACT(st::le(x, y), zip(a, b, [](double u, double v) { return u <= v ? 1.0 : 0.0; }));
  }
}

TEST_P(Elementwise, ScalarOperands) {
  CHECK_UNARY([](const Tensor& x) { return x + 2.5; }, [](double x) { return x + 2.5; }, -4, 4);
  CHECK_UNARY([](const Tensor& x) { return st::add(x, Scalar(-1.25)); },
              [](double x) { return x - 1.25; }, -4, 4);
  CHECK_UNARY([](const Tensor& x) { return x + 2; }, [](double x) { return x + 2; }, -4, 4);
  CHECK_UNARY([](const Tensor& x) { return x - 1.5; }, [](double x) { return x - 1.5; }, -4, 4);
  CHECK_UNARY([](const Tensor& x) { return st::sub(x, Scalar(3)); }, [](double x) { return x - 3; },
              -4, 4);
  CHECK_UNARY([](const Tensor& x) { return x * -2; }, [](double x) { return -2 * x; }, -4, 4);
  CHECK_UNARY([](const Tensor& x) { return st::mul(x, Scalar(0.5)); },
              [](double x) { return 0.5 * x; }, -4, 4);
  CHECK_UNARY([](const Tensor& x) { return x / 4; }, [](double x) { return x / 4; }, -4, 4);
  CHECK_UNARY([](const Tensor& x) { return st::div(x, Scalar(-0.5)); },
              [](double x) { return x / -0.5; }, -4, 4);
  CHECK_UNARY([](const Tensor& x) { return 2.0 - x; }, [](double x) { return 2.0 - x; }, -4, 4);
  CHECK_UNARY([](const Tensor& x) { return 1.5 + x; }, [](double x) { return 1.5 + x; }, -4, 4);
  CHECK_UNARY([](const Tensor& x) { return 3 * x; }, [](double x) { return 3 * x; }, -4, 4);
  CHECK_UNARY([](const Tensor& x) { return 3.0 / x; }, [](double x) { return 3.0 / x; }, 0.25, 4);
}

TEST_P(Elementwise, Comparisons) {
  using Cmp = std::function<Tensor(const Tensor&, const Tensor&)>;
  using Ref = std::function<bool(double, double)>;
  const std::vector<std::tuple<const char*, Cmp, Ref>> ops = {
      {"eq", [](const Tensor& a, const Tensor& b) { return st::eq(a, b); },
       [](double a, double b) { return a == b; }},
      {"ne", [](const Tensor& a, const Tensor& b) { return st::ne(a, b); },
       [](double a, double b) { return a != b; }},
      {"lt", [](const Tensor& a, const Tensor& b) { return st::lt(a, b); },
       [](double a, double b) { return a < b; }},
      {"le", [](const Tensor& a, const Tensor& b) { return st::le(a, b); },
       [](double a, double b) { return a <= b; }},
      {"gt", [](const Tensor& a, const Tensor& b) { return st::gt(a, b); },
       [](double a, double b) { return a > b; }},
      {"ge", [](const Tensor& a, const Tensor& b) { return st::ge(a, b); },
       [](double a, double b) { return a >= b; }},
  };
  const std::vector<std::pair<Shape, Shape>> shapes = {
      {{2, 3}, {2, 3}}, {{3, 1, 5}, {4, 1}}, {{}, {4}}, {{0, 2}, {2}}, {{6}, {}}};
  for (const auto& [name, op, ref_binding] : ops) {
    const auto& ref = ref_binding;  // clang 14 cannot capture a structured binding
    for (const auto& [sa, sb] : shapes) {
      SCOPED_TRACE(std::string(name) + " " + shape_str(sa) + " " + shape_str(sb));
      // Few distinct values so that equal pairs occur.
      NDArray a = map(int_random(sa, rng, -2, 2), [](double v) { return v / 2; });
      NDArray b = map(int_random(sb, rng, -2, 2), [](double v) { return v / 2; });
      Tensor y = op(input(a, Layout::Transposed), input(b));
      EXPECT_EQ(y.dtype(), DType::Bool);
      EXPECT_EQ(y.device(), device());
      EXPECT_EXACT(y, zip(a, b, [&](double x, double z) { return ref(x, z) ? 1.0 : 0.0; }));
    }
  }
}

TEST_P(Elementwise, ComparisonsWithScalar) {
  NDArray a = map(int_random({4, 5}, rng, -2, 2), [](double v) { return v / 2; });
  Tensor x = input(a);
  auto expect = [&](const Tensor& y, std::function<bool(double)> ref) {
    EXPECT_EQ(y.dtype(), DType::Bool);
    EXPECT_EXACT(y, map(a, [&](double v) { return ref(v) ? 1.0 : 0.0; }));
  };
  expect(st::eq(x, 0.5), [](double v) { return v == 0.5; });
  expect(st::ne(x, 0), [](double v) { return v != 0; });
  expect(st::lt(x, 0.5), [](double v) { return v < 0.5; });
  expect(st::le(x, -0.5), [](double v) { return v <= -0.5; });
  expect(st::gt(x, 0), [](double v) { return v > 0; });
  expect(st::ge(x, 1), [](double v) { return v >= 1; });
}

TEST_P(Elementwise, Where) {
  struct Case {
    Shape cond, a, b;
  };
  for (const auto& c : std::vector<Case>{{{3, 4}, {3, 4}, {3, 4}},
                                         {{3, 1}, {1, 4}, {}},
                                         {{2, 1, 4}, {3, 1}, {4}},
                                         {{0, 4}, {4}, {1}},
                                         {{}, {2, 2}, {2, 2}}}) {
    SCOPED_TRACE(shape_str(c.cond) + " " + shape_str(c.a) + " " + shape_str(c.b));
    NDArray cond = int_random(c.cond, rng, 0, 1);
    NDArray a = grid_random(c.a, rng), b = grid_random(c.b, rng);
    Tensor y =
        st::where(make_tensor(cond, DType::Bool, device()), input(a, Layout::Transposed), input(b));
    EXPECT_EQ(y.dtype(), dtype());
    EXPECT_EXACT(y, zip3(cond, a, b, [](double k, double x, double z) { return k != 0 ? x : z; }));
  }
  // A non-contiguous condition.
  NDArray cond = int_random({4, 3}, rng, 0, 1);
  NDArray a = grid_random({4, 3}, rng), b = grid_random({4, 3}, rng);
  Tensor y =
      st::where(make_tensor(cond, DType::Bool, device(), Layout::Transposed), input(a), input(b));
  EXPECT_EXACT(y, zip3(cond, a, b, [](double k, double x, double z) { return k != 0 ? x : z; }));
}

TEST_P(Elementwise, Clamp) {
  CHECK_UNARY([](const Tensor& x) { return st::clamp(x, -1.0, 1.5); },
              [](double x) { return std::min(std::max(x, -1.0), 1.5); }, -4, 4);
  CHECK_UNARY([](const Tensor& x) { return st::clamp(x, std::nullopt, 0.5); },
              [](double x) { return std::min(x, 0.5); }, -4, 4);
  CHECK_UNARY([](const Tensor& x) { return st::clamp(x, -0.5, std::nullopt); },
              [](double x) { return std::max(x, -0.5); }, -4, 4);
  CHECK_UNARY([](const Tensor& x) { return st::clamp(x, -2, 2); },
              [](double x) { return std::min(std::max(x, -2.0), 2.0); }, -4, 4);
  // As in PyTorch, min > max sets every element to max.
  CHECK_UNARY([](const Tensor& x) { return st::clamp(x, 1.0, 0.0); }, [](double) { return 0.0; },
              -4, 4);
}

TEST_P(Elementwise, SpecialValues) {
  // Overflow and domain edges: naive formulas give NaN here (tanh as a ratio of exps, sigmoid of a
  // large negative input) where the functions have clean limits.
  const double inf = std::numeric_limits<double>::infinity(), nan = std::nan("");
  Tensor big = input(NDArray(Shape{4}, {100, -100, 0, -0.0}));
  EXPECT_CLOSE(st::tanh(big), NDArray(Shape{4}, {1, -1, 0, 0}), tol());
  EXPECT_CLOSE(st::sigmoid(big), NDArray(Shape{4}, {1, 0, 0.5, 0.5}), tol());
  const double exp100 = dtype() == DType::Float64 ? std::exp(100.0) : inf;  // beyond f32's range
  EXPECT_CLOSE(st::exp(big), NDArray(Shape{4}, {exp100, 0, 1, 1}), tol());
  EXPECT_CLOSE(st::gelu(big), NDArray(Shape{4}, {100, 0, 0, 0}), tol());
  EXPECT_CLOSE(st::gelu(big, st::GeluApproximate::Tanh), NDArray(Shape{4}, {100, 0, 0, 0}), tol());
  EXPECT_CLOSE(st::relu(big), NDArray(Shape{4}, {100, 0, 0, 0}), tol());
  Tensor edge = input(NDArray(Shape{3}, {0, -1, inf}));
  EXPECT_CLOSE(st::log(edge), NDArray(Shape{3}, {-inf, nan, inf}), tol());
  EXPECT_CLOSE(st::sqrt(edge), NDArray(Shape{3}, {0, nan, inf}), tol());
  EXPECT_CLOSE(st::rsqrt(edge), NDArray(Shape{3}, {inf, nan, 0}), tol());
  EXPECT_CLOSE(st::pow(edge, -1.0), NDArray(Shape{3}, {inf, -1, 0}), tol());
}

TEST_P(Elementwise, NanPropagates) {
  const double nan = std::nan("");
  NDArray a(Shape{4}, {nan, 1.0, -2.0, nan});
  NDArray b(Shape{4}, {0.0, nan, 3.0, nan});
  Tensor x = input(a), z = input(b);
  EXPECT_CLOSE(st::maximum(x, z), NDArray(Shape{4}, {nan, nan, 3.0, nan}), tol());
  EXPECT_CLOSE(st::minimum(x, z), NDArray(Shape{4}, {nan, nan, -2.0, nan}), tol());
  EXPECT_CLOSE(st::relu(x), NDArray(Shape{4}, {nan, 1.0, 0.0, nan}), tol());
  EXPECT_CLOSE(st::clamp(x, -1.0, 0.5), NDArray(Shape{4}, {nan, 0.5, -1.0, nan}), tol());
  EXPECT_EXACT(st::eq(x, x), NDArray(Shape{4}, {0, 1, 1, 0}));
  EXPECT_EXACT(st::ne(x, x), NDArray(Shape{4}, {1, 0, 0, 1}));
}

TEST_P(Elementwise, LargeBroadcastUsesEveryThread) {
  // 100k+ elements: large enough for the parallel paths.
  NDArray a = grid_random({400, 257}, rng), b = grid_random({257}, rng);
  Tensor x = input(a, Layout::Transposed);
  EXPECT_CLOSE(x * input(b) + x, zip(a, b, [](double u, double v) { return u * v + u; }),
               scaled(tol(), 2));
  EXPECT_CLOSE(st::exp(x), map(a, [](double u) { return std::exp(u); }), tol());
  EXPECT_CLOSE(st::gelu(x), map(a, gelu_erf), tol());
}

INSTANTIATE_TEST_SUITE_P(Ops, Elementwise,
                         ::testing::Combine(::testing::ValuesIn(st::available_devices()),
                                            ::testing::ValuesIn(float_dtypes())),
                         DeviceDTypeName());

// ---------------------------------------------------------------------------------------------
// Integer and bool inputs.

class IntElementwise : public DeviceDTypeTest {
 protected:
  std::mt19937 rng{777};
};

TEST_P(IntElementwise, Arithmetic) {
  NDArray a = int_random({3, 1, 5}, rng, -50, 50), b = int_random({4, 1}, rng, -50, 50);
  Tensor x = input(a, Layout::Transposed), y = input(b);
  for (const auto& [name, got, ref] : std::vector<std::tuple<const char*, Tensor, NDArray>>{
           {"add", x + y, zip(a, b, [](double u, double v) { return u + v; })},
           {"add alpha", st::add(x, y, 3), zip(a, b, [](double u, double v) { return u + 3 * v; })},
           {"sub", x - y, zip(a, b, [](double u, double v) { return u - v; })},
           {"mul", x * y, zip(a, b, [](double u, double v) { return u * v; })},
           {"maximum", st::maximum(x, y),
            zip(a, b, [](double u, double v) { return std::max(u, v); })},
           {"minimum", st::minimum(x, y),
            zip(a, b, [](double u, double v) { return std::min(u, v); })},
           {"neg", st::neg(x), map(a, [](double u) { return -u; })},
           {"abs", st::abs(x), map(a, [](double u) { return std::fabs(u); })},
           {"clamp", st::clamp(x, -10, 20),
            map(a, [](double u) { return std::min(std::max(u, -10.0), 20.0); })},
           {"scalar add", x + 7, map(a, [](double u) { return u + 7; })},
           {"scalar mul", x * 3, map(a, [](double u) { return u * 3; })},
       }) {
    SCOPED_TRACE(name);
    EXPECT_EQ(got.dtype(), dtype());
    EXPECT_EXACT(got, ref);
  }
}

TEST_P(IntElementwise, TrueDivisionGivesFloat32) {
  NDArray a = int_random({2, 3}, rng, -20, 20);
  NDArray b(Shape{3}, {2, -4, 8});
  Tensor q = st::div(input(a), input(b));
  EXPECT_EQ(q.dtype(), DType::Float32);
  EXPECT_CLOSE(q, zip(a, b, [](double u, double v) { return u / v; }),
               tolerance_for(DType::Float32));
  Tensor r = input(a) / 4;
  EXPECT_EQ(r.dtype(), DType::Float32);
  EXPECT_CLOSE(r, map(a, [](double u) { return u / 4; }), tolerance_for(DType::Float32));
}

TEST_P(IntElementwise, ComparisonsAndWhere) {
  NDArray a = int_random({3, 4}, rng, -2, 2), b = int_random({4}, rng, -2, 2);
  Tensor x = input(a), y = input(b);
  Tensor lt = st::lt(x, y);
  EXPECT_EQ(lt.dtype(), DType::Bool);
  EXPECT_EXACT(lt, zip(a, b, [](double u, double v) { return u < v ? 1.0 : 0.0; }));
  EXPECT_EXACT(st::eq(x, y), zip(a, b, [](double u, double v) { return u == v ? 1.0 : 0.0; }));
  EXPECT_EXACT(st::ge(x, 1), map(a, [](double u) { return u >= 1 ? 1.0 : 0.0; }));
  Tensor w = st::where(lt, x, y);
  EXPECT_EQ(w.dtype(), dtype());
  EXPECT_EXACT(w, zip(a, b, [](double u, double v) { return u < v ? u : v; }));
}

TEST_P(IntElementwise, LargeValuesStayExact) {
  // 2^24 + 1 (int32) and 2^53 + 1 (int64) would lose their last digit in a float computation.
  const int64_t big = dtype() == DType::Int64 ? (int64_t{1} << 53) + 1 : (int64_t{1} << 24) + 1;
  std::vector<int64_t> values = {big, 5};
  Tensor x = st::from_buffer<int64_t>(values.data(), {2}, {DType::Int64}).to(device(), dtype());
  Tensor y = x + 2;
  EXPECT_EQ(y.dtype(), dtype());
  std::vector<int64_t> got = y.to(st::kCPU).to(DType::Int64).to_vector<int64_t>();
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0], big + 2);
  EXPECT_EQ(got[1], 7);
}

INSTANTIATE_TEST_SUITE_P(Ops, IntElementwise,
                         ::testing::Combine(::testing::ValuesIn(st::available_devices()),
                                            ::testing::Values(DType::Int32, DType::Int64)),
                         DeviceDTypeName());

// ---------------------------------------------------------------------------------------------
// Type promotion, as PyTorch's result_type.

class Promotion : public ::testing::TestWithParam<Device> {
 protected:
  Tensor make(DType dtype, Shape shape = {3}) const {
    return make_tensor(NDArray(shape, 1.0), dtype, GetParam());
  }
};

TEST_P(Promotion, TensorTensor) {
  using D = DType;
  EXPECT_EQ((make(D::Int32) + make(D::Int64)).dtype(), D::Int64);
  EXPECT_EQ((make(D::Int64) + make(D::Float32)).dtype(), D::Float32);
  EXPECT_EQ((make(D::Int32) * make(D::Float16)).dtype(), D::Float16);
  EXPECT_EQ((make(D::Float16) + make(D::BFloat16)).dtype(), D::Float32);
  EXPECT_EQ((make(D::Float16) + make(D::Float32)).dtype(), D::Float32);
  EXPECT_EQ((make(D::BFloat16) - make(D::Float64)).dtype(), D::Float64);
  EXPECT_EQ((make(D::Float32) * make(D::Float64)).dtype(), D::Float64);
  EXPECT_EQ((make(D::Bool) + make(D::Int32)).dtype(), D::Int32);
  EXPECT_EQ((make(D::Bool) * make(D::Float32)).dtype(), D::Float32);
  EXPECT_EQ(st::maximum(make(D::Int32), make(D::Float64)).dtype(), D::Float64);
  Tensor mixed = make(D::Int32) + make(D::Float32);
  EXPECT_EXACT(mixed, NDArray(Shape{3}, 2.0));
}

// f32 with an f16/bf16 operand (the residual adds of autocast): the values of casting the narrow
// operand first (the CUDA backend reads it as it is), and its gradient in its own dtype. Shapes: a
// dense pair of 16-byte packs, a broadcast row, a transposed view.
TEST_P(Promotion, Float32WithANarrowOperand) {
  std::mt19937 rng(3);
  for (const DType narrow : {DType::BFloat16, DType::Float16}) {
    for (const bool transposed : {false, true}) {
      for (const Shape& b_shape : {Shape{6, 40}, Shape{40}}) {
        SCOPED_TRACE(std::string(narrow == DType::BFloat16 ? "bf16 " : "f16 ") +
                     shape_str(b_shape) + (transposed ? " transposed" : ""));
        const NDArray x = uniform_random({6, 40}, rng), y = grid_random(b_shape, rng);
        const NDArray g = uniform_random({6, 40}, rng);
        const NDArray yb = broadcast_to(y, {6, 40});
        for (const int which : {0, 1, 2}) {
          SCOPED_TRACE(which == 0 ? "add" : which == 1 ? "sub" : "mul");
          Tensor a = make_tensor(x, DType::Float32, GetParam()).set_requires_grad(true);
          Tensor b = make_tensor(y, narrow, GetParam()).set_requires_grad(true);
          const Tensor av = transposed ? a.t().contiguous().t() : a;
          const Tensor out = which == 0 ? av + b : which == 1 ? b - av : av * b;
          ASSERT_EQ(out.dtype(), DType::Float32);
          NDArray expected({6, 40}), grad_a({6, 40}), grad_b = NDArray(b_shape, 0.0);
          for (int64_t i = 0; i < 240; ++i) {
            expected[i] = which == 0 ? x[i] + yb[i] : which == 1 ? yb[i] - x[i] : x[i] * yb[i];
            grad_a[i] = which == 0 ? g[i] : which == 1 ? -g[i] : g[i] * yb[i];
            grad_b[b_shape.size() == 1 ? i % 40 : i] += which == 2 ? g[i] * x[i] : g[i];
          }
          EXPECT_CLOSE(out, expected, tolerance_for(DType::Float32));
          out.backward(make_tensor(g, DType::Float32, GetParam()));
          ASSERT_EQ(b.grad().dtype(), narrow);
          EXPECT_CLOSE(a.grad(), grad_a, tolerance_for(DType::Float32));
          EXPECT_CLOSE(b.grad(), grad_b, tolerance_for(narrow));
        }
      }
    }
  }
}

TEST_P(Promotion, TensorScalar) {
  using D = DType;
  EXPECT_EQ((make(D::Int32) + 2.5).dtype(), D::Float32);
  EXPECT_EXACT(make(D::Int32) + 2.5, NDArray(Shape{3}, 3.5));
  EXPECT_EQ((make(D::Int32) + 2).dtype(), D::Int32);
  EXPECT_EQ((make(D::Int64) * 3).dtype(), D::Int64);
  EXPECT_EQ((make(D::Float16) + 2.5).dtype(), D::Float16);
  EXPECT_EQ((make(D::BFloat16) * 2).dtype(), D::BFloat16);
  EXPECT_EQ((make(D::Float32) + 1e10).dtype(), D::Float32);
  EXPECT_EQ((make(D::Int64) / 2).dtype(), D::Float32);
  EXPECT_EQ((2.5 * make(D::Int64)).dtype(), D::Float32);
}

TEST_P(Promotion, DivisionOfIntegersIsFloat32) {
  EXPECT_EQ(st::div(make(DType::Int32), make(DType::Int32)).dtype(), DType::Float32);
  EXPECT_EQ(st::div(make(DType::Int64), make(DType::Int32)).dtype(), DType::Float32);
  EXPECT_EQ(st::div(make(DType::Int64), make(DType::Float64)).dtype(), DType::Float64);
}

TEST_P(Promotion, Reductions) {
  EXPECT_EQ(st::sum(make(DType::Int32)).dtype(), DType::Int64);
  EXPECT_EQ(st::sum(make(DType::Bool)).dtype(), DType::Int64);
  EXPECT_EQ(st::sum(make(DType::Int64, {2, 3}), {1}).dtype(), DType::Int64);
  EXPECT_EQ(st::sum(make(DType::Float16)).dtype(), DType::Float16);
  EXPECT_EQ(st::sum(make(DType::BFloat16)).dtype(), DType::BFloat16);
  EXPECT_EQ(st::mean(make(DType::Float32)).dtype(), DType::Float32);
  EXPECT_EQ(st::argmax(make(DType::Float16)).dtype(), DType::Int64);
  EXPECT_EXACT(st::sum(make(DType::Bool, {2, 3})), scalar_array(6));
}

TEST_P(Promotion, ComparisonsGiveBool) {
  for (DType d : {DType::Float32, DType::Float64, DType::Float16, DType::BFloat16, DType::Int32,
                  DType::Int64}) {
    EXPECT_EQ(st::lt(make(d), make(d)).dtype(), DType::Bool);
    EXPECT_EQ(st::eq(make(d), 1).dtype(), DType::Bool);
  }
  EXPECT_EQ(st::eq(make(DType::Int32), make(DType::Float32)).dtype(), DType::Bool);
  EXPECT_EXACT(st::eq(make(DType::Int32), make(DType::Float32)), NDArray(Shape{3}, 1.0));
}

TEST_P(Promotion, ZeroDimTensorJoinsAsAScalarWould) {
  // PyTorch: a 0-d operand does not raise the dtype of a dimensioned one within the same category.
  Tensor f32 = make(DType::Float32);
  Tensor f64_scalar = make(DType::Float64, {});
  EXPECT_EQ((f32 + f64_scalar).dtype(), DType::Float32);
  Tensor i32 = make(DType::Int32);
  EXPECT_EQ((i32 + make(DType::Int64, {})).dtype(), DType::Int32);
  // A 0-d operand of a higher category does count, at its own size (PyTorch's docs: "promote to a
  // type with sufficient size and category to hold all zero-dim tensor operands of that category").
  EXPECT_EQ((i32 + make(DType::Float64, {})).dtype(), DType::Float64);
  EXPECT_EQ((i32 + make(DType::Float16, {})).dtype(), DType::Float16);
}

TEST_P(Promotion, FloatUnaryOpsOnIntegersGiveFloat32) {
  Tensor i = make(DType::Int64);
  EXPECT_EQ(st::exp(i).dtype(), DType::Float32);
  EXPECT_CLOSE(st::exp(i), NDArray(Shape{3}, std::exp(1.0)), tolerance_for(DType::Float32));
  EXPECT_EQ(st::sqrt(make(DType::Int32)).dtype(), DType::Float32);
  EXPECT_EQ(st::sigmoid(make(DType::Bool)).dtype(), DType::Float32);
}

INSTANTIATE_TEST_SUITE_P(Ops, Promotion, ::testing::ValuesIn(st::available_devices()),
                         DeviceName());

}  // namespace
}  // namespace st_test
