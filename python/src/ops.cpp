// The free functions of ops.h as st.* functions: factories, elementwise math, reductions, matmul,
// joins, the neural-network ops (under the names st.nn.functional re-exports), random seeding and
// the fused optimizer updates.

#include <string>

#include "bindings.h"

using namespace nb::literals;

namespace st::python {
namespace {

using T = const Tensor&;
using S = const Scalar&;

TensorOptions options(std::optional<DType> dtype, std::optional<Device> device, bool requires_grad,
                      DType fallback = kDefaultFloat) {
  return {dtype.value_or(fallback), device.value_or(kCPU), requires_grad};
}

// Options of a *_like factory: the model's dtype and device unless given.
TensorOptions like_options(T like, std::optional<DType> dtype, std::optional<Device> device,
                           bool requires_grad) {
  return {dtype.value_or(like.dtype()), device.value_or(like.device()), requires_grad};
}

Reduction reduction_from(const std::string& name) {
  if (name == "mean") return Reduction::Mean;
  if (name == "sum") return Reduction::Sum;
  if (name == "none") return Reduction::None;
  throw ValueError("[cross_entropy] reduction must be 'mean', 'sum' or 'none', got '" + name + "'");
}

GeluApproximate gelu_from(const std::string& name) {
  if (name == "none") return GeluApproximate::None;
  if (name == "tanh") return GeluApproximate::Tanh;
  throw ValueError("[gelu] approximate must be 'none' or 'tanh', got '" + name + "'");
}

template <typename Fn>
Tensor without_gil(Fn&& fn) {
  nb::gil_scoped_release release;
  return fn();
}

void bind_factories(nb::module_& m) {
  m.def(
      "zeros",
      [](nb::args size, std::optional<DType> dtype, std::optional<Device> device, bool rg) {
        return zeros(shape_from_args(size, "zeros"), options(dtype, device, rg));
      },
      "size"_a, nb::kw_only(), "dtype"_a = nb::none(), "device"_a = nb::none(),
      "requires_grad"_a = false, "A tensor of zeros: st.zeros(2, 3) or st.zeros((2, 3)).");
  m.def(
      "ones",
      [](nb::args size, std::optional<DType> dtype, std::optional<Device> device, bool rg) {
        return ones(shape_from_args(size, "ones"), options(dtype, device, rg));
      },
      "size"_a, nb::kw_only(), "dtype"_a = nb::none(), "device"_a = nb::none(),
      "requires_grad"_a = false, "A tensor of ones.");
  m.def(
      "empty",
      [](nb::args size, std::optional<DType> dtype, std::optional<Device> device, bool rg) {
        return empty(shape_from_args(size, "empty"), options(dtype, device, rg));
      },
      "size"_a, nb::kw_only(), "dtype"_a = nb::none(), "device"_a = nb::none(),
      "requires_grad"_a = false, "An uninitialized tensor.");
  m.def(
      "rand",
      [](nb::args size, std::optional<DType> dtype, std::optional<Device> device, bool rg) {
        return rand(shape_from_args(size, "rand"), options(dtype, device, rg));
      },
      "size"_a, nb::kw_only(), "dtype"_a = nb::none(), "device"_a = nb::none(),
      "requires_grad"_a = false, "Uniform random numbers in [0, 1), seeded by st.manual_seed.");
  m.def(
      "randn",
      [](nb::args size, std::optional<DType> dtype, std::optional<Device> device, bool rg) {
        return randn(shape_from_args(size, "randn"), options(dtype, device, rg));
      },
      "size"_a, nb::kw_only(), "dtype"_a = nb::none(), "device"_a = nb::none(),
      "requires_grad"_a = false, "Standard normal random numbers, seeded by st.manual_seed.");
  m.def(
      "full",
      [](nb::handle size, S value, std::optional<DType> dtype, std::optional<Device> device,
         bool rg) {
        // As PyTorch: the fill value's kind picks the dtype when none is given.
        const DType fallback = value.is_floating() ? kDefaultFloat : value.dtype();
        return full(shape_from_object(size, "full"), value, options(dtype, device, rg, fallback));
      },
      "size"_a, "fill_value"_a, nb::kw_only(), "dtype"_a = nb::none(), "device"_a = nb::none(),
      "requires_grad"_a = false, "A tensor filled with `fill_value`.");
  m.def(
      "arange",
      [](S start, std::optional<Scalar> end, S step, std::optional<DType> dtype,
         std::optional<Device> device, bool rg) {
        std::optional<TensorOptions> opts;
        if (dtype || device || rg) {
          // Without a dtype, the bounds decide it (int64 for ints, float32 otherwise).
          const bool fractional =
              start.is_floating() || step.is_floating() || (end && end->is_floating());
          opts = options(dtype, device, rg, fractional ? kDefaultFloat : DType::Int64);
        }
        if (!end) return arange(Scalar(0), start, step, opts);
        return arange(start, *end, step, opts);
      },
      "start"_a, "end"_a = nb::none(), "step"_a = 1, nb::kw_only(), "dtype"_a = nb::none(),
      "device"_a = nb::none(), "requires_grad"_a = false,
      "Values from start to end (exclusive) in steps: st.arange(5), st.arange(1, 2, 0.25).");

  const char* like_doc = "Like the namesake factory, with `input`'s shape, dtype and device.";
  m.def(
      "zeros_like",
      [](T x, std::optional<DType> dtype, std::optional<Device> device, bool rg) {
        return zeros(x.shape(), like_options(x, dtype, device, rg));
      },
      "input"_a, nb::kw_only(), "dtype"_a = nb::none(), "device"_a = nb::none(),
      "requires_grad"_a = false, like_doc);
  m.def(
      "ones_like",
      [](T x, std::optional<DType> dtype, std::optional<Device> device, bool rg) {
        return ones(x.shape(), like_options(x, dtype, device, rg));
      },
      "input"_a, nb::kw_only(), "dtype"_a = nb::none(), "device"_a = nb::none(),
      "requires_grad"_a = false, like_doc);
  m.def(
      "empty_like",
      [](T x, std::optional<DType> dtype, std::optional<Device> device, bool rg) {
        return empty(x.shape(), like_options(x, dtype, device, rg));
      },
      "input"_a, nb::kw_only(), "dtype"_a = nb::none(), "device"_a = nb::none(),
      "requires_grad"_a = false, like_doc);
  m.def(
      "full_like",
      [](T x, S value, std::optional<DType> dtype, std::optional<Device> device, bool rg) {
        return full(x.shape(), value, like_options(x, dtype, device, rg));
      },
      "input"_a, "fill_value"_a, nb::kw_only(), "dtype"_a = nb::none(), "device"_a = nb::none(),
      "requires_grad"_a = false, like_doc);
  m.def(
      "rand_like",
      [](T x, std::optional<DType> dtype, std::optional<Device> device, bool rg) {
        return rand(x.shape(), like_options(x, dtype, device, rg));
      },
      "input"_a, nb::kw_only(), "dtype"_a = nb::none(), "device"_a = nb::none(),
      "requires_grad"_a = false, like_doc);
  m.def(
      "randn_like",
      [](T x, std::optional<DType> dtype, std::optional<Device> device, bool rg) {
        return randn(x.shape(), like_options(x, dtype, device, rg));
      },
      "input"_a, nb::kw_only(), "dtype"_a = nb::none(), "device"_a = nb::none(),
      "requires_grad"_a = false, like_doc);
}

void bind_elementwise(nb::module_& m) {
  m.def(
      "add",
      [](T a, T b, S alpha) {
        return maybe_without_gil(a.numel() + b.numel(), [&] { return add(a, b, alpha); });
      },
      "input"_a, "other"_a, nb::kw_only(), "alpha"_a = 1, "input + alpha * other, broadcast.");
  m.def(
      "add", [](T a, S b) { return maybe_without_gil(a.numel(), [&] { return add(a, b); }); },
      "input"_a, "other"_a);
  m.def(
      "sub",
      [](T a, T b, S alpha) {
        return maybe_without_gil(a.numel() + b.numel(), [&] { return sub(a, b, alpha); });
      },
      "input"_a, "other"_a, nb::kw_only(), "alpha"_a = 1, "input - alpha * other, broadcast.");
  m.def(
      "sub", [](T a, S b) { return maybe_without_gil(a.numel(), [&] { return sub(a, b); }); },
      "input"_a, "other"_a);
  m.def(
      "mul",
      [](T a, T b) { return maybe_without_gil(a.numel() + b.numel(), [&] { return mul(a, b); }); },
      "input"_a, "other"_a, "Product, broadcast.");
  m.def(
      "mul", [](T a, S b) { return maybe_without_gil(a.numel(), [&] { return mul(a, b); }); },
      "input"_a, "other"_a);
  m.def(
      "div",
      [](T a, T b) { return maybe_without_gil(a.numel() + b.numel(), [&] { return div(a, b); }); },
      "input"_a, "other"_a, "True division, broadcast; integers give float32.");
  m.def(
      "div", [](T a, S b) { return maybe_without_gil(a.numel(), [&] { return div(a, b); }); },
      "input"_a, "other"_a);
  m.def(
      "pow",
      [](T a, T b) {
        return maybe_without_gil(a.numel() + b.numel(), [&] { return st::pow(a, b); });
      },
      "input"_a, "exponent"_a);
  m.def(
      "pow", [](T a, S b) { return maybe_without_gil(a.numel(), [&] { return st::pow(a, b); }); },
      "input"_a, "exponent"_a);
  m.def("maximum", &maximum, "input"_a, "other"_a, "Elementwise maximum, broadcast.");
  m.def("minimum", &minimum, "input"_a, "other"_a, "Elementwise minimum, broadcast.");
  m.def("neg", released<&neg>, "input"_a, "-input, elementwise.");
  m.def("exp", released<&st::exp>, "input"_a, "e ** input, elementwise.");
  m.def("log", released<&st::log>, "input"_a, "Natural logarithm, elementwise.");
  m.def("sqrt", released<&st::sqrt>, "input"_a, "Square root, elementwise.");
  m.def("rsqrt", released<&rsqrt>, "input"_a, "1 / sqrt(input), elementwise.");
  m.def("abs", released<&st::abs>, "input"_a, "Absolute value, elementwise.");
  m.def("tanh", released<&st::tanh>, "input"_a, "Hyperbolic tangent, elementwise.");
  m.def("sigmoid", released<&sigmoid>, "input"_a, "1 / (1 + exp(-input)), elementwise.");
  m.def("relu", released<&relu>, "input"_a, "max(input, 0), elementwise.");
  m.def(
      "gelu", [](T x, const std::string& approximate) { return gelu(x, gelu_from(approximate)); },
      "input"_a, "approximate"_a = "none", "GELU, exact (erf) or approximate='tanh'.");
  m.def("clamp", &clamp, "input"_a, "min"_a = nb::none(), "max"_a = nb::none(),
        "input limited to [min, max] (either bound may be None).");
  m.def("clip", &clamp, "input"_a, "min"_a = nb::none(), "max"_a = nb::none());
  m.def(
      "eq",
      [](T a, T b) { return maybe_without_gil(a.numel() + b.numel(), [&] { return eq(a, b); }); },
      "input"_a, "other"_a);
  m.def(
      "eq", [](T a, S b) { return maybe_without_gil(a.numel(), [&] { return eq(a, b); }); },
      "input"_a, "other"_a);
  m.def(
      "ne",
      [](T a, T b) { return maybe_without_gil(a.numel() + b.numel(), [&] { return ne(a, b); }); },
      "input"_a, "other"_a);
  m.def(
      "ne", [](T a, S b) { return maybe_without_gil(a.numel(), [&] { return ne(a, b); }); },
      "input"_a, "other"_a);
  m.def(
      "lt",
      [](T a, T b) { return maybe_without_gil(a.numel() + b.numel(), [&] { return lt(a, b); }); },
      "input"_a, "other"_a);
  m.def(
      "lt", [](T a, S b) { return maybe_without_gil(a.numel(), [&] { return lt(a, b); }); },
      "input"_a, "other"_a);
  m.def(
      "le",
      [](T a, T b) { return maybe_without_gil(a.numel() + b.numel(), [&] { return le(a, b); }); },
      "input"_a, "other"_a);
  m.def(
      "le", [](T a, S b) { return maybe_without_gil(a.numel(), [&] { return le(a, b); }); },
      "input"_a, "other"_a);
  m.def(
      "gt",
      [](T a, T b) { return maybe_without_gil(a.numel() + b.numel(), [&] { return gt(a, b); }); },
      "input"_a, "other"_a);
  m.def(
      "gt", [](T a, S b) { return maybe_without_gil(a.numel(), [&] { return gt(a, b); }); },
      "input"_a, "other"_a);
  m.def(
      "ge",
      [](T a, T b) { return maybe_without_gil(a.numel() + b.numel(), [&] { return ge(a, b); }); },
      "input"_a, "other"_a);
  m.def(
      "ge", [](T a, S b) { return maybe_without_gil(a.numel(), [&] { return ge(a, b); }); },
      "input"_a, "other"_a);
  m.def(
      "where",
      [](T condition, nb::handle input, nb::handle other) {
        return where(condition, as_tensor_like(input, condition, "where"),
                     as_tensor_like(other, condition, "where"));
      },
      "condition"_a, "input"_a, "other"_a,
      "input where condition holds, else other; tensors or numbers, broadcast.");
}

void bind_reductions(nb::module_& m) {
  m.def(
      "sum",
      [](T x, nb::handle dim, bool keepdim) {
        const Shape dims = dims_from_object(dim, "sum");
        return maybe_without_gil(x.numel(), [&] { return sum(x, dims, keepdim); });
      },
      "input"_a, "dim"_a = nb::none(), "keepdim"_a = false,
      "Sum over dim (an int, a sequence, or None: all dims).");
  m.def(
      "mean",
      [](T x, nb::handle dim, bool keepdim) {
        const Shape dims = dims_from_object(dim, "mean");
        return maybe_without_gil(x.numel(), [&] { return mean(x, dims, keepdim); });
      },
      "input"_a, "dim"_a = nb::none(), "keepdim"_a = false);
  m.def(
      "max", [](T x) { return st::max(x); }, "input"_a);
  m.def(
      "max",
      [](T x, int64_t dim, bool keepdim) {
        auto [values, indices] = st::max(x, dim, keepdim);
        return nb::make_tuple(values, indices);
      },
      "input"_a, "dim"_a, "keepdim"_a = false, "(values, indices) of the largest along dim.");
  m.def(
      "max",
      [](T a, T b) {
        return maybe_without_gil(a.numel() + b.numel(), [&] { return maximum(a, b); });
      },
      "input"_a, "other"_a);
  m.def(
      "min", [](T x) { return st::min(x); }, "input"_a);
  m.def(
      "min",
      [](T x, int64_t dim, bool keepdim) {
        auto [values, indices] = st::min(x, dim, keepdim);
        return nb::make_tuple(values, indices);
      },
      "input"_a, "dim"_a, "keepdim"_a = false, "(values, indices) of the smallest along dim.");
  m.def(
      "min",
      [](T a, T b) {
        return maybe_without_gil(a.numel() + b.numel(), [&] { return minimum(a, b); });
      },
      "input"_a, "other"_a);
  m.def(
      "amax",
      [](T x, nb::handle dim, bool keepdim) {
        return amax(x, dims_from_object(dim, "amax"), keepdim);
      },
      "input"_a, "dim"_a = nb::none(), "keepdim"_a = false);
  m.def(
      "amin",
      [](T x, nb::handle dim, bool keepdim) {
        return amin(x, dims_from_object(dim, "amin"), keepdim);
      },
      "input"_a, "dim"_a = nb::none(), "keepdim"_a = false);
  m.def("argmax", &argmax, "input"_a, "dim"_a = nb::none(), "keepdim"_a = false,
        "int64 index of the largest value (over all elements, or along dim).");
  m.def("argmin", &argmin, "input"_a, "dim"_a = nb::none(), "keepdim"_a = false,
        "int64 index of the smallest value (over all elements, or along dim).");
  m.def(
      "sum_to", [](T x, nb::handle shape) { return sum_to(x, shape_from_object(shape, "sum_to")); },
      "input"_a, "shape"_a, "Sums a broadcast tensor back to `shape` (the gradient of expand).");
  m.def(
      "matmul",
      [](T a, T b) {
        if (a.numel() + b.numel() < kReleaseGilElements) return matmul(a, b);
        return without_gil([&] { return matmul(a, b); });
      },
      "input"_a, "other"_a, "Matrix product: 1-D, 2-D, and batched with broadcast batch dims.");
}

void bind_joins(nb::module_& m) {
  m.def("cat", &cat, "tensors"_a, "dim"_a = 0, "Concatenates along an existing dim.");
  m.def("concat", &cat, "tensors"_a, "dim"_a = 0);
  m.def("stack", &stack, "tensors"_a, "dim"_a = 0, "Joins along a new dim.");
  m.def(
      "split",
      [](T x, nb::handle split_size, int64_t dim) {
        if (PyLong_Check(split_size.ptr())) return split(x, nb::cast<int64_t>(split_size), dim);
        return split(x, shape_from_object(split_size, "split"), dim);
      },
      "tensor"_a, "split_size_or_sections"_a, "dim"_a = 0,
      "Views of pieces of `split_size` (or of the given sizes) along dim.");
  m.def("chunk", &chunk, "input"_a, "chunks"_a, "dim"_a = 0);
  m.def(
      "broadcast_shapes",
      [](nb::args shapes) {
        Shape out;
        for (nb::handle s : shapes)
          out = broadcast_shapes(out, shape_from_object(s, "broadcast_shapes"));
        return size_object(out);
      },
      "shapes"_a, "The shape the given shapes broadcast to.");
}

void bind_nn(nb::module_& m) {
  m.def(
      "linear",
      [](T x, T weight, std::optional<Tensor> bias) {
        const Tensor b = bias.value_or(Tensor());
        if (x.numel() + weight.numel() < kReleaseGilElements) return linear(x, weight, b);
        return without_gil([&] { return linear(x, weight, b); });
      },
      "input"_a, "weight"_a, "bias"_a = nb::none(), "input @ weight^T + bias, the bias fused.");
  m.def(
      "softmax",
      [](T x, int64_t dim) {
        return maybe_without_gil(x.numel(), [&] { return softmax(x, dim); });
      },
      "input"_a, "dim"_a, "exp(x) / sum(exp(x)) along dim, fused and stable.");
  m.def(
      "log_softmax",
      [](T x, int64_t dim) {
        return maybe_without_gil(x.numel(), [&] { return log_softmax(x, dim); });
      },
      "input"_a, "dim"_a, "log(softmax(x, dim)), fused and stable.");
  m.def(
      "layer_norm",
      [](T x, nb::handle normalized_shape, std::optional<Tensor> weight, std::optional<Tensor> bias,
         double eps) {
        return layer_norm(x, shape_from_object(normalized_shape, "layer_norm"),
                          weight.value_or(Tensor()), bias.value_or(Tensor()), eps);
      },
      "input"_a, "normalized_shape"_a, "weight"_a = nb::none(), "bias"_a = nb::none(),
      "eps"_a = 1e-5, "Normalizes over the last dims, then scales and shifts.");
  m.def(
      "embedding", [](T indices, T weight) { return embedding(weight, indices); }, "input"_a,
      "weight"_a, "Rows of `weight` picked by the integer tensor `input`.");
  m.def(
      "cross_entropy",
      [](T logits, T target, int64_t ignore_index, const std::string& reduction) {
        const Reduction how = reduction_from(reduction);
        return maybe_without_gil(logits.numel(),
                                 [&] { return cross_entropy(logits, target, ignore_index, how); });
      },
      "input"_a, "target"_a, nb::kw_only(), "ignore_index"_a = -100, "reduction"_a = "mean",
      "Fused log_softmax + negative log-likelihood of class indices.");
  m.def("dropout", &dropout, "input"_a, "p"_a = 0.5, "training"_a = true,
        "Zeroes elements with probability p and scales the rest by 1/(1-p) while training.");
  m.def(
      "scaled_dot_product_attention",
      [](T q, T k, T v, nb::handle attn_mask, double dropout_p, bool is_causal,
         std::optional<double> scale) {
        ST_CHECK(attn_mask.is_none(), NotImplementedError,
                 "[scaled_dot_product_attention] attn_mask is not supported; use is_causal");
        ST_CHECK(dropout_p == 0.0, NotImplementedError,
                 "[scaled_dot_product_attention] dropout_p must be 0");
        if (q.numel() < kReleaseGilElements)
          return scaled_dot_product_attention(q, k, v, is_causal, scale);
        return without_gil([&] { return scaled_dot_product_attention(q, k, v, is_causal, scale); });
      },
      "query"_a, "key"_a, "value"_a, "attn_mask"_a = nb::none(), "dropout_p"_a = 0.0,
      "is_causal"_a = false, nb::kw_only(), "scale"_a = nb::none(),
      "softmax(q k^T * scale) v, with the causal mask fused when is_causal.");
}

void bind_random_and_updates(nb::module_& m) {
  m.def(
      "manual_seed", [](uint64_t seed) { manual_seed(seed); }, "seed"_a,
      "Seeds every device's random stream; the same seed gives the same numbers.");
  m.def(
      "get_rng_state",
      [](std::optional<Device> device) {
        const RngState s = rng_state(device.value_or(kCPU).type);
        return nb::make_tuple(s.seed, s.offset);
      },
      "device"_a = nb::none(), "The (seed, offset) of a device type's random stream.");
  m.def(
      "set_rng_state",
      [](std::tuple<uint64_t, uint64_t> state, std::optional<Device> device) {
        set_rng_state({std::get<0>(state), std::get<1>(state)}, device.value_or(kCPU).type);
      },
      "state"_a, "device"_a = nb::none());
  m.def("backends", &backends, "The backends this build has and this machine can use now.");
  m.def(
      "_sgd_update_",
      [](const std::vector<Tensor>& params, const std::vector<Tensor>& grads,
         const std::vector<Tensor>& buffers, double lr, double momentum, double dampening,
         double weight_decay, bool nesterov, bool first_step) {
        nb::gil_scoped_release release;
        sgd_update_(params, grads, buffers,
                    {lr, momentum, dampening, weight_decay, nesterov, first_step, {}});
      },
      "params"_a, "grads"_a, "momentum_buffers"_a, nb::kw_only(), "lr"_a, "momentum"_a,
      "dampening"_a, "weight_decay"_a, "nesterov"_a, "first_step"_a);
  m.def(
      "_adam_update_",
      [](const std::vector<Tensor>& params, const std::vector<Tensor>& grads,
         const std::vector<Tensor>& exp_avgs, const std::vector<Tensor>& exp_avg_sqs, double lr,
         double beta1, double beta2, double eps, double weight_decay, bool decoupled,
         int64_t step) {
        nb::gil_scoped_release release;
        adam_update_(params, grads, exp_avgs, exp_avg_sqs,
                     {lr, beta1, beta2, eps, weight_decay, decoupled, step, {}});
      },
      "params"_a, "grads"_a, "exp_avgs"_a, "exp_avg_sqs"_a, nb::kw_only(), "lr"_a, "beta1"_a,
      "beta2"_a, "eps"_a, "weight_decay"_a, "decoupled_weight_decay"_a, "step"_a);
  m.def(
      "_global_norm",
      [](const std::vector<Tensor>& tensors) {
        return without_gil([&] { return global_norm(tensors); });
      },
      "tensors"_a, "The 2-norm of all elements of all tensors, as a 0-d tensor.");
}

}  // namespace

void init_ops(nb::module_& m) {
  bind_factories(m);
  bind_elementwise(m);
  bind_reductions(m);
  bind_joins(m);
  bind_nn(m);
  bind_random_and_updates(m);
}

}  // namespace st::python
