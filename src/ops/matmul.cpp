// matmul with torch.matmul's rules: 1-D operands gain and lose a dim; batch dims broadcast. And
// linear, one GEMM over all leading dims with its bias and activation (the backend's linear).

#include "autograd/derivatives.h"
#include "ops/autocast.h"
#include "ops/op_utils.h"

namespace st {

namespace {

// x [..., rows, cols] viewed as 3-D [batch, rows, cols] for the kernel, which needs each matrix
// row- or column-major and one stride across the batch; anything else is copied first.
Tensor as_batched_matrices(const Tensor& x, int64_t batch) {
  const int64_t n = x.dim();
  const int64_t rows = x.shape()[n - 2], cols = x.shape()[n - 1];
  const int64_t rs = x.strides()[n - 2], cs = x.strides()[n - 1];
  const bool matrix_ok = cs == 1 || rs == 1 || rows == 1 || cols == 1;
  // The batch dims collapse into one stride when each steps over the next (or has size 1).
  std::optional<int64_t> batch_stride = 0;
  int64_t expected = -1;
  for (int64_t d = n - 3; d >= 0; --d) {
    if (x.shape()[d] == 1) continue;
    if (expected < 0)
      batch_stride = x.strides()[d];
    else if (x.strides()[d] != expected)
      batch_stride.reset();
    if (!batch_stride) break;
    expected = x.strides()[d] * x.shape()[d];
  }
  if (matrix_ok && batch_stride)
    return ops::raw_view(x, {batch, rows, cols}, {*batch_stride, rs, cs}, x.offset());
  const Tensor dense = x.detach().contiguous();
  return ops::raw_view(dense, {batch, rows, cols}, {rows * cols, cols, 1}, dense.offset());
}

// a [..., M, K] @ b [..., K, N], both at least 2-D.
Tensor batched_matmul(const Tensor& a, const Tensor& b) {
  const int64_t M = a.shape()[a.dim() - 2], K = a.shape()[a.dim() - 1];
  const int64_t K2 = b.shape()[b.dim() - 2], N = b.shape()[b.dim() - 1];
  ST_CHECK(K == K2, ShapeError, "[matmul] shapes ", a.shape(), " and ", b.shape(),
           " cannot be multiplied: ", "the inner dims differ (", K, " and ", K2, ")");
  const Shape a_batch(a.shape().begin(), a.shape().end() - 2);
  const Shape b_batch(b.shape().begin(), b.shape().end() - 2);
  Shape batch_shape;
  try {
    batch_shape = broadcast_shapes(a_batch, b_batch, "matmul");
  } catch (const ShapeError&) {
    // Name the operands the caller passed, not only their batch dims.
    throw ShapeError(detail::concat("[matmul] shapes ", a.shape(), " and ", b.shape(),
                                    " cannot be multiplied: the batch dims ", a_batch, " and ",
                                    b_batch, " cannot be broadcast"));
  }
  const int64_t batch = shape_numel(batch_shape);

  Shape out_shape = batch_shape;
  out_shape.push_back(M);
  out_shape.push_back(N);
  Tensor out = ops::new_tensor(out_shape, a.dtype(), a.device());
  if (out.numel() > 0) {
    Shape a_full = batch_shape, b_full = batch_shape;
    a_full.insert(a_full.end(), {M, K});
    b_full.insert(b_full.end(), {K, N});
    const Tensor a3 = as_batched_matrices(ops::broadcast_view(a, a_full), batch);
    const Tensor b3 = as_batched_matrices(ops::broadcast_view(b, b_full), batch);
    const Tensor out3 = ops::raw_view(out, {batch, M, N}, {M * N, N, 1}, 0);
    ops::backend_of(out).matmul(out3, a3, b3, 1.0, 0.0);
  }
  autograd::record_matmul(a, b, out);
  return out;
}

}  // namespace

Tensor matmul(const Tensor& a, const Tensor& b) {
  if (auto cast = ops::autocast_inputs(ops::CastPolicy::LowerPrecision, {&a, &b}))
    return matmul((*cast)[0], (*cast)[1]);
  ops::check_defined("matmul", {&a, &b});
  ops::check_same_device("matmul", {&a, &b});
  ST_CHECK(a.dim() > 0 && b.dim() > 0, ShapeError,
           "[matmul] both operands need at least 1 dim, got shapes ", a.shape(), " and ",
           b.shape());
  ST_CHECK(a.dtype() == b.dtype(), DTypeError, "[matmul] expected operands of one dtype, got ",
           a.dtype(), " and ", b.dtype());
  ST_CHECK(a.dtype() != DType::Bool, DTypeError, "[matmul] is not defined for bool tensors");
  if (a.dim() == 1 && b.dim() == 1) {
    ST_CHECK(a.shape()[0] == b.shape()[0], ShapeError, "[matmul] 1-D operands of shapes ",
             a.shape(), " and ", b.shape(), " differ in length");
    return batched_matmul(a.unsqueeze(0), b.unsqueeze(1)).reshape({});
  }
  if (a.dim() == 1) return batched_matmul(a.unsqueeze(0), b).squeeze(-2);
  if (b.dim() == 1) return batched_matmul(a, b.unsqueeze(1)).squeeze(-1);
  return batched_matmul(a, b);
}

Tensor linear(const Tensor& input, const Tensor& weight, const Tensor& bias,
              LinearActivation activation) {
  if (auto cast = ops::autocast_inputs(ops::CastPolicy::LowerPrecision, {&input, &weight, &bias}))
    return linear((*cast)[0], (*cast)[1], (*cast)[2], activation);
  ops::check_defined("linear", {&input, &weight});
  ops::check_same_device("linear", {&input, &weight, &bias});
  ops::check_floating("linear", input);
  ST_CHECK(weight.dim() == 2 && input.dim() >= 1 && input.shape().back() == weight.shape()[1],
           ShapeError, "[linear] expected input [..., in_features] and weight [out_features, ",
           "in_features], got input ", input.shape(), " and weight ", weight.shape());
  ST_CHECK(!bias.defined() || bias.shape() == Shape{weight.shape()[0]}, ShapeError,
           "[linear] expected bias [", weight.shape()[0], "], got ", bias.shape());
  for (const Tensor* t : {&weight, &bias})
    ST_CHECK(!t->defined() || t->dtype() == input.dtype(), DTypeError,
             "[linear] weight and bias must have the input's dtype ", input.dtype(), ", got ",
             t->dtype());
  const int64_t in = weight.shape()[1], out_features = weight.shape()[0];
  const Tensor x = input.reshape({-1, in});
  const int64_t rows = x.shape()[0];
  Tensor out = ops::new_tensor({rows, out_features}, input.dtype(), input.device());
  // The activation's input, kept for its derivative.
  Tensor pre;
  if (activation != LinearActivation::None) pre = ops::new_like(out);
  if (out.numel() > 0) {
    const Shape shape3{1, rows, out_features}, strides3{0, out_features, 1};
    Tensor bias3;
    if (bias.defined()) {
      const Tensor dense = bias.detach().contiguous();
      bias3 = ops::raw_view(dense, shape3, {0, 0, 1}, dense.offset());
    }
    const Tensor x3 = as_batched_matrices(x.unsqueeze(0), 1);
    const Tensor w3 = as_batched_matrices(weight.t().unsqueeze(0), 1);
    ops::backend_of(out).linear(ops::raw_view(out, shape3, strides3, 0),
                                pre.defined() ? ops::raw_view(pre, shape3, strides3, 0) : pre, x3,
                                w3, bias3, activation);
  }
  autograd::record_linear(x, weight, bias, pre, activation, out);
  Shape out_shape = input.shape();
  out_shape.back() = out_features;
  return out.view(out_shape);
}

void ops::matmul_accumulate(const Tensor& out, const Tensor& a, const Tensor& b) {
  const int64_t M = out.shape()[0], N = out.shape()[1];
  const Tensor a3 = as_batched_matrices(a.unsqueeze(0), 1);
  const Tensor b3 = as_batched_matrices(b.unsqueeze(0), 1);
  if (out.numel() > 0 && a.shape()[1] > 0)
    backend_of(out).matmul(raw_view(out, {1, M, N}, {0, N, 1}, out.offset()), a3, b3, 1.0, 1.0);
  out.storage()->bump_version();
}

}  // namespace st
