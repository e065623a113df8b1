#pragma once
// The Vulkan backend: Vulkan 1.2 compute with GLSL shaders (shaders/), one device per process.
// Private to src/backend/vulkan/. Kernels are grouped by family: vulkan_backend.cpp (registration,
// memory, copies, fill, arange), elementwise.cpp, reduce.cpp, matmul.cpp, softmax.cpp, norm.cpp,
// nn.cpp (embedding, cross entropy, random, dropout), optim.cpp (fused optimizer updates).

#include <cstdint>
#include <string>
#include <string_view>

#include "backend/backend.h"
#include "backend/vulkan/context.h"

namespace st::backend::vulkan {

class VulkanBackend final : public Backend {
 public:
  DeviceType device_type() const override { return DeviceType::Vulkan; }
  std::string_view name() const override { return "vulkan"; }
  int device_count() const override { return Context::get() ? 1 : 0; }

  void* allocate(size_t nbytes, int device_index) override;
  void deallocate(void* ptr, size_t nbytes, int device_index) override;
  void copy_from_host(const Tensor& dst, const void* src) override;
  void copy_to_host(void* dst, const Tensor& src) override;
  void synchronize(int device_index) override;

  void copy(const Tensor& dst, const Tensor& src) override;
  void fill(const Tensor& dst, const Scalar& value) override;
  void arange(const Tensor& dst, double start, double step) override;
  void uniform(const Tensor& dst, double low, double high, uint64_t seed, uint64_t offset) override;
  void normal(const Tensor& dst, double mean, double stddev, uint64_t seed,
              uint64_t offset) override;
  void unary(UnaryOp op, const Tensor& out, const Tensor& in, double alpha, double beta) override;
  void binary(BinaryOp op, const Tensor& out, const Tensor& a, const Tensor& b) override;
  void where(const Tensor& out, const Tensor& cond, const Tensor& a, const Tensor& b) override;

  void reduce(ReduceOp op, const Tensor& out, const Tensor& in,
              const std::vector<int64_t>& dims) override;
  void arg_reduce(ArgReduceOp op, const Tensor& values, const Tensor& indices, const Tensor& in,
                  int64_t dim) override;

  void matmul(const Tensor& out, const Tensor& a, const Tensor& b, double alpha,
              double beta) override;

  void softmax(const Tensor& out, const Tensor& in, bool log, double scale,
               int64_t causal_rows) override;
  void softmax_backward(const Tensor& grad_in, const Tensor& grad_out, const Tensor& out, bool log,
                        double scale) override;
  void layer_norm(const Tensor& out, const Tensor& mean, const Tensor& rstd, const Tensor& x,
                  const Tensor& weight, const Tensor& bias, double eps) override;
  void layer_norm_backward(const Tensor& grad_x, const Tensor& grad_weight, const Tensor& grad_bias,
                           const Tensor& grad_out, const Tensor& x, const Tensor& mean,
                           const Tensor& rstd, const Tensor& weight) override;
  void embedding(const Tensor& out, const Tensor& weight, const Tensor& indices) override;
  void embedding_backward(const Tensor& grad_weight, const Tensor& grad_out,
                          const Tensor& indices) override;
  void cross_entropy(const Tensor& loss, const Tensor& lse, const Tensor& logits,
                     const Tensor& target, int64_t ignore_index) override;
  void cross_entropy_backward(const Tensor& grad_logits, const Tensor& grad_loss,
                              const Tensor& logits, const Tensor& lse, const Tensor& target,
                              int64_t ignore_index) override;
  void dropout(const Tensor& out, const Tensor& mask, const Tensor& in, double p, uint64_t seed,
               uint64_t offset) override;

  void sgd_update(const std::vector<Tensor>& params, const std::vector<Tensor>& grads,
                  const std::vector<Tensor>& momentum_buffers, const SgdUpdate& update) override;
  void adam_update(const std::vector<Tensor>& params, const std::vector<Tensor>& grads,
                   const std::vector<Tensor>& exp_avgs, const std::vector<Tensor>& exp_avg_sqs,
                   const AdamUpdate& update) override;
  void sum_of_squares(const Tensor& out, const std::vector<Tensor>& tensors) override;
};

// Helpers shared by the kernel files.
Context& context();
// The device address of a tensor's first element.
inline uint64_t address_of(const Tensor& t) { return reinterpret_cast<uint64_t>(t.data_ptr()); }
// The shader-name suffix of a dtype ("f32", "bf16", ...), after checking that the device can
// store it: f64 needs shaderFloat64, f16 and bf16 16-bit storage; else NotImplementedError
// naming the op and the device.
std::string_view shader_dtype(DType dtype, std::string_view op);
// Workgroups for n items handled by a grid-stride loop of `per_group` items per pass.
uint32_t groups_for(int64_t n, int64_t per_group);
// Narrows a size or offset to the 32-bit indices the shaders use; NotImplementedError beyond.
uint32_t index32(int64_t value, std::string_view op);

}  // namespace st::backend::vulkan
