// Reductions over any set of dims, with keepdim.

#include "autograd/derivatives.h"
#include "ops/autocast.h"
#include "ops/op_utils.h"

namespace st {

using backend::ArgReduceOp;
using backend::ReduceOp;

namespace {

// op over `dims` of x, recording its backward rule.
Tensor reduce(ReduceOp op, const char* name, const Tensor& x, const Shape& dims, bool keepdim) {
  ops::check_defined(name, {&x});
  const std::vector<int64_t> reduced = ops::reduction_dims(name, x, dims);
  DType dtype = x.dtype();
  if (op == ReduceOp::Sum && is_integral(dtype))
    dtype = DType::Int64;  // as PyTorch: no int overflow
  if (op == ReduceOp::Mean)
    ST_CHECK(is_floating(dtype), DTypeError, "[", name, "] expected a floating-point input, got ",
             dtype, "; convert it with to(st::DType::Float32) first");
  const Shape kept = ops::keepdim_shape(x.shape(), reduced);
  if (op == ReduceOp::Max || op == ReduceOp::Min)
    for (int64_t d : reduced)
      ST_CHECK(x.shape()[d] > 0, IndexError, "[", name, "] cannot reduce over dim ", d,
               " of size 0 in shape ", x.shape(), ": the result would have no identity");
  Tensor out = ops::new_tensor(kept, dtype, x.device());
  if (reduced.empty()) {
    if (out.numel() > 0) ops::backend_of(x).copy(out, x);
  } else if (out.numel() > 0) {
    ops::backend_of(x).reduce(op, out, x, reduced);
  }
  if (!keepdim) {
    const Shape shape = ops::squeezed_shape(kept, reduced);
    out = ops::raw_view(out, shape, contiguous_strides(shape), 0);
  }
  if (op == ReduceOp::Sum || op == ReduceOp::Mean)
    autograd::record_reduce(op, x, out, reduced);
  else
    autograd::record_extreme(op == ReduceOp::Max ? "MaxBackward" : "MinBackward", x, out, reduced);
  return out;
}

std::tuple<Tensor, Tensor> extreme_dim(ArgReduceOp op, const char* name, const Tensor& x,
                                       int64_t dim, bool keepdim) {
  ops::check_defined(name, {&x});
  dim = wrap_dim(dim, x.dim(), name);
  ST_CHECK(x.dim() == 0 || x.shape()[dim] > 0, IndexError, "[", name, "] cannot reduce over dim ",
           dim, " of size 0 in shape ", x.shape());
  Shape kept = x.shape();
  if (x.dim() > 0) kept[dim] = 1;
  Tensor values = ops::new_tensor(kept, x.dtype(), x.device());
  Tensor indices = ops::new_tensor(kept, DType::Int64, x.device());
  if (values.numel() > 0) {
    if (x.dim() == 0) {
      ops::backend_of(x).copy(values, x);
      ops::backend_of(x).fill(indices, 0);
    } else {
      ops::backend_of(x).arg_reduce(op, values, indices, x, dim);
    }
  }
  if (!keepdim && x.dim() > 0) {
    const Shape shape = ops::squeezed_shape(kept, {dim});
    values = ops::raw_view(values, shape, contiguous_strides(shape), 0);
    indices = ops::raw_view(indices, shape, contiguous_strides(shape), 0);
  }
  autograd::record_extreme_dim(op == ArgReduceOp::Max ? "MaxBackward" : "MinBackward", x, values,
                               indices, dim, keepdim);
  return {values, indices};
}

}  // namespace

Tensor sum(const Tensor& x, const Shape& dims, bool keepdim) {
  if (auto cast = ops::autocast_inputs(ops::CastPolicy::Float32, {&x}))
    return sum((*cast)[0], dims, keepdim);
  return reduce(ReduceOp::Sum, "sum", x, dims, keepdim);
}
Tensor mean(const Tensor& x, const Shape& dims, bool keepdim) {
  if (auto cast = ops::autocast_inputs(ops::CastPolicy::Float32, {&x}))
    return mean((*cast)[0], dims, keepdim);
  return reduce(ReduceOp::Mean, "mean", x, dims, keepdim);
}

namespace {
// max/min without indices; all of an empty tensor has no extreme.
Tensor extreme(ReduceOp op, const char* name, const Tensor& x, const Shape& dims, bool keepdim) {
  ops::check_defined(name, {&x});
  ST_CHECK(x.numel() > 0 || !dims.empty(), IndexError, "[", name, "] cannot take the ", name,
           " of an empty tensor");
  return reduce(op, name, x, dims, keepdim);
}
}  // namespace

Tensor max(const Tensor& x) { return extreme(ReduceOp::Max, "max", x, {}, false); }
Tensor min(const Tensor& x) { return extreme(ReduceOp::Min, "min", x, {}, false); }
Tensor amax(const Tensor& x, const Shape& dims, bool keepdim) {
  return extreme(ReduceOp::Max, "amax", x, dims, keepdim);
}
Tensor amin(const Tensor& x, const Shape& dims, bool keepdim) {
  return extreme(ReduceOp::Min, "amin", x, dims, keepdim);
}

std::tuple<Tensor, Tensor> max(const Tensor& x, int64_t dim, bool keepdim) {
  return extreme_dim(ArgReduceOp::Max, "max", x, dim, keepdim);
}
std::tuple<Tensor, Tensor> min(const Tensor& x, int64_t dim, bool keepdim) {
  return extreme_dim(ArgReduceOp::Min, "min", x, dim, keepdim);
}

namespace {
// Indices of the extremes along dim, or into the flattened tensor when dim is absent.
Tensor arg_extreme(ArgReduceOp op, const char* name, const Tensor& x, std::optional<int64_t> dim,
                   bool keepdim) {
  NoGradGuard no_grad;
  if (dim) return std::get<1>(extreme_dim(op, name, x.detach(), *dim, keepdim));
  ST_CHECK(x.defined() && x.numel() > 0, IndexError, "[", name, "] cannot take the ", name,
           " of an empty tensor");
  Tensor index = std::get<1>(extreme_dim(op, name, x.detach().reshape({-1}), 0, false));
  return keepdim ? index.reshape(Shape(x.dim(), 1)) : index;
}
}  // namespace

Tensor argmax(const Tensor& x, std::optional<int64_t> dim, bool keepdim) {
  return arg_extreme(ArgReduceOp::Max, "argmax", x, dim, keepdim);
}
Tensor argmin(const Tensor& x, std::optional<int64_t> dim, bool keepdim) {
  return arg_extreme(ArgReduceOp::Min, "argmin", x, dim, keepdim);
}

Tensor sum_to(const Tensor& x, const Shape& shape) {
  ST_CHECK(static_cast<int64_t>(shape.size()) <= x.dim(), ShapeError, "[sum_to] cannot sum shape ",
           x.shape(), " to ", shape, ", which has more dims");
  const int64_t lead = x.dim() - static_cast<int64_t>(shape.size());
  Shape dims;
  for (int64_t d = 0; d < x.dim(); ++d) {
    if (d < lead) {
      dims.push_back(d);
    } else if (shape[d - lead] != x.shape()[d]) {
      ST_CHECK(shape[d - lead] == 1, ShapeError, "[sum_to] cannot sum shape ", x.shape(), " to ",
               shape);
      dims.push_back(d);
    }
  }
  if (dims.empty()) return x;
  return sum(x, dims, true).reshape(shape);
}

}  // namespace st
