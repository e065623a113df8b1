// Neural-network ops: softmax, log_softmax, attention, layer_norm, embedding, cross_entropy,
// dropout.

#include <cmath>

#include "autograd/derivatives.h"
#include "ops/autocast.h"
#include "ops/op_utils.h"

namespace st {

namespace {

// softmax(scale * x) along dim; causal_rows as the backend's softmax (dim is then the last).
Tensor softmax_impl(const Tensor& x, int64_t dim, bool log, double scale = 1,
                    int64_t causal_rows = 0) {
  const char* name = log ? "log_softmax" : "softmax";
  ops::check_defined(name, {&x});
  dim = wrap_dim(dim, x.dim(), name);
  const Tensor input = x.to(ops::float_type(x.dtype()));
  const Tensor rows = ops::as_rows(input, dim);
  Tensor result = ops::new_like(rows);
  if (result.numel() > 0) ops::backend_of(x).softmax(result, rows, log, scale, causal_rows);
  Tensor out = ops::from_rows(result, input, dim);
  autograd::record_softmax(input, out, dim, log, scale);
  return out;
}

// The backend's fused attention for q, k, v [B, H, T, E] of one shape but for T; undefined when the
// operands do not suit it or the backend has no kernel for them.
Tensor fused_attention(const Tensor& q, const Tensor& k, const Tensor& v, bool causal,
                       double scale) {
  if (q.dim() != 4 || k.dim() != 4 || v.dim() != 4 || k.shape() != v.shape() ||
      q.shape()[0] != k.shape()[0] || q.shape()[1] != k.shape()[1] ||
      q.shape()[3] != k.shape()[3] || q.numel() == 0 || k.numel() == 0 ||
      !ops::backend_of(q).has_fused_attention(q, k))
    return {};
  // The kernels read rows of E with unit stride; other strides are free.
  const auto rows_dense = [](const Tensor& t) { return t.strides()[3] == 1 ? t : t.contiguous(); };
  const Tensor qd = rows_dense(q), kd = rows_dense(k), vd = rows_dense(v);
  Tensor out = ops::new_heads_like(qd);
  Tensor logsumexp = ops::new_tensor({q.shape()[0], q.shape()[1], q.shape()[2]},
                                     ops::statistics_type(q.dtype()), q.device());
  ops::backend_of(q).attention_forward(out, logsumexp, qd, kd, vd, scale, causal);
  autograd::record_attention(qd, kd, vd, out, logsumexp, scale, causal);
  return out;
}

}  // namespace

Tensor softmax(const Tensor& x, int64_t dim) {
  if (auto cast = ops::autocast_inputs(ops::CastPolicy::Float32, {&x}))
    return softmax((*cast)[0], dim);
  return softmax_impl(x, dim, false);
}
Tensor log_softmax(const Tensor& x, int64_t dim) {
  if (auto cast = ops::autocast_inputs(ops::CastPolicy::Float32, {&x}))
    return log_softmax((*cast)[0], dim);
  return softmax_impl(x, dim, true);
}

Tensor scaled_dot_product_attention(const Tensor& q, const Tensor& k, const Tensor& v,
                                    bool is_causal, std::optional<double> scale) {
  if (auto cast = ops::autocast_inputs(ops::CastPolicy::LowerPrecision, {&q, &k, &v}))
    return scaled_dot_product_attention((*cast)[0], (*cast)[1], (*cast)[2], is_causal, scale);
  constexpr const char* op = "scaled_dot_product_attention";
  ops::check_defined(op, {&q, &k, &v});
  ops::check_same_device(op, {&q, &k, &v});
  ops::check_floating(op, q, "query");
  ST_CHECK(q.dim() >= 2 && k.dim() >= 2 && v.dim() >= 2, ShapeError, "[", op,
           "] expected query [..., L, E], key [..., S, E] and value [..., S, Ev]; got ", q.shape(),
           ", ", k.shape(), " and ", v.shape());
  ST_CHECK(q.shape().back() == k.shape().back() && k.shape()[k.dim() - 2] == v.shape()[v.dim() - 2],
           ShapeError, "[", op, "] query and key must share E and key and value S; got query ",
           q.shape(), ", key ", k.shape(), ", value ", v.shape());
  ST_CHECK(q.dtype() == k.dtype() && q.dtype() == v.dtype(), DTypeError, "[", op,
           "] query, key and value must share a dtype; got ", q.dtype(), ", ", k.dtype(), " and ",
           v.dtype());
  const int64_t queries = q.shape()[q.dim() - 2];
  const double s = scale.value_or(1.0 / std::sqrt(static_cast<double>(q.shape().back())));
  if (Tensor out = fused_attention(q, k, v, is_causal, s); out.defined()) return out;
  const Tensor scores = matmul(q, k.transpose(-1, -2));
  const Tensor weights = softmax_impl(scores, -1, false, s, is_causal ? queries : 0);
  return matmul(weights, v);
}

namespace {

// layer_norm with its output in out_dtype: x's dtype, or under autocast f16/bf16 for f32 x.
Tensor layer_norm(const Tensor& x, const Shape& normalized_shape, const Tensor& weight,
                  const Tensor& bias, double eps, DType out_dtype) {
  ops::check_same_device("layer_norm", {&x, &weight, &bias});
  ops::check_floating("layer_norm", x);
  const int64_t k = static_cast<int64_t>(normalized_shape.size());
  ST_CHECK(
      k >= 1 && k <= x.dim() && Shape(x.shape().end() - k, x.shape().end()) == normalized_shape,
      ShapeError, "[layer_norm] normalized_shape ", normalized_shape,
      " must match the trailing dims of the input of shape ", x.shape());
  for (const Tensor* param : {&weight, &bias}) {
    if (!param->defined()) continue;
    ST_CHECK(param->shape() == normalized_shape, ShapeError,
             "[layer_norm] weight and bias must have shape ", normalized_shape, ", got ",
             param->shape());
    ST_CHECK(param->dtype() == x.dtype(), DTypeError,
             "[layer_norm] weight and bias must have the input's dtype ", x.dtype(), ", got ",
             param->dtype());
  }
  ST_CHECK(eps >= 0, ValueError, "[layer_norm] eps must be non-negative, got ", eps);
  const int64_t cols = shape_numel(normalized_shape);
  const int64_t rows = cols == 0 ? 0 : x.numel() / cols;
  const Tensor input = x.contiguous();
  const Tensor w = weight.defined() ? weight.contiguous() : weight;
  const Tensor b = bias.defined() ? bias.contiguous() : bias;
  Tensor out = ops::new_like(input, out_dtype);
  Tensor mean = ops::new_tensor({rows}, ops::statistics_type(x.dtype()), x.device());
  Tensor rstd = ops::new_tensor({rows}, ops::statistics_type(x.dtype()), x.device());
  if (out.numel() > 0) {
    const Tensor x2 = ops::raw_view(input, {rows, cols}, {cols, 1}, input.offset());
    const Tensor out2 = ops::raw_view(out, {rows, cols}, {cols, 1}, 0);
    const auto flat = [cols](const Tensor& t) {
      return t.defined() ? ops::raw_view(t, {cols}, {1}, t.offset()) : t;
    };
    ops::backend_of(x).layer_norm(out2, mean, rstd, x2, flat(w), flat(b), eps);
  }
  autograd::record_layer_norm(input, w, b, out, mean, rstd);
  return out;
}

}  // namespace

Tensor layer_norm(const Tensor& x, const Shape& normalized_shape, const Tensor& weight,
                  const Tensor& bias, double eps) {
  ops::check_defined("layer_norm", {&x});
  // Under autocast the statistics and the normalization run in f32 and the output is written in
  // the scope's dtype: the GEMMs that read it would cast it, and its gradient comes back in it,
  // so neither an f32 copy of the output nor of its gradient is made.
  const DType out_dtype = ops::autocast_output_dtype(x).value_or(x.dtype());
  if (auto cast = ops::autocast_inputs(ops::CastPolicy::Float32, {&x, &weight, &bias}))
    return layer_norm((*cast)[0], normalized_shape, (*cast)[1], (*cast)[2], eps, out_dtype);
  return layer_norm(x, normalized_shape, weight, bias, eps, out_dtype);
}

Tensor embedding(const Tensor& weight, const Tensor& indices) {
  ops::check_defined("embedding", {&weight, &indices});
  ops::check_same_device("embedding", {&weight, &indices});
  ST_CHECK(weight.dim() == 2, ShapeError,
           "[embedding] expected a 2-D weight [num_embeddings, dim], got shape ", weight.shape());
  ST_CHECK(indices.dtype() == DType::Int64 || indices.dtype() == DType::Int32, DTypeError,
           "[embedding] expected int64 or int32 indices, got ", indices.dtype());
  const Tensor flat = indices.contiguous().detach().reshape({indices.numel()});
  const Tensor table = weight.contiguous();
  Shape out_shape = indices.shape();
  out_shape.push_back(weight.shape()[1]);
  Tensor out = ops::new_tensor(out_shape, weight.dtype(), weight.device());
  if (out.numel() > 0) {
    const Tensor out2 =
        ops::raw_view(out, {flat.numel(), weight.shape()[1]}, {weight.shape()[1], 1}, 0);
    ops::backend_of(out).embedding(out2, table, flat);
  } else if (flat.numel() > 0 && weight.shape()[0] == 0) {
    throw IndexError("[embedding] cannot index into a table of 0 rows");
  }
  autograd::record_embedding(table, flat, out);
  return out;
}

Tensor cross_entropy(const Tensor& logits, const Tensor& target, int64_t ignore_index,
                     Reduction reduction) {
  ops::check_defined("cross_entropy", {&logits, &target});
  ops::check_same_device("cross_entropy", {&logits, &target});
  ops::check_floating("cross_entropy", logits, "logits tensor");
  ST_CHECK(target.dtype() == DType::Int64 || target.dtype() == DType::Int32, DTypeError,
           "[cross_entropy] expected int64 or int32 class-index targets, got ", target.dtype());
  const bool single = logits.dim() == 1;
  ST_CHECK((logits.dim() == 2 && target.dim() == 1 && target.shape()[0] == logits.shape()[0]) ||
               (single && target.dim() == 0),
           ShapeError,
           "[cross_entropy] expected logits [N, C] with target [N], or logits [C] with a 0-dim "
           "target; got ",
           logits.shape(), " and ", target.shape());
  const Tensor logits2 = (single ? logits.unsqueeze(0) : logits).contiguous();
  const Tensor target1 = target.detach().reshape({-1}).contiguous();
  const int64_t n = logits2.shape()[0];
  // Autocast's f32 loss without casting the logits: the kernels compute in f32 either way, and the
  // cast would copy the largest activation of a language model and then its gradient.
  const DType loss_dtype =
      ops::autocast_computes_in_float32(logits) ? DType::Float32 : logits.dtype();
  Tensor loss = ops::new_tensor({n}, loss_dtype, logits.device());
  Tensor lse = ops::new_tensor({n}, ops::statistics_type(logits.dtype()), logits.device());
  if (n > 0) {
    ST_CHECK(logits2.shape()[1] > 0, ShapeError, "[cross_entropy] logits of shape ", logits.shape(),
             " have no classes");
    ops::backend_of(logits).cross_entropy(loss, lse, logits2, target1, ignore_index);
  }
  autograd::record_cross_entropy(logits2, target1, loss, lse, ignore_index);
  switch (reduction) {
    case Reduction::None: return single ? loss.reshape({}) : loss;
    case Reduction::Sum: return sum(loss);
    case Reduction::Mean: {
      // Divides by the count of targets that are not ignored, computed on the device: no host read.
      const Tensor counted = sum(ne(target1, ignore_index)).to(loss_dtype);
      return div(sum(loss), counted);
    }
  }
  return loss;
}

Tensor dropout(const Tensor& x, double p, bool training) {
  ops::check_defined("dropout", {&x});
  ST_CHECK(p >= 0 && p <= 1, ValueError, "[dropout] probability must be in [0, 1], got ", p);
  ops::check_floating("dropout", x);
  if (!training || p == 0) return x;
  if (p == 1) return mul(x, 0);
  const Tensor input = x.contiguous();
  Tensor out = ops::new_like(input);
  Tensor mask = ops::new_like(input);
  if (out.numel() > 0) {
    const auto [seed, offset] = ops::reserve_random(x.device().type, x.numel());
    ops::backend_of(x).dropout(out, mask, input, p, seed, offset);
  }
  autograd::record_dropout(input, mask, out);
  return out;
}

}  // namespace st
