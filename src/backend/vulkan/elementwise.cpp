// Elementwise kernels: unary, binary and where, over operands of any strides (0 for broadcast).

#include "backend/vulkan/elementwise.h"

#include <bit>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

namespace st::backend::vulkan {
namespace {

// What the CPU's element_cast gives for a double in an integer dtype: saturated, NaN as 0.
template <typename I>
int64_t saturate(double v) {
  if (std::isnan(v)) return 0;
  constexpr double lowest = static_cast<double>(std::numeric_limits<I>::lowest());
  if (v <= lowest) return std::numeric_limits<I>::lowest();
  if (v >= -lowest) return std::numeric_limits<I>::max();
  return static_cast<I>(v);
}

}  // namespace

ElementwiseParams make_elementwise_params(std::string_view op,
                                          std::initializer_list<const Tensor*> operands) {
  ElementwiseParams p;
  const Tensor& out = **operands.begin();
  const size_t n_ops = operands.size();
  // Dims kept after dropping size 1, outermost first, with each operand's stride.
  std::vector<int64_t> shape;
  std::vector<std::vector<int64_t>> strides(n_ops);
  for (int64_t d = 0; d < out.dim(); ++d) {
    if (out.shape()[d] == 1) continue;
    const bool merge = !shape.empty() && [&] {
      size_t k = 0;
      for (const Tensor* t : operands) {
        if (strides[k].back() != t->strides()[d] * out.shape()[d]) return false;
        ++k;
      }
      return true;
    }();
    size_t k = 0;
    if (merge) {
      shape.back() *= out.shape()[d];
      for (const Tensor* t : operands) strides[k++].back() = t->strides()[d];
    } else {
      shape.push_back(out.shape()[d]);
      for (const Tensor* t : operands) strides[k++].push_back(t->strides()[d]);
    }
  }
  ST_CHECK(shape.size() <= static_cast<size_t>(kMaxDims), NotImplementedError, "[", op,
           "] operands with more than ", kMaxDims,
           " dims that cannot be merged are not supported on the Vulkan backend");
  p.numel = index32(out.numel(), op);
  p.ndim = static_cast<uint32_t>(shape.size());
  p.contiguous = 1;
  size_t k = 0;
  for (const Tensor* t : operands) {
    p.addr[k] = address_of(*t);
    int64_t extent = 0;
    for (size_t d = 0; d < shape.size(); ++d) {
      p.strides[k * kMaxDims + d] = index32(strides[k][d], op);
      extent += (shape[d] - 1) * strides[k][d];
    }
    index32(extent, op);
    if (shape.size() > 1 || (shape.size() == 1 && strides[k][0] != 1)) p.contiguous = 0;
    ++k;
  }
  for (size_t d = 0; d < shape.size(); ++d) p.shape[d] = static_cast<uint32_t>(shape[d]);
  return p;
}

void run_elementwise(std::string_view kernel, std::string_view op,
                     std::initializer_list<const Tensor*> operands, uint32_t code, double alpha,
                     double beta, std::string_view vec4_kernel) {
  const Tensor& out = **operands.begin();
  if (out.numel() == 0) return;
  ElementwiseParams p = make_elementwise_params(op, operands);
  p.op = code;
  p.alpha_f = static_cast<float>(alpha);
  p.beta_f = static_cast<float>(beta);
  p.alpha_bits = std::bit_cast<uint64_t>(alpha);
  p.beta_bits = std::bit_cast<uint64_t>(beta);
  const bool i32 = out.dtype() == DType::Int32 || out.dtype() == DType::Bool;
  p.alpha_i = i32 ? saturate<int32_t>(alpha) : saturate<int64_t>(alpha);
  p.beta_i = i32 ? saturate<int32_t>(beta) : saturate<int64_t>(beta);
  bool vec4 = !vec4_kernel.empty() && p.contiguous != 0;
  size_t k = 0;
  for (const Tensor* t : operands) {
    vec4 = vec4 && t->dtype() == DType::Float32 && p.addr[k] % 16 == 0;
    ++k;
  }
  if (vec4)
    context().dispatch(vec4_kernel, &p, sizeof(p), groups_for(p.numel / 4 + 1, 256));
  else
    context().dispatch(kernel, &p, sizeof(p), groups_for(p.numel, 256));
}

void VulkanBackend::unary(UnaryOp op, const Tensor& out, const Tensor& in, double alpha,
                          double beta) {
  // Integers take the ops the front-end sends them; the shader has no others.
  const bool integer_op = op == UnaryOp::Neg || op == UnaryOp::Abs || op == UnaryOp::Relu ||
                          op == UnaryOp::Clamp || op == UnaryOp::PowScalar || op == UnaryOp::Affine;
  if (!is_floating(in.dtype()) && !integer_op)
    not_implemented(detail::concat("unary op ", static_cast<int>(op), " for ", in.dtype()));
  const std::string kernel = detail::concat("unary_", shader_dtype(in.dtype(), "unary"));
  run_elementwise(kernel, "unary", {&out, &in}, static_cast<uint32_t>(op), alpha, beta,
                  "unary_vec4_f32");
}

void VulkanBackend::binary(BinaryOp op, const Tensor& out, const Tensor& a, const Tensor& b) {
  if (!is_floating(a.dtype()) && op > BinaryOp::Ge)
    not_implemented(detail::concat("binary op ", static_cast<int>(op), " for ", a.dtype()));
  const std::string kernel = detail::concat("binary_", shader_dtype(a.dtype(), "binary"));
  run_elementwise(kernel, "binary", {&out, &a, &b}, static_cast<uint32_t>(op), 0, 0,
                  "binary_vec4_f32");
}

void VulkanBackend::where(const Tensor& out, const Tensor& cond, const Tensor& a, const Tensor& b) {
  const std::string kernel = detail::concat("where_", shader_dtype(out.dtype(), "where"));
  run_elementwise(kernel, "where", {&out, &cond, &a, &b});
}

}  // namespace st::backend::vulkan
