// Softmax and log-softmax forward and backward, and layer norm forward and backward: row-wise
// kernels with a workgroup per row (shaders/softmax.comp, shaders/layer_norm.comp).

#include <algorithm>
#include <bit>
#include <initializer_list>
#include <string>

#include "backend/vulkan/vulkan_backend.h"
#include "spiraltorch/ops.h"

namespace st::backend::vulkan {
namespace {

// Mirrors SoftmaxParams of shaders/softmax.comp.
struct SoftmaxParams {
  uint64_t in_addr = 0;
  uint64_t y_addr = 0;
  uint64_t out_addr = 0;
  uint64_t scale_bits = 0;
  float scale_f = 0;
  uint32_t rows = 0;
  uint32_t cols = 0;
  uint32_t log_softmax = 0;
  uint32_t causal_rows = 0;
  uint32_t lanes = 0;
};

// Mirrors LayerNormParams of shaders/layer_norm.comp.
struct LayerNormParams {
  uint64_t x_addr = 0;
  uint64_t out_addr = 0;
  uint64_t mean_addr = 0;
  uint64_t rstd_addr = 0;
  uint64_t weight_addr = 0;
  uint64_t bias_addr = 0;
  uint64_t grad_out_addr = 0;
  uint64_t grad_weight_addr = 0;
  uint64_t grad_bias_addr = 0;
  uint64_t eps_bits = 0;
  float eps_f = 0;
  uint32_t rows = 0;
  uint32_t cols = 0;
  uint32_t lanes = 0;
  uint32_t chunk_rows = 0;
  uint32_t chunks = 0;
  uint64_t partial_addr = 0;
};

uint64_t optional_address(const Tensor& t) { return t.defined() ? address_of(t) : 0; }

// The vec4 variants of softmax.comp and layer_norm.comp take f32 rows of up to 8192 columns (a
// workgroup's registers), a multiple of 4, with every address 16-byte aligned (0 for an absent
// weight or bias passes).
bool row_vec4(DType dtype, uint32_t cols, std::initializer_list<uint64_t> addresses) {
  if (dtype != DType::Float32 || cols % 4 != 0 || cols > 8192) return false;
  for (uint64_t a : addresses)
    if (a % 16 != 0) return false;
  return true;
}

// Whether the vec4 variants reduce through subgroups for rows of `lanes` invocations.
bool subgroup_rows(uint32_t lanes) {
  const DeviceCaps& caps = context().caps();
  return caps.subgroup_arithmetic && caps.subgroup_size <= lanes;
}

// Invocations per row for the vec4 variants, so that short rows share a workgroup instead of
// idling most of it: enough for at most 4 vectors each where the workgroup's 256 allow, or 8
// (the shaders' PER) where a row then fits in one subgroup, whose reductions need no barrier.
uint32_t row_lanes(uint32_t cols) {
  const uint32_t subgroup = context().caps().subgroup_size;
  const bool one_subgroup = subgroup_rows(32) && subgroup >= 32 && cols <= 4 * 8 * subgroup;
  if (one_subgroup) return subgroup;
  uint32_t lanes = 32;
  while (lanes < 256 && lanes * 4 * 4 < cols) lanes *= 2;
  return lanes;
}

// The vec4 variant's name: "_sg" reduces through subgroups.
std::string vec4_variant(std::string_view kernel, uint32_t lanes) {
  return detail::concat(kernel, subgroup_rows(lanes) ? "_vec4_sg_f32" : "_vec4_f32");
}

}  // namespace

void VulkanBackend::softmax(const Tensor& out, const Tensor& in, bool log, double scale,
                            int64_t causal_rows) {
  if (in.numel() == 0) return;
  SoftmaxParams p;
  p.in_addr = address_of(in);
  p.y_addr = address_of(out);
  p.scale_bits = std::bit_cast<uint64_t>(scale);
  p.scale_f = static_cast<float>(scale);
  p.rows = index32(in.shape()[0], "softmax");
  p.cols = index32(in.shape()[1], "softmax");
  index32(in.numel(), "softmax");
  p.log_softmax = log;
  p.causal_rows = index32(causal_rows, "softmax");
  const bool vec4 = row_vec4(in.dtype(), p.cols, {p.in_addr, p.y_addr});
  p.lanes = vec4 ? row_lanes(p.cols) : 256;
  const std::string kernel = vec4 ? vec4_variant("softmax", p.lanes)
                                  : detail::concat("softmax_", shader_dtype(in.dtype(), "softmax"));
  context().dispatch(kernel, &p, sizeof(p), groups_for(p.rows, 256 / p.lanes));
}

void VulkanBackend::softmax_backward(const Tensor& grad_in, const Tensor& grad_out,
                                     const Tensor& out, bool log, double scale) {
  if (out.numel() == 0) return;
  SoftmaxParams p;
  p.in_addr = address_of(grad_out);
  p.y_addr = address_of(out);
  p.out_addr = address_of(grad_in);
  p.scale_bits = std::bit_cast<uint64_t>(scale);
  p.scale_f = static_cast<float>(scale);
  p.rows = index32(out.shape()[0], "softmax_backward");
  p.cols = index32(out.shape()[1], "softmax_backward");
  index32(out.numel(), "softmax_backward");
  p.log_softmax = log;
  const bool vec4 = row_vec4(out.dtype(), p.cols, {p.in_addr, p.y_addr, p.out_addr});
  p.lanes = vec4 ? row_lanes(p.cols) : 256;
  const std::string kernel =
      vec4 ? vec4_variant("softmax_backward", p.lanes)
           : detail::concat("softmax_backward_", shader_dtype(out.dtype(), "softmax_backward"));
  context().dispatch(kernel, &p, sizeof(p), groups_for(p.rows, 256 / p.lanes));
}

void VulkanBackend::layer_norm(const Tensor& out, const Tensor& mean, const Tensor& rstd,
                               const Tensor& x, const Tensor& weight, const Tensor& bias,
                               double eps) {
  const int64_t rows = mean.numel();
  if (rows == 0) return;
  if (out.dtype() != x.dtype()) {  // autocast's f16/bf16 output: normalized in f32, then rounded
    const Tensor full = st::empty(out.shape(), {x.dtype(), out.device()});
    layer_norm(full, mean, rstd, x, weight, bias, eps);
    copy(out, full);
    return;
  }
  LayerNormParams p;
  p.x_addr = address_of(x);
  p.out_addr = address_of(out);
  p.mean_addr = address_of(mean);
  p.rstd_addr = address_of(rstd);
  p.weight_addr = optional_address(weight);
  p.bias_addr = optional_address(bias);
  p.eps_bits = std::bit_cast<uint64_t>(eps);
  p.eps_f = static_cast<float>(eps);
  p.rows = index32(rows, "layer_norm");
  p.cols = index32(x.numel() / rows, "layer_norm");
  index32(x.numel(), "layer_norm");
  const bool vec4 = row_vec4(x.dtype(), p.cols, {p.x_addr, p.out_addr, p.weight_addr, p.bias_addr});
  p.lanes = vec4 ? row_lanes(p.cols) : 256;
  const std::string kernel =
      vec4 ? vec4_variant("layer_norm", p.lanes)
           : detail::concat("layer_norm_", shader_dtype(x.dtype(), "layer_norm"));
  context().dispatch(kernel, &p, sizeof(p), groups_for(rows, 256 / p.lanes));
}

void VulkanBackend::layer_norm_backward(const Tensor& grad_x, const Tensor& grad_weight,
                                        const Tensor& grad_bias, const Tensor& grad_out,
                                        const Tensor& x, const Tensor& mean, const Tensor& rstd,
                                        const Tensor& weight) {
  const int64_t rows = mean.numel();
  if (rows == 0) return;
  if (grad_out.dtype() != x.dtype()) {  // the gradient of autocast's f16/bf16 output
    const Tensor full = st::empty(grad_out.shape(), {x.dtype(), grad_out.device()});
    copy(full, grad_out);
    layer_norm_backward(grad_x, grad_weight, grad_bias, full, x, mean, rstd, weight);
    return;
  }
  const std::string_view dtype = shader_dtype(x.dtype(), "layer_norm_backward");
  LayerNormParams p;
  p.x_addr = address_of(x);
  p.out_addr = optional_address(grad_x);
  p.mean_addr = address_of(mean);
  p.rstd_addr = address_of(rstd);
  p.weight_addr = optional_address(weight);
  p.grad_out_addr = address_of(grad_out);
  p.grad_weight_addr = optional_address(grad_weight);
  p.grad_bias_addr = optional_address(grad_bias);
  p.rows = index32(rows, "layer_norm_backward");
  p.cols = index32(x.numel() / rows, "layer_norm_backward");
  index32(x.numel(), "layer_norm_backward");
  if (grad_x.defined()) {
    const bool vec4 =
        row_vec4(x.dtype(), p.cols, {p.x_addr, p.out_addr, p.grad_out_addr, p.weight_addr});
    p.lanes = vec4 ? row_lanes(p.cols) : 256;
    const std::string kernel = vec4 ? vec4_variant("layer_norm_backward", p.lanes)
                                    : detail::concat("layer_norm_backward_", dtype);
    context().dispatch(kernel, &p, sizeof(p), groups_for(rows, 256 / p.lanes));
  }
  if (grad_weight.defined() || grad_bias.defined()) {
    // Partial sums over chunks of at least 64 rows, at most 256 chunks per column.
    p.chunk_rows = std::max<uint32_t>(64, (p.rows + 255) / 256);
    p.chunks = (p.rows + p.chunk_rows - 1) / p.chunk_rows;
    const size_t partial_bytes =
        size_t{2} * p.chunks * p.cols * (x.dtype() == DType::Float64 ? 8 : 4);
    // Stream-ordered scratch: freed right after recording, reused only by later commands.
    void* partials = context().allocate(partial_bytes);
    p.partial_addr = reinterpret_cast<uint64_t>(partials);
    context().dispatch(detail::concat("layer_norm_weight_grads_", dtype), &p, sizeof(p),
                       (p.cols + 31) / 32, p.chunks);
    context().dispatch(detail::concat("layer_norm_weight_grads_finish_", dtype), &p, sizeof(p),
                       groups_for(p.cols, 256));
    context().deallocate(partials);
  }
}

}  // namespace st::backend::vulkan
