// The layers of nn.h. Each registers its tensors and children in its constructor; the forward
// passes are the ops of ops.h.

#include <cmath>
#include <sstream>

#include "spiraltorch/nn.h"

namespace st::nn {

namespace {

std::string shape_text(const Shape& shape) {
  std::ostringstream out;
  out << "(";
  for (size_t i = 0; i < shape.size(); ++i) out << (i ? ", " : "") << shape[i];
  out << (shape.size() == 1 ? ",)" : ")");
  return out.str();
}

const char* boolean(bool value) { return value ? "true" : "false"; }

}  // namespace

Linear::Linear(int64_t in_features, int64_t out_features, bool bias, const TensorOptions& options)
    : in_features_(in_features), out_features_(out_features) {
  ST_CHECK(in_features > 0 && out_features > 0, ValueError,
           "[Linear] in_features and out_features must be positive, got ", in_features, " and ",
           out_features);
  const TensorOptions opts{options.dtype, options.device, false};
  weight = empty({out_features, in_features}, opts);
  init::kaiming_uniform_(weight, std::sqrt(5.0));
  register_parameter("weight", weight);
  if (bias) {
    const double bound = 1 / std::sqrt(static_cast<double>(in_features));
    this->bias = empty({out_features}, opts);
    init::uniform_(this->bias, -bound, bound);
    register_parameter("bias", this->bias);
  }
}

Tensor Linear::forward(const Tensor& input) { return linear(input, weight, bias); }

std::string Linear::extra_repr() const {
  return detail::concat("in_features=", in_features_, ", out_features=", out_features_,
                        ", bias=", boolean(bias.defined()));
}

LayerNorm::LayerNorm(Shape normalized_shape, double eps, bool elementwise_affine,
                     const TensorOptions& options)
    : normalized_shape_(std::move(normalized_shape)), eps_(eps) {
  ST_CHECK(!normalized_shape_.empty(), ValueError, "[LayerNorm] normalized_shape is empty");
  if (elementwise_affine) {
    const TensorOptions opts{options.dtype, options.device, false};
    weight = ones(normalized_shape_, opts);
    bias = zeros(normalized_shape_, opts);
    register_parameter("weight", weight);
    register_parameter("bias", bias);
  }
}

Tensor LayerNorm::forward(const Tensor& input) {
  return layer_norm(input, normalized_shape_, weight, bias, eps_);
}

std::string LayerNorm::extra_repr() const {
  return detail::concat(shape_text(normalized_shape_), ", eps=", eps_,
                        ", elementwise_affine=", boolean(weight.defined()));
}

Embedding::Embedding(int64_t num_embeddings, int64_t embedding_dim, const TensorOptions& options) {
  ST_CHECK(num_embeddings > 0 && embedding_dim > 0, ValueError,
           "[Embedding] num_embeddings and embedding_dim must be positive, got ", num_embeddings,
           " and ", embedding_dim);
  weight = empty({num_embeddings, embedding_dim}, {options.dtype, options.device, false});
  init::normal_(weight);
  register_parameter("weight", weight);
}

Tensor Embedding::forward(const Tensor& indices) { return embedding(weight, indices); }

std::string Embedding::extra_repr() const {
  return detail::concat(weight.shape()[0], ", ", weight.shape()[1]);
}

Dropout::Dropout(double p) : p_(p) {
  ST_CHECK(p >= 0 && p <= 1, ValueError, "[Dropout] probability must be in [0, 1], got ", p);
}

Tensor Dropout::forward(const Tensor& input) { return dropout(input, p_, is_training()); }

std::string Dropout::extra_repr() const { return detail::concat("p=", p_); }

std::string GELU::extra_repr() const {
  return approximate_ == GeluApproximate::Tanh ? "approximate='tanh'" : "";
}

Sequential::Sequential(std::vector<std::shared_ptr<Module>> modules) {
  for (auto& module : modules) push_back(std::move(module));
}

void Sequential::push_back(std::shared_ptr<Module> module) {
  ST_CHECK(module != nullptr, ValueError, "[Sequential] cannot hold a null module");
  register_module(std::to_string(modules_.size()), module);
  modules_.push_back(std::move(module));
}

Tensor Sequential::forward(const Tensor& input) {
  Tensor x = input;
  for (auto& module : modules_) x = module->forward(x);
  return x;
}

CausalSelfAttention::CausalSelfAttention(int64_t d_model, int64_t num_heads, double dropout,
                                         bool bias, const TensorOptions& options)
    : d_model_(d_model), num_heads_(num_heads) {
  ST_CHECK(num_heads > 0 && d_model > 0 && d_model % num_heads == 0, ValueError,
           "[CausalSelfAttention] d_model (", d_model,
           ") must be a positive multiple of num_heads (", num_heads, ")");
  qkv = register_module("qkv", std::make_shared<Linear>(d_model, 3 * d_model, bias, options));
  proj = register_module("proj", std::make_shared<Linear>(d_model, d_model, bias, options));
  dropout_ = register_module("dropout", std::make_shared<Dropout>(dropout));
}

Tensor CausalSelfAttention::forward(const Tensor& x) {
  ST_CHECK(x.dim() == 3 && x.shape()[2] == d_model_, ShapeError,
           "[CausalSelfAttention] expected input [batch, time, ", d_model_, "], got ", x.shape());
  const int64_t B = x.shape()[0], T = x.shape()[1], H = num_heads_, D = d_model_ / num_heads_;
  // [B, T, 3, H, D] -> three [B, H, T, D] views.
  const Tensor packed = qkv->forward(x).view({B, T, 3, H, D});
  const Tensor q = packed.select(2, 0).transpose(1, 2);
  const Tensor k = packed.select(2, 1).transpose(1, 2);
  const Tensor v = packed.select(2, 2).transpose(1, 2);
  const Tensor heads = scaled_dot_product_attention(q, k, v, /*is_causal=*/true);
  const Tensor merged = heads.transpose(1, 2).reshape({B, T, d_model_});
  return dropout_->forward(proj->forward(merged));
}

std::string CausalSelfAttention::extra_repr() const {
  return detail::concat("d_model=", d_model_, ", num_heads=", num_heads_);
}

}  // namespace st::nn
