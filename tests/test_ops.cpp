// Conformance suite, linear algebra and neural-network ops: matmul, softmax, log_softmax,
// layer_norm, embedding, cross_entropy and dropout, on every available device and float dtype,
// against float64 loops written here.

#include <cmath>
#include <functional>
#include <numbers>

#include "reference.h"

namespace st_test {
namespace {

class NNOps : public DeviceDTypeTest {
 protected:
  std::mt19937 rng{31337};
};

std::vector<double> softmax_lane(const std::vector<double>& v) {
  double m = -INFINITY;
  for (double x : v) m = std::max(m, x);
  std::vector<double> out(v.size());
  double s = 0;
  for (size_t i = 0; i < v.size(); ++i) s += out[i] = std::exp(v[i] - m);
  for (auto& x : out) x /= s;
  return out;
}

std::vector<double> log_softmax_lane(const std::vector<double>& v) {
  double m = -INFINITY;
  for (double x : v) m = std::max(m, x);
  double s = 0;
  for (double x : v) s += std::exp(x - m);
  std::vector<double> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = v[i] - m - std::log(s);
  return out;
}

// The scale of log_softmax's rounding error: x - lse cancels when x is near lse, so a correct
// kernel is accurate relative to |x| + |lse|, not to the (small) result.
std::vector<double> log_softmax_scale_lane(const std::vector<double>& v) {
  std::vector<double> ls = log_softmax_lane(v);
  std::vector<double> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = std::fabs(v[i]) + std::fabs(v[i] - ls[i]);
  return out;
}

// ---------------------------------------------------------------------------------------------
// matmul

TEST_P(NNOps, Matmul) {
  struct Case {
    Shape a, b;
    Layout la = Layout::Contiguous, lb = Layout::Contiguous;
  };
  const std::vector<Case> cases = {
      {{5}, {5}},                 // 1-D . 1-D -> 0-d
      {{4}, {4, 3}},              // 1-D . 2-D
      {{3, 4}, {4}},              // 2-D . 1-D
      {{3, 4}, {4, 5}},           // 2-D
      {{2, 3, 4}, {2, 4, 5}},     // batched
      {{2, 1, 3, 4}, {5, 4, 6}},  // broadcast batch dims -> [2, 5, 3, 6]
      {{3, 4}, {2, 4, 5}},        // a broadcast over b's batch
      {{2, 3, 4}, {4}},           // batched . 1-D
      {{4}, {2, 4, 5}},           // 1-D . batched
      {{3, 4}, {4, 5}, Layout::Transposed, Layout::Transposed},
      {{3, 4}, {4, 5}, Layout::Transposed, Layout::Contiguous},
      {{2, 3, 4}, {2, 4, 5}, Layout::Transposed, Layout::Strided},
      {{6, 7}, {7, 2}, Layout::Strided, Layout::Transposed},
      {{3, 0}, {0, 4}},  // K = 0: zeros
      {{0, 4}, {4, 3}},  // M = 0
      {{3, 4}, {4, 0}},  // N = 0
      {{1, 1}, {1, 1}},
      {{17, 33}, {33, 9}},  // sizes that are not multiples of any tile
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(shape_str(c.a) + " " + layout_name(c.la) + " @ " + shape_str(c.b) + " " +
                 layout_name(c.lb));
    NDArray a = grid_random(c.a, rng), b = grid_random(c.b, rng);
    Tensor y = st::matmul(input(a, c.la), input(b, c.lb));
    EXPECT_EQ(y.dtype(), dtype());
    EXPECT_EQ(y.device(), device());
    NDArray mag;
    NDArray expected = matmul(a, b, &mag);
    EXPECT_CLOSE(y, expected, tol(), &mag);
  }
}

TEST_P(NNOps, MatmulRandomShapes) {
  std::uniform_int_distribution<int64_t> size(1, 6);
  for (int trial = 0; trial < 20; ++trial) {
    // Broadcastable batch shapes, and 1-D operands now and then.
    auto [batch_a, batch_b] = random_broadcast_pair(rng);
    if (batch_a.size() > 2) batch_a.erase(batch_a.begin());
    if (batch_b.size() > 2) batch_b.erase(batch_b.begin());
    int64_t m = size(rng), k = size(rng), n = size(rng);
    Shape sa = batch_a, sb = batch_b;
    bool a_vec = std::bernoulli_distribution(0.15)(rng),
         b_vec = std::bernoulli_distribution(0.15)(rng);
    if (a_vec)
      sa = {k};
    else
      sa.insert(sa.end(), {m, k});
    if (b_vec)
      sb = {k};
    else
      sb.insert(sb.end(), {k, n});
    Layout la = std::bernoulli_distribution(0.5)(rng) ? Layout::Transposed : Layout::Contiguous;
    Layout lb = std::bernoulli_distribution(0.5)(rng) ? Layout::Transposed : Layout::Strided;
    SCOPED_TRACE("trial " + std::to_string(trial) + ": " + shape_str(sa) + " " + layout_name(la) +
                 " @ " + shape_str(sb) + " " + layout_name(lb));
    NDArray a = grid_random(sa, rng), b = grid_random(sb, rng);
    NDArray mag;
    NDArray expected = matmul(a, b, &mag);
    EXPECT_CLOSE(st::matmul(input(a, la), input(b, lb)), expected, tol(), &mag);
  }
}

TEST_P(NNOps, SoftmaxRandomShapes) {
  for (int trial = 0; trial < 20; ++trial) {
    Shape shape = random_shape(rng, 1, 4, 6);
    int64_t ndim = static_cast<int64_t>(shape.size());
    int64_t dim = std::uniform_int_distribution<int64_t>(-ndim, ndim - 1)(rng);
    Layout layout = std::bernoulli_distribution(0.5)(rng) ? Layout::Transposed : Layout::Strided;
    SCOPED_TRACE("trial " + std::to_string(trial) + ": " + shape_str(shape) + " dim " +
                 std::to_string(dim) + " " + layout_name(layout));
    NDArray a = grid_random(shape, rng);
    Tensor x = input(a, layout);
    EXPECT_CLOSE(st::softmax(x, dim), map_lanes(a, dim, softmax_lane), tol());
    NDArray scale = map_lanes(a, dim, log_softmax_scale_lane);
    EXPECT_CLOSE(st::log_softmax(x, dim), map_lanes(a, dim, log_softmax_lane), tol(), &scale);
  }
}

TEST_P(NNOps, MatmulExpandedBatch) {
  // A batch dim of stride 0.
  NDArray a = grid_random({1, 3, 4}, rng), b = grid_random({4, 4, 5}, rng);
  Tensor y = st::matmul(input(a).expand({4, 3, 4}), input(b));
  NDArray mag;
  NDArray expected = matmul(broadcast_to(a, {4, 3, 4}), b, &mag);
  EXPECT_CLOSE(y, expected, tol(), &mag);
  EXPECT_CLOSE(input(a).matmul(input(b)), expected, tol(), &mag);
}

TEST_P(NNOps, MatmulNeedsAWideAccumulator) {
  // K = 4096 products of ones: a 16-bit accumulator would stall far below 4096.
  st::TensorOptions options{.dtype = dtype(), .device = device()};
  EXPECT_EXACT(st::matmul(st::ones({2, 4096}, options), st::ones({4096, 3}, options)),
               NDArray({2, 3}, 4096.0));
  EXPECT_EXACT(st::matmul(st::ones({4096}, options), st::ones({4096}, options)),
               scalar_array(4096));
}

TEST_P(NNOps, MatmulLarge) {
  // 300 x 300: the BLAS (or tiled GPU) path.
  const int64_t n = 300;
  NDArray a = grid_random({n, n}, rng), b = grid_random({n, n}, rng);
  NDArray expected({n, n}), mag({n, n});
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t k = 0; k < n; ++k) {
      double aik = a[i * n + k];
      for (int64_t j = 0; j < n; ++j) {
        expected[i * n + j] += aik * b[k * n + j];
        mag[i * n + j] += std::fabs(aik * b[k * n + j]);
      }
    }
  }
  EXPECT_CLOSE(st::matmul(input(a), input(b)), expected, tol(), &mag);
  // The transposed product, from transposed views: (B^T A^T) = (AB)^T.
  NDArray mag_t = transpose(mag, 0, 1);
  EXPECT_CLOSE(st::matmul(input(b).t(), input(a).t()), transpose(expected, 0, 1), tol(), &mag_t);
}

// Each operand unit-stride along either of its dims, at sizes that take the GPU backends' vector
// GEMM paths (multiples of 4) and their fallbacks, over tile sizes up to a 128 x 128 tile grid of
// 512 tiles.
TEST_P(NNOps, MatmulOperandLayoutsAndTiles) {
  const std::vector<std::pair<Shape, Shape>> shapes = {{{2, 68, 36}, {2, 36, 132}},
                                                       {{70, 12}, {12, 45}},
                                                       {{520, 12}, {12, 1028}},
                                                       {{32, 512, 8}, {32, 8, 512}}};
  for (const auto& [sa, sb] : shapes) {
    NDArray a = grid_random(sa, rng), b = grid_random(sb, rng);
    NDArray mag;
    NDArray expected = matmul(a, b, &mag);
    for (Layout la : {Layout::Contiguous, Layout::Transposed}) {
      for (Layout lb : {Layout::Contiguous, Layout::Transposed}) {
        SCOPED_TRACE(shape_str(sa) + " " + layout_name(la) + " @ " + shape_str(sb) + " " +
                     layout_name(lb));
        EXPECT_CLOSE(st::matmul(input(a, la), input(b, lb)), expected, tol(), &mag);
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// softmax and log_softmax

TEST_P(NNOps, SoftmaxAndLogSoftmax) {
  struct Case {
    Shape shape;
    int64_t dim;
    Layout layout = Layout::Contiguous;
  };
  const std::vector<Case> cases = {
      {{3, 4, 5}, 0},
      {{3, 4, 5}, 1},
      {{3, 4, 5}, 2},
      {{3, 4, 5}, -1},
      {{3, 4, 5}, -3},
      {{4, 6}, 0, Layout::Transposed},
      {{4, 6}, 1, Layout::Transposed},
      {{5, 3}, -1, Layout::Strided},
      {{7}, 0},
      {{2, 1, 3}, 1},
      {{}, 0},
      {{0, 5}, 1},
      {{3, 0}, 0},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(shape_str(c.shape) + " dim " + std::to_string(c.dim) + " " +
                 layout_name(c.layout));
    NDArray a = grid_random(c.shape, rng);
    Tensor x = input(a, c.layout);
    Tensor s = st::softmax(x, c.dim);
    Tensor l = st::log_softmax(x, c.dim);
    EXPECT_EQ(s.dtype(), dtype());
    EXPECT_EQ(l.dtype(), dtype());
    EXPECT_CLOSE(s, map_lanes(a, c.dim, softmax_lane), tol());
    NDArray scale = map_lanes(a, c.dim, log_softmax_scale_lane);
    EXPECT_CLOSE(l, map_lanes(a, c.dim, log_softmax_lane), tol(), &scale);
  }
}

TEST_P(NNOps, SoftmaxIsStableForLargeInputs) {
  // exp(1000) overflows every float type: the max must be subtracted first. Multiples of 8 near
  // 1024 are exact even in bfloat16.
  NDArray a = map(int_random({4, 9}, rng, -4, 4), [](double k) { return 1024 + 8 * k; });
  EXPECT_CLOSE(st::softmax(input(a), -1), map_lanes(a, -1, softmax_lane), tol());
  NDArray scale = map_lanes(a, -1, log_softmax_scale_lane);
  EXPECT_CLOSE(st::log_softmax(input(a), -1), map_lanes(a, -1, log_softmax_lane), tol(), &scale);
  NDArray n = map(a, [](double v) { return -v; });
  EXPECT_CLOSE(st::softmax(input(n), 1), map_lanes(n, 1, softmax_lane), tol());
}

TEST_P(NNOps, SoftmaxWithMinusInfinity) {
  // Masked positions (as in causal attention) get probability 0 and log-probability -inf.
  const double inf = std::numeric_limits<double>::infinity();
  NDArray a({2, 4}, {0.5, -inf, 1.0, -inf, -inf, 2.0, -inf, -inf});
  EXPECT_CLOSE(st::softmax(input(a), 1), map_lanes(a, 1, softmax_lane), tol());
  EXPECT_CLOSE(st::log_softmax(input(a), 1), map_lanes(a, 1, log_softmax_lane), tol());
}

// Rows either side of the vectorized paths (widths a multiple of 4 or 8) and of the widths where
// CUDA's held rows change shape (a warp per row up to 256, 512 and 1024 columns, a block holding 8,
// 16 or 32 values a thread up to 8192, 16384 and 32768, a loop over longer rows), odd widths, and
// rows that start off 16-byte alignment; the backward pass against y * (g - sum(g * y)) per row.
TEST_P(NNOps, SoftmaxRowsAcrossVectorWidths) {
  for (int64_t cols : {1, 4, 12, 33, 256, 257, 512, 520, 1023, 1024, 1032, 8192, 8196, 16384, 16392,
                       32768, 32776}) {
    for (int64_t skip : {0, 1}) {
      SCOPED_TRACE("cols " + std::to_string(cols) + " skipping " + std::to_string(skip) + " rows");
      NDArray a = grid_random({3 + skip, cols}, rng), g = grid_random({3, cols}, rng);
      NDArray rows({3, cols}, std::vector<double>(a.data.begin() + skip * cols, a.data.end()));
      Tensor x = input(a).narrow(0, skip, 3).detach();
      x.set_requires_grad(true);
      Tensor y = st::softmax(x, 1);
      NDArray yr = map_lanes(rows, 1, softmax_lane);
      EXPECT_CLOSE(y, yr, tol());
      NDArray scale = map_lanes(rows, 1, log_softmax_scale_lane);
      EXPECT_CLOSE(st::log_softmax(x, 1), map_lanes(rows, 1, log_softmax_lane), tol(), &scale);
      (y * input(g)).sum().backward();
      NDArray expected({3, cols});
      for (int64_t r = 0; r < 3; ++r) {
        double dot = 0;
        for (int64_t c = 0; c < cols; ++c) dot += g[r * cols + c] * yr[r * cols + c];
        for (int64_t c = 0; c < cols; ++c)
          expected[r * cols + c] = yr[r * cols + c] * (g[r * cols + c] - dot);
      }
      EXPECT_CLOSE(x.grad(), expected, tol());
    }
  }
}

TEST_P(NNOps, SoftmaxLarge) {
  NDArray a = grid_random({64, 1500}, rng);
  EXPECT_CLOSE(st::softmax(input(a), 1), map_lanes(a, 1, softmax_lane), tol());
  NDArray scale = map_lanes(a, 1, log_softmax_scale_lane);
  EXPECT_CLOSE(st::log_softmax(input(a, Layout::Transposed), 1), map_lanes(a, 1, log_softmax_lane),
               tol(), &scale);
}

// ---------------------------------------------------------------------------------------------
// layer_norm

// When `scale` is given it receives |xhat * w| + |b| per element: y = xhat * w + b can cancel, so a
// correct kernel is accurate relative to its terms.
NDArray layer_norm_ref(const NDArray& x, int64_t normalized_ndim, const NDArray* weight,
                       const NDArray* bias, double eps, NDArray* scale = nullptr) {
  Shape inner(x.shape.end() - normalized_ndim, x.shape.end());
  int64_t cols = count(inner), rows = cols == 0 ? 0 : x.numel() / cols;
  NDArray out(x.shape);
  if (scale) *scale = NDArray(x.shape);
  for (int64_t r = 0; r < rows; ++r) {
    double mean = 0, var = 0;
    for (int64_t c = 0; c < cols; ++c) mean += x[r * cols + c];
    mean /= static_cast<double>(cols);
    for (int64_t c = 0; c < cols; ++c) var += (x[r * cols + c] - mean) * (x[r * cols + c] - mean);
    var /= static_cast<double>(cols);
    for (int64_t c = 0; c < cols; ++c) {
      double y = (x[r * cols + c] - mean) / std::sqrt(var + eps);
      if (weight) y *= (*weight)[c];
      if (scale) (*scale)[r * cols + c] = std::fabs(y) + (bias ? std::fabs((*bias)[c]) : 0.0);
      if (bias) y += (*bias)[c];
      out[r * cols + c] = y;
    }
  }
  return out;
}

TEST_P(NNOps, LayerNorm) {
  struct Case {
    Shape x, normalized;
    bool weight, bias;
    double eps;
    Layout layout = Layout::Contiguous;
  };
  const std::vector<Case> cases = {
      {{4, 6}, {6}, true, true, 1e-5},
      {{4, 6}, {6}, false, false, 1e-5},
      {{4, 6}, {6}, true, false, 1e-5},
      {{4, 6}, {6}, false, true, 1e-5},
      {{2, 3, 4}, {3, 4}, true, true, 1e-5},
      {{2, 3, 4}, {2, 3, 4}, true, true, 1e-5},
      {{5, 8}, {8}, true, true, 1e-5, Layout::Transposed},
      {{3, 8}, {8}, true, true, 1e-5, Layout::Strided},
      {{4, 6}, {6}, true, true, 0.5},  // a large eps changes the result visibly
      {{7}, {7}, false, false, 1e-5},
      {{0, 4}, {4}, true, true, 1e-5},
      {{3, 1}, {1}, true, true, 1e-5},  // one element per row: output is the bias
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(shape_str(c.x) + " over " + shape_str(c.normalized) + (c.weight ? " weight" : "") +
                 (c.bias ? " bias" : "") + " eps " + std::to_string(c.eps) + " " +
                 layout_name(c.layout));
    NDArray x = grid_random(c.x, rng);
    NDArray w = grid_random(c.normalized, rng, -2, 2), b = grid_random(c.normalized, rng);
    Tensor y = st::layer_norm(input(x, c.layout), c.normalized, c.weight ? input(w) : Tensor(),
                              c.bias ? input(b) : Tensor(), c.eps);
    EXPECT_EQ(y.dtype(), dtype());
    EXPECT_EQ(y.shape(), c.x);
    NDArray scale;
    NDArray expected =
        layer_norm_ref(x, static_cast<int64_t>(c.normalized.size()), c.weight ? &w : nullptr,
                       c.bias ? &b : nullptr, c.eps, &scale);
    EXPECT_CLOSE(y, expected, scaled(tol(), 2), &scale);
  }
}

// Weight and bias gradients summed over many rows (GPU backends split them into partial sums
// over chunks of rows, the last one partial), columns not a multiple of a tile, against float64.
TEST_P(NNOps, LayerNormWeightGradsOverManyRows) {
  for (int64_t rows : {65, 1000, 17000}) {
    const int64_t cols = 37;
    SCOPED_TRACE(std::to_string(rows) + " rows");
    NDArray a = grid_random({rows, cols}, rng), g = grid_random({rows, cols}, rng);
    Tensor wt = input(grid_random({cols}, rng, -2, 2)).detach(),
           bt = input(grid_random({cols}, rng)).detach();
    wt.set_requires_grad(true);
    bt.set_requires_grad(true);
    (st::layer_norm(input(a), {cols}, wt, bt) * input(g)).sum().backward();
    NDArray gw({cols}), gw_scale({cols}), gb({cols}), gb_scale({cols});
    for (int64_t r = 0; r < rows; ++r) {
      const double* xr = a.data.data() + r * cols;
      double mean = 0, var = 0;
      for (int64_t c = 0; c < cols; ++c) mean += xr[c] / static_cast<double>(cols);
      for (int64_t c = 0; c < cols; ++c) var += (xr[c] - mean) * (xr[c] - mean) / cols;
      const double rstd = 1 / std::sqrt(var + 1e-5);
      for (int64_t c = 0; c < cols; ++c) {
        const double xhat = (xr[c] - mean) * rstd;
        gw[c] += g[r * cols + c] * xhat;
        gw_scale[c] += std::fabs(g[r * cols + c] * xhat);
        gb[c] += g[r * cols + c];
        gb_scale[c] += std::fabs(g[r * cols + c]);
      }
    }
    EXPECT_CLOSE(wt.grad(), gw, scaled(tol(), 4), &gw_scale);
    EXPECT_CLOSE(bt.grad(), gb, scaled(tol(), 4), &gb_scale);
  }
}

TEST_P(NNOps, LayerNormOfConstantRowsIsTheBias) {
  NDArray x({2, 5}, {3, 3, 3, 3, 3, -1.5, -1.5, -1.5, -1.5, -1.5});
  NDArray w = grid_random({5}, rng, -2, 2), b = grid_random({5}, rng);
  Tensor y = st::layer_norm(input(x), {5}, input(w), input(b));
  EXPECT_CLOSE(y, broadcast_to(b, {2, 5}), tol());
}

TEST_P(NNOps, LayerNormDefaultEps) {
  // Rows of tiny variance make eps visible: the default must be 1e-5 as in PyTorch.
  NDArray x = map(int_random({2, 4}, rng, -2, 2), [](double k) { return k / 512; });
  Tensor y = st::layer_norm(input(x), {4});
  EXPECT_CLOSE(y, layer_norm_ref(x, 1, nullptr, nullptr, 1e-5), scaled(tol(), 2));
}

TEST_P(NNOps, LayerNormLarge) {
  NDArray x = grid_random({256, 512}, rng), w = grid_random({512}, rng, -2, 2),
          b = grid_random({512}, rng);
  Tensor y = st::layer_norm(input(x), {512}, input(w), input(b));
  NDArray scale;
  NDArray expected = layer_norm_ref(x, 1, &w, &b, 1e-5, &scale);
  EXPECT_CLOSE(y, expected, scaled(tol(), 2), &scale);
}

// Rows either side of the vectorized paths (widths a multiple of 4 or 8) and of the widths where
// CUDA's held rows change shape (a warp per row up to 256, 512 or 1024 columns, a block up to
// 8192, a loop over longer rows), with and without weight and bias, and rows that start off
// 16-byte alignment.
TEST_P(NNOps, LayerNormRowsAcrossVectorWidths) {
  for (int64_t cols : {3, 256, 264, 384, 513, 1024, 8192, 8196, 8200}) {
    for (int64_t skip : {0, 1}) {
      for (bool affine : {true, false}) {
        SCOPED_TRACE("cols " + std::to_string(cols) + " skipping " + std::to_string(skip) +
                     " rows" + (affine ? " with weight and bias" : ""));
        NDArray a = grid_random({2 + skip, cols}, rng), w = grid_random({cols}, rng, -2, 2),
                b = grid_random({cols}, rng);
        NDArray x({2, cols}, std::vector<double>(a.data.begin() + skip * cols, a.data.end()));
        Tensor y = st::layer_norm(input(a).narrow(0, skip, 2), {cols}, affine ? input(w) : Tensor(),
                                  affine ? input(b) : Tensor());
        NDArray scale;
        NDArray expected =
            layer_norm_ref(x, 1, affine ? &w : nullptr, affine ? &b : nullptr, 1e-5, &scale);
        EXPECT_CLOSE(y, expected, scaled(tol(), 2), &scale);
      }
    }
  }
}

// The backward pass at the same widths, over enough rows that CUDA splits the weight and bias
// gradients into partial sums: grad_x = rstd (d - mean(d) - xhat mean(d xhat)) with d = g w,
// grad_w = sum over rows of g xhat, grad_b = sum of g, against float64.
TEST_P(NNOps, LayerNormBackwardAcrossWidths) {
  const int64_t rows = 37;
  for (int64_t cols : {3, 256, 264, 384, 513, 1024, 4096, 8196, 8200}) {
    for (int64_t skip : {0, 1}) {
      SCOPED_TRACE("cols " + std::to_string(cols) + " skipping " + std::to_string(skip) + " rows");
      NDArray a = grid_random({rows + skip, cols}, rng), g = grid_random({rows, cols}, rng),
              w = grid_random({cols}, rng, -2, 2), b = grid_random({cols}, rng);
      Tensor x = input(a).narrow(0, skip, rows).detach();
      Tensor wt = input(w).detach(), bt = input(b).detach();
      for (Tensor* t : {&x, &wt, &bt}) t->set_requires_grad(true);
      (st::layer_norm(x, {cols}, wt, bt) * input(g)).sum().backward();
      NDArray gx({rows, cols}), gx_scale({rows, cols}), gw({cols}), gw_scale({cols}), gb({cols}),
          gb_scale({cols});
      for (int64_t r = 0; r < rows; ++r) {
        const double* xr = a.data.data() + (r + skip) * cols;
        double mean = 0, var = 0;
        for (int64_t c = 0; c < cols; ++c) mean += xr[c] / static_cast<double>(cols);
        for (int64_t c = 0; c < cols; ++c) var += (xr[c] - mean) * (xr[c] - mean) / cols;
        const double rstd = 1 / std::sqrt(var + 1e-5);
        double mean_d = 0, mean_dx = 0;
        for (int64_t c = 0; c < cols; ++c) {
          const double d = g[r * cols + c] * w[c], xhat = (xr[c] - mean) * rstd;
          mean_d += d / static_cast<double>(cols);
          mean_dx += d * xhat / static_cast<double>(cols);
          gw[c] += g[r * cols + c] * xhat;
          gw_scale[c] += std::fabs(g[r * cols + c] * xhat);
          gb[c] += g[r * cols + c];
          gb_scale[c] += std::fabs(g[r * cols + c]);
        }
        for (int64_t c = 0; c < cols; ++c) {
          const double d = g[r * cols + c] * w[c], xhat = (xr[c] - mean) * rstd;
          gx[r * cols + c] = rstd * (d - mean_d - xhat * mean_dx);
          gx_scale[r * cols + c] =
              rstd * (std::fabs(d) + std::fabs(mean_d) + std::fabs(xhat * mean_dx));
        }
      }
      EXPECT_CLOSE(x.grad(), gx, scaled(tol(), 4), &gx_scale);
      EXPECT_CLOSE(wt.grad(), gw, scaled(tol(), 4), &gw_scale);
      EXPECT_CLOSE(bt.grad(), gb, scaled(tol(), 4), &gb_scale);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// embedding

NDArray embedding_ref(const NDArray& weight, const NDArray& indices) {
  int64_t d = weight.shape[1];
  Shape shape = indices.shape;
  shape.push_back(d);
  NDArray out(shape);
  for (int64_t i = 0; i < indices.numel(); ++i) {
    for (int64_t j = 0; j < d; ++j)
      out[i * d + j] = weight[static_cast<int64_t>(indices[i]) * d + j];
  }
  return out;
}

TEST_P(NNOps, Embedding) {
  NDArray weight = grid_random({10, 4}, rng);
  struct Case {
    Shape indices;
    DType index_dtype;
    Layout weight_layout, index_layout;
  };
  for (const auto& c : std::vector<Case>{
           {{6}, DType::Int64, Layout::Contiguous, Layout::Contiguous},
           {{6}, DType::Int32, Layout::Contiguous, Layout::Contiguous},
           {{3, 5}, DType::Int64, Layout::Contiguous, Layout::Contiguous},
           {{2, 3, 2}, DType::Int32, Layout::Contiguous, Layout::Contiguous},
           {{4, 3}, DType::Int64, Layout::Transposed, Layout::Transposed},
           {{5}, DType::Int32, Layout::Strided, Layout::Strided},
           {{}, DType::Int64, Layout::Contiguous, Layout::Contiguous},
           {{0}, DType::Int64, Layout::Contiguous, Layout::Contiguous},
           {{2, 0}, DType::Int32, Layout::Contiguous, Layout::Contiguous},
       }) {
    SCOPED_TRACE(shape_str(c.indices) + " " + std::string(st::dtype_name(c.index_dtype)) +
                 " weight " + layout_name(c.weight_layout) + " indices " +
                 layout_name(c.index_layout));
    NDArray indices = int_random(c.indices, rng, 0, 9);  // repeats likely
    Tensor y = st::embedding(input(weight, c.weight_layout),
                             make_tensor(indices, c.index_dtype, device(), c.index_layout));
    EXPECT_EQ(y.dtype(), dtype());
    EXPECT_EQ(y.device(), device());
    EXPECT_EXACT(y, embedding_ref(weight, indices));
  }
}

TEST_P(NNOps, EmbeddingLarge) {
  NDArray weight = grid_random({1000, 64}, rng), indices = int_random({4096}, rng, 0, 999);
  EXPECT_EXACT(st::embedding(input(weight), make_tensor(indices, DType::Int64, device())),
               embedding_ref(weight, indices));
}

// ---------------------------------------------------------------------------------------------
// cross_entropy

// Per-sample losses (0 where ignored), the number of samples not ignored, and per sample the scale
// of a correct kernel's rounding error, |lse| + |x[target]| (the loss is their difference).
struct CrossEntropyRef {
  NDArray loss;
  int64_t kept = 0;
  NDArray scale;
};

CrossEntropyRef cross_entropy_ref(const NDArray& logits, const NDArray& target,
                                  int64_t ignore_index) {
  int64_t n = logits.ndim() == 1 ? 1 : logits.shape[0], c = logits.shape.back();
  CrossEntropyRef ref{NDArray(Shape{n}), 0, NDArray(Shape{n})};
  for (int64_t i = 0; i < n; ++i) {
    int64_t t = static_cast<int64_t>(target[i]);
    if (t == ignore_index) continue;
    ++ref.kept;
    std::vector<double> row(logits.data.begin() + i * c, logits.data.begin() + (i + 1) * c);
    ref.loss[i] = -log_softmax_lane(row)[t];
    ref.scale[i] = log_softmax_scale_lane(row)[t];
  }
  return ref;
}

TEST_P(NNOps, CrossEntropy) {
  struct Case {
    int64_t n, c;
    int64_t ignore_index;
    DType target_dtype;
    Layout layout;
  };
  for (const auto& c : std::vector<Case>{{6, 5, -100, DType::Int64, Layout::Contiguous},
                                         {6, 5, -100, DType::Int32, Layout::Contiguous},
                                         {8, 3, 2, DType::Int64, Layout::Contiguous},
                                         {5, 7, -100, DType::Int64, Layout::Transposed},
                                         {4, 6, -1, DType::Int64, Layout::Strided},
                                         {1, 4, -100, DType::Int64, Layout::Contiguous},
                                         {300, 1000, -100, DType::Int64, Layout::Contiguous}}) {
    SCOPED_TRACE("N " + std::to_string(c.n) + " C " + std::to_string(c.c) + " ignore " +
                 std::to_string(c.ignore_index) + " " +
                 std::string(st::dtype_name(c.target_dtype)) + " " + layout_name(c.layout));
    NDArray logits = grid_random({c.n, c.c}, rng);
    NDArray target = int_random({c.n}, rng, 0, c.c - 1);
    // Some samples carry ignore_index (when it is not itself a class, mark a few explicitly).
    if (c.ignore_index < 0 && c.n > 2) target[1] = static_cast<double>(c.ignore_index);
    Tensor x = input(logits, c.layout);
    Tensor t = make_tensor(target, c.target_dtype, device());
    auto [losses, kept, scale] = cross_entropy_ref(logits, target, c.ignore_index);
    ASSERT_GT(kept, 0);
    Tolerance tl = scaled(tol(), 2);

    Tensor none = st::cross_entropy(x, t, c.ignore_index, st::Reduction::None);
    EXPECT_EQ(none.dtype(), dtype());
    EXPECT_CLOSE(none, losses, tl, &scale);
    const double total = sum_of(losses.data), total_scale = sum_of(scale.data);
    const NDArray sum_scale = scalar_array(total_scale);
    Tensor sum = st::cross_entropy(x, t, c.ignore_index, st::Reduction::Sum);
    EXPECT_EQ(sum.dim(), 0);
    EXPECT_CLOSE(sum, scalar_array(total), tl, &sum_scale);
    const double k = static_cast<double>(kept);
    const NDArray mean_scale = scalar_array(total_scale / k);
    Tensor mean = st::cross_entropy(x, t, c.ignore_index, st::Reduction::Mean);
    EXPECT_EQ(mean.dim(), 0);
    EXPECT_CLOSE(mean, scalar_array(total / k), tl, &mean_scale);
    if (c.ignore_index == -100) {
      EXPECT_CLOSE(st::cross_entropy(x, t), scalar_array(total / k), tl, &mean_scale);
    }
  }
}

TEST_P(NNOps, CrossEntropySingleSample) {
  // logits [C] with a 0-d target, as torch.nn.functional.cross_entropy accepts.
  NDArray logits = grid_random({5}, rng);
  NDArray target = scalar_array(3);
  Tensor t = make_tensor(target, DType::Int64, device());
  double expected = -log_softmax_lane(logits.data)[3];
  for (auto reduction : {st::Reduction::Mean, st::Reduction::Sum, st::Reduction::None}) {
    Tensor loss = st::cross_entropy(input(logits), t, -100, reduction);
    EXPECT_EQ(loss.dim(), 0);
    EXPECT_CLOSE(loss, scalar_array(expected), scaled(tol(), 2));
  }
}

TEST_P(NNOps, CrossEntropyWithEveryTargetIgnored) {
  // PyTorch: mean over zero samples is 0/0 = nan; sum is 0.
  Tensor x = input(grid_random({2, 3}, rng));
  Tensor t = make_tensor(NDArray({2}, -100.0), DType::Int64, device());
  EXPECT_CLOSE(st::cross_entropy(x, t), scalar_array(std::nan("")), tol());
  EXPECT_CLOSE(st::cross_entropy(x, t, -100, st::Reduction::Sum), scalar_array(0), tol());
  EXPECT_CLOSE(st::cross_entropy(x, t, -100, st::Reduction::None), NDArray({2}, 0.0), tol());
}

TEST_P(NNOps, CrossEntropyIsStableForLargeLogits) {
  NDArray logits = map(int_random({3, 5}, rng, -4, 4), [](double k) { return 1024 + 8 * k; });
  NDArray target({3}, {0, 4, 2});
  CrossEntropyRef ref = cross_entropy_ref(logits, target, -100);
  Tensor loss = st::cross_entropy(input(logits), make_tensor(target, DType::Int64, device()), -100,
                                  st::Reduction::None);
  // Losses are differences of numbers near 1024: accurate relative to that scale.
  EXPECT_CLOSE(loss, ref.loss, tol(), &ref.scale);
}

// ---------------------------------------------------------------------------------------------
// dropout

TEST_P(NNOps, DropoutIdentityCases) {
  NDArray a = grid_random({4, 5}, rng);
  Tensor x = input(a, Layout::Transposed);
  EXPECT_EXACT(st::dropout(x, 0.0), a);
  EXPECT_EXACT(st::dropout(x, 0.5, /*training=*/false), a);
  EXPECT_EXACT(st::dropout(x, 1.0, /*training=*/false), a);
  Tensor zero = st::dropout(x, 1.0);
  EXPECT_EQ(zero.dtype(), dtype());
  EXPECT_EXACT(zero, NDArray({4, 5}, 0.0));
}

TEST_P(NNOps, DropoutScalesKeptValues) {
  const double p = 0.3;
  NDArray a = grid_random_away_from_zero({400, 250}, rng, 0.5, 4);
  st::manual_seed(1);
  Tensor y = st::dropout(input(a, Layout::Transposed), p);
  EXPECT_EQ(y.dtype(), dtype());
  EXPECT_EQ(y.shape(), a.shape);
  std::vector<double> v = to_f64(y);
  int64_t dropped = 0, wrong = -1;
  Tolerance t = tol();
  for (int64_t i = 0; i < a.numel(); ++i) {
    if (v[i] == 0) {
      ++dropped;
      continue;
    }
    double kept = a[i] / (1 - p);
    if (std::fabs(v[i] - kept) > t.atol + t.rtol * std::fabs(kept) && wrong < 0) wrong = i;
  }
  EXPECT_LT(wrong, 0) << "element " << wrong << ": " << v[wrong] << ", expected 0 or "
                      << a[wrong] / (1 - p);
  // 100k Bernoulli draws: the fraction has standard deviation 0.0015.
  EXPECT_NEAR(static_cast<double>(dropped) / a.numel(), p, 0.01);
}

TEST_P(NNOps, DropoutIsReproducibleForASeed) {
  NDArray a = grid_random_away_from_zero({64, 64}, rng, 0.5, 4);
  Tensor x = input(a);
  st::manual_seed(42);
  std::vector<double> first = to_f64(st::dropout(x, 0.5));
  std::vector<double> second = to_f64(st::dropout(x, 0.5));  // the stream moves on
  st::manual_seed(42);
  std::vector<double> again = to_f64(st::dropout(x, 0.5));
  st::manual_seed(43);
  std::vector<double> other = to_f64(st::dropout(x, 0.5));
  EXPECT_EQ(first, again);
  EXPECT_NE(first, second);
  EXPECT_NE(first, other);
}

TEST_P(NNOps, DropoutDrawsTheUniformStream) {
  // The contract: element i is kept when the i-th uniform draw of the same seed and offset is >= p.
  const double p = 0.25;
  NDArray a = grid_random_away_from_zero({33, 17}, rng, 0.5, 4);
  st::manual_seed(7);
  std::vector<double> u = to_f64(st::rand({33, 17}, {dtype(), device()}));
  st::manual_seed(7);
  std::vector<double> y = to_f64(st::dropout(input(a), p));
  NDArray expected(a.shape, 0.0);
  for (int64_t i = 0; i < a.numel(); ++i) expected[i] = u[i] >= p ? a[i] / (1 - p) : 0;
  EXPECT_CLOSE(st::from_buffer<double>(y.data(), a.shape), expected, tol());
}

// ---------------------------------------------------------------------------------------------
// linear and attention

TEST_P(NNOps, LinearMatchesMatmulPlusBias) {
  NDArray x = grid_random({2, 3, 5}, rng), w = grid_random({4, 5}, rng), b = grid_random({4}, rng);
  NDArray magnitude;
  NDArray expected = matmul(x, transpose(w, 0, 1), &magnitude);
  EXPECT_CLOSE(st::linear(input(x), input(w)), expected, tol(), &magnitude);
  for (int64_t i = 0; i < expected.numel(); ++i) expected[i] += b[i % 4];
  EXPECT_CLOSE(st::linear(input(x, Layout::Transposed), input(w, Layout::Strided), input(b)),
               expected, tol(), &magnitude);
}

double gelu_ref(double v, st::LinearActivation act) {
  if (act == st::LinearActivation::Gelu) return 0.5 * v * (1 + std::erf(v / std::sqrt(2.0)));
  const double c = std::sqrt(2 / std::numbers::pi);
  return 0.5 * v * (1 + std::tanh(c * (v + 0.044715 * v * v * v)));
}

TEST_P(NNOps, LinearWithActivationMatchesReference) {
  using st::LinearActivation;
  // 16 output features suit cuBLASLt's GELU epilogue (its aux matrix needs a multiple of 8);
  // 5 take the composed path.
  for (int64_t n : {16, 5}) {
    SCOPED_TRACE(n);
    NDArray x = grid_random({2, 3, 7}, rng), w = grid_random({n, 7}, rng);
    // The bias sits one element into a wider buffer: an unaligned device pointer.
    NDArray wide_bias = grid_random({n + 1}, rng);
    NDArray magnitude;
    const NDArray product = matmul(x, transpose(w, 0, 1), &magnitude);
    NDArray with_bias = product;
    for (int64_t i = 0; i < product.numel(); ++i) with_bias[i] += wide_bias[1 + i % n];
    const Tensor bias = input(wide_bias).narrow(0, 1, n);
    // GELU's slope is below 1.13, so the GEMM's error carries through at most that scale.
    const Tolerance t = scaled(tol(), 2);
    EXPECT_CLOSE(st::linear(input(x), input(w), bias), with_bias, tol(), &magnitude);
    for (LinearActivation act : {LinearActivation::Gelu, LinearActivation::GeluTanh}) {
      SCOPED_TRACE(act == LinearActivation::Gelu ? "gelu" : "gelu tanh");
      NDArray expected = with_bias, expected_no_bias = product;
      for (int64_t i = 0; i < product.numel(); ++i) {
        expected[i] = gelu_ref(with_bias[i], act);
        expected_no_bias[i] = gelu_ref(product[i], act);
      }
      Tensor y = st::linear(input(x), input(w), bias, act);
      EXPECT_EQ(y.shape(), (Shape{2, 3, n}));
      EXPECT_CLOSE(y, expected, t, &magnitude);
      EXPECT_CLOSE(st::linear(input(x, Layout::Transposed), input(w, Layout::Strided), {}, act),
                   expected_no_bias, t, &magnitude);
    }
  }
}

// The parameter gradients, taken by one GEMM that also sums the bias gradient where the backend
// fuses it (CUDA), against float64 loops: fresh, then accumulated into .grad by a second backward.
TEST_P(NNOps, LinearGradientsMatchReference) {
  for (auto [n, rows] : {std::pair<int64_t, int64_t>{16, 64}, {16, 37}, {5, 37}}) {
    SCOPED_TRACE(std::to_string(n) + " features, " + std::to_string(rows) + " rows");
    const int64_t in = 24;
    NDArray x = grid_random({rows, in}, rng), w = grid_random({n, in}, rng);
    NDArray b = grid_random({n}, rng), g = grid_random({rows, n}, rng);
    NDArray magnitude_w, magnitude_x;
    const NDArray grad_w = matmul(transpose(g, 0, 1), x, &magnitude_w);
    const NDArray grad_x = matmul(g, w, &magnitude_x);
    const auto column_sums = [&](auto f) {
      return reduce_dims(g, {0}, false, [f](const std::vector<double>& column) {
        double s = 0;
        for (double v : column) s += f(v);
        return s;
      });
    };
    const NDArray grad_b = column_sums([](double v) { return v; });
    const NDArray magnitude_b = column_sums([](double v) { return std::fabs(v); });
    Tensor xt = input(x), wt = input(w), bt = input(b);
    for (Tensor* t : {&xt, &wt, &bt}) t->set_requires_grad(true);
    for (double times : {1.0, 2.0}) {
      SCOPED_TRACE(times == 1 ? "fresh" : "accumulated");
      (st::linear(xt, wt, bt) * input(g)).sum().backward();
      const auto check = [&](const Tensor& actual, const NDArray& expected, const NDArray& size) {
        const auto scaled = [times](const NDArray& a) {
          return map(a, [&](double v) { return v * times; });
        };
        const NDArray magnitude = scaled(size);
        EXPECT_CLOSE(actual, scaled(expected), tol(), &magnitude);
      };
      check(wt.grad(), grad_w, magnitude_w);
      check(bt.grad(), grad_b, magnitude_b);
      check(xt.grad(), grad_x, magnitude_x);
    }
  }
}

TEST_P(NNOps, LinearRejectsBadArguments) {
  Tensor x = input(grid_random({3, 5}, rng)), w = input(grid_random({4, 5}, rng));
  EXPECT_THROW(st::linear(x, w, input(grid_random({5}, rng)), st::LinearActivation::Gelu),
               st::ShapeError);
  EXPECT_THROW(st::linear(x, input(grid_random({4, 6}, rng)), {}, st::LinearActivation::GeluTanh),
               st::ShapeError);
}

// softmax(q k^T * scale, masked) v over the last two dims of [B, H, L, E] arrays.
NDArray attention_ref(const NDArray& q, const NDArray& k, const NDArray& v, bool causal,
                      double scale) {
  const int64_t B = q.shape[0], H = q.shape[1], L = q.shape[2], E = q.shape[3];
  const int64_t S = k.shape[2], Ev = v.shape[3];
  NDArray out({B, H, L, Ev}, 0.0);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t i = 0; i < L; ++i) {
        std::vector<double> w(S, 0.0);
        double hi = -INFINITY, total = 0;
        const int64_t seen = causal ? std::min(i + 1, S) : S;
        for (int64_t j = 0; j < seen; ++j) {
          for (int64_t e = 0; e < E; ++e) w[j] += q.at({b, h, i, e}) * k.at({b, h, j, e});
          w[j] *= scale;
          hi = std::max(hi, w[j]);
        }
        for (int64_t j = 0; j < seen; ++j) total += w[j] = std::exp(w[j] - hi);
        for (int64_t j = 0; j < seen; ++j)
          for (int64_t e = 0; e < Ev; ++e)
            out.at({b, h, i, e}) += w[j] / total * v.at({b, h, j, e});
      }
  return out;
}

TEST_P(NNOps, ScaledDotProductAttention) {
  NDArray q = uniform_random({2, 3, 5, 4}, rng), k = uniform_random({2, 3, 7, 4}, rng);
  NDArray v = uniform_random({2, 3, 7, 6}, rng);
  const Tolerance t = scaled(tol(), 4);
  EXPECT_CLOSE(st::scaled_dot_product_attention(input(q), input(k), input(v)),
               attention_ref(q, k, v, false, 0.5), t);
  EXPECT_CLOSE(st::scaled_dot_product_attention(input(q), input(k), input(v), true, 0.75),
               attention_ref(q, k, v, true, 0.75), t);
  // Square causal attention with transposed operands, as a model's heads are laid out.
  NDArray ks = uniform_random({2, 3, 5, 4}, rng), vs = uniform_random({2, 3, 5, 6}, rng);
  Tensor kt = input(permute(ks, {0, 2, 1, 3})).transpose(1, 2);
  EXPECT_CLOSE(st::scaled_dot_product_attention(input(q), kt, input(vs), true),
               attention_ref(q, ks, vs, true, 0.5), t);
}

// ---------------------------------------------------------------------------------------------
// fused optimizer updates

// With `scheduled`, lr and step come from a schedule tensor (as under a CUDA graph), the host
// fields holding other values.
TEST_P(NNOps, FusedAdamAndAdamWUpdates) {
  for (const auto& variant : {std::pair{false, false}, {true, false}, {true, true}}) {
    const bool decoupled = variant.first, scheduled = variant.second;
    SCOPED_TRACE(::testing::Message()
                 << (decoupled ? "AdamW" : "Adam") << (scheduled ? ", scheduled" : ""));
    NDArray p = uniform_random({3, 5}, rng), g = uniform_random({3, 5}, rng);
    NDArray m = uniform_random({3, 5}, rng, -0.1, 0.1), v = uniform_random({3, 5}, rng, 0, 0.1);
    NDArray p2 = uniform_random({7}, rng), g2 = uniform_random({7}, rng);
    const st::AdamUpdate u{0.01, 0.8, 0.95, 1e-3, 0.1, decoupled, 3, {}};
    std::vector<Tensor> params{input(p), input(p2)}, grads{input(g), input(g2)};
    std::vector<Tensor> ms{input(m), input(NDArray({7}, 0.0))};
    std::vector<Tensor> vs{input(v), input(NDArray({7}, 0.0))};
    st::AdamUpdate given = u;
    if (scheduled) {
      given.lr = 0.5;
      given.step = 1;
      given.schedule = st::tensor({u.lr, 3.0}).to(params[0].device());
    }
    st::adam_update_(params, grads, ms, vs, given);
    // Reference, element by element in float64.
    const auto step = [&](NDArray& x, const NDArray& grad, NDArray& m1, NDArray& v1) {
      for (int64_t i = 0; i < x.numel(); ++i) {
        double d = grad[i];
        if (decoupled)
          x[i] *= 1 - u.lr * u.weight_decay;
        else
          d += u.weight_decay * x[i];
        m1[i] = u.beta1 * m1[i] + (1 - u.beta1) * d;
        v1[i] = u.beta2 * v1[i] + (1 - u.beta2) * d * d;
        const double mhat = m1[i] / (1 - std::pow(u.beta1, 3));
        const double vhat = v1[i] / (1 - std::pow(u.beta2, 3));
        x[i] -= u.lr * mhat / (std::sqrt(vhat) + u.eps);
      }
    };
    NDArray m2({7}, 0.0), v2({7}, 0.0);
    step(p, g, m, v);
    step(p2, g2, m2, v2);
    EXPECT_CLOSE(params[0], p, tol());
    EXPECT_CLOSE(ms[0], m, tol());
    EXPECT_CLOSE(vs[0], v, tol());
    EXPECT_CLOSE(params[1], p2, tol());
    EXPECT_CLOSE(vs[1], v2, tol());
  }
}

TEST_P(NNOps, FusedSgdUpdates) {
  struct Case {
    double momentum, dampening, weight_decay;
    bool nesterov, first;
  };
  for (Case c : {Case{0, 0, 0, false, false}, Case{0.9, 0, 0.1, false, true},
                 Case{0.9, 0.2, 0, false, false}, Case{0.8, 0, 0.01, true, false}}) {
    SCOPED_TRACE(::testing::Message() << "momentum " << c.momentum << " nesterov " << c.nesterov);
    NDArray p = uniform_random({4, 3}, rng), g = uniform_random({4, 3}, rng);
    NDArray buf = uniform_random({4, 3}, rng);
    std::vector<Tensor> params{input(p)}, grads{input(g)}, bufs;
    if (c.momentum != 0) bufs.push_back(input(buf));
    st::sgd_update_(params, grads, bufs,
                    {0.1, c.momentum, c.dampening, c.weight_decay, c.nesterov, c.first, {}});
    for (int64_t i = 0; i < p.numel(); ++i) {
      double d = g[i] + c.weight_decay * p[i];
      if (c.momentum != 0) {
        buf[i] = c.first ? d : c.momentum * buf[i] + (1 - c.dampening) * d;
        d = c.nesterov ? d + c.momentum * buf[i] : buf[i];
      }
      p[i] -= 0.1 * d;
    }
    EXPECT_CLOSE(params[0], p, tol());
    if (c.momentum != 0) {
      EXPECT_CLOSE(bufs[0], buf, tol());
    }
  }
}

TEST_P(NNOps, GlobalNormOverTensors) {
  NDArray a = uniform_random({40, 30}, rng), b = uniform_random({7}, rng);
  Tensor ta = input(a), tb = input(b, Layout::Strided);
  double squares = 0;  // of the values as stored in the tested dtype
  for (double x : to_f64(ta)) squares += x * x;
  for (double x : to_f64(tb)) squares += x * x;
  Tensor norm = st::global_norm({ta, tb});
  EXPECT_EQ(norm.dim(), 0);
  EXPECT_NEAR(norm.item<double>(), std::sqrt(squares), 1e-5 * std::sqrt(squares));
}

INSTANTIATE_TEST_SUITE_P(Ops, NNOps,
                         ::testing::Combine(::testing::ValuesIn(st::available_devices()),
                                            ::testing::ValuesIn(float_dtypes())),
                         DeviceDTypeName());

}  // namespace
}  // namespace st_test
