// Conformance suite, reductions: sum, mean, max/min (full, over sets of dims, and with indices),
// argmax/argmin and sum_to, over single dims, several dims, all dims, negative dims, keepdim.

#include <algorithm>
#include <cmath>
#include <functional>

#include "reference.h"

namespace st_test {
namespace {

class Reduce : public DeviceDTypeTest {
 protected:
  std::mt19937 rng{4242};
};

struct DimsCase {
  Shape shape;
  Shape dims;
  Layout layout = Layout::Contiguous;
};

const std::vector<DimsCase>& dims_cases() {
  static const std::vector<DimsCase> cases = {
      {{2, 3, 4}, {}},
      {{2, 3, 4}, {0}},
      {{2, 3, 4}, {1}},
      {{2, 3, 4}, {2}},
      {{2, 3, 4}, {-1}},
      {{2, 3, 4}, {0, 2}},
      {{2, 3, 4}, {-1, 0}},
      {{2, 3, 4}, {0, 1, 2}},
      {{2, 3, 4}, {1, -1}, Layout::Transposed},
      {{5, 6}, {0}, Layout::Transposed},
      {{5, 6}, {1}, Layout::Strided},
      {{7}, {0}},
      {{}, {}},
      {{}, {0}},
      {{}, {-1}},
      {{1, 1}, {1}},
      {{3, 1, 2}, {1}},
      {{0, 3}, {1}},
      {{3, 0}, {1}},
      {{0, 3}, {0}},
  };
  return cases;
}

std::string describe(const DimsCase& c, bool keepdim) {
  return shape_str(c.shape) + " dims " + shape_str(c.dims) + " " + layout_name(c.layout) +
         (keepdim ? " keepdim" : "");
}

// Values and first index of the extreme along one lane.
std::pair<double, double> extreme(const std::vector<double>& lane, bool want_max) {
  size_t best = 0;
  for (size_t i = 1; i < lane.size(); ++i) {
    if (want_max ? lane[i] > lane[best] : lane[i] < lane[best]) best = i;
  }
  return {lane[best], static_cast<double>(best)};
}

TEST_P(Reduce, Sum) {
  for (const auto& c : dims_cases()) {
    for (bool keepdim : {false, true}) {
      SCOPED_TRACE(describe(c, keepdim));
      NDArray a = grid_random(c.shape, rng);
      Tensor y = st::sum(input(a, c.layout), c.dims, keepdim);
      EXPECT_EQ(y.dtype(), dtype());
      EXPECT_EQ(y.device(), device());
      NDArray mag =
          reduce_dims(map(a, [](double v) { return std::fabs(v); }), c.dims, keepdim, sum_of);
      EXPECT_CLOSE(y, reduce_dims(a, c.dims, keepdim, sum_of), tol(), &mag);
    }
  }
}

TEST_P(Reduce, SumMethod) {
  NDArray a = grid_random({3, 4}, rng);
  EXPECT_CLOSE(input(a).sum({1}, true), reduce_dims(a, {1}, true, sum_of), tol());
  EXPECT_CLOSE(input(a).sum(), reduce_dims(a, {}, false, sum_of), tol());
}

TEST_P(Reduce, Mean) {
  auto mean_of = [](const std::vector<double>& v) {
    return v.empty() ? std::nan("") : sum_of(v) / static_cast<double>(v.size());
  };
  for (const auto& c : dims_cases()) {
    for (bool keepdim : {false, true}) {
      SCOPED_TRACE(describe(c, keepdim));
      NDArray a = grid_random(c.shape, rng);
      Tensor y = st::mean(input(a, c.layout), c.dims, keepdim);
      EXPECT_EQ(y.dtype(), dtype());
      NDArray mag =
          reduce_dims(map(a, [](double v) { return std::fabs(v); }), c.dims, keepdim, mean_of);
      EXPECT_CLOSE(y, reduce_dims(a, c.dims, keepdim, mean_of), tol(), &mag);
    }
  }
}

TEST_P(Reduce, RandomShapesAndDims) {
  for (int trial = 0; trial < 30; ++trial) {
    Shape shape = random_shape(rng, 1, 4, 5, 0.1);
    const int64_t ndim = static_cast<int64_t>(shape.size());
    // A random non-empty subset of dims, some written negative; sometimes {} (all dims).
    Shape dims;
    for (int64_t d = 0; d < ndim; ++d) {
      if (std::bernoulli_distribution(0.4)(rng))
        dims.push_back(std::bernoulli_distribution(0.5)(rng) ? d - ndim : d);
    }
    bool keepdim = std::bernoulli_distribution(0.5)(rng);
    Layout layout = std::bernoulli_distribution(0.5)(rng) ? Layout::Transposed : Layout::Strided;
    SCOPED_TRACE("trial " + std::to_string(trial) + ": " + shape_str(shape) + " dims " +
                 shape_str(dims) + (keepdim ? " keepdim " : " ") + layout_name(layout));
    NDArray a = grid_random(shape, rng);
    Tensor x = input(a, layout);
    NDArray mag = reduce_dims(map(a, [](double v) { return std::fabs(v); }), dims, keepdim, sum_of);
    EXPECT_CLOSE(st::sum(x, dims, keepdim), reduce_dims(a, dims, keepdim, sum_of), tol(), &mag);
    bool reduces_empty_dim = false;
    for (int64_t d = 0; d < ndim; ++d) {
      const bool reduced = dims.empty() || std::count(dims.begin(), dims.end(), d) ||
                           std::count(dims.begin(), dims.end(), d - ndim);
      reduces_empty_dim = reduces_empty_dim || (reduced && shape[d] == 0);
    }
    if (!reduces_empty_dim) {  // amax over an empty dim is an error, as in PyTorch
      EXPECT_EXACT(st::amax(x, dims, keepdim),
                   reduce_dims(a, dims, keepdim, [](const std::vector<double>& v) {
                     return extreme(v, true).first;
                   }));
      EXPECT_EXACT(st::amin(x, dims, keepdim),
                   reduce_dims(a, dims, keepdim, [](const std::vector<double>& v) {
                     return extreme(v, false).first;
                   }));
    } else {
      EXPECT_THROW(st::amax(x, dims, keepdim), st::IndexError);
    }
    int64_t dim = std::uniform_int_distribution<int64_t>(-ndim, ndim - 1)(rng);
    if (shape[wrap(dim, ndim)] > 0) {  // max over an empty dim is an error, as in PyTorch
      SCOPED_TRACE("max over dim " + std::to_string(dim));
      auto [values, indices] = st::max(x, dim, keepdim);
      EXPECT_EXACT(values, reduce_dims(a, {dim}, keepdim, [](const std::vector<double>& v) {
                     return extreme(v, true).first;
                   }));
      EXPECT_EXACT(indices, reduce_dims(a, {dim}, keepdim, [](const std::vector<double>& v) {
                     return extreme(v, true).second;
                   }));
    }
  }
}

TEST_P(Reduce, ExpandedInput) {
  // Stride-0 dims: every element of a broadcast row counts.
  NDArray small = grid_random({3, 1}, rng);
  NDArray full = broadcast_to(small, {2, 3, 4});
  Tensor x = input(small).expand({2, 3, 4});
  EXPECT_CLOSE(st::sum(x, {0, 2}), reduce_dims(full, {0, 2}, false, sum_of), tol());
  EXPECT_CLOSE(
      st::mean(x),
      reduce_dims(full, {}, false, [](const std::vector<double>& v) { return sum_of(v) / 24; }),
      tol());
  auto [values, indices] = st::max(x, 2);
  EXPECT_EXACT(values, reduce_dims(full, {2}, false, [](const std::vector<double>& v) {
                 return extreme(v, true).first;
               }));
  EXPECT_EXACT(indices, NDArray({2, 3}, 0.0));  // all equal: the first index
}

TEST_P(Reduce, LargeSumAndMean) {
  // 100k elements: the parallel path. Values on a 2^-9 grid in [0, 0.5] keep every partial sum
  // (< 2^15) exact in f32, so an f32 accumulator in any order is exact and the sum fits f16.
  NDArray a = grid_random({100000}, rng, 0, 0.5);
  Tensor x = input(a);
  NDArray expected = reduce_dims(a, {}, false, sum_of);
  EXPECT_CLOSE(st::sum(x), expected, tol());
  EXPECT_CLOSE(st::mean(x), map(expected, [](double s) { return s / 100000; }), tol());
  NDArray b = grid_random({300, 400}, rng);
  NDArray mag = reduce_dims(map(b, [](double v) { return std::fabs(v); }), {0}, false, sum_of);
  EXPECT_CLOSE(st::sum(input(b, Layout::Transposed), {0}), reduce_dims(b, {0}, false, sum_of),
               tol(), &mag);
}

// Bias-gradient sums: many rows of contiguous outputs, whole 16-byte groups of them per thread on
// the GPUs where the rows allow it (64 columns), else one column a thread (a view starting one
// element into its storage is not 16-byte aligned), split into chunks of rows.
TEST_P(Reduce, ColumnSumsOfManyRows) {
  NDArray a = grid_random({3000, 65}, rng);
  const Tensor x = input(a);
  for (const Tensor& view : {x.narrow(1, 0, 64), x.narrow(1, 1, 64), x}) {
    SCOPED_TRACE(shape_str(view.shape()) + " at offset " + std::to_string(view.offset()));
    const NDArray v = from_tensor(view);
    NDArray mag = reduce_dims(map(v, [](double e) { return std::fabs(e); }), {0}, false, sum_of);
    EXPECT_CLOSE(st::sum(view, {0}), reduce_dims(v, {0}, false, sum_of), tol(), &mag);
    EXPECT_EXACT(st::amax(view, {0}), reduce_dims(v, {0}, false, [](const std::vector<double>& l) {
                   return extreme(l, true).first;
                 }));
  }
  // Contiguous 64 columns, all multiples of every dtype's group.
  NDArray b = grid_random({3000, 64}, rng);
  NDArray mag = reduce_dims(map(b, [](double e) { return std::fabs(e); }), {0}, false, sum_of);
  EXPECT_CLOSE(st::sum(input(b), {0}), reduce_dims(b, {0}, false, sum_of), tol(), &mag);
}

TEST_P(Reduce, MaxMinWithIndices) {
  struct Case {
    Shape shape;
    int64_t dim;
    Layout layout;
  };
  for (const auto& c : std::vector<Case>{{{4, 5, 3}, 0, Layout::Contiguous},
                                         {{4, 5, 3}, 1, Layout::Contiguous},
                                         {{4, 5, 3}, 2, Layout::Transposed},
                                         {{4, 5, 3}, -1, Layout::Contiguous},
                                         {{4, 5, 3}, -3, Layout::Strided},
                                         {{6}, 0, Layout::Contiguous},
                                         {{1, 3}, 0, Layout::Contiguous},
                                         {{0, 3}, 1, Layout::Contiguous},
                                         {{}, 0, Layout::Contiguous}}) {
    for (bool keepdim : {false, true}) {
      for (bool want_max : {true, false}) {
        SCOPED_TRACE(shape_str(c.shape) + " dim " + std::to_string(c.dim) + " " +
                     layout_name(c.layout) + (keepdim ? " keepdim" : "") +
                     (want_max ? " max" : " min"));
        // A coarse grid so that ties occur: the first index must win.
        NDArray a = map(int_random(c.shape, rng, -3, 3), [](double v) { return v / 2; });
        Tensor x = input(a, c.layout);
        auto [values, indices] = want_max ? st::max(x, c.dim, keepdim) : st::min(x, c.dim, keepdim);
        EXPECT_EQ(values.dtype(), dtype());
        EXPECT_EQ(indices.dtype(), DType::Int64);
        EXPECT_EQ(indices.device(), device());
        Index dims{c.dim};
        EXPECT_EXACT(values, reduce_dims(a, dims, keepdim, [&](const std::vector<double>& v) {
                       return extreme(v, want_max).first;
                     }));
        EXPECT_EXACT(indices, reduce_dims(a, dims, keepdim, [&](const std::vector<double>& v) {
                       return extreme(v, want_max).second;
                     }));
      }
    }
  }
}

TEST_P(Reduce, MaxMinFull) {
  for (const Shape& shape : std::vector<Shape>{{2, 3, 4}, {7}, {}, {1, 1}}) {
    SCOPED_TRACE(shape_str(shape));
    NDArray a = grid_random(shape, rng);
    Tensor x = input(a, Layout::Transposed);
    Tensor mx = st::max(x), mn = st::min(x);
    EXPECT_EQ(mx.dim(), 0);
    EXPECT_EQ(mx.dtype(), dtype());
    EXPECT_EXACT(mx, scalar_array(*std::max_element(a.data.begin(), a.data.end())));
    EXPECT_EXACT(mn, scalar_array(*std::min_element(a.data.begin(), a.data.end())));
  }
  NDArray big = grid_random({100003}, rng);
  big[77777] = 5.0;  // outside the grid's range: the unique maximum
  EXPECT_EXACT(st::max(input(big)), scalar_array(5.0));
  EXPECT_EXACT(st::argmax(input(big)), scalar_array(77777));
}

TEST_P(Reduce, ArgmaxArgmin) {
  NDArray a = map(int_random({3, 4, 5}, rng, -3, 3), [](double v) { return v / 2; });
  Tensor x = input(a, Layout::Transposed);
  for (bool want_max : {true, false}) {
    SCOPED_TRACE(want_max ? "argmax" : "argmin");
    auto op = [&](std::optional<int64_t> dim, bool keepdim) {
      return want_max ? st::argmax(x, dim, keepdim) : st::argmin(x, dim, keepdim);
    };
    Tensor flat = op(std::nullopt, false);
    EXPECT_EQ(flat.dtype(), DType::Int64);
    EXPECT_EQ(flat.dim(), 0);
    EXPECT_EXACT(flat, scalar_array(extreme(a.data, want_max).second));
    for (int64_t dim : {0, 1, 2, -1, -2}) {
      for (bool keepdim : {false, true}) {
        SCOPED_TRACE("dim " + std::to_string(dim) + (keepdim ? " keepdim" : ""));
        EXPECT_EXACT(op(dim, keepdim),
                     reduce_dims(a, {dim}, keepdim, [&](const std::vector<double>& v) {
                       return extreme(v, want_max).second;
                     }));
      }
    }
  }
}

TEST_P(Reduce, SumsNeedAWideAccumulator) {
  // 4096 ones: a float16 accumulator stalls at 2048 (2048 + 1 rounds back to 2048), a bfloat16 one
  // at 256. The result itself is exact in every dtype.
  Tensor ones = st::ones({4096}, {.dtype = dtype(), .device = device()});
  EXPECT_EXACT(st::sum(ones), scalar_array(4096));
  EXPECT_EXACT(st::mean(ones), scalar_array(1));
  Tensor rows = st::ones({3, 4096}, {.dtype = dtype(), .device = device()});
  EXPECT_EXACT(st::sum(rows, {1}), NDArray({3}, 4096.0));
  EXPECT_EXACT(st::sum(rows.t(), {0}, true), NDArray({1, 3}, 4096.0));
}

TEST_P(Reduce, SumTo) {
  struct Case {
    Shape from, to;
  };
  for (const auto& c : std::vector<Case>{{{3, 4, 5}, {4, 1}},
                                         {{3, 4, 5}, {1, 4, 5}},
                                         {{3, 4}, {}},
                                         {{2, 3}, {2, 3}},
                                         {{3, 4, 5}, {5}},
                                         {{0, 3}, {3}}}) {
    SCOPED_TRACE(shape_str(c.from) + " -> " + shape_str(c.to));
    NDArray a = grid_random(c.from, rng);
    NDArray expected(c.to);
    for (int64_t i = 0; i < a.numel(); ++i) {
      Index idx = unravel(i, c.from);
      Index target(idx.end() - static_cast<int64_t>(c.to.size()), idx.end());
      for (size_t d = 0; d < c.to.size(); ++d) {
        if (c.to[d] == 1) target[d] = 0;
      }
      expected.at(target) += a[i];
    }
    EXPECT_CLOSE(st::sum_to(input(a), c.to), expected, scaled(tol(), 4));
  }
}

INSTANTIATE_TEST_SUITE_P(Ops, Reduce,
                         ::testing::Combine(::testing::ValuesIn(st::available_devices()),
                                            ::testing::ValuesIn(float_dtypes())),
                         DeviceDTypeName());

class IntReduce : public DeviceDTypeTest {
 protected:
  std::mt19937 rng{99};
};

TEST_P(IntReduce, SumMaxArgmax) {
  NDArray a = int_random({3, 4, 5}, rng, -1000, 1000);
  Tensor x = make_tensor(a, dtype(), device(), Layout::Transposed);
  Tensor s = st::sum(x, {1});
  EXPECT_EQ(s.dtype(), DType::Int64);
  EXPECT_EXACT(s, reduce_dims(a, {1}, false, sum_of));
  EXPECT_EXACT(st::sum(x), reduce_dims(a, {}, false, sum_of));
  auto [values, indices] = st::max(x, -1, true);
  EXPECT_EQ(values.dtype(), dtype());
  EXPECT_EXACT(values, reduce_dims(a, {-1}, true, [](const std::vector<double>& v) {
                 return extreme(v, true).first;
               }));
  EXPECT_EXACT(indices, reduce_dims(a, {-1}, true, [](const std::vector<double>& v) {
                 return extreme(v, true).second;
               }));
  EXPECT_EXACT(st::argmin(x, 0), reduce_dims(a, {0}, false, [](const std::vector<double>& v) {
                 return extreme(v, false).second;
               }));
  EXPECT_EXACT(st::min(x), scalar_array(*std::min_element(a.data.begin(), a.data.end())));
}

TEST_P(IntReduce, SumDoesNotOverflowInt32) {
  // 70000 * 40000 = 2.8e9 does not fit int32: the int64 accumulator must hold it.
  NDArray a(Shape{70000}, 40000.0);
  Tensor s = st::sum(make_tensor(a, dtype(), device()));
  EXPECT_EQ(s.dtype(), DType::Int64);
  EXPECT_EQ(s.item<int64_t>(), int64_t{2800000000});
}

TEST_P(IntReduce, SumOfBool) {
  NDArray a = int_random({5, 7}, rng, 0, 1);
  Tensor s = st::sum(make_tensor(a, DType::Bool, device()), {0});
  EXPECT_EQ(s.dtype(), DType::Int64);
  EXPECT_EXACT(s, reduce_dims(a, {0}, false, sum_of));
}

INSTANTIATE_TEST_SUITE_P(Ops, IntReduce,
                         ::testing::Combine(::testing::ValuesIn(st::available_devices()),
                                            ::testing::Values(DType::Int32, DType::Int64)),
                         DeviceDTypeName());

}  // namespace
}  // namespace st_test
