// Elementwise ops: arithmetic, math, comparisons, where, clamp; in-place variants and operators.

#include <cmath>
#include <limits>
#include <tuple>

#include "autograd/derivatives.h"
#include "ops/op_utils.h"

namespace st {

using backend::BinaryOp;
using backend::UnaryOp;
using ops::backend_of;

Shape broadcast_shapes(const Shape& a, const Shape& b, std::string_view op) {
  const size_t n = std::max(a.size(), b.size());
  Shape out(n);
  for (size_t i = 0; i < n; ++i) {
    const int64_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
    const int64_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
    ST_CHECK(da == db || da == 1 || db == 1, ShapeError, "[", op, "] shapes ", a, " and ", b,
             " cannot be broadcast: dim ", i, " has sizes ", da, " and ", db);
    out[i] = da == 1 ? db : da;
  }
  return out;
}

namespace {

bool is_comparison(BinaryOp op) {
  return op == BinaryOp::Eq || op == BinaryOp::Ne || op == BinaryOp::Lt || op == BinaryOp::Le ||
         op == BinaryOp::Gt || op == BinaryOp::Ge;
}

// out = op(a, b) computed in `dtype` over the broadcast shape.
Tensor binary(BinaryOp op, const char* name, const Tensor& a, const Tensor& b, DType dtype) {
  ops::check_defined(name, {&a, &b});
  ops::check_same_device(name, {&a, &b});
  const Shape shape = broadcast_shapes(a.shape(), b.shape(), name);
  // Operands are cast to the compute dtype, unless the backend reads a narrow one beside f32 as it
  // is (autocast's residual adds: an f32 stream plus a bf16 GEMM output).
  const bool mixed = a.dtype() != b.dtype() && dtype == DType::Float32 &&
                     backend_of(a).has_mixed_binary(op, a.dtype(), b.dtype());
  const Tensor ac = mixed ? a : a.to(dtype), bc = mixed ? b : b.to(dtype);
  Tensor out = ops::new_tensor(shape, is_comparison(op) ? DType::Bool : dtype, a.device());
  if (out.numel() > 0)
    backend_of(out).binary(op, out, ops::broadcast_view(ac, shape), ops::broadcast_view(bc, shape));
  if (!is_comparison(op)) autograd::record_binary(op, ac, bc, out);
  return out;
}

// The dtype op computes in, from the promoted operand dtype: division is always floating point.
DType compute_dtype(BinaryOp op, const char* name, DType promoted) {
  ST_CHECK(promoted != DType::Bool || op == BinaryOp::Maximum || op == BinaryOp::Minimum ||
               is_comparison(op) || op == BinaryOp::Mul || op == BinaryOp::Add,
           DTypeError, "[", name, "] is not defined for bool tensors");
  return op == BinaryOp::Div ? ops::float_type(promoted) : promoted;
}

Tensor binary(BinaryOp op, const char* name, const Tensor& a, const Tensor& b) {
  ops::check_defined(name, {&a, &b});
  return binary(op, name, a, b, compute_dtype(op, name, ops::result_type(a, b)));
}

// The scalar as a 0-dim tensor of the dtype the op computes in.
Tensor wrap(const Tensor& like, const Scalar& s, DType dtype) {
  return scalar_tensor(s, {dtype, like.device()});
}

// The dtype a unary op computes in: math functions make integers float32; the rest keep them.
DType unary_dtype(UnaryOp op, const char* name, DType input) {
  const bool keeps_integers = op == UnaryOp::Neg || op == UnaryOp::Abs || op == UnaryOp::Relu ||
                              op == UnaryOp::Clamp || op == UnaryOp::Affine ||
                              op == UnaryOp::PowScalar;
  const DType dtype = keeps_integers ? input : ops::float_type(input);
  ST_CHECK(dtype != DType::Bool || op == UnaryOp::Clamp, DTypeError, "[", name,
           "] is not defined for bool tensors");
  return dtype;
}

Tensor unary(UnaryOp op, const char* name, const Tensor& x, double alpha = 0, double beta = 0) {
  ops::check_defined(name, {&x});
  const Tensor xc = x.to(unary_dtype(op, name, x.dtype()));
  Tensor out = ops::new_like(xc);
  if (out.numel() > 0) backend_of(out).unary(op, out, xc, alpha, beta);
  autograd::record_unary(op, xc, out, alpha, beta);
  return out;
}

Tensor binary(BinaryOp op, const char* name, const Tensor& a, const Scalar& b) {
  ops::check_defined(name, {&a});
  const DType dtype = compute_dtype(op, name, ops::result_type(a, b));
  // Float tensor with a number: one fused x * alpha + beta kernel, no 0-dim tensor to allocate.
  // -0.0 is the additive identity that keeps the sign of a zero product.
  if (is_floating(dtype) && dtype == a.dtype()) {
    const double v = b.to_double();
    if (op == BinaryOp::Mul) return unary(UnaryOp::Affine, name, a, v, -0.0);
    if (op == BinaryOp::Add) return unary(UnaryOp::Affine, name, a, 1.0, v);
    if (op == BinaryOp::Sub) return unary(UnaryOp::Affine, name, a, 1.0, -v);
  }
  return binary(op, name, a, wrap(a, b, dtype), dtype);
}

// An in-place op that records a graph gives self a new history. Views share self's memory but
// would keep the old history and give wrong gradients, so until views are rebased (as PyTorch
// does), changing a view, or a tensor with live views, while recording is refused.
void check_graph_in_place(const char* op, const Tensor& self) {
  ST_CHECK(!self.is_leaf() || !self.requires_grad(), Error, "[", op,
           "] a leaf tensor that requires grad cannot be changed in place; wrap the update in "
           "NoGradGuard or use the out-of-place op");
  ST_CHECK(!self.impl()->is_view, NotImplementedError, "[", op,
           "] changing a view in place while recording gradients is not supported; clone() it "
           "first or use the out-of-place op");
  ST_CHECK(!self.storage()->has_live_views(), NotImplementedError, "[", op,
           "] the tensor has live views, which would not see this in-place change in the "
           "gradient graph; use the out-of-place op, or drop the views first");
}

// Refuses an in-place result of `dtype` that `self` cannot hold (a float result in an integer
// tensor), before any work is done.
void check_in_place_dtype(const char* op, const Tensor& self, DType dtype) {
  ST_CHECK(promote_types(dtype, self.dtype()) == self.dtype() || is_floating(self.dtype()),
           DTypeError, "[", op, "] the result of dtype ", dtype,
           " cannot be written in place into a ", self.dtype(), " tensor");
}

// While a graph is recorded, self's history becomes that of `source`: the node that computed it,
// or none when source is a constant (self is then a constant too).
void adopt_history(Tensor& self, const Tensor& source) {
  AutogradMeta& meta = self.autograd_meta();
  meta.grad_fn = source.defined() ? source.grad_fn() : nullptr;
  meta.output_nr = meta.grad_fn ? source.autograd_meta().output_nr : 0;
}

// Writes `value` (self's shape, any dtype and strides) into `self` in place; while a graph is
// recorded, self takes over value's history, so backward sees the new contents.
Tensor& assign_in_place(const char* op, Tensor& self, const Tensor& value) {
  ST_CHECK(value.shape() == self.shape(), ShapeError, "[", op, "] the result has shape ",
           value.shape(), " but the tensor written in place has shape ", self.shape(),
           "; in-place ops cannot broadcast self");
  const bool records = is_grad_enabled() && (self.requires_grad() || value.requires_grad());
  Tensor source = value;
  if (records) {
    check_graph_in_place(op, self);
    source = source.to(self.dtype());
    // A leaf has no node to continue from; a copy gives it one that passes gradients to it.
    if (source.is_leaf() && source.requires_grad()) source = source.clone();
  }
  {
    NoGradGuard no_grad;
    ops::copy_into(self, source.detach());
  }
  if (records) adopt_history(self, source.requires_grad() ? source : Tensor());
  return self;
}

// The value an in-place op computes: from self's current data, detached from its storage so that
// the in-place write does not trip the version check of the node that reads it.
Tensor in_place_source(const Tensor& self) {
  return self.requires_grad() && is_grad_enabled() ? self.clone() : self;
}

// self = op(self, other) written straight into self by one kernel, when no graph is recorded and
// self can hold the result as it is; otherwise computed out of place and assigned.
Tensor& binary_in_place(BinaryOp op, const char* name, Tensor& self, const Tensor& other) {
  ops::check_defined(name, {&self, &other});
  const bool records = is_grad_enabled() && (self.requires_grad() || other.requires_grad());
  const DType dtype = compute_dtype(op, name, ops::result_type(self, other));
  // An `other` that overlaps self in another layout would be read after being overwritten.
  const bool aliases = other.storage() == self.storage() &&
                       (other.strides() != self.strides() || other.offset() != self.offset());
  if (!records && !aliases && dtype == self.dtype() && self.is_contiguous() &&
      other.device() == self.device() &&
      broadcast_shapes(self.shape(), other.shape(), name) == self.shape()) {
    if (self.numel() > 0)
      backend_of(self).binary(op, self, self, ops::broadcast_view(other.to(dtype), self.shape()));
    self.storage()->bump_version();
    return self;
  }
  check_in_place_dtype(name, self, dtype);
  return assign_in_place(name, self, binary(op, name, in_place_source(self), other));
}

// self = op(self), straight into self when no graph is recorded and the result keeps self's dtype.
Tensor& unary_in_place(UnaryOp op, const char* name, Tensor& self, DType dtype, double alpha = 0,
                       double beta = 0) {
  ops::check_defined(name, {&self});
  const bool records = is_grad_enabled() && self.requires_grad();
  if (!records && dtype == self.dtype() && self.is_contiguous()) {
    if (self.numel() > 0) backend_of(self).unary(op, self, self, alpha, beta);
    self.storage()->bump_version();
    return self;
  }
  check_in_place_dtype(name, self, dtype);
  return assign_in_place(name, self, unary(op, name, in_place_source(self).to(dtype), alpha, beta));
}

Tensor& unary_in_place(UnaryOp op, const char* name, Tensor& self) {
  ops::check_defined(name, {&self});
  return unary_in_place(op, name, self, unary_dtype(op, name, self.dtype()));
}

Tensor& binary_in_place(BinaryOp op, const char* name, Tensor& self, const Scalar& other) {
  ops::check_defined(name, {&self});
  return binary_in_place(op, name, self,
                         wrap(self, other, compute_dtype(op, name, ops::result_type(self, other))));
}

// a op alpha * b. The product is kept in f32 for 16-bit floats so that the sum is rounded once.
Tensor add_scaled(BinaryOp op, const char* name, const Tensor& a, const Tensor& b,
                  const Scalar& alpha) {
  if (alpha.kind() != Scalar::Kind::Float && alpha.to_int() == 1) return binary(op, name, a, b);
  ops::check_defined(name, {&a, &b});
  const DType dtype = ops::result_type(a, b);
  if (dtype != DType::Float16 && dtype != DType::BFloat16)
    return binary(op, name, a, mul(b, alpha));
  return binary(op, name, a.to(DType::Float32), mul(b.to(DType::Float32), alpha)).to(dtype);
}

}  // namespace

Tensor add(const Tensor& a, const Tensor& b, const Scalar& alpha) {
  return add_scaled(BinaryOp::Add, "add", a, b, alpha);
}
Tensor sub(const Tensor& a, const Tensor& b, const Scalar& alpha) {
  return add_scaled(BinaryOp::Sub, "sub", a, b, alpha);
}
Tensor mul(const Tensor& a, const Tensor& b) { return binary(BinaryOp::Mul, "mul", a, b); }
Tensor div(const Tensor& a, const Tensor& b) { return binary(BinaryOp::Div, "div", a, b); }
Tensor pow(const Tensor& a, const Tensor& b) { return binary(BinaryOp::Pow, "pow", a, b); }
Tensor maximum(const Tensor& a, const Tensor& b) {
  return binary(BinaryOp::Maximum, "maximum", a, b);
}
Tensor minimum(const Tensor& a, const Tensor& b) {
  return binary(BinaryOp::Minimum, "minimum", a, b);
}

Tensor add(const Tensor& a, const Scalar& b) { return binary(BinaryOp::Add, "add", a, b); }
Tensor sub(const Tensor& a, const Scalar& b) { return binary(BinaryOp::Sub, "sub", a, b); }
Tensor mul(const Tensor& a, const Scalar& b) { return binary(BinaryOp::Mul, "mul", a, b); }
Tensor div(const Tensor& a, const Scalar& b) { return binary(BinaryOp::Div, "div", a, b); }

Tensor pow(const Tensor& a, const Scalar& exponent) {
  ops::check_defined("pow", {&a});
  const DType dtype = ops::result_type(a, exponent);
  ST_CHECK(dtype != DType::Bool, DTypeError, "[pow] is not defined for bool tensors");
  return unary(UnaryOp::PowScalar, "pow", a.to(dtype), exponent.to_double());
}

Tensor neg(const Tensor& x) { return unary(UnaryOp::Neg, "neg", x); }
Tensor exp(const Tensor& x) { return unary(UnaryOp::Exp, "exp", x); }
Tensor log(const Tensor& x) { return unary(UnaryOp::Log, "log", x); }
Tensor sqrt(const Tensor& x) { return unary(UnaryOp::Sqrt, "sqrt", x); }
Tensor rsqrt(const Tensor& x) { return unary(UnaryOp::Rsqrt, "rsqrt", x); }
Tensor abs(const Tensor& x) { return unary(UnaryOp::Abs, "abs", x); }
Tensor tanh(const Tensor& x) { return unary(UnaryOp::Tanh, "tanh", x); }
Tensor sigmoid(const Tensor& x) { return unary(UnaryOp::Sigmoid, "sigmoid", x); }
Tensor relu(const Tensor& x) { return unary(UnaryOp::Relu, "relu", x); }
Tensor gelu(const Tensor& x, GeluApproximate approximate) {
  return unary(approximate == GeluApproximate::Tanh ? UnaryOp::GeluTanh : UnaryOp::GeluErf, "gelu",
               x);
}

namespace {
// clamp's compute dtype (the bounds promote as scalars do) and its bounds, +-inf where absent.
std::tuple<DType, double, double> clamp_arguments(const char* name, const Tensor& x,
                                                  std::optional<Scalar> min,
                                                  std::optional<Scalar> max) {
  ops::check_defined(name, {&x});
  ST_CHECK(min || max, ValueError, "[", name, "] at least one of min and max must be given");
  DType dtype = x.dtype();
  if (min) dtype = promote_types(dtype, ops::result_type(x, *min));
  if (max) dtype = promote_types(dtype, ops::result_type(x, *max));
  constexpr double inf = std::numeric_limits<double>::infinity();
  return {dtype, min ? min->to_double() : -inf, max ? max->to_double() : inf};
}
}  // namespace

Tensor clamp(const Tensor& x, std::optional<Scalar> min, std::optional<Scalar> max) {
  const auto [dtype, low, high] = clamp_arguments("clamp", x, min, max);
  return unary(UnaryOp::Clamp, "clamp", x.to(dtype), low, high);
}

Tensor eq(const Tensor& a, const Tensor& b) { return binary(BinaryOp::Eq, "eq", a, b); }
Tensor ne(const Tensor& a, const Tensor& b) { return binary(BinaryOp::Ne, "ne", a, b); }
Tensor lt(const Tensor& a, const Tensor& b) { return binary(BinaryOp::Lt, "lt", a, b); }
Tensor le(const Tensor& a, const Tensor& b) { return binary(BinaryOp::Le, "le", a, b); }
Tensor gt(const Tensor& a, const Tensor& b) { return binary(BinaryOp::Gt, "gt", a, b); }
Tensor ge(const Tensor& a, const Tensor& b) { return binary(BinaryOp::Ge, "ge", a, b); }
Tensor eq(const Tensor& a, const Scalar& b) { return binary(BinaryOp::Eq, "eq", a, b); }
Tensor ne(const Tensor& a, const Scalar& b) { return binary(BinaryOp::Ne, "ne", a, b); }
Tensor lt(const Tensor& a, const Scalar& b) { return binary(BinaryOp::Lt, "lt", a, b); }
Tensor le(const Tensor& a, const Scalar& b) { return binary(BinaryOp::Le, "le", a, b); }
Tensor gt(const Tensor& a, const Scalar& b) { return binary(BinaryOp::Gt, "gt", a, b); }
Tensor ge(const Tensor& a, const Scalar& b) { return binary(BinaryOp::Ge, "ge", a, b); }

Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  ops::check_defined("where", {&cond, &a, &b});
  ops::check_same_device("where", {&cond, &a, &b});
  ST_CHECK(cond.dtype() == DType::Bool, DTypeError, "[where] expected a bool condition, got ",
           cond.dtype());
  const Shape shape =
      broadcast_shapes(broadcast_shapes(cond.shape(), a.shape(), "where"), b.shape(), "where");
  const DType dtype = ops::result_type(a, b);
  const Tensor ac = a.to(dtype), bc = b.to(dtype);
  Tensor out = ops::new_tensor(shape, dtype, a.device());
  if (out.numel() > 0)
    backend_of(out).where(out, ops::broadcast_view(cond, shape), ops::broadcast_view(ac, shape),
                          ops::broadcast_view(bc, shape));
  autograd::record_where(cond, ac, bc, out);
  return out;
}

Tensor& Tensor::add_(const Tensor& other, const Scalar& alpha) {
  const bool unit = alpha.kind() != Scalar::Kind::Float && alpha.to_int() == 1;
  if (unit || (dtype() != DType::Float16 && dtype() != DType::BFloat16))
    return binary_in_place(BinaryOp::Add, "add_", *this, unit ? other : mul(other, alpha));
  return assign_in_place("add_", *this, add(in_place_source(*this), other, alpha));
}
Tensor& Tensor::add_(const Scalar& other) {
  return binary_in_place(BinaryOp::Add, "add_", *this, other);
}
Tensor& Tensor::sub_(const Tensor& other) {
  return binary_in_place(BinaryOp::Sub, "sub_", *this, other);
}
Tensor& Tensor::sub_(const Scalar& other) {
  return binary_in_place(BinaryOp::Sub, "sub_", *this, other);
}
Tensor& Tensor::mul_(const Tensor& other) {
  return binary_in_place(BinaryOp::Mul, "mul_", *this, other);
}
Tensor& Tensor::mul_(const Scalar& other) {
  return binary_in_place(BinaryOp::Mul, "mul_", *this, other);
}
Tensor& Tensor::div_(const Tensor& other) {
  return binary_in_place(BinaryOp::Div, "div_", *this, other);
}
Tensor& Tensor::div_(const Scalar& other) {
  return binary_in_place(BinaryOp::Div, "div_", *this, other);
}
Tensor& Tensor::neg_() { return unary_in_place(UnaryOp::Neg, "neg_", *this); }
Tensor& Tensor::exp_() { return unary_in_place(UnaryOp::Exp, "exp_", *this); }
Tensor& Tensor::log_() { return unary_in_place(UnaryOp::Log, "log_", *this); }
Tensor& Tensor::sqrt_() { return unary_in_place(UnaryOp::Sqrt, "sqrt_", *this); }
Tensor& Tensor::abs_() { return unary_in_place(UnaryOp::Abs, "abs_", *this); }
Tensor& Tensor::tanh_() { return unary_in_place(UnaryOp::Tanh, "tanh_", *this); }
Tensor& Tensor::sigmoid_() { return unary_in_place(UnaryOp::Sigmoid, "sigmoid_", *this); }
Tensor& Tensor::relu_() { return unary_in_place(UnaryOp::Relu, "relu_", *this); }
Tensor& Tensor::pow_(const Scalar& exponent) {
  ops::check_defined("pow_", {this});
  const DType dtype = ops::result_type(*this, exponent);
  ST_CHECK(dtype != DType::Bool, DTypeError, "[pow_] is not defined for bool tensors");
  return unary_in_place(UnaryOp::PowScalar, "pow_", *this, dtype, exponent.to_double());
}
Tensor& Tensor::clamp_(std::optional<Scalar> min, std::optional<Scalar> max) {
  const auto [dtype, low, high] = clamp_arguments("clamp_", *this, min, max);
  return unary_in_place(UnaryOp::Clamp, "clamp_", *this, dtype, low, high);
}
Tensor& Tensor::fill_(const Scalar& value) {
  ops::check_defined("fill_", {this});
  const bool records = is_grad_enabled() && requires_grad();
  if (records) check_graph_in_place("fill_", *this);
  if (numel() > 0) backend_of(*this).fill(*this, value);
  storage()->bump_version();
  if (records) adopt_history(*this, Tensor());
  return *this;
}
Tensor& Tensor::zero_() { return fill_(0); }
Tensor& Tensor::copy_(const Tensor& src) {
  ops::check_defined("copy_", {this, &src});
  broadcast_shapes(src.shape(), shape(), "copy_");
  Tensor source = src.device() == device() ? src : src.to(device());
  if (source.storage() == storage()) {
    // The very same elements (e.g. a state dict loaded into its own module): nothing to copy.
    if (source.dtype() == dtype() && source.shape() == shape() && source.strides() == strides() &&
        source.offset() == offset() &&
        !(is_grad_enabled() && (requires_grad() || source.requires_grad())))
      return *this;
    // Otherwise the regions may overlap, which no copy kernel promises to handle: read a copy.
    source = source.clone();
  }
  return assign_in_place("copy_", *this,
                         source.shape() == shape() ? source : source.expand(shape()));
}

Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
Tensor operator+(const Tensor& a, const Scalar& b) { return add(a, b); }
Tensor operator-(const Tensor& a, const Scalar& b) { return sub(a, b); }
Tensor operator*(const Tensor& a, const Scalar& b) { return mul(a, b); }
Tensor operator/(const Tensor& a, const Scalar& b) { return div(a, b); }
Tensor operator+(const Scalar& a, const Tensor& b) { return add(b, a); }
Tensor operator-(const Scalar& a, const Tensor& b) { return add(neg(b), a); }
Tensor operator*(const Scalar& a, const Tensor& b) { return mul(b, a); }
Tensor operator/(const Scalar& a, const Tensor& b) {
  return div(scalar_tensor(a, {ops::result_type(b, a), b.device()}), b);
}
Tensor operator-(const Tensor& x) { return neg(x); }

}  // namespace st
