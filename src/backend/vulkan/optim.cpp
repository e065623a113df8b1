// Fused optimizer updates (one dispatch per parameter tensor, all recorded without waiting) and the
// sum of squares of gradient clipping (partials per tensor, then one reduce over them).

#include <bit>
#include <cmath>
#include <string>

#include "backend/vulkan/elementwise.h"

namespace st::backend::vulkan {
namespace {

// Mirrors OptimParams of shaders/optim.comp.
struct OptimParams {
  uint64_t param_addr = 0;
  uint64_t grad_addr = 0;
  uint64_t state1_addr = 0;
  uint64_t state2_addr = 0;
  uint64_t h_bits[8] = {};
  float h_f[8] = {};
  uint32_t numel = 0;
  uint32_t flags = 0;
};

// Mirrors SquaresParams of shaders/sum_of_squares.comp.
struct SquaresParams {
  uint64_t in_addr = 0;
  uint64_t partials_addr = 0;
  uint32_t numel = 0;
  uint32_t first = 0;
  uint32_t chunk = 0;
  uint32_t pad = 0;
};

void set_hyper(OptimParams& p, int k, double value) {
  p.h_bits[k] = std::bit_cast<uint64_t>(value);
  p.h_f[k] = static_cast<float>(value);
}

std::string_view float_dtype(const Tensor& t, const char* op) {
  if (!is_floating(t.dtype()))
    throw NotImplementedError(
        detail::concat("[", op, "] not implemented for ", t.dtype(), " on the vulkan backend"));
  return shader_dtype(t.dtype(), op);
}

}  // namespace

void VulkanBackend::sgd_update(const std::vector<Tensor>& params, const std::vector<Tensor>& grads,
                               const std::vector<Tensor>& momentum_buffers,
                               const SgdUpdate& update) {
  for (size_t t = 0; t < params.size(); ++t) {
    if (params[t].numel() == 0) continue;
    OptimParams p;
    p.param_addr = address_of(params[t]);
    p.grad_addr = address_of(grads[t]);
    p.state1_addr = momentum_buffers.empty() ? 0 : address_of(momentum_buffers[t]);
    set_hyper(p, 0, update.lr);
    set_hyper(p, 1, update.weight_decay);
    set_hyper(p, 2, update.momentum);
    set_hyper(p, 3, 1 - update.dampening);
    p.numel = index32(params[t].numel(), "sgd_update");
    p.flags = (update.first_step ? 1u : 0u) | (update.nesterov ? 2u : 0u);
    context().dispatch(detail::concat("sgd_", float_dtype(params[t], "sgd_update")), &p, sizeof(p),
                       groups_for(p.numel, 256));
  }
}

void VulkanBackend::adam_update(const std::vector<Tensor>& params, const std::vector<Tensor>& grads,
                                const std::vector<Tensor>& exp_avgs,
                                const std::vector<Tensor>& exp_avg_sqs, const AdamUpdate& update) {
  const double bias1 = 1 - std::pow(update.beta1, static_cast<double>(update.step));
  const double bias2 = 1 - std::pow(update.beta2, static_cast<double>(update.step));
  for (size_t t = 0; t < params.size(); ++t) {
    if (params[t].numel() == 0) continue;
    OptimParams p;
    p.param_addr = address_of(params[t]);
    p.grad_addr = address_of(grads[t]);
    p.state1_addr = address_of(exp_avgs[t]);
    p.state2_addr = address_of(exp_avg_sqs[t]);
    set_hyper(p, 0, update.lr / bias1);
    set_hyper(p, 1, 1 / std::sqrt(bias2));
    set_hyper(p, 2, update.beta1);
    set_hyper(p, 3, update.beta2);
    set_hyper(p, 4, update.eps);
    set_hyper(p, 5, update.decoupled_weight_decay ? 0.0 : update.weight_decay);
    set_hyper(p, 6, update.decoupled_weight_decay ? 1 - update.lr * update.weight_decay : 1.0);
    p.numel = index32(params[t].numel(), "adam_update");
    context().dispatch(detail::concat("adam_", float_dtype(params[t], "adam_update")), &p,
                       sizeof(p), groups_for(p.numel, 256));
  }
}

void VulkanBackend::sum_of_squares(const Tensor& out, const std::vector<Tensor>& tensors) {
  // Each workgroup sums a chunk of one tensor; the partials are then reduced into out.
  constexpr uint32_t kChunk = 16384;
  const bool f64 = out.dtype() == DType::Float64;
  const std::string_view acc = f64 ? "f64" : "f32";
  uint32_t total = 0;
  for (const Tensor& t : tensors)
    total += (index32(t.numel(), "sum_of_squares") + kChunk - 1) / kChunk;
  if (total == 0) {
    fill(out, 0);
    return;
  }
  void* partials = context().allocate(size_t{total} * (f64 ? 8 : 4));
  uint32_t first = 0;
  for (const Tensor& t : tensors) {
    SquaresParams p;
    p.in_addr = address_of(t);
    p.partials_addr = reinterpret_cast<uint64_t>(partials);
    p.numel = static_cast<uint32_t>(t.numel());
    p.first = first;
    p.chunk = kChunk;
    const uint32_t groups = (p.numel + kChunk - 1) / kChunk;
    if (groups == 0) continue;
    context().dispatch(
        detail::concat("sum_of_squares_", float_dtype(t, "sum_of_squares"), "_", acc), &p,
        sizeof(p), groups);
    first += groups;
  }
  ReduceParams r;
  r.in_addr = reinterpret_cast<uint64_t>(partials);
  r.out_addr = address_of(out);
  r.n_out = 1;
  r.count = total;
  r.chunks = 1;
  r.op = static_cast<uint32_t>(ReduceOp::Sum);
  r.divisor = total;
  r.reduced_ndim = 1;
  r.reduced_shape[0] = total;
  r.reduced_strides[0] = 1;
  context().dispatch(detail::concat("reduce_", acc, "_", acc), &r, sizeof(r), 1);
  context().deallocate(partials);
}

}  // namespace st::backend::vulkan
