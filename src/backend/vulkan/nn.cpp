// Random numbers (uniform, normal, dropout) from Philox streams, embedding and cross entropy.
// Indices and targets are read back and validated on the host first, as the CPU backend does, so
// that a bad one is an IndexError from the op that received it.

#include <algorithm>
#include <bit>
#include <string>
#include <vector>

#include "backend/vulkan/vulkan_backend.h"

namespace st::backend::vulkan {
namespace {

// Mirrors RandomParams of shaders/random.comp.
struct RandomParams {
  uint64_t out_addr = 0;
  uint64_t mask_addr = 0;
  uint64_t in_addr = 0;
  uint64_t seed = 0;
  uint64_t offset = 0;
  uint64_t a_bits = 0;
  uint64_t b_bits = 0;
  float a_f = 0;
  float b_f = 0;
  uint32_t numel = 0;
  uint32_t mode = 0;
  uint32_t bits = 24;
  uint32_t pad = 0;
};

// Mirrors CrossEntropyParams of shaders/cross_entropy.comp.
struct CrossEntropyParams {
  uint64_t logits_addr = 0;
  uint64_t target_addr = 0;
  uint64_t loss_addr = 0;
  uint64_t lse_addr = 0;
  uint64_t grad_loss_addr = 0;
  int64_t ignore_index = 0;
  uint32_t rows = 0;
  uint32_t cols = 0;
  uint32_t target_is_i64 = 0;
  uint32_t grad_loss_stride = 0;
};

// Mirrors EmbeddingParams of shaders/embedding.comp.
struct EmbeddingParams {
  uint64_t out_addr = 0;
  uint64_t weight_addr = 0;
  uint64_t indices_addr = 0;
  uint32_t n = 0;
  uint32_t dim = 0;
  uint32_t indices_are_i64 = 0;
  uint32_t plan_rows = 0;
};

void run_random(const char* op, uint32_t mode, const Tensor& out, const Tensor& mask,
                const Tensor& in, double a, double b, uint64_t seed, uint64_t offset) {
  if (out.numel() == 0) return;
  const DType dtype = out.dtype();
  if (!is_floating(dtype))
    throw NotImplementedError(
        detail::concat("[", op, "] not implemented for ", dtype, " on the vulkan backend"));
  RandomParams p;
  p.out_addr = address_of(out);
  p.mask_addr = mask.defined() ? address_of(mask) : 0;
  p.in_addr = in.defined() ? address_of(in) : 0;
  p.seed = seed;
  p.offset = offset;
  p.a_bits = std::bit_cast<uint64_t>(a);
  p.b_bits = std::bit_cast<uint64_t>(b);
  p.a_f = static_cast<float>(a);
  p.b_f = static_cast<float>(b);
  p.numel = index32(out.numel(), op);
  p.mode = mode;
  // Significand bits of the dtype, so that a draw never rounds up to 1 (backend.h).
  p.bits = dtype == DType::Float16 ? 11 : dtype == DType::BFloat16 ? 8 : 24;
  context().dispatch(detail::concat("random_", shader_dtype(dtype, op)), &p, sizeof(p),
                     groups_for((out.numel() + 3) / 4, 256));
}

// A 1-D integer tensor's values on the host (it waits for the device).
std::vector<int64_t> read_indices(const Tensor& t) {
  const Tensor c = t.contiguous();
  std::vector<int64_t> values(static_cast<size_t>(c.numel()));
  if (c.dtype() == DType::Int64) {
    context().download(values.data(), address_of(c), c.nbytes());
  } else {
    std::vector<int32_t> narrow(values.size());
    context().download(narrow.data(), address_of(c), c.nbytes());
    std::copy(narrow.begin(), narrow.end(), values.begin());
  }
  return values;
}

// The variant of op for the logits' dtype, with "_f32" when the loss is f32 and the logits not.
std::string cross_entropy_shader(std::string_view op, const Tensor& logits, const Tensor& loss) {
  return detail::concat(op, "_", shader_dtype(logits.dtype(), op),
                        loss.dtype() == logits.dtype() ? "" : "_f32");
}

}  // namespace

void VulkanBackend::uniform(const Tensor& dst, double low, double high, uint64_t seed,
                            uint64_t offset) {
  // The span is computed in the compute type, as the CPU does: (C)high - (C)low.
  const double span = dst.dtype() == DType::Float64
                          ? high - low
                          : static_cast<double>(static_cast<float>(high) - static_cast<float>(low));
  run_random("uniform", 0, dst, {}, {}, low, span, seed, offset);
}

void VulkanBackend::normal(const Tensor& dst, double mean, double stddev, uint64_t seed,
                           uint64_t offset) {
  run_random("normal", 1, dst, {}, {}, mean, stddev, seed, offset);
}

void VulkanBackend::dropout(const Tensor& out, const Tensor& mask, const Tensor& in, double p,
                            uint64_t seed, uint64_t offset) {
  run_random("dropout", 2, out, mask, in, p, 1 / (1 - p), seed, offset);
}

void VulkanBackend::embedding(const Tensor& out, const Tensor& weight, const Tensor& indices) {
  const int64_t vocab = weight.shape()[0];
  for (int64_t v : read_indices(indices))
    ST_CHECK(v >= 0 && v < vocab, IndexError, "[embedding] index ", v, " is out of range for ",
             vocab, " embeddings");
  if (out.numel() == 0) return;
  EmbeddingParams p;
  p.out_addr = address_of(out);
  p.weight_addr = address_of(weight);
  p.indices_addr = address_of(indices);
  p.n = index32(out.shape()[0], "embedding");
  p.dim = index32(out.shape()[1], "embedding");
  index32(weight.numel(), "embedding");
  p.indices_are_i64 = indices.dtype() == DType::Int64;
  context().dispatch(detail::concat("embedding_", shader_dtype(out.dtype(), "embedding")), &p,
                     sizeof(p), groups_for(out.numel(), 256));
}

void VulkanBackend::embedding_backward(const Tensor& grad_weight, const Tensor& grad_out,
                                       const Tensor& indices) {
  const std::vector<int64_t> index = read_indices(indices);
  if (index.empty() || grad_weight.numel() == 0) return;
  // The plan: distinct indices in ascending order, each with the rows that use it, in row order.
  std::vector<int32_t> order(index.size());
  for (size_t n = 0; n < order.size(); ++n) order[n] = static_cast<int32_t>(n);
  std::stable_sort(order.begin(), order.end(),
                   [&](int32_t x, int32_t y) { return index[x] < index[y]; });
  std::vector<int32_t> heads;
  for (size_t k = 0; k < order.size(); ++k) {
    if (k == 0 || index[order[k]] != index[order[k - 1]]) {
      heads.push_back(static_cast<int32_t>(index[order[k]]));
      heads.push_back(static_cast<int32_t>(k));
    }
  }
  const uint32_t distinct = static_cast<uint32_t>(heads.size() / 2);
  heads.push_back(0);
  heads.push_back(static_cast<int32_t>(order.size()));
  std::vector<int32_t> plan = heads;
  plan.insert(plan.end(), order.begin(), order.end());

  const size_t plan_bytes = plan.size() * sizeof(int32_t);
  void* plan_device = context().allocate(plan_bytes);
  context().upload(reinterpret_cast<uint64_t>(plan_device), plan.data(), plan_bytes);
  EmbeddingParams p;
  p.out_addr = address_of(grad_weight);
  p.weight_addr = address_of(grad_out);
  p.indices_addr = reinterpret_cast<uint64_t>(plan_device);
  p.n = distinct;
  p.dim = index32(grad_weight.shape()[1], "embedding_backward");
  index32(grad_weight.numel(), "embedding_backward");
  p.plan_rows = static_cast<uint32_t>(heads.size());
  context().dispatch(detail::concat("embedding_backward_",
                                    shader_dtype(grad_weight.dtype(), "embedding_backward")),
                     &p, sizeof(p), groups_for(static_cast<int64_t>(distinct) * p.dim, 256));
  context().deallocate(plan_device);  // stream-ordered: reused only by later commands
}

void VulkanBackend::cross_entropy(const Tensor& loss, const Tensor& lse, const Tensor& logits,
                                  const Tensor& target, int64_t ignore_index) {
  const int64_t classes = logits.shape()[1];
  for (int64_t v : read_indices(target))
    ST_CHECK(v == ignore_index || (v >= 0 && v < classes), IndexError, "[cross_entropy] target ", v,
             " is out of range for ", classes, " classes");
  if (logits.shape()[0] == 0) return;
  CrossEntropyParams p;
  p.logits_addr = address_of(logits);
  p.target_addr = address_of(target);
  p.loss_addr = address_of(loss);
  p.lse_addr = address_of(lse);
  p.ignore_index = ignore_index;
  p.rows = index32(logits.shape()[0], "cross_entropy");
  p.cols = index32(classes, "cross_entropy");
  index32(logits.numel(), "cross_entropy");
  p.target_is_i64 = target.dtype() == DType::Int64;
  context().dispatch(cross_entropy_shader("cross_entropy", logits, loss), &p, sizeof(p),
                     groups_for(p.rows, 1));
}

void VulkanBackend::cross_entropy_backward(const Tensor& grad_logits, const Tensor& grad_loss,
                                           const Tensor& logits, const Tensor& lse,
                                           const Tensor& target, int64_t ignore_index) {
  if (logits.numel() == 0) return;
  CrossEntropyParams p;
  p.logits_addr = address_of(logits);
  p.target_addr = address_of(target);
  p.loss_addr = address_of(grad_logits);
  p.lse_addr = address_of(lse);
  p.grad_loss_addr = address_of(grad_loss);
  p.grad_loss_stride = grad_loss.dim() == 0 ? 0 : index32(grad_loss.strides()[0], "cross_entropy");
  p.ignore_index = ignore_index;
  p.rows = index32(logits.shape()[0], "cross_entropy_backward");
  p.cols = index32(logits.shape()[1], "cross_entropy_backward");
  index32(logits.numel(), "cross_entropy_backward");
  p.target_is_i64 = target.dtype() == DType::Int64;
  context().dispatch(cross_entropy_shader("cross_entropy_backward", logits, grad_loss), &p,
                     sizeof(p), groups_for(logits.numel(), 256));
}

}  // namespace st::backend::vulkan
