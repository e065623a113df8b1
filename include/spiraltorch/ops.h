#pragma once
// Every op of SpiralTorch as a free function. Each validates its arguments (shape, dtype and device
// errors come from here), computes the output shape, records the autograd node and calls the
// backend of its inputs' device. Elementwise ops broadcast as NumPy does.

#include <optional>
#include <string_view>
#include <tuple>
#include <vector>

#include "spiraltorch/tensor.h"

namespace st {

struct TensorOptions {
  DType dtype = kDefaultFloat;
  Device device = kCPU;
  bool requires_grad = false;
};

// Factories.
Tensor empty(const Shape& shape, const TensorOptions& options = {});
Tensor zeros(const Shape& shape, const TensorOptions& options = {});
Tensor ones(const Shape& shape, const TensorOptions& options = {});
Tensor full(const Shape& shape, const Scalar& value, const TensorOptions& options = {});
Tensor zeros_like(const Tensor& t);
Tensor ones_like(const Tensor& t);
Tensor full_like(const Tensor& t, const Scalar& value);
Tensor empty_like(const Tensor& t);
// [start, end) in steps of `step`; an int64 tensor unless options name a dtype or a bound is
// fractional.
Tensor arange(const Scalar& end, std::optional<TensorOptions> options = std::nullopt);
Tensor arange(const Scalar& start, const Scalar& end, const Scalar& step = 1,
              std::optional<TensorOptions> options = std::nullopt);
Tensor rand(const Shape& shape, const TensorOptions& options = {});   // uniform [0, 1)
Tensor randn(const Shape& shape, const TensorOptions& options = {});  // standard normal
Tensor rand_like(const Tensor& t);
Tensor randn_like(const Tensor& t);
// Copies `shape`'s numel values of type T from host memory.
template <typename T>
Tensor from_buffer(const T* data, const Shape& shape,
                   const TensorOptions& options = {dtype_of<T>()});
template <typename T>
Tensor tensor(std::initializer_list<T> values, const TensorOptions& options = {dtype_of<T>()}) {
  return from_buffer(values.begin(), {static_cast<int64_t>(values.size())}, options);
}
Tensor scalar_tensor(const Scalar& value, const TensorOptions& options);

// Random numbers: one counter-based (Philox) stream per device type, reproducible for a seed.
// manual_seed resets every stream; the state (seed and next counter) can be saved and restored,
// which is how a resumed training run draws the numbers an uninterrupted one would.
void manual_seed(uint64_t seed);
struct RngState {
  uint64_t seed = 0x5eed;
  uint64_t offset = 0;
};
RngState rng_state(DeviceType type = DeviceType::CPU);
void set_rng_state(const RngState& state, DeviceType type = DeviceType::CPU);

// Elementwise arithmetic, broadcast, with PyTorch's type promotion.
Tensor add(const Tensor& a, const Tensor& b, const Scalar& alpha = 1);  // a + alpha * b
Tensor sub(const Tensor& a, const Tensor& b, const Scalar& alpha = 1);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);  // true division: integers give float32
Tensor pow(const Tensor& a, const Tensor& b);
Tensor pow(const Tensor& a, const Scalar& exponent);
Tensor maximum(const Tensor& a, const Tensor& b);
Tensor minimum(const Tensor& a, const Tensor& b);
Tensor add(const Tensor& a, const Scalar& b);
Tensor sub(const Tensor& a, const Scalar& b);
Tensor mul(const Tensor& a, const Scalar& b);
Tensor div(const Tensor& a, const Scalar& b);

Tensor neg(const Tensor& x);
Tensor exp(const Tensor& x);
Tensor log(const Tensor& x);
Tensor sqrt(const Tensor& x);
Tensor rsqrt(const Tensor& x);
Tensor abs(const Tensor& x);
Tensor tanh(const Tensor& x);
Tensor sigmoid(const Tensor& x);
Tensor relu(const Tensor& x);
enum class GeluApproximate : uint8_t { None, Tanh };  // erf form, or the tanh approximation
Tensor gelu(const Tensor& x, GeluApproximate approximate = GeluApproximate::None);
Tensor clamp(const Tensor& x, std::optional<Scalar> min, std::optional<Scalar> max);

// Comparisons give bool tensors.
Tensor eq(const Tensor& a, const Tensor& b);
Tensor ne(const Tensor& a, const Tensor& b);
Tensor lt(const Tensor& a, const Tensor& b);
Tensor le(const Tensor& a, const Tensor& b);
Tensor gt(const Tensor& a, const Tensor& b);
Tensor ge(const Tensor& a, const Tensor& b);
Tensor eq(const Tensor& a, const Scalar& b);
Tensor ne(const Tensor& a, const Scalar& b);
Tensor lt(const Tensor& a, const Scalar& b);
Tensor le(const Tensor& a, const Scalar& b);
Tensor gt(const Tensor& a, const Scalar& b);
Tensor ge(const Tensor& a, const Scalar& b);
// Picks a where cond is true, else b; all three broadcast.
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);

// Reductions. An empty `dims` reduces over all dims.
Tensor sum(const Tensor& x, const Shape& dims = {}, bool keepdim = false);
Tensor mean(const Tensor& x, const Shape& dims = {}, bool keepdim = false);
Tensor max(const Tensor& x);  // over all elements
Tensor min(const Tensor& x);
// Largest (smallest) values over `dims` (empty: all), without indices; the gradient is shared
// evenly among tied elements, as PyTorch's amax/amin.
Tensor amax(const Tensor& x, const Shape& dims = {}, bool keepdim = false);
Tensor amin(const Tensor& x, const Shape& dims = {}, bool keepdim = false);
// Values and int64 indices along one dim; the first index among equal values.
std::tuple<Tensor, Tensor> max(const Tensor& x, int64_t dim, bool keepdim = false);
std::tuple<Tensor, Tensor> min(const Tensor& x, int64_t dim, bool keepdim = false);
Tensor argmax(const Tensor& x, std::optional<int64_t> dim = std::nullopt, bool keepdim = false);
Tensor argmin(const Tensor& x, std::optional<int64_t> dim = std::nullopt, bool keepdim = false);
// Reduces a broadcast result back to `shape` by summing: the gradient of expand.
Tensor sum_to(const Tensor& x, const Shape& shape);

// Linear algebra: 1-D, 2-D and batched with broadcast batch dims, as torch.matmul.
Tensor matmul(const Tensor& a, const Tensor& b);
// input [..., in] @ weight [out, in]^T + bias [out], as torch.nn.functional.linear, optionally
// followed by a GELU (erf form, or the tanh approximation) fused into the GEMM where the backend
// can: linear(x, w, b, LinearActivation::Gelu) equals gelu(linear(x, w, b)).
enum class LinearActivation : uint8_t { None, Gelu, GeluTanh };
Tensor linear(const Tensor& input, const Tensor& weight, const Tensor& bias = {},
              LinearActivation activation = LinearActivation::None);

// Neural-network ops.
Tensor softmax(const Tensor& x, int64_t dim);
Tensor log_softmax(const Tensor& x, int64_t dim);
Tensor layer_norm(const Tensor& x, const Shape& normalized_shape, const Tensor& weight = {},
                  const Tensor& bias = {}, double eps = 1e-5);
Tensor embedding(const Tensor& weight, const Tensor& indices);
enum class Reduction : uint8_t { None, Mean, Sum };
// logits [N, C] (or [C]), target int [N] of class indices; fused log_softmax + nll.
Tensor cross_entropy(const Tensor& logits, const Tensor& target, int64_t ignore_index = -100,
                     Reduction reduction = Reduction::Mean);
Tensor dropout(const Tensor& x, double p, bool training = true);
// Attention as torch.nn.functional.scaled_dot_product_attention: softmax(q k^T * scale) v over
// q [..., L, E], k [..., S, E], v [..., S, Ev] (batch dims broadcast); scale defaults to
// 1/sqrt(E). is_causal masks key j > query i (top-left aligned). The causal mask and the scale are
// fused into the softmax kernel.
Tensor scaled_dot_product_attention(const Tensor& q, const Tensor& k, const Tensor& v,
                                    bool is_causal = false,
                                    std::optional<double> scale = std::nullopt);

// Fused optimizer updates, in place on lists of parameters (outside autograd), one backend kernel
// per list. The maths is PyTorch's. SGD, with g the gradient:
//   g += weight_decay * p; if momentum: buf = first_step ? g : momentum * buf + (1 - dampening) *
//   g, g = nesterov ? g + momentum * buf : buf; p -= lr * g.
struct SgdUpdate {
  double lr = 1e-3;
  double momentum = 0;
  double dampening = 0;
  double weight_decay = 0;
  bool nesterov = false;
  bool first_step = false;  // momentum buffers start as the gradient
  // Optional: a float64 tensor {lr, step} on the parameters' device, read when the update runs in
  // place of lr (and Adam's step). A CUDA graph's replays thus take the values of their time.
  Tensor schedule;
};
// Adam (AdamW when decoupled_weight_decay), step t counted from 1:
//   decoupled: p *= 1 - lr * weight_decay, else g += weight_decay * p;
//   m = beta1 m + (1 - beta1) g; v = beta2 v + (1 - beta2) g^2;
//   p -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps).
struct AdamUpdate {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0;
  bool decoupled_weight_decay = false;
  int64_t step = 1;
  Tensor schedule;  // as SgdUpdate's
};
void sgd_update_(const std::vector<Tensor>& params, const std::vector<Tensor>& grads,
                 const std::vector<Tensor>& momentum_buffers, const SgdUpdate& update);
void adam_update_(const std::vector<Tensor>& params, const std::vector<Tensor>& grads,
                  const std::vector<Tensor>& exp_avgs, const std::vector<Tensor>& exp_avg_sqs,
                  const AdamUpdate& update);
// The 2-norm of all elements of all tensors together, as a 0-d tensor on their device (f64 if
// any is f64, else f32); computed without reading it back to the host. Outside autograd.
Tensor global_norm(const std::vector<Tensor>& tensors);

// Joining and splitting.
Tensor cat(const std::vector<Tensor>& tensors, int64_t dim = 0);
Tensor stack(const std::vector<Tensor>& tensors, int64_t dim = 0);
// Views of `x` in pieces of `split_size` along dim (the last one may be shorter); one autograd
// node.
std::vector<Tensor> split(const Tensor& x, int64_t split_size, int64_t dim = 0);
std::vector<Tensor> split(const Tensor& x, const Shape& sizes, int64_t dim = 0);
std::vector<Tensor> chunk(const Tensor& x, int64_t chunks, int64_t dim = 0);

// Utilities of the shape checks, shared with the bindings.
Shape broadcast_shapes(const Shape& a, const Shape& b, std::string_view op = "broadcast");

// Operators.
Tensor operator+(const Tensor& a, const Tensor& b);
Tensor operator-(const Tensor& a, const Tensor& b);
Tensor operator*(const Tensor& a, const Tensor& b);
Tensor operator/(const Tensor& a, const Tensor& b);
Tensor operator+(const Tensor& a, const Scalar& b);
Tensor operator-(const Tensor& a, const Scalar& b);
Tensor operator*(const Tensor& a, const Scalar& b);
Tensor operator/(const Tensor& a, const Scalar& b);
Tensor operator+(const Scalar& a, const Tensor& b);
Tensor operator-(const Scalar& a, const Tensor& b);
Tensor operator*(const Scalar& a, const Tensor& b);
Tensor operator/(const Scalar& a, const Tensor& b);
Tensor operator-(const Tensor& x);

}  // namespace st
