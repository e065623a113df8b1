#pragma once
// A GPT language model (decoder-only transformer, pre-norm blocks): token and position
// embeddings, blocks of causal self-attention and a GELU MLP with residual connections, a final
// LayerNorm and a linear head to vocabulary logits.

#include <spiraltorch/nn.h>

#include <memory>
#include <string_view>

namespace st_train {

struct GPTConfig {
  int64_t vocab_size = 0;
  int64_t context = 64;  // the longest sequence the position table covers
  int64_t layers = 2;
  int64_t d_model = 128;
  int64_t heads = 4;
  double dropout = 0;
};

// x + attn(ln1(x)), then x + mlp(ln2(x)) with mlp = dropout(proj(gelu(fc(.)))), fc and GELU as
// one fused linear.
class Block : public st::nn::Module {
 public:
  explicit Block(const GPTConfig& config);
  std::string_view name() const override { return "Block"; }
  st::Tensor forward(const st::Tensor& x) override;

 private:
  std::shared_ptr<st::nn::LayerNorm> ln1_, ln2_;
  std::shared_ptr<st::nn::CausalSelfAttention> attn_;
  std::shared_ptr<st::nn::Linear> fc_, proj_;
  std::shared_ptr<st::nn::Dropout> dropout_;
};

class GPT : public st::nn::Module {
 public:
  explicit GPT(const GPTConfig& config);
  std::string_view name() const override { return "GPT"; }
  // tokens [B, T] int64 (T <= context) -> logits [B, T, vocab_size].
  st::Tensor forward(const st::Tensor& tokens) override;
  const GPTConfig& config() const { return config_; }

 private:
  GPTConfig config_;
  std::shared_ptr<st::nn::Embedding> token_, position_;
  std::shared_ptr<st::nn::Dropout> dropout_;
  std::shared_ptr<st::nn::Sequential> blocks_;
  std::shared_ptr<st::nn::LayerNorm> ln_f_;
  std::shared_ptr<st::nn::Linear> head_;
};

}  // namespace st_train
