// The op front-end on arbitrary input: the bytes choose dtypes, shapes, values, a chain of views
// (transpose, slice, select, unsqueeze, expand) and an op with its arguments. Each case must either
// give the result of a float64 reference written here with plain loops over the decoded values, or
// throw st::Error exactly where the reference says the arguments are invalid. Anything else (a
// wrong value or shape, an error for valid arguments, success for invalid ones, a crash, a read out
// of bounds) aborts with a description.

#include <spiraltorch/spiraltorch.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace {

using st::DType;
using st::Shape;
using st::Tensor;

// Reads the fuzzer's bytes; past the end every read is 0, so any input decodes to some case.
class Bytes {
 public:
  Bytes(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  uint8_t next() { return pos_ < size_ ? data_[pos_++] : 0; }
  int64_t in(int64_t lo, int64_t hi) { return lo + next() % (hi - lo + 1); }  // [lo, hi]

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
};

// A float64 strided view over shared values: the reference for a tensor and its views.
struct Ref {
  Shape shape, strides;
  int64_t offset = 0;
  std::vector<double> values;  // the base, contiguous

  int64_t numel() const {
    int64_t n = 1;
    for (int64_t s : shape) n *= s;
    return n;
  }
  int64_t ndim() const { return static_cast<int64_t>(shape.size()); }
  // Element `flat` in row-major order of the view.
  double at(int64_t flat) const {
    int64_t pos = offset;
    for (int64_t d = ndim() - 1; d >= 0; --d) {
      pos += (flat % shape[d]) * strides[d];
      flat /= shape[d];
    }
    return values[pos];
  }
  std::vector<double> dense() const {
    std::vector<double> out(numel());
    for (int64_t i = 0; i < numel(); ++i) out[i] = at(i);
    return out;
  }
};

Shape contiguous_strides(const Shape& shape) {
  Shape strides(shape.size());
  int64_t s = 1;
  for (size_t d = shape.size(); d-- > 0;) {
    strides[d] = s;
    s *= shape[d];
  }
  return strides;
}

Ref dense_ref(Shape shape, std::vector<double> values) {
  Ref r{shape, contiguous_strides(shape), 0, std::move(values)};
  return r;
}

bool is_float(DType d) { return d != DType::Int32 && d != DType::Int64 && d != DType::Bool; }

[[noreturn]] void fail(const std::string& what) {
  std::fprintf(stderr, "fuzz_ops: %s\n", what.c_str());
  std::abort();
}

std::string str(const Shape& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

// A dim as PyTorch wraps it: a 0-dim tensor takes 0 and -1.
std::optional<int64_t> wrap(int64_t dim, int64_t ndim) {
  const int64_t n = std::max<int64_t>(ndim, 1);
  if (dim < -n || dim >= n) return std::nullopt;
  return dim < 0 ? dim + n : dim;
}

const DType kDTypes[] = {DType::Float32, DType::Float64, DType::Float16, DType::BFloat16,
                         DType::Int32,   DType::Int64,   DType::Bool};

// Small values every dtype holds exactly: halves in [-4, 4] for floats, [-8, 8] for ints.
double decode_value(Bytes& in, DType dtype) {
  const int64_t v = in.in(-8, 8);
  if (dtype == DType::Bool) return v > 0 ? 1.0 : 0.0;
  return is_float(dtype) ? 0.5 * static_cast<double>(v) : static_cast<double>(v);
}

struct Operand {
  Tensor tensor;
  Ref ref;
};

Operand decode_tensor(Bytes& in, const Shape& shape, DType dtype) {
  Ref ref = dense_ref(shape, {});
  ref.values.resize(ref.numel());
  for (double& v : ref.values) v = decode_value(in, dtype);
  Tensor t = st::from_buffer(ref.values.data(), shape, {.dtype = DType::Float64}).to(dtype);
  return {t, ref};
}

// What a case may do: succeed (and match), throw, or either (a dtype the library may refuse).
enum class Expect { Ok, Error, Either };

// Applies one view to both the tensor and its reference; where the reference says the arguments
// are invalid, the library must throw (and the operand stays as it was).
void apply_view(Bytes& in, Operand& x) {
  const int64_t n = x.ref.ndim();
  const int kind = in.in(0, 4);
  auto dim_arg = [&](int64_t extra) { return in.in(-n - 1, n + extra); };
  Ref r = x.ref;
  std::function<Tensor()> run;
  bool valid = true;
  std::string what;
  if (kind == 0) {
    const int64_t a = dim_arg(0), b = dim_arg(0);
    what = "transpose(" + std::to_string(a) + ", " + std::to_string(b) + ")";
    auto wa = wrap(a, n), wb = wrap(b, n);
    valid = wa && wb;
    if (valid && n > 0) {
      std::swap(r.shape[*wa], r.shape[*wb]);
      std::swap(r.strides[*wa], r.strides[*wb]);
    }
    run = [&, a, b] { return x.tensor.transpose(a, b); };
  } else if (kind == 1) {
    const int64_t d = dim_arg(0);
    const int64_t start_raw = in.in(-6, 6), stop_raw = in.in(-6, 6), step = in.in(-1, 3);
    const bool has_start = in.next() & 1, has_stop = in.next() & 1;
    std::optional<int64_t> start, stop;
    if (has_start) start = start_raw;
    if (has_stop) stop = stop_raw;
    what = "slice(" + std::to_string(d) + ", " + (start ? std::to_string(*start) : "none") + ", " +
           (stop ? std::to_string(*stop) : "none") + ", " + std::to_string(step) + ")";
    auto wd = wrap(d, n);
    valid = n > 0 && wd && step > 0;
    if (valid) {
      const int64_t size = r.shape[*wd];
      auto clip = [&](int64_t i) { return std::clamp<int64_t>(i < 0 ? i + size : i, 0, size); };
      const int64_t begin = start ? clip(*start) : 0;
      const int64_t end = std::max(begin, stop ? clip(*stop) : size);
      r.offset += begin * r.strides[*wd];
      r.shape[*wd] = (end - begin + step - 1) / step;
      r.strides[*wd] *= step;
    }
    run = [&, d, start, stop, step] { return x.tensor.slice(d, start, stop, step); };
  } else if (kind == 2) {
    const int64_t d = dim_arg(0), index = in.in(-5, 5);
    what = "select(" + std::to_string(d) + ", " + std::to_string(index) + ")";
    auto wd = wrap(d, n);
    valid = n > 0 && wd && index >= -r.shape[*wd] && index < r.shape[*wd];
    if (valid) {
      const int64_t i = index < 0 ? index + r.shape[*wd] : index;
      r.offset += i * r.strides[*wd];
      r.shape.erase(r.shape.begin() + *wd);
      r.strides.erase(r.strides.begin() + *wd);
    }
    run = [&, d, index] { return x.tensor.select(d, index); };
  } else if (kind == 3) {
    // unsqueeze takes dims of the result: [-n - 1, n].
    const int64_t d = dim_arg(1);
    what = "unsqueeze(" + std::to_string(d) + ")";
    valid = d >= -n - 1 && d <= n;
    if (valid) {
      const int64_t at = d < 0 ? d + n + 1 : d;
      r.shape.insert(r.shape.begin() + at, 1);
      r.strides.insert(r.strides.begin() + at, 0);
    }
    run = [&, d] { return x.tensor.unsqueeze(d); };
  } else {
    // expand: maybe a new leading dim, then each dim kept, -1, or a new size (valid from size 1).
    Shape target;
    const int64_t lead = in.in(0, 1);
    for (int64_t i = 0; i < lead; ++i) target.push_back(in.in(0, 3));
    for (int64_t d = 0; d < n; ++d) {
      const int choice = in.in(0, 3);
      target.push_back(choice == 0 ? -1 : choice == 1 ? r.shape[d] : in.in(0, 3));
    }
    what = "expand(" + str(target) + ")";
    Shape shape(target.size()), strides(target.size(), 0);
    for (size_t i = 0; i < target.size() && valid; ++i) {
      const int64_t src = static_cast<int64_t>(i) - lead;
      if (src < 0) {
        valid = target[i] >= 0;
        shape[i] = target[i];
      } else if (target[i] == -1 || target[i] == r.shape[src]) {
        shape[i] = r.shape[src];
        strides[i] = r.strides[src];
      } else {
        valid = r.shape[src] == 1 && target[i] >= 0;
        shape[i] = target[i];
      }
    }
    if (valid) {
      r.shape = shape;
      r.strides = strides;
    }
    run = [&, target] { return x.tensor.expand(target); };
  }
  const Shape before = x.ref.shape;
  try {
    Tensor out = run();
    if (!valid) fail(what + " of " + str(before) + " succeeded; the reference says it is invalid");
    x.tensor = out;
    x.ref = r;
  } catch (const st::Error& e) {
    if (valid) fail(what + " of " + str(before) + " threw for valid arguments: " + e.what());
  }
}

// The result's values in float64 (host, contiguous).
std::vector<double> values_of(const Tensor& t) {
  Tensor host = t.to(st::kCPU, DType::Float64).contiguous();
  const double* p = static_cast<const double*>(host.data_ptr());
  return std::vector<double>(p, p + host.numel());
}

// What the reference value becomes in the result's dtype, then compared with a tolerance for it.
bool close(double expected, double actual, DType dtype) {
  if (dtype == DType::Bool) expected = expected != 0.0 ? 1.0 : 0.0;
  if (std::isnan(expected) || std::isnan(actual)) return std::isnan(expected) && std::isnan(actual);
  if (std::isinf(expected) || std::isinf(actual)) return expected == actual;
  double tol = 0.0;
  switch (dtype) {
    case DType::Float64: tol = 1e-12; break;
    case DType::Float32: tol = 1e-5; break;
    case DType::Float16: tol = 4e-3; break;
    case DType::BFloat16: tol = 2e-2; break;
    default: break;  // integers and bools exactly
  }
  return std::abs(expected - actual) <= tol * (1.0 + std::abs(expected));
}

struct Result {
  Expect expect = Expect::Ok;
  Shape shape;
  std::vector<double> values;
};

std::optional<Shape> broadcast(const Shape& a, const Shape& b) {
  const size_t n = std::max(a.size(), b.size());
  Shape out(n);
  for (size_t i = 0; i < n; ++i) {
    const int64_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
    const int64_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
    if (da != db && da != 1 && db != 1) return std::nullopt;
    out[i] = da == 1 ? db : da;
  }
  return out;
}

// Element of `r` at the multi-index `index` of a broadcast shape.
double broadcast_at(const Ref& r, const Shape& index) {
  int64_t pos = r.offset;
  const size_t lead = index.size() - r.shape.size();
  for (size_t d = 0; d < r.shape.size(); ++d)
    if (r.shape[d] != 1) pos += index[lead + d] * r.strides[d];
  return r.values[pos];
}

Shape unravel(int64_t flat, const Shape& shape) {
  Shape index(shape.size());
  for (size_t d = shape.size(); d-- > 0;) {
    index[d] = flat % shape[d];
    flat /= shape[d];
  }
  return index;
}

int64_t numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t v : s) n *= v;
  return n;
}

using UnaryFn = double (*)(double);
struct UnaryCase {
  const char* name;
  Tensor (*op)(const Tensor&);
  UnaryFn ref;
};
const UnaryCase kUnary[] = {
    {"neg", st::neg, [](double v) { return -v; }},
    {"abs", st::abs, [](double v) { return std::abs(v); }},
    {"exp", st::exp, [](double v) { return std::exp(v); }},
    {"log", st::log, [](double v) { return std::log(v); }},
    {"sqrt", st::sqrt, [](double v) { return std::sqrt(v); }},
    {"tanh", st::tanh, [](double v) { return std::tanh(v); }},
    {"sigmoid", st::sigmoid, [](double v) { return 1.0 / (1.0 + std::exp(-v)); }},
    {"relu", st::relu, [](double v) { return v > 0 ? v : 0.0; }},
};

using BinaryFn = double (*)(double, double);
struct BinaryCase {
  const char* name;
  Tensor (*op)(const Tensor&, const Tensor&);
  BinaryFn ref;
};
const BinaryCase kBinary[] = {
    {"add", [](const Tensor& a, const Tensor& b) { return st::add(a, b); },
     [](double a, double b) { return a + b; }},
    {"sub", [](const Tensor& a, const Tensor& b) { return st::sub(a, b); },
     [](double a, double b) { return a - b; }},
    {"mul", st::mul, [](double a, double b) { return a * b; }},
    {"div", st::div, [](double a, double b) { return a / b; }},
    {"maximum", st::maximum, [](double a, double b) { return std::max(a, b); }},
    {"minimum", st::minimum, [](double a, double b) { return std::min(a, b); }},
    {"eq", [](const Tensor& a, const Tensor& b) { return st::eq(a, b); },
     [](double a, double b) { return a == b ? 1.0 : 0.0; }},
    {"lt", [](const Tensor& a, const Tensor& b) { return st::lt(a, b); },
     [](double a, double b) { return a < b ? 1.0 : 0.0; }},
};

// Shape of a second operand: the first's with some dims set to 1 or dropped (broadcastable), or
// unrelated (usually not).
Shape related_shape(Bytes& in, const Shape& first) {
  Shape out;
  const int mode = in.in(0, 3);
  if (mode == 3) {
    const int64_t rank = in.in(0, 3);
    for (int64_t d = 0; d < rank; ++d) out.push_back(in.in(0, 4));
    return out;
  }
  const size_t drop = mode == 2 ? std::min<size_t>(first.size(), in.in(0, 2)) : 0;
  for (size_t d = drop; d < first.size(); ++d)
    out.push_back(mode >= 1 && (in.next() & 1) ? 1 : first[d]);
  return out;
}

Result reduce_ref(const Ref& x, const Shape& dims, bool keepdim, int kind) {
  // kind: 0 sum, 1 mean, 2 amax
  Result r;
  const int64_t n = x.ndim();
  std::vector<bool> reduced(std::max<int64_t>(n, 1), dims.empty());
  for (int64_t d : dims) {
    auto w = wrap(d, n);
    if (!w || reduced[*w]) return {Expect::Error, {}, {}};
    reduced[*w] = true;
  }
  for (int64_t d = 0; d < n; ++d) {
    if (!reduced[d])
      r.shape.push_back(x.shape[d]);
    else if (keepdim)
      r.shape.push_back(1);
  }
  std::vector<double> acc(numel(r.shape), kind == 2 ? -INFINITY : 0.0);
  std::vector<int64_t> count(acc.size(), 0);
  for (int64_t i = 0; i < x.numel(); ++i) {
    const Shape idx = unravel(i, x.shape);
    int64_t out = 0;
    for (int64_t d = 0; d < n; ++d) {
      if (!reduced[d]) out = out * x.shape[d] + idx[d];
    }
    const double v = x.at(i);
    acc[out] = kind == 2 ? std::max(acc[out], v) : acc[out] + v;
    ++count[out];
  }
  if (kind == 1)
    for (size_t i = 0; i < acc.size(); ++i) acc[i] = acc[i] / static_cast<double>(count[i]);
  // amax over a dim of size 0 has no answer (PyTorch refuses it even when the result is empty).
  if (kind == 2 && x.numel() == 0) r.expect = Expect::Either;
  if (kind == 2 && std::find(count.begin(), count.end(), 0) != count.end())
    r.expect = Expect::Error;
  r.values = acc;
  return r;
}

Result softmax_ref(const Ref& x, int64_t dim, bool log) {
  auto w = wrap(dim, x.ndim());
  if (!w) return {Expect::Error, {}, {}};
  Result r{Expect::Ok, x.shape, x.dense()};
  if (x.ndim() == 0) {
    r.values[0] = log ? 0.0 : 1.0;
    return r;
  }
  const int64_t size = x.shape[*w];
  int64_t inner = 1;
  for (int64_t d = *w + 1; d < x.ndim(); ++d) inner *= x.shape[d];
  int64_t outer = 1;
  for (int64_t d = 0; d < *w; ++d) outer *= x.shape[d];
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < inner; ++i) {
      auto at = [&](int64_t k) -> double& { return r.values[(o * size + k) * inner + i]; };
      double hi = -INFINITY, sum = 0;
      for (int64_t k = 0; k < size; ++k) hi = std::max(hi, at(k));
      for (int64_t k = 0; k < size; ++k) sum += std::exp(at(k) - hi);
      for (int64_t k = 0; k < size; ++k)
        at(k) = log ? at(k) - hi - std::log(sum) : std::exp(at(k) - hi) / sum;
    }
  return r;
}

Result matmul_ref(const Ref& a, const Ref& b) {
  // Both at least 2-D here: batch dims broadcast, then [m, k] @ [k, n].
  const int64_t m = a.shape[a.ndim() - 2], k = a.shape[a.ndim() - 1];
  const int64_t k2 = b.shape[b.ndim() - 2], n = b.shape[b.ndim() - 1];
  const Shape ab(a.shape.begin(), a.shape.end() - 2), bb(b.shape.begin(), b.shape.end() - 2);
  auto batch = broadcast(ab, bb);
  if (k != k2 || !batch) return {Expect::Error, {}, {}};
  Result r;
  r.shape = *batch;
  r.shape.push_back(m);
  r.shape.push_back(n);
  r.values.assign(numel(r.shape), 0.0);
  for (int64_t i = 0; i < numel(r.shape); ++i) {
    Shape idx = unravel(i, r.shape);
    const int64_t row = idx[idx.size() - 2], col = idx[idx.size() - 1];
    double sum = 0;
    for (int64_t j = 0; j < k; ++j) {
      Shape ia(idx.begin(), idx.end() - 2), ib = ia;
      ia.push_back(row);
      ia.push_back(j);
      ib.push_back(j);
      ib.push_back(col);
      sum += broadcast_at(a, ia) * broadcast_at(b, ib);
    }
    r.values[i] = sum;
  }
  return r;
}

// Index of the first largest value along `dim`, as int64 values.
Result argmax_ref(const Ref& x, int64_t dim, bool keepdim) {
  auto w = wrap(dim, x.ndim());
  if (!w) return {Expect::Error, {}, {}};
  if (x.ndim() == 0) return {Expect::Ok, {}, {0.0}};
  const int64_t size = x.shape[*w];
  if (size == 0) return {Expect::Error, {}, {}};
  Result r;
  for (int64_t d = 0; d < x.ndim(); ++d) {
    if (d != *w)
      r.shape.push_back(x.shape[d]);
    else if (keepdim)
      r.shape.push_back(1);
  }
  int64_t inner = 1, outer = 1;
  for (int64_t d = *w + 1; d < x.ndim(); ++d) inner *= x.shape[d];
  for (int64_t d = 0; d < *w; ++d) outer *= x.shape[d];
  const std::vector<double> v = x.dense();
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < inner; ++i) {
      int64_t best = 0;
      for (int64_t k = 1; k < size; ++k)
        if (v[(o * size + k) * inner + i] > v[(o * size + best) * inner + i]) best = k;
      r.values.push_back(static_cast<double>(best));
    }
  return r;
}

Result cat_ref(const Ref& a, const Ref& b, int64_t dim) {
  auto w = wrap(dim, a.ndim());
  if (a.ndim() == 0 || b.ndim() != a.ndim() || !w) return {Expect::Error, {}, {}};
  for (int64_t d = 0; d < a.ndim(); ++d)
    if (d != *w && a.shape[d] != b.shape[d]) return {Expect::Error, {}, {}};
  Result r;
  r.shape = a.shape;
  r.shape[*w] += b.shape[*w];
  r.values.resize(numel(r.shape));
  for (int64_t i = 0; i < numel(r.shape); ++i) {
    Shape idx = unravel(i, r.shape);
    const Ref* src = &a;
    if (idx[*w] >= a.shape[*w]) {
      idx[*w] -= a.shape[*w];
      src = &b;
    }
    int64_t pos = src->offset;
    for (int64_t d = 0; d < src->ndim(); ++d) pos += idx[d] * src->strides[d];
    r.values[i] = src->values[pos];
  }
  return r;
}

void check(const std::string& what, const std::function<Tensor()>& run, const Result& expected) {
  Tensor out;
  try {
    out = run();
  } catch (const st::Error& e) {
    if (expected.expect == Expect::Ok) fail(what + " threw for valid arguments: " + e.what());
    return;
  }
  if (expected.expect == Expect::Error) fail(what + " succeeded; the reference says it is invalid");
  if (out.shape() != expected.shape)
    fail(what + " gave shape " + str(out.shape()) + ", expected " + str(expected.shape));
  const std::vector<double> got = values_of(out);
  for (size_t i = 0; i < got.size(); ++i)
    if (!close(expected.values[i], got[i], out.dtype()))
      fail(what + " element " + std::to_string(i) + " is " + std::to_string(got[i]) +
           ", expected " + std::to_string(expected.values[i]));
}

void run_case(Bytes& in) {
  const DType dtype_a = kDTypes[in.in(0, 6)];
  const int op = in.in(0, 6);
  Shape shape;
  const int64_t rank = op == 5 ? in.in(2, 3) : in.in(0, 3);
  for (int64_t d = 0; d < rank; ++d) shape.push_back(in.in(0, 4));
  Operand a = decode_tensor(in, shape, dtype_a);
  const int64_t views = in.in(0, 2);
  for (int64_t v = 0; v < views; ++v) apply_view(in, a);
  if (op == 5 && a.ref.ndim() < 2) return;  // matmul's reference takes 2-D and up

  const std::string on = " of " + str(a.ref.shape) + " " + std::string(st::dtype_name(dtype_a));
  if (op == 0) {
    const UnaryCase& u = kUnary[in.in(0, 7)];
    Result r{Expect::Ok, a.ref.shape, a.ref.dense()};
    for (double& v : r.values) v = u.ref(v);
    // PyTorch refuses neg, abs and relu of bools; the library may too.
    if (dtype_a == DType::Bool) r.expect = Expect::Either;
    check(
        std::string(u.name) + on, [&] { return u.op(a.tensor); }, r);
    return;
  }
  if (op == 1 || op == 6) {
    const DType dtype_b = kDTypes[in.in(0, 6)];
    Operand b = decode_tensor(in, related_shape(in, a.ref.shape), dtype_b);
    const std::string both =
        on + " and " + str(b.ref.shape) + " " + std::string(st::dtype_name(dtype_b));
    if (op == 6) {
      const int64_t dim = in.in(-a.ref.ndim() - 1, a.ref.ndim());
      Result r = cat_ref(a.ref, b.ref, dim);
      if (r.expect == Expect::Ok && dtype_a != dtype_b) r.expect = Expect::Either;  // promotion
      check(
          "cat(dim " + std::to_string(dim) + ")" + both,
          [&] {
            return st::cat({a.tensor, b.tensor}, dim);
          },
          r);
      return;
    }
    const BinaryCase& f = kBinary[in.in(0, 7)];
    Result r;
    auto shape_out = broadcast(a.ref.shape, b.ref.shape);
    if (!shape_out) {
      r.expect = Expect::Error;
    } else {
      r.shape = *shape_out;
      r.values.resize(numel(r.shape));
      for (int64_t i = 0; i < numel(r.shape); ++i) {
        const Shape idx = unravel(i, r.shape);
        r.values[i] = f.ref(broadcast_at(a.ref, idx), broadcast_at(b.ref, idx));
      }
      // Bool arithmetic other than comparisons is refused by PyTorch; either answer is allowed.
      const std::string name = f.name;
      if ((dtype_a == DType::Bool || dtype_b == DType::Bool) && (name == "sub" || name == "div"))
        r.expect = Expect::Either;
    }
    check(
        std::string(f.name) + both, [&] { return f.op(a.tensor, b.tensor); }, r);
    return;
  }
  if (op == 2) {
    const int kind = in.in(0, 3);
    if (kind == 3) {
      const int64_t dim = in.in(-a.ref.ndim() - 1, a.ref.ndim());
      const bool keepdim = in.next() & 1;
      Result r = argmax_ref(a.ref, dim, keepdim);
      if (r.expect == Expect::Ok && dtype_a == DType::Bool) r.expect = Expect::Either;
      check(
          "argmax(dim " + std::to_string(dim) + ", keepdim " + (keepdim ? "1" : "0") + ")" + on,
          [&] { return st::argmax(a.tensor, dim, keepdim); }, r);
      return;
    }

    Shape dims;
    const int64_t count = in.in(0, 2);
    for (int64_t i = 0; i < count; ++i) dims.push_back(in.in(-a.ref.ndim() - 1, a.ref.ndim()));
    const bool keepdim = in.next() & 1;
    Result r = reduce_ref(a.ref, dims, keepdim, kind);
    // mean of integers and amax of bools are dtype questions the library may answer with an error.
    if (r.expect == Expect::Ok && kind == 1 && !is_float(dtype_a)) r.expect = Expect::Either;
    if (r.expect == Expect::Ok && kind == 2 && dtype_a == DType::Bool) r.expect = Expect::Either;
    const char* names[] = {"sum", "mean", "amax"};
    check(
        std::string(names[kind]) + "(dims " + str(dims) + ", keepdim " + (keepdim ? "1" : "0") +
            ")" + on,
        [&] {
          if (kind == 0) return st::sum(a.tensor, dims, keepdim);
          if (kind == 1) return st::mean(a.tensor, dims, keepdim);
          return st::amax(a.tensor, dims, keepdim);
        },
        r);
    return;
  }
  if (op == 3 || op == 4) {
    const int64_t dim = in.in(-a.ref.ndim() - 1, a.ref.ndim());
    Result r = softmax_ref(a.ref, dim, op == 4);
    if (r.expect == Expect::Ok && !is_float(dtype_a)) r.expect = Expect::Either;
    check(
        std::string(op == 4 ? "log_softmax" : "softmax") + "(dim " + std::to_string(dim) + ")" + on,
        [&] { return op == 4 ? st::log_softmax(a.tensor, dim) : st::softmax(a.tensor, dim); }, r);
    return;
  }
  // matmul: b of rank 2 or 3, shaped to fit more often than not.
  const DType dtype_b = in.next() & 1 ? dtype_a : kDTypes[in.in(0, 6)];
  Shape bshape;
  if (in.next() & 1) bshape.push_back(in.in(1, 3));
  bshape.push_back(in.next() & 1 ? a.ref.shape.back() : in.in(0, 4));
  bshape.push_back(in.in(0, 4));
  Operand b = decode_tensor(in, bshape, dtype_b);
  Result r = matmul_ref(a.ref, b.ref);
  if (r.expect == Expect::Ok &&
      (dtype_a != dtype_b || dtype_a == DType::Bool || !is_float(dtype_a)))
    r.expect = Expect::Either;
  check(
      "matmul" + on + " and " + str(bshape) + " " + std::string(st::dtype_name(dtype_b)),
      [&] { return st::matmul(a.tensor, b.tensor); }, r);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Bytes in(data, size);
  run_case(in);
  return 0;
}
