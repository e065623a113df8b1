// Tensor methods that forward to the free functions, and reading values back to the host.

#include "ops/op_utils.h"

namespace st {

Tensor Tensor::sum(const Shape& dims, bool keepdim) const { return st::sum(*this, dims, keepdim); }
Tensor Tensor::mean(const Shape& dims, bool keepdim) const {
  return st::mean(*this, dims, keepdim);
}
Tensor Tensor::exp() const { return st::exp(*this); }
Tensor Tensor::log() const { return st::log(*this); }
Tensor Tensor::sqrt() const { return st::sqrt(*this); }
Tensor Tensor::abs() const { return st::abs(*this); }
Tensor Tensor::neg() const { return st::neg(*this); }
Tensor Tensor::tanh() const { return st::tanh(*this); }
Tensor Tensor::sigmoid() const { return st::sigmoid(*this); }
Tensor Tensor::relu() const { return st::relu(*this); }
Tensor Tensor::pow(const Scalar& exponent) const { return st::pow(*this, exponent); }
Tensor Tensor::matmul(const Tensor& other) const { return st::matmul(*this, other); }

void Tensor::zero_grad() const {
  if (Tensor g = grad(); g.defined()) {
    NoGradGuard no_grad;
    g.zero_();
  }
}

namespace {
// This tensor's values as a contiguous CPU tensor outside the graph.
Tensor host_copy(const Tensor& t) {
  NoGradGuard no_grad;
  return t.detach().to(kCPU).contiguous();
}
}  // namespace

Scalar Tensor::item() const {
  ST_CHECK(numel() == 1, ValueError,
           "[item] only a tensor with one element can be converted to a number; got shape ",
           shape());
  const Tensor host = host_copy(*this);
  return dispatch_dtype(dtype(), [&](auto zero) -> Scalar {
    return *static_cast<const decltype(zero)*>(host.data_ptr());
  });
}

template <typename T>
std::vector<T> Tensor::to_vector() const {
  const Tensor host = host_copy(*this).to(dtype_of<T>());
  const T* data = static_cast<const T*>(host.data_ptr());
  return std::vector<T>(data, data + host.numel());
}
template std::vector<float> Tensor::to_vector() const;
template std::vector<double> Tensor::to_vector() const;
template std::vector<Half> Tensor::to_vector() const;
template std::vector<BFloat16> Tensor::to_vector() const;
template std::vector<int32_t> Tensor::to_vector() const;
template std::vector<int64_t> Tensor::to_vector() const;
template std::vector<bool> Tensor::to_vector() const;

}  // namespace st
