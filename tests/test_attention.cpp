// scaled_dot_product_attention against float64 loops (output and the gradients of q, k and v), on
// every device and float dtype: on CUDA, f16/bf16/f64 take the fused flash kernels, which are also
// compared with the unfused composite (matmul, masked softmax, matmul) on the same device, and
// checked by finite differences in f64. Elsewhere the composite itself is checked.

#include <cmath>

#include "gradcheck.h"
#include "reference.h"

namespace st_test {
namespace {

struct Case {
  int64_t B, H, L, S, E;
  bool causal;
};

// Shapes around the 64-row blocks of the kernels: partial blocks, L != S both ways, each head dim.
const Case kCases[] = {
    {2, 3, 70, 70, 64, true},  {2, 3, 70, 70, 64, false},   {1, 2, 40, 100, 32, true},
    {1, 2, 100, 40, 32, true}, {1, 2, 130, 67, 128, false}, {1, 1, 128, 128, 128, true},
};

// Float64 attention of q [B, H, L, E], k, v [B, H, S, E] and its gradients for the loss
// sum(out * w).
struct Reference {
  NDArray out, dq, dk, dv;
};

Reference reference(const NDArray& q, const NDArray& k, const NDArray& v, const NDArray& w,
                    const Case& c) {
  const double scale = 1.0 / std::sqrt(static_cast<double>(c.E));
  Reference r{NDArray(q.shape), NDArray(q.shape), NDArray(k.shape), NDArray(v.shape)};
  std::vector<double> p(c.S), dp(c.S);
  for (int64_t bh = 0; bh < c.B * c.H; ++bh)
    for (int64_t i = 0; i < c.L; ++i) {
      // Row offsets into the flat [B, H, T, E] arrays.
      const int64_t qi = (bh * c.L + i) * c.E;
      const auto kj = [&](int64_t j) { return (bh * c.S + j) * c.E; };
      const int64_t keys = c.causal ? std::min(c.S, i + 1) : c.S;
      double m = -INFINITY, sum = 0;
      for (int64_t j = 0; j < keys; ++j) {
        double s = 0;
        for (int64_t e = 0; e < c.E; ++e) s += q[qi + e] * k[kj(j) + e];
        p[j] = s * scale;
        m = std::max(m, p[j]);
      }
      for (int64_t j = 0; j < keys; ++j) sum += (p[j] = std::exp(p[j] - m));
      double pdp = 0;
      for (int64_t j = 0; j < keys; ++j) {
        p[j] /= sum;
        dp[j] = 0;
        for (int64_t e = 0; e < c.E; ++e) {
          r.out[qi + e] += p[j] * v[kj(j) + e];
          r.dv[kj(j) + e] += p[j] * w[qi + e];
          dp[j] += w[qi + e] * v[kj(j) + e];
        }
        pdp += p[j] * dp[j];
      }
      for (int64_t j = 0; j < keys; ++j) {
        const double ds = p[j] * (dp[j] - pdp) * scale;
        for (int64_t e = 0; e < c.E; ++e) {
          r.dq[qi + e] += ds * k[kj(j) + e];
          r.dk[kj(j) + e] += ds * q[qi + e];
        }
      }
    }
  return r;
}

// max |actual - expected| <= rel * max |expected|: attention's rounding scales with the largest
// values of a tensor, not with each element (a near-zero gradient sums terms of full size).
::testing::AssertionResult close_at_scale(const Tensor& actual, const NDArray& expected,
                                          double rel) {
  if (actual.shape() != expected.shape)
    return ::testing::AssertionFailure() << "shape " << shape_str(actual.shape());
  const std::vector<double> got = to_f64(actual);
  double err = 0, scale = 0;
  for (int64_t i = 0; i < expected.numel(); ++i) {
    err = std::max(err, std::fabs(got[i] - expected[i]));
    scale = std::max(scale, std::fabs(expected[i]));
  }
  if (err <= rel * scale) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "max error " << err << " exceeds " << rel << " x "
                                       << scale << " (dtype " << actual.dtype() << ")";
}

double relative_tolerance(DType dtype) {
  switch (dtype) {
    case DType::BFloat16: return 2e-2;
    case DType::Float16: return 4e-3;
    case DType::Float32: return 2e-5;
    default: return 1e-11;
  }
}

// The composite with public ops: scores, a -inf mask above the diagonal, softmax, product.
Tensor unfused_attention(const Tensor& q, const Tensor& k, const Tensor& v, bool causal) {
  const int64_t L = q.shape()[2], S = k.shape()[2];
  Tensor scores = st::mul(st::matmul(q, k.transpose(-1, -2)),
                          1.0 / std::sqrt(static_cast<double>(q.shape()[3])));
  if (causal) {
    NDArray above({L, S});
    for (int64_t i = 0; i < L; ++i)
      for (int64_t j = 0; j < S; ++j) above[i * S + j] = j > i;
    scores = st::where(make_tensor(above, DType::Bool, q.device()),
                       st::full({}, -INFINITY, {scores.dtype(), q.device()}), scores);
  }
  return st::matmul(st::softmax(scores, -1), v);
}

class Attention : public DeviceDTypeTest {};

TEST_P(Attention, MatchesFloat64ReferenceAndUnfusedPath) {
  const bool fused = device().type == st::DeviceType::CUDA && dtype() != DType::Float32;
  for (const Case& c : kCases) {
    SCOPED_TRACE(::testing::Message() << "B " << c.B << " H " << c.H << " L " << c.L << " S " << c.S
                                      << " E " << c.E << " causal " << c.causal);
    std::mt19937 rng(static_cast<uint32_t>(c.L * 7 + c.S + c.E));
    // Inputs as the dtype holds them, so the reference sees the same values.
    const auto leaf = [&](const Shape& shape) {
      return input(uniform_random(shape, rng, -2, 2)).set_requires_grad(true);
    };
    Tensor q = leaf({c.B, c.H, c.L, c.E}), k = leaf({c.B, c.H, c.S, c.E});
    Tensor v = leaf({c.B, c.H, c.S, c.E});
    const NDArray w = uniform_random(q.shape(), rng);
    const Reference ref = reference(from_tensor(q), from_tensor(k), from_tensor(v), w, c);

    const Tensor out = st::scaled_dot_product_attention(q, k, v, c.causal);
    if (fused) {
      EXPECT_EQ(st::grad_fn_name(out), "ScaledDotProductFlashAttentionBackward");
    }
    st::sum(st::mul(out, input(w))).backward();
    const double rel = relative_tolerance(dtype());
    EXPECT_TRUE(close_at_scale(out, ref.out, rel));
    EXPECT_TRUE(close_at_scale(q.grad(), ref.dq, 2 * rel));
    EXPECT_TRUE(close_at_scale(k.grad(), ref.dk, 2 * rel));
    EXPECT_TRUE(close_at_scale(v.grad(), ref.dv, 2 * rel));
    if (!fused) continue;

    // The unfused path on the same device agrees with the fused one as closely as with float64.
    const Tensor q2 = q.detach().set_requires_grad(true), k2 = k.detach().set_requires_grad(true);
    const Tensor v2 = v.detach().set_requires_grad(true);
    const Tensor composite = unfused_attention(q2, k2, v2, c.causal);
    st::sum(st::mul(composite, input(w))).backward();
    EXPECT_TRUE(close_at_scale(out, from_tensor(composite), 2 * rel));
    EXPECT_TRUE(close_at_scale(q.grad(), from_tensor(q2.grad()), 4 * rel));
    EXPECT_TRUE(close_at_scale(k.grad(), from_tensor(k2.grad()), 4 * rel));
    EXPECT_TRUE(close_at_scale(v.grad(), from_tensor(v2.grad()), 4 * rel));
  }
}

// q, k, v as the GPT block makes them: [B, T, H, E] rows viewed as [B, H, T, E], so only E has
// unit stride.
TEST_P(Attention, StridedHeadsAsInTheGptBlock) {
  const Case c{2, 4, 96, 96, 64, true};
  std::mt19937 rng(3);
  Tensor packed =
      input(uniform_random({c.B, c.L, 3, c.H, c.E}, rng, -2, 2)).set_requires_grad(true);
  const Tensor q = packed.select(2, 0).transpose(1, 2), k = packed.select(2, 1).transpose(1, 2);
  const Tensor v = packed.select(2, 2).transpose(1, 2);
  const NDArray w = uniform_random(q.shape(), rng);
  const Reference ref = reference(from_tensor(q), from_tensor(k), from_tensor(v), w, c);
  const Tensor out = st::scaled_dot_product_attention(q, k, v, true);
  st::sum(st::mul(out, input(w))).backward();
  const double rel = relative_tolerance(dtype());
  EXPECT_TRUE(close_at_scale(out, ref.out, rel));
  // The fused kernels write the output in the operands' [B, T, H, E] order, so merging the heads
  // back is a view.
  if (device().type == st::DeviceType::CUDA && dtype() != DType::Float32) {
    EXPECT_TRUE(out.transpose(1, 2).is_contiguous());
  }
  const Tensor grad = packed.grad();
  EXPECT_TRUE(close_at_scale(grad.select(2, 0).transpose(1, 2), ref.dq, 2 * rel));
  EXPECT_TRUE(close_at_scale(grad.select(2, 1).transpose(1, 2), ref.dk, 2 * rel));
  EXPECT_TRUE(close_at_scale(grad.select(2, 2).transpose(1, 2), ref.dv, 2 * rel));
}

std::vector<DeviceDType> attention_params() {
  std::vector<DeviceDType> params;
  for (const Device& d : st::available_devices()) {
    if (d.type == st::DeviceType::Vulkan) continue;
    for (DType t : float_dtypes()) params.emplace_back(d, t);
  }
  return params;
}

INSTANTIATE_TEST_SUITE_P(Attention, Attention, ::testing::ValuesIn(attention_params()),
                         DeviceDTypeName());

// Finite differences through the f64 kernels on CUDA (the composite elsewhere).
class AttentionGradcheck : public ::testing::TestWithParam<Device> {};

TEST_P(AttentionGradcheck, CausalAndFull) {
  std::mt19937 rng(21);
  const NDArray q = uniform_random({1, 2, 5, 32}, rng), k = uniform_random({1, 2, 7, 32}, rng);
  const NDArray v = uniform_random({1, 2, 7, 32}, rng);
  for (bool causal : {true, false}) {
    EXPECT_TRUE(gradcheck(
        [causal](const std::vector<Tensor>& x) {
          return st::scaled_dot_product_attention(x[0], x[1], x[2], causal, 0.3);
        },
        {q, k, v}, GetParam()))
        << "causal " << causal;
  }
}

std::vector<Device> gradcheck_devices() {
  std::vector<Device> devices;
  for (const Device& d : st::available_devices())
    if (d.type != st::DeviceType::Vulkan) devices.push_back(d);
  return devices;
}

INSTANTIATE_TEST_SUITE_P(Attention, AttentionGradcheck, ::testing::ValuesIn(gradcheck_devices()),
                         DeviceName());

}  // namespace
}  // namespace st_test
