#include "gpt.h"

namespace st_train {

using st::Tensor;
namespace nn = st::nn;

Block::Block(const GPTConfig& c) {
  ln1_ = register_module("ln1", std::make_shared<nn::LayerNorm>(st::Shape{c.d_model}));
  attn_ = register_module("attn",
                          std::make_shared<nn::CausalSelfAttention>(c.d_model, c.heads, c.dropout));
  ln2_ = register_module("ln2", std::make_shared<nn::LayerNorm>(st::Shape{c.d_model}));
  fc_ = register_module("fc", std::make_shared<nn::Linear>(c.d_model, 4 * c.d_model));
  proj_ = register_module("proj", std::make_shared<nn::Linear>(4 * c.d_model, c.d_model));
  dropout_ = register_module("dropout", std::make_shared<nn::Dropout>(c.dropout));
}

Tensor Block::forward(const Tensor& x) {
  const Tensor h = x + attn_->forward(ln1_->forward(x));
  const Tensor hidden =
      st::linear(ln2_->forward(h), fc_->weight, fc_->bias, st::LinearActivation::Gelu);
  return h + dropout_->forward(proj_->forward(hidden));
}

GPT::GPT(const GPTConfig& c) : config_(c) {
  ST_CHECK(c.vocab_size > 0 && c.context > 0 && c.layers > 0, ValueError,
           "[GPT] vocab_size, context and layers must be positive, got ", c.vocab_size, ", ",
           c.context, " and ", c.layers);
  token_ = register_module("token", std::make_shared<nn::Embedding>(c.vocab_size, c.d_model));
  position_ = register_module("position", std::make_shared<nn::Embedding>(c.context, c.d_model));
  dropout_ = register_module("dropout", std::make_shared<nn::Dropout>(c.dropout));
  blocks_ = register_module("blocks", std::make_shared<nn::Sequential>());
  for (int64_t i = 0; i < c.layers; ++i) blocks_->push_back(std::make_shared<Block>(c));
  ln_f_ = register_module("ln_f", std::make_shared<nn::LayerNorm>(st::Shape{c.d_model}));
  head_ = register_module("head", std::make_shared<nn::Linear>(c.d_model, c.vocab_size, false));
}

Tensor GPT::forward(const Tensor& tokens) {
  ST_CHECK(tokens.dim() == 2 && tokens.shape()[1] <= config_.context, ShapeError,
           "[GPT] expected tokens [batch, time] with time <= ", config_.context, ", got ",
           tokens.shape());
  const Tensor positions =
      st::arange(tokens.shape()[1], st::TensorOptions{st::DType::Int64, tokens.device()});
  const Tensor x = dropout_->forward(token_->forward(tokens) + position_->forward(positions));
  return head_->forward(ln_f_->forward(blocks_->forward(x)));
}

}  // namespace st_train
