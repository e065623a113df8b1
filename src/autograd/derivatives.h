#pragma once
// The backward rules of every differentiable op, in one place (derivatives.cpp). The op front-end
// calls record_<op>() after computing the forward; each records a node when an input needs a
// gradient. Rules are written with the ops themselves, so they run on every backend.

#include "autograd/node.h"
#include "backend/backend.h"

namespace st::autograd {

void record_unary(backend::UnaryOp op, const Tensor& x, const Tensor& out, double alpha,
                  double beta);
void record_binary(backend::BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& out);
void record_where(const Tensor& cond, const Tensor& a, const Tensor& b, const Tensor& out);
// sum and mean over `dims` (sorted); out has the keepdim shape or not.
void record_reduce(backend::ReduceOp op, const Tensor& x, const Tensor& out,
                   const std::vector<int64_t>& dims);
// max/min over `dims` (sorted): the gradient is shared evenly among the elements equal to the
// result.
void record_extreme(const char* name, const Tensor& x, const Tensor& out,
                    const std::vector<int64_t>& dims);
// max/min along dim with indices: the gradient goes to the chosen index.
void record_extreme_dim(const char* name, const Tensor& x, const Tensor& values,
                        const Tensor& indices, int64_t dim, bool keepdim);
// a [..., M, K] @ b [..., K, N] with broadcast batch dims.
void record_matmul(const Tensor& a, const Tensor& b, const Tensor& out);
// out [N, out] = x [N, in] @ weight^T + bias.
// pre_activation: the activation's input (undefined for LinearActivation::None).
void record_linear(const Tensor& x, const Tensor& weight, const Tensor& bias,
                   const Tensor& pre_activation, LinearActivation activation, const Tensor& out);
// out = softmax(scale * x) along dim (a causal mask needs no rule of its own: masked outputs are
// 0).
void record_softmax(const Tensor& x, const Tensor& out, int64_t dim, bool log, double scale);
// out = softmax(scale * q k^T) v by the backend's fused attention_forward, which saved logsumexp;
// the backward is the backend's attention_backward.
void record_attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                      const Tensor& logsumexp, double scale, bool causal);
// out = x * mask.
void record_dropout(const Tensor& x, const Tensor& mask, const Tensor& out);
void record_layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& out,
                       const Tensor& mean, const Tensor& rstd);
void record_embedding(const Tensor& weight, const Tensor& indices, const Tensor& out);
// loss [N] per row from logits [N, C].
void record_cross_entropy(const Tensor& logits, const Tensor& target, const Tensor& loss,
                          const Tensor& lse, int64_t ignore_index);
void record_cat(const std::vector<Tensor>& inputs, const Tensor& out, int64_t dim);
void record_split(const Tensor& x, const std::vector<Tensor>& outputs, int64_t dim);

// Views. Each out shares x's storage.
void record_reshape(const char* name, const Tensor& x,
                    const Tensor& out);  // view, reshape, (un)squeeze
void record_permute(const Tensor& x, const Tensor& out, const Shape& dims);
void record_expand(const Tensor& x, const Tensor& out);
// narrow/slice/select: out is x.slice(dim, start, start + step * len, step), with `dim` removed for
// select.
void record_slice(const char* name, const Tensor& x, const Tensor& out, int64_t dim, int64_t start,
                  int64_t step, bool removes_dim);

}  // namespace st::autograd
