#pragma once
// Host-side float64 references for the test suite: a tiny row-major NDArray with NumPy
// broadcasting, conversions between it and st::Tensor, the per-dtype tolerance table, and
// EXPECT_CLOSE. Expected values are computed with plain loops over NDArrays (here and in the
// tests), never with the library's ops; the library is only used to move data in and out.

#include <gtest/gtest.h>
#include <spiraltorch/spiraltorch.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <tuple>
#include <typeinfo>
#include <utility>
#include <vector>

namespace st_test {

using st::Device;
using st::DType;
using st::Shape;
using st::Tensor;
using Index = std::vector<int64_t>;

// ---------------------------------------------------------------------------------------------
// Shapes and indices.

inline int64_t count(const Shape& shape) {
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  return n;
}

inline std::string shape_str(const Shape& shape) {
  std::ostringstream out;
  out << "[";
  for (size_t i = 0; i < shape.size(); ++i) out << (i ? ", " : "") << shape[i];
  out << "]";
  return out.str();
}

// Row-major multi-index of flat position `flat` in `shape`.
inline Index unravel(int64_t flat, const Shape& shape) {
  Index index(shape.size(), 0);
  for (int64_t d = static_cast<int64_t>(shape.size()) - 1; d >= 0; --d) {
    if (shape[d] == 0) return index;
    index[d] = flat % shape[d];
    flat /= shape[d];
  }
  return index;
}

inline int64_t ravel(const Index& index, const Shape& shape) {
  int64_t flat = 0;
  for (size_t d = 0; d < shape.size(); ++d) flat = flat * shape[d] + index[d];
  return flat;
}

inline int64_t wrap(int64_t dim, int64_t ndim) { return dim < 0 ? dim + ndim : dim; }

// NumPy broadcasting, written independently of st::broadcast_shapes.
inline Shape broadcast(const Shape& a, const Shape& b) {
  size_t n = std::max(a.size(), b.size());
  Shape out(n, 1);
  for (size_t i = 0; i < n; ++i) {
    int64_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
    int64_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
    if (da != db && da != 1 && db != 1) {
      ADD_FAILURE() << "test bug: shapes " << shape_str(a) << " and " << shape_str(b)
                    << " do not broadcast";
    }
    out[i] = da == 1 ? db : da;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// NDArray: shape + row-major float64 values.

struct NDArray {
  Shape shape;
  std::vector<double> data;

  NDArray() = default;
  explicit NDArray(Shape s, double value = 0.0) : shape(std::move(s)), data(count(shape), value) {}
  NDArray(Shape s, std::vector<double> values) : shape(std::move(s)), data(std::move(values)) {
    if (static_cast<int64_t>(data.size()) != count(shape)) {
      ADD_FAILURE() << "test bug: " << data.size() << " values for shape " << shape_str(shape);
    }
  }

  int64_t numel() const { return static_cast<int64_t>(data.size()); }
  int64_t ndim() const { return static_cast<int64_t>(shape.size()); }
  double& operator[](int64_t i) { return data[i]; }
  double operator[](int64_t i) const { return data[i]; }
  double& at(const Index& index) { return data[ravel(index, shape)]; }
  double at(const Index& index) const { return data[ravel(index, shape)]; }

  // The value at `index` of a shape this array broadcasts to (dims aligned at the right, size-1
  // dims repeated).
  double bcast(const Index& index) const {
    int64_t flat = 0;
    size_t lead = index.size() - shape.size();
    for (size_t d = 0; d < shape.size(); ++d) {
      int64_t i = shape[d] == 1 ? 0 : index[lead + d];
      flat = flat * shape[d] + i;
    }
    return data[flat];
  }
};

inline NDArray scalar_array(double value) { return NDArray(Shape{}, std::vector<double>{value}); }

template <typename F>
NDArray map(const NDArray& a, F f) {
  NDArray out(a.shape);
  for (int64_t i = 0; i < a.numel(); ++i) out[i] = f(a[i]);
  return out;
}

template <typename F>
NDArray zip(const NDArray& a, const NDArray& b, F f) {
  NDArray out(broadcast(a.shape, b.shape));
  for (int64_t i = 0; i < out.numel(); ++i) {
    Index idx = unravel(i, out.shape);
    out[i] = f(a.bcast(idx), b.bcast(idx));
  }
  return out;
}

template <typename F>
NDArray zip3(const NDArray& a, const NDArray& b, const NDArray& c, F f) {
  NDArray out(broadcast(broadcast(a.shape, b.shape), c.shape));
  for (int64_t i = 0; i < out.numel(); ++i) {
    Index idx = unravel(i, out.shape);
    out[i] = f(a.bcast(idx), b.bcast(idx), c.bcast(idx));
  }
  return out;
}

inline NDArray broadcast_to(const NDArray& a, const Shape& shape) {
  NDArray out(shape);
  for (int64_t i = 0; i < out.numel(); ++i) out[i] = a.bcast(unravel(i, shape));
  return out;
}

inline NDArray reshape(const NDArray& a, const Shape& shape) { return NDArray(shape, a.data); }

inline NDArray permute(const NDArray& a, const Index& perm) {
  Shape shape(perm.size());
  for (size_t d = 0; d < perm.size(); ++d) shape[d] = a.shape[perm[d]];
  NDArray out(shape);
  for (int64_t i = 0; i < out.numel(); ++i) {
    Index idx = unravel(i, shape);
    Index src(perm.size());
    for (size_t d = 0; d < perm.size(); ++d) src[perm[d]] = idx[d];
    out[i] = a.at(src);
  }
  return out;
}

inline NDArray transpose(const NDArray& a, int64_t d0, int64_t d1) {
  Index perm(a.ndim());
  for (int64_t d = 0; d < a.ndim(); ++d) perm[d] = d;
  std::swap(perm[wrap(d0, a.ndim())], perm[wrap(d1, a.ndim())]);
  return permute(a, perm);
}

// Python slicing a[start:stop:step] along `dim` (step > 0), bounds already clamped by the caller.
inline NDArray slice(const NDArray& a, int64_t dim, int64_t start, int64_t stop, int64_t step = 1) {
  dim = wrap(dim, a.ndim());
  Shape shape = a.shape;
  shape[dim] = stop > start ? (stop - start + step - 1) / step : 0;
  NDArray out(shape);
  for (int64_t i = 0; i < out.numel(); ++i) {
    Index idx = unravel(i, shape);
    idx[dim] = start + idx[dim] * step;
    out[i] = a.at(idx);
  }
  return out;
}

inline NDArray select(const NDArray& a, int64_t dim, int64_t index) {
  dim = wrap(dim, a.ndim());
  NDArray s = slice(a, dim, index, index + 1);
  Shape shape = a.shape;
  shape.erase(shape.begin() + dim);
  return reshape(s, shape);
}

// Concatenation along `dim`.
inline NDArray concat(const std::vector<NDArray>& parts, int64_t dim) {
  dim = wrap(dim, parts[0].ndim());
  Shape shape = parts[0].shape;
  shape[dim] = 0;
  for (const auto& p : parts) shape[dim] += p.shape[dim];
  NDArray out(shape);
  for (int64_t i = 0; i < out.numel(); ++i) {
    Index idx = unravel(i, shape);
    int64_t k = idx[dim];
    size_t p = 0;
    while (k >= parts[p].shape[dim]) k -= parts[p++].shape[dim];
    idx[dim] = k;
    out[i] = parts[p].at(idx);
  }
  return out;
}

// Shape of a reduction over `dims` (already wrapped; empty = all dims).
inline Shape reduced_shape(const Shape& shape, const Index& dims, bool keepdim) {
  Shape out;
  for (int64_t d = 0; d < static_cast<int64_t>(shape.size()); ++d) {
    bool reduced = dims.empty() || std::find(dims.begin(), dims.end(), d) != dims.end();
    if (!reduced)
      out.push_back(shape[d]);
    else if (keepdim)
      out.push_back(1);
  }
  return out;
}

// Applies f(values of one reduction group) -> double for each output element. `dims` may be
// negative; empty means all dims.
template <typename F>
NDArray reduce_dims(const NDArray& x, Index dims, bool keepdim, F f) {
  for (auto& d : dims) d = wrap(d, x.ndim());
  Shape kept = reduced_shape(x.shape, dims, true);
  std::vector<std::vector<double>> groups(count(kept));
  for (int64_t i = 0; i < x.numel(); ++i) {
    Index idx = unravel(i, x.shape);
    for (int64_t d = 0; d < x.ndim(); ++d) {
      if (dims.empty() || std::find(dims.begin(), dims.end(), d) != dims.end()) idx[d] = 0;
    }
    groups[ravel(idx, kept)].push_back(x[i]);
  }
  NDArray out(reduced_shape(x.shape, dims, keepdim));
  for (size_t g = 0; g < groups.size(); ++g) out[g] = f(groups[g]);
  return out;
}

// Applies f(lane) -> lane of the same length to each 1-D lane of x along `dim` (softmax-like ops).
template <typename F>
NDArray map_lanes(const NDArray& x, int64_t dim, F f) {
  dim = wrap(dim, x.ndim());
  NDArray out(x.shape);
  if (x.ndim() == 0) {
    std::vector<double> lane = f(std::vector<double>{x[0]});
    out[0] = lane[0];
    return out;
  }
  Shape outer = x.shape;
  outer[dim] = 1;
  for (int64_t o = 0; o < count(outer); ++o) {
    Index idx = unravel(o, outer);
    std::vector<double> lane(x.shape[dim]);
    for (int64_t k = 0; k < x.shape[dim]; ++k) {
      idx[dim] = k;
      lane[k] = x.at(idx);
    }
    std::vector<double> result = f(lane);
    for (int64_t k = 0; k < x.shape[dim]; ++k) {
      idx[dim] = k;
      out.at(idx) = result[k];
    }
  }
  return out;
}

inline double sum_of(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return s;
}

// Reference matmul with torch.matmul's rules (1-D promotion, broadcast batch dims). When
// `magnitude` is given it receives sum_k |a_ik * b_kj| per output element: the scale of the
// rounding error a correct kernel may make.
inline NDArray matmul(const NDArray& a_in, const NDArray& b_in, NDArray* magnitude = nullptr) {
  NDArray a = a_in, b = b_in;
  bool a_vec = a.ndim() == 1, b_vec = b.ndim() == 1;
  if (a_vec) a = reshape(a, {1, a.shape[0]});
  if (b_vec) b = reshape(b, {b.shape[0], 1});
  int64_t M = a.shape[a.ndim() - 2], K = a.shape[a.ndim() - 1], N = b.shape[b.ndim() - 1];
  Shape a_batch(a.shape.begin(), a.shape.end() - 2), b_batch(b.shape.begin(), b.shape.end() - 2);
  Shape batch = broadcast(a_batch, b_batch);
  Shape full = batch;
  full.push_back(M);
  full.push_back(N);
  NDArray out(full), mag(full);
  for (int64_t i = 0; i < out.numel(); ++i) {
    Index idx = unravel(i, full);
    Index bidx(idx.begin(), idx.end() - 2);
    int64_t m = idx[idx.size() - 2], n = idx[idx.size() - 1];
    Index ai = bidx, bi = bidx;
    ai.push_back(m);
    ai.push_back(0);
    bi.push_back(0);
    bi.push_back(n);
    double s = 0, g = 0;
    for (int64_t k = 0; k < K; ++k) {
      ai.back() = k;
      bi[bi.size() - 2] = k;
      double p = a.bcast(ai) * b.bcast(bi);
      s += p;
      g += std::fabs(p);
    }
    out[i] = s;
    mag[i] = g;
  }
  Shape shape = batch;
  if (!a_vec) shape.push_back(M);
  if (!b_vec) shape.push_back(N);
  if (magnitude) *magnitude = reshape(mag, shape);
  return reshape(out, shape);
}

// ---------------------------------------------------------------------------------------------
// Random inputs.

// Uniform values on a grid in [lo, hi] whose step is 2^-8 of the largest bound's power of two, so
// every value has at most 8 significant bits and is exact in bfloat16, float16, float32 and
// float64: a reference computed from the NDArray then sees exactly what the op sees.
inline NDArray grid_random(const Shape& shape, std::mt19937& rng, double lo = -4.0,
                           double hi = 4.0) {
  double bound = std::max(std::fabs(lo), std::fabs(hi));
  int exponent = 0;
  std::frexp(bound, &exponent);  // bound < 2^exponent
  double step = std::ldexp(1.0, exponent - 8);
  int64_t klo = static_cast<int64_t>(std::ceil(lo / step));
  int64_t khi = static_cast<int64_t>(std::floor(hi / step));
  std::uniform_int_distribution<int64_t> dist(klo, khi);
  NDArray out(shape);
  for (auto& v : out.data) v = static_cast<double>(dist(rng)) * step;
  return out;
}

// Like grid_random, but every value has magnitude at least `min_abs` (for ops with a kink at 0).
inline NDArray grid_random_away_from_zero(const Shape& shape, std::mt19937& rng, double min_abs,
                                          double max_abs) {
  NDArray out = grid_random(shape, rng, min_abs, max_abs);
  std::bernoulli_distribution sign(0.5);
  for (auto& v : out.data) v = sign(rng) ? v : -v;
  return out;
}

// Continuous uniform values, for float64 gradient checks.
inline NDArray uniform_random(const Shape& shape, std::mt19937& rng, double lo = -1.0,
                              double hi = 1.0) {
  std::uniform_real_distribution<double> dist(lo, hi);
  NDArray out(shape);
  for (auto& v : out.data) v = dist(rng);
  return out;
}

// Distinct values (a shuffled ladder with spacing `gap`), for max/min without ties.
inline NDArray distinct_random(const Shape& shape, std::mt19937& rng, double gap = 0.125) {
  NDArray out(shape);
  for (int64_t i = 0; i < out.numel(); ++i)
    out[i] = (static_cast<double>(i) - out.numel() / 2) * gap;
  std::shuffle(out.data.begin(), out.data.end(), rng);
  return out;
}

// Integer values in [lo, hi].
inline NDArray int_random(const Shape& shape, std::mt19937& rng, int64_t lo, int64_t hi) {
  std::uniform_int_distribution<int64_t> dist(lo, hi);
  NDArray out(shape);
  for (auto& v : out.data) v = static_cast<double>(dist(rng));
  return out;
}

// A random shape of rank in [min_rank, max_rank] with sizes in [1, max_size]; with probability
// `zero_chance` one dim is 0.
inline Shape random_shape(std::mt19937& rng, int min_rank, int max_rank, int64_t max_size,
                          double zero_chance = 0.0) {
  std::uniform_int_distribution<int> rank_dist(min_rank, max_rank);
  std::uniform_int_distribution<int64_t> size_dist(1, max_size);
  Shape shape(rank_dist(rng));
  for (auto& s : shape) s = size_dist(rng);
  if (!shape.empty() && std::bernoulli_distribution(zero_chance)(rng)) {
    shape[std::uniform_int_distribution<size_t>(0, shape.size() - 1)(rng)] = 0;
  }
  return shape;
}

// A random pair of shapes that broadcast together: b is a's shape with some leading dims dropped,
// then some aligned dims are set to 1 on one side or the other.
inline std::pair<Shape, Shape> random_broadcast_pair(std::mt19937& rng) {
  Shape a = random_shape(rng, 0, 4, 4, 0.1);
  size_t drop = std::uniform_int_distribution<size_t>(0, a.size())(rng);
  Shape b(a.begin() + static_cast<int64_t>(drop), a.end());
  std::bernoulli_distribution coin(0.4), side(0.5);
  for (size_t i = 0; i < b.size(); ++i) {
    if (!coin(rng)) continue;
    if (side(rng))
      b[i] = 1;
    else
      a[i + drop] = 1;
  }
  if (side(rng)) std::swap(a, b);
  return {a, b};
}

// ---------------------------------------------------------------------------------------------
// Tensor <-> NDArray.

inline bool is_float(DType dtype) {
  return dtype == DType::Float32 || dtype == DType::Float64 || dtype == DType::Float16 ||
         dtype == DType::BFloat16;
}

// A contiguous tensor of `dtype` on `device` holding a's values. Integer and bool tensors are
// filled from host buffers of their own type; float ones from float64 (the grid inputs are exact
// in every float dtype, so the conversion cannot round).
inline Tensor make_tensor(const NDArray& a, DType dtype = DType::Float64,
                          Device device = st::kCPU) {
  Tensor host;
  const int64_t n = a.numel();
  switch (dtype) {
    case DType::Int32: {
      std::vector<int32_t> buf(n);
      for (int64_t i = 0; i < n; ++i) buf[i] = static_cast<int32_t>(a[i]);
      host = st::from_buffer<int32_t>(buf.data(), a.shape, {DType::Int32});
      break;
    }
    case DType::Int64: {
      std::vector<int64_t> buf(n);
      for (int64_t i = 0; i < n; ++i) buf[i] = static_cast<int64_t>(a[i]);
      host = st::from_buffer<int64_t>(buf.data(), a.shape, {DType::Int64});
      break;
    }
    case DType::Bool: {
      std::unique_ptr<bool[]> buf(new bool[std::max<int64_t>(n, 1)]);
      for (int64_t i = 0; i < n; ++i) buf[i] = a[i] != 0;
      host = st::from_buffer<bool>(buf.get(), a.shape, {DType::Bool});
      break;
    }
    default: host = st::from_buffer<double>(a.data.data(), a.shape, {DType::Float64}); break;
  }
  return host.to(device, dtype);
}

// The values of any tensor (any device, dtype, strides) as float64, row-major.
inline std::vector<double> to_f64(const Tensor& t) {
  return t.to(st::kCPU).to(DType::Float64).contiguous().to_vector<double>();
}

inline NDArray from_tensor(const Tensor& t) { return NDArray(t.shape(), to_f64(t)); }

// How an input tensor is laid out in memory; the values are the same in every case.
enum class Layout {
  Contiguous,
  Transposed,  // the last two dims swapped in memory (1-D falls back to Strided)
  Strided,     // every other element of a wider buffer along the last dim, at a nonzero offset
};

inline const char* layout_name(Layout layout) {
  switch (layout) {
    case Layout::Contiguous: return "contiguous";
    case Layout::Transposed: return "transposed";
    case Layout::Strided: return "strided";
  }
  return "?";
}

// A tensor with a's values in the given layout. Gaps of the Strided layout hold 99 so that a
// kernel which ignores strides reads visibly wrong values.
inline Tensor make_tensor(const NDArray& a, DType dtype, Device device, Layout layout) {
  if (layout == Layout::Transposed && a.ndim() < 2) layout = Layout::Strided;
  if (layout == Layout::Strided && a.ndim() < 1) layout = Layout::Contiguous;
  switch (layout) {
    case Layout::Contiguous: return make_tensor(a, dtype, device);
    case Layout::Transposed:
      return make_tensor(transpose(a, -1, -2), dtype, device).transpose(-1, -2);
    case Layout::Strided: {
      Shape wide = a.shape;
      int64_t n = wide.back();
      wide.back() = 2 * n + 1;
      NDArray base(wide, 99.0);
      for (int64_t i = 0; i < a.numel(); ++i) {
        Index idx = unravel(i, a.shape);
        idx.back() = 2 * idx.back() + 1;
        base.at(idx) = a[i];
      }
      return make_tensor(base, dtype, device).slice(-1, 1, std::nullopt, 2);
    }
  }
  return {};
}

// ---------------------------------------------------------------------------------------------
// Tolerances and comparison.

// |actual - expected| <= atol + rtol * max(|expected|, magnitude). f16 and bf16 are computed in f32
// and rounded once on output: half an ulp is 2^-11 (f16) and 2^-9..2^-8 (bf16) relative.
struct Tolerance {
  double rtol;
  double atol;
};

inline Tolerance tolerance_for(DType dtype) {
  switch (dtype) {
    case DType::Float64: return {1e-10, 1e-12};
    case DType::Float32: return {2e-5, 2e-6};
    case DType::Float16: return {2e-3, 1e-3};
    case DType::BFloat16: return {1e-2, 1e-2};
    default: return {0.0, 0.0};  // integers and bool are exact
  }
}

inline Tolerance scaled(Tolerance t, double factor) { return {t.rtol * factor, t.atol * factor}; }

inline std::string index_str(const Index& idx) { return shape_str(idx); }

// Compares a tensor's values with a float64 reference: same shape, then every element within the
// tolerance (NaNs must match NaNs, infinities must be equal). `magnitude`, when given, has the
// expected shape and holds the scale of each element's admissible rounding error (e.g. sum |x|
// of a sum), used when it exceeds |expected|.
inline ::testing::AssertionResult all_close(const Tensor& actual, const NDArray& expected,
                                            Tolerance tol, const NDArray* magnitude = nullptr) {
  if (!actual.defined()) return ::testing::AssertionFailure() << "result is an undefined tensor";
  if (actual.shape() != expected.shape) {
    return ::testing::AssertionFailure()
           << "shape " << shape_str(actual.shape()) << ", expected " << shape_str(expected.shape);
  }
  std::vector<double> got = to_f64(actual);
  int64_t bad = 0, worst = -1;
  double worst_ratio = 0;
  for (int64_t i = 0; i < expected.numel(); ++i) {
    double e = expected[i], a = got[i];
    bool ok;
    double ratio = 0;
    if (std::isnan(e) || std::isnan(a)) {
      ok = std::isnan(e) && std::isnan(a);
      ratio = ok ? 0 : std::numeric_limits<double>::infinity();
    } else if (std::isinf(e) || std::isinf(a)) {
      ok = e == a;
      ratio = ok ? 0 : std::numeric_limits<double>::infinity();
    } else {
      double scale = std::fabs(e);
      if (magnitude) scale = std::max(scale, std::fabs((*magnitude)[i]));
      double allowed = tol.atol + tol.rtol * scale;
      double err = std::fabs(a - e);
      ok = err <= allowed;
      ratio = allowed > 0 ? err / allowed : (err > 0 ? std::numeric_limits<double>::infinity() : 0);
    }
    if (!ok) {
      ++bad;
      if (worst < 0 || ratio > worst_ratio) {
        worst = i;
        worst_ratio = ratio;
      }
    }
  }
  if (bad == 0) return ::testing::AssertionSuccess();
  Index idx = unravel(worst, expected.shape);
  return ::testing::AssertionFailure()
         << bad << " of " << expected.numel() << " elements differ (dtype " << actual.dtype()
         << ", rtol " << tol.rtol << ", atol " << tol.atol << "); worst at index " << index_str(idx)
         << ": actual " << got[worst] << ", expected " << expected[worst] << " (error "
         << std::fabs(got[worst] - expected[worst]) << ")";
}

// The brief's spelling: a non-fatal failure naming the worst element.
inline void assert_close(const Tensor& actual, const NDArray& expected, double rtol, double atol) {
  EXPECT_TRUE(all_close(actual, expected, {rtol, atol}));
}

#define EXPECT_CLOSE(actual, expected, ...) \
  EXPECT_TRUE(::st_test::all_close((actual), (expected), __VA_ARGS__))
#define ASSERT_CLOSE(actual, expected, ...) \
  ASSERT_TRUE(::st_test::all_close((actual), (expected), __VA_ARGS__))

// Exact equality of values, for integer, bool and data-movement results.
#define EXPECT_EXACT(actual, expected) \
  EXPECT_TRUE(::st_test::all_close((actual), (expected), {0.0, 0.0}))

// ---------------------------------------------------------------------------------------------
// Errors.

// Passes when `fn` throws E whose message starts with "[" (the op in brackets, as error.h
// promises) and contains every fragment.
template <typename E, typename F>
::testing::AssertionResult throws(F&& fn, const std::vector<std::string>& fragments = {}) {
  try {
    fn();
  } catch (const E& e) {
    std::string msg = e.what();
    if (msg.empty() || msg[0] != '[') {
      return ::testing::AssertionFailure()
             << "message \"" << msg << "\" does not start with \"[op]\"";
    }
    for (const auto& f : fragments) {
      if (msg.find(f) == std::string::npos) {
        return ::testing::AssertionFailure() << "message \"" << msg << "\" lacks \"" << f << "\"";
      }
    }
    return ::testing::AssertionSuccess() << "threw: " << msg;
  } catch (const st::Error& e) {
    return ::testing::AssertionFailure()
           << "threw another st::Error kind (" << typeid(e).name() << "): " << e.what();
  } catch (const std::exception& e) {
    return ::testing::AssertionFailure()
           << "threw a non-st exception (" << typeid(e).name() << "): " << e.what();
  }
  return ::testing::AssertionFailure() << "did not throw";
}

// For checks where the header leaves the kind open: any st::Error whose message starts with "[" and
// contains every fragment (typically the op's name).
template <typename F>
::testing::AssertionResult throws_named(F&& fn, const std::vector<std::string>& fragments) {
  try {
    fn();
  } catch (const st::Error& e) {
    std::string msg = e.what();
    if (msg.empty() || msg[0] != '[') {
      return ::testing::AssertionFailure() << "message \"" << msg << "\" does not start with \"[\"";
    }
    for (const auto& f : fragments) {
      if (msg.find(f) == std::string::npos) {
        return ::testing::AssertionFailure() << "message \"" << msg << "\" lacks \"" << f << "\"";
      }
    }
    return ::testing::AssertionSuccess() << "threw: " << msg;
  } catch (const std::exception& e) {
    return ::testing::AssertionFailure() << "threw a non-st exception: " << e.what();
  }
  return ::testing::AssertionFailure() << "did not throw";
}

inline std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// ---------------------------------------------------------------------------------------------
// Parameters: every suite runs on st::available_devices(), so a new backend reuses it unchanged.

inline std::string sanitize(std::string s) {
  for (auto& c : s) {
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  }
  return s;
}

inline std::string device_name(const Device& d) { return sanitize(d.str()); }

using DeviceDType = std::tuple<Device, DType>;

// Base of the suites parameterized over (device, dtype): inputs are made on the device under test
// in the dtype under test.
class DeviceDTypeTest : public ::testing::TestWithParam<DeviceDType> {
 protected:
  Device device() const { return std::get<0>(GetParam()); }
  DType dtype() const { return std::get<1>(GetParam()); }
  Tolerance tol() const { return tolerance_for(dtype()); }
  Tensor input(const NDArray& a, Layout layout = Layout::Contiguous) const {
    return make_tensor(a, dtype(), device(), layout);
  }
};

struct DeviceDTypeName {
  std::string operator()(const ::testing::TestParamInfo<DeviceDType>& info) const {
    return device_name(std::get<0>(info.param)) + "_" +
           std::string(st::dtype_name(std::get<1>(info.param)));
  }
};

struct DeviceName {
  std::string operator()(const ::testing::TestParamInfo<Device>& info) const {
    return device_name(info.param);
  }
};

inline std::vector<DType> float_dtypes() {
  return {DType::Float32, DType::Float64, DType::Float16, DType::BFloat16};
}

}  // namespace st_test
