// torch.nn.init's rules, drawing from SpiralTorch's seeded streams. Writes happen outside autograd,
// as initialization is not part of any computation to differentiate.

#include <cmath>

#include "spiraltorch/autograd.h"
#include "spiraltorch/nn.h"

namespace st::nn::init {

namespace {

// fan_in and fan_out of a weight [out, in, k...] (a 1-D tensor counts as [out]).
std::pair<double, double> fans(const Tensor& t, const char* op) {
  ST_CHECK(t.dim() >= 2, ShapeError, "[", op, "] needs a weight of at least 2 dims, got shape ",
           t.shape());
  const double receptive = static_cast<double>(t.numel() / (t.shape()[0] * t.shape()[1]));
  return {static_cast<double>(t.shape()[1]) * receptive,
          static_cast<double>(t.shape()[0]) * receptive};
}

}  // namespace

void uniform_(const Tensor& t, double low, double high) {
  NoGradGuard no_grad;
  Tensor(t).copy_(add(mul(rand(t.shape(), {t.dtype(), t.device()}), high - low), low));
}

void normal_(const Tensor& t, double mean, double std) {
  NoGradGuard no_grad;
  Tensor(t).copy_(add(mul(randn(t.shape(), {t.dtype(), t.device()}), std), mean));
}

void zeros_(const Tensor& t) {
  NoGradGuard no_grad;
  Tensor(t).zero_();
}

void ones_(const Tensor& t) {
  NoGradGuard no_grad;
  Tensor(t).fill_(1);
}

void kaiming_uniform_(const Tensor& t, double a) {
  const double gain = std::sqrt(2.0 / (1 + a * a));
  const double bound = gain * std::sqrt(3.0 / fans(t, "kaiming_uniform_").first);
  uniform_(t, -bound, bound);
}

void xavier_uniform_(const Tensor& t, double gain) {
  const auto [fan_in, fan_out] = fans(t, "xavier_uniform_");
  const double bound = gain * std::sqrt(6.0 / (fan_in + fan_out));
  uniform_(t, -bound, bound);
}

}  // namespace st::nn::init
