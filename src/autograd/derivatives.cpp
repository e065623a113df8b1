// Backward rules of every differentiable op. Each record_* captures what its rule needs and lists
// it as saved, so an in-place change to a saved tensor is caught at backward time. Inputs are
// captured detached: a rule needs their values, not their history, and a capture that kept the
// history alive would chain node lifetimes through closures, out of reach of Node's iterative free.
// Gradients that come out broadcast are summed back to the input's shape by the node (see
// FunctionNode::apply).

#include "autograd/derivatives.h"

#include "ops/op_utils.h"
#include "spiraltorch/autograd.h"

namespace st::autograd {

using backend::BinaryOp;
using backend::UnaryOp;

namespace {

// The fused derivative kernels: out = op(grad, x) computed by the backend in one pass.
Tensor fused_backward(BinaryOp op, const Tensor& grad, const Tensor& x) {
  Tensor out = ops::new_like(x);
  if (out.numel() > 0) ops::backend_of(x).binary(op, out, grad, x);
  return out;
}

Tensor as(const Tensor& mask, DType dtype) { return mask.to(dtype); }

Tensor detached(const Tensor& t) { return t.defined() ? t.detach() : t; }

// The gradient a backward GEMM may accumulate into directly (beta = 1), sparing a temporary and an
// add: that of a leaf which already has a contiguous gradient of its own shape, dtype and device.
// Undefined otherwise, and the rule returns its gradient as usual.
Tensor accumulation_target(const Tensor& leaf) {
  if (!leaf.defined() || !leaf.is_leaf()) return {};
  const Tensor grad = leaf.grad();
  if (!grad.defined() || grad.shape() != leaf.shape() || grad.dtype() != leaf.dtype() ||
      grad.device() != leaf.device() || !grad.is_contiguous())
    return {};
  return grad;
}

// a @ b for the gradient of `leaf`: accumulated straight into its .grad when it has one (and then
// undefined is returned, so nothing more is added), computed as a new tensor otherwise.
Tensor gemm_gradient(const Tensor& leaf, const Tensor& a, const Tensor& b) {
  const Tensor target = accumulation_target(leaf);
  if (!target.defined()) return matmul(a, b);
  ops::matmul_accumulate(target, a, b);
  return {};
}

}  // namespace

void record_unary(UnaryOp op, const Tensor& x, const Tensor& out, double alpha, double beta) {
  if (!needs_grad({x})) return;
  const Tensor y = out.detach();
  switch (op) {
    case UnaryOp::Neg:
      return record("NegBackward", {x}, {out},
                    [](const Grads& g, auto&) { return Grads{neg(g[0])}; });
    case UnaryOp::Affine:
      return record("AffineBackward", {x}, {out},
                    [alpha](const Grads& g, auto&) { return Grads{mul(g[0], alpha)}; });
    case UnaryOp::Exp:
      return record("ExpBackward", {x}, {out},
                    [y](const Grads& g, auto&) { return Grads{mul(g[0], y)}; }, {y});
    case UnaryOp::Log:
      return record("LogBackward", {x}, {out},
                    [x = x.detach()](const Grads& g, auto&) { return Grads{div(g[0], x)}; }, {x});
    case UnaryOp::Sqrt:
      return record("SqrtBackward", {x}, {out},
                    [y](const Grads& g, auto&) { return Grads{div(g[0], mul(y, 2))}; }, {y});
    case UnaryOp::Rsqrt:  // d/dx x^-1/2 = -1/2 y^3
      return record("RsqrtBackward", {x}, {out},
                    [y](const Grads& g, auto&) { return Grads{mul(g[0], mul(pow(y, 3), -0.5))}; },
                    {y});
    case UnaryOp::Abs:
      return record(
          "AbsBackward", {x}, {out},
          [x = x.detach()](const Grads& g, auto&) {
            return Grads{mul(g[0], sub(as(gt(x, 0), x.dtype()), as(lt(x, 0), x.dtype())))};
          },
          {x});
    case UnaryOp::Tanh:
      return record("TanhBackward", {x}, {out},
                    [y](const Grads& g, auto&) {
                      return Grads{fused_backward(BinaryOp::TanhBackward, g[0], y)};
                    },
                    {y});
    case UnaryOp::Sigmoid:
      return record("SigmoidBackward", {x}, {out},
                    [y](const Grads& g, auto&) {
                      return Grads{fused_backward(BinaryOp::SigmoidBackward, g[0], y)};
                    },
                    {y});
    case UnaryOp::Relu:
      return record("ReluBackward", {x}, {out},
                    [y](const Grads& g, auto&) {
                      return Grads{fused_backward(BinaryOp::ReluBackward, g[0], y)};
                    },
                    {y});
    case UnaryOp::GeluErf:
      return record("GeluBackward", {x}, {out},
                    [x = x.detach()](const Grads& g, auto&) {
                      return Grads{fused_backward(BinaryOp::GeluErfBackward, g[0], x)};
                    },
                    {x});
    case UnaryOp::GeluTanh:
      return record("GeluBackward", {x}, {out},
                    [x = x.detach()](const Grads& g, auto&) {
                      return Grads{fused_backward(BinaryOp::GeluTanhBackward, g[0], x)};
                    },
                    {x});
    case UnaryOp::Clamp:  // the gradient passes where x lies within the bounds, as PyTorch
      return record(
          "ClampBackward", {x}, {out},
          [x = x.detach(), alpha, beta](const Grads& g, auto&) {
            return Grads{mul(g[0], mul(as(ge(x, alpha), x.dtype()), as(le(x, beta), x.dtype())))};
          },
          {x});
    case UnaryOp::PowScalar:
      return record("PowBackward", {x}, {out},
                    [x = x.detach(), alpha](const Grads& g, auto&) {
                      if (alpha == 0) return Grads{zeros_like(x)};
                      return Grads{mul(g[0], mul(pow(x, alpha - 1), alpha))};
                    },
                    {x});
  }
}

void record_binary(BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& out) {
  if (!needs_grad({a, b})) return;
  switch (op) {
    case BinaryOp::Add:
      return record("AddBackward", {a, b}, {out}, [](const Grads& g, auto&) {
        return Grads{g[0], g[0]};
      });
    case BinaryOp::Sub:
      return record("SubBackward", {a, b}, {out}, [](const Grads& g, auto& needs) {
        return Grads{g[0], needs[1] ? neg(g[0]) : Tensor()};
      });
    case BinaryOp::Mul:
      return record(
          "MulBackward", {a, b}, {out},
          [a = a.detach(), b = b.detach()](const Grads& g, auto& needs) {
            return Grads{needs[0] ? mul(g[0], b) : Tensor(), needs[1] ? mul(g[0], a) : Tensor()};
          },
          {a, b});
    case BinaryOp::Div:
      return record("DivBackward", {a, b}, {out},
                    [a = a.detach(), b = b.detach()](const Grads& g, auto& needs) {
                      return Grads{needs[0] ? div(g[0], b) : Tensor(),
                                   needs[1] ? neg(div(mul(g[0], a), mul(b, b))) : Tensor()};
                    },
                    {a, b});
    case BinaryOp::Pow: {
      const Tensor y = out.detach();
      return record("PowBackward", {a, b}, {out},
                    [a = a.detach(), b = b.detach(), y](const Grads& g, auto& needs) {
                      Grads grads(2);
                      if (needs[0]) grads[0] = mul(g[0], mul(b, pow(a, sub(b, 1))));
                      if (needs[1]) {
                        // d/db a^b = a^b log a; taken as 0 where a == 0 and b >= 0, where the limit
                        // is 0.
                        const Tensor zero_base = mul(eq(a, 0), ge(b, 0));
                        grads[1] = where(zero_base, zeros_like(y), mul(g[0], mul(y, log(a))));
                      }
                      return grads;
                    },
                    {a, b, y});
    }
    case BinaryOp::Maximum:
    case BinaryOp::Minimum: {
      const bool is_max = op == BinaryOp::Maximum;
      // The winner takes the gradient; ties split it evenly, as PyTorch.
      return record(
          is_max ? "MaximumBackward" : "MinimumBackward", {a, b}, {out},
          [a = a.detach(), b = b.detach(), is_max](const Grads& g, auto&) {
            const Tensor half_tie = mul(as(eq(a, b), a.dtype()), 0.5);
            const Tensor a_wins = add(as(is_max ? gt(a, b) : lt(a, b), a.dtype()), half_tie);
            const Tensor b_wins = add(as(is_max ? gt(b, a) : lt(b, a), a.dtype()), half_tie);
            return Grads{mul(g[0], a_wins), mul(g[0], b_wins)};
          },
          {a, b});
    }
    default:
      throw Error(detail::concat("[backward] no derivative for binary op ", static_cast<int>(op)));
  }
}

void record_where(const Tensor& cond, const Tensor& a, const Tensor& b, const Tensor& out) {
  if (!needs_grad({a, b})) return;
  record("WhereBackward", {cond, a, b}, {out},
         [cond](const Grads& g, auto& needs) {
           const Tensor zero = zeros({}, {g[0].dtype(), g[0].device()});
           return Grads{Tensor(), needs[1] ? where(cond, g[0], zero) : Tensor(),
                        needs[2] ? where(cond, zero, g[0]) : Tensor()};
         },
         {cond});
}

void record_reduce(backend::ReduceOp op, const Tensor& x, const Tensor& out,
                   const std::vector<int64_t>& dims) {
  if (!needs_grad({x})) return;
  const Shape shape = x.shape();
  const Shape kept = ops::keepdim_shape(shape, dims);
  int64_t count = 1;
  for (int64_t d : dims) count *= shape[d];
  const bool is_mean = op == backend::ReduceOp::Mean;
  record(is_mean ? "MeanBackward" : "SumBackward", {x}, {out},
         [shape, kept, count, is_mean](const Grads& g, auto&) {
           Tensor grad = g[0].reshape(kept).expand(shape);
           return Grads{is_mean ? div(grad, static_cast<double>(count)) : grad};
         });
}

void record_extreme(const char* name, const Tensor& x, const Tensor& out,
                    const std::vector<int64_t>& dims) {
  if (!needs_grad({x})) return;
  const Tensor y = out.detach();
  const Shape kept = ops::keepdim_shape(x.shape(), dims);
  const Shape dims_shape(dims.begin(), dims.end());
  record(name, {x}, {out},
         [x = x.detach(), y, kept, dims_shape](const Grads& g, auto&) {
           const Tensor mask = as(eq(x, y.reshape(kept)), x.dtype());
           const Tensor ties = sum(mask, dims_shape, true);
           return Grads{mul(mask, div(g[0].reshape(kept), ties))};
         },
         {x, y});
}

void record_extreme_dim(const char* name, const Tensor& x, const Tensor& values,
                        const Tensor& indices, int64_t dim, bool keepdim) {
  if (!needs_grad({x})) return;
  const Shape shape = x.shape();
  Shape kept = shape;
  if (!shape.empty()) kept[dim] = 1;
  record(
      name, {x}, {values},
      [shape, kept, indices, dim](const Grads& g, auto&) {
        if (shape.empty()) return Grads{g[0]};
        Shape position_shape(shape.size(), 1);
        position_shape[dim] = shape[dim];
        const Tensor positions =
            arange(shape[dim], TensorOptions{DType::Int64, g[0].device()}).reshape(position_shape);
        const Tensor chosen = eq(positions, indices.reshape(kept));
        return Grads{where(chosen, g[0].reshape(kept), zeros({}, {g[0].dtype(), g[0].device()}))};
      },
      {indices});
}

void record_matmul(const Tensor& a, const Tensor& b, const Tensor& out) {
  if (!needs_grad({a, b})) return;
  // Leaves of 2-D products keep a handle, to accumulate into their existing .grad in the GEMM.
  const bool plain = a.dim() == 2 && b.dim() == 2;
  const Tensor a_leaf = plain && a.is_leaf() ? a : Tensor();
  const Tensor b_leaf = plain && b.is_leaf() ? b : Tensor();
  record("MatmulBackward", {a, b}, {out},
         [a = a.detach(), b = b.detach(), a_leaf, b_leaf](const Grads& g, auto& needs) {
           return Grads{needs[0] ? gemm_gradient(a_leaf, g[0], b.transpose(-1, -2)) : Tensor(),
                        needs[1] ? gemm_gradient(b_leaf, a.transpose(-1, -2), g[0]) : Tensor()};
         },
         {a, b});
}

void record_linear(const Tensor& x, const Tensor& weight, const Tensor& bias,
                   const Tensor& pre_activation, LinearActivation activation, const Tensor& out) {
  if (!needs_grad({x, weight, bias})) return;
  const Tensor weight_leaf = weight.is_leaf() ? weight : Tensor();
  record("LinearBackward", {x, weight, bias}, {out},
         [x = x.detach(), weight = weight.detach(), weight_leaf, pre = pre_activation, activation](
             const Grads& g, auto& needs) {
           const Tensor grad = activation == LinearActivation::None
                                   ? g[0]
                                   : fused_backward(activation == LinearActivation::Gelu
                                                        ? BinaryOp::GeluErfBackward
                                                        : BinaryOp::GeluTanhBackward,
                                                    g[0], pre);
           return Grads{needs[0] ? matmul(grad, weight) : Tensor(),
                        needs[1] ? gemm_gradient(weight_leaf, grad.t(), x) : Tensor(),
                        needs[2] ? sum(grad, {0}) : Tensor()};
         },
         {x, weight, pre_activation});
}

void record_attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                      const Tensor& logsumexp, double scale, bool causal) {
  if (!needs_grad({q, k, v})) return;
  const Tensor qd = q.detach(), kd = k.detach(), vd = v.detach(), y = out.detach();
  record("ScaledDotProductFlashAttentionBackward", {q, k, v}, {out},
         [qd, kd, vd, y, logsumexp, scale, causal](const Grads& g, auto&) {
           // Gradients in their operands' memory order, so that the heads' merge back into one
           // [B, T, H * E] gradient is a view; grad_out as it comes, rows of E dense.
           Grads grads{ops::new_heads_like(qd), ops::new_heads_like(kd), ops::new_heads_like(vd)};
           const Tensor go = g[0].strides()[3] == 1 ? g[0] : g[0].contiguous();
           ops::backend_of(qd).attention_backward(grads[0], grads[1], grads[2], go, qd, kd, vd, y,
                                                  logsumexp, scale, causal);
           return grads;
         },
         {qd, kd, vd, y, logsumexp});
}

void record_softmax(const Tensor& x, const Tensor& out, int64_t dim, bool log, double scale) {
  if (!needs_grad({x})) return;
  const Tensor y = out.detach();
  record(log ? "LogSoftmaxBackward" : "SoftmaxBackward", {x}, {out},
         [y, dim, log, scale](const Grads& g, auto&) {
           const Tensor y_rows = ops::as_rows(y, dim);
           const Tensor g_rows = ops::as_rows(g[0], dim);
           Tensor grad = ops::new_like(y_rows);
           if (grad.numel() > 0)
             ops::backend_of(y).softmax_backward(grad, g_rows, y_rows, log, scale);
           return Grads{ops::from_rows(grad, y, dim)};
         },
         {y});
}

void record_dropout(const Tensor& x, const Tensor& mask, const Tensor& out) {
  if (!needs_grad({x})) return;
  record("DropoutBackward", {x}, {out},
         [mask](const Grads& g, auto&) { return Grads{mul(g[0], mask)}; });
}

void record_layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& out,
                       const Tensor& mean, const Tensor& rstd) {
  if (!needs_grad({x, weight, bias})) return;
  record("LayerNormBackward", {x, weight, bias}, {out},
         [x = x.detach(), weight = detached(weight), bias = detached(bias), mean, rstd](
             const Grads& g, auto& needs) {
           // The kernel sees [rows, cols] and [cols]: the same memory as x and the parameters.
           const int64_t rows = mean.numel(), cols = rows == 0 ? 0 : x.numel() / rows;
           const auto matrix = [rows, cols](const Tensor& t) {
             return ops::raw_view(t, {rows, cols}, {cols, 1}, t.offset());
           };
           const auto vector = [cols](const Tensor& t) {
             return t.defined() ? ops::raw_view(t, {cols}, {1}, t.offset()) : t;
           };
           const Tensor grad_out = g[0].contiguous();
           Tensor grad_x = ops::new_like(x);
           Tensor grad_weight = weight.defined() && needs[1] ? zeros_like(weight) : Tensor();
           Tensor grad_bias = bias.defined() && needs[2] ? zeros_like(bias) : Tensor();
           if (x.numel() > 0)
             ops::backend_of(x).layer_norm_backward(matrix(grad_x), vector(grad_weight),
                                                    vector(grad_bias), matrix(grad_out), matrix(x),
                                                    mean, rstd, vector(weight));
           return Grads{grad_x, grad_weight, grad_bias};
         },
         {x, weight, mean, rstd});
}

void record_embedding(const Tensor& weight, const Tensor& indices, const Tensor& out) {
  if (!needs_grad({weight})) return;
  record("EmbeddingBackward", {weight, indices}, {out},
         [weight_shape = weight.shape(), indices](const Grads& g, auto&) {
           Tensor grad_weight = zeros(weight_shape, {g[0].dtype(), g[0].device()});
           const Tensor rows = g[0].reshape({indices.numel(), weight_shape[1]}).contiguous();
           if (rows.numel() > 0)
             ops::backend_of(rows).embedding_backward(grad_weight, rows, indices);
           return Grads{grad_weight, Tensor()};
         },
         {indices});
}

void record_cross_entropy(const Tensor& logits, const Tensor& target, const Tensor& loss,
                          const Tensor& lse, int64_t ignore_index) {
  if (!needs_grad({logits})) return;
  record("CrossEntropyBackward", {logits, target}, {loss},
         [logits = logits.detach(), target, lse, ignore_index](const Grads& g, auto&) {
           Tensor grad = ops::new_like(logits);
           if (grad.numel() > 0)
             ops::backend_of(logits).cross_entropy_backward(grad, g[0].contiguous(), logits, lse,
                                                            target, ignore_index);
           return Grads{grad, Tensor()};
         },
         {logits, target, lse});
}

void record_cat(const std::vector<Tensor>& inputs, const Tensor& out, int64_t dim) {
  if (!needs_grad(inputs)) return;
  std::vector<int64_t> sizes;
  for (const Tensor& t : inputs) sizes.push_back(t.dim() == 0 ? 0 : t.shape()[dim]);
  record("CatBackward", inputs, {out}, [sizes, dim](const Grads& g, auto& needs) {
    Grads grads(sizes.size());
    int64_t offset = 0;
    for (size_t i = 0; i < sizes.size(); ++i) {
      if (needs[i]) grads[i] = g[0].narrow(dim, offset, sizes[i]);
      offset += sizes[i];
    }
    return grads;
  });
}

void record_split(const Tensor& x, const std::vector<Tensor>& outputs, int64_t dim) {
  if (!needs_grad({x})) return;
  record("SplitBackward", {x}, outputs,
         [dim](const Grads& g, auto&) { return Grads{cat(g, dim)}; });
}

void record_reshape(const char* name, const Tensor& x, const Tensor& out) {
  if (!needs_grad({x})) return;
  record(name, {x}, {out},
         [shape = x.shape()](const Grads& g, auto&) { return Grads{g[0].reshape(shape)}; });
}

void record_permute(const Tensor& x, const Tensor& out, const Shape& dims) {
  if (!needs_grad({x})) return;
  Shape inverse(dims.size());
  for (size_t i = 0; i < dims.size(); ++i) inverse[dims[i]] = static_cast<int64_t>(i);
  record("PermuteBackward", {x}, {out},
         [inverse](const Grads& g, auto&) { return Grads{g[0].permute(inverse)}; });
}

void record_expand(const Tensor& x, const Tensor& out) {
  if (!needs_grad({x})) return;
  // The node sums the gradient back to x's shape.
  record("ExpandBackward", {x}, {out}, [](const Grads& g, auto&) { return Grads{g[0]}; });
}

void record_slice(const char* name, const Tensor& x, const Tensor& out, int64_t dim, int64_t start,
                  int64_t step, bool removes_dim) {
  if (!needs_grad({x})) return;
  const int64_t length = removes_dim ? 1 : out.shape()[dim];
  record(name, {x}, {out},
         [shape = x.shape(), dim, start, step, length, removes_dim](const Grads& g, auto&) {
           Tensor grad = zeros(shape, {g[0].dtype(), g[0].device()});
           Tensor window = removes_dim
                               ? grad.select(dim, start)
                               : grad.slice(dim, start, start + step * (length - 1) + 1, step);
           window.copy_(g[0]);
           return Grads{grad};
         });
}

}  // namespace st::autograd
