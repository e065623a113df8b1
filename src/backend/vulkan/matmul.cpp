// Batched GEMM through the tiled shared-memory shader (shaders/matmul.comp): 128 x 128 tiles for
// large products, 32 x 32 for small ones, so that small matrices still fill the device.

#include <algorithm>
#include <bit>
#include <string>

#include "backend/vulkan/vulkan_backend.h"

namespace st::backend::vulkan {
namespace {

// Mirrors MatmulParams of shaders/matmul.comp.
struct MatmulParams {
  uint64_t a_addr = 0;
  uint64_t b_addr = 0;
  uint64_t out_addr = 0;
  uint64_t alpha_bits = 0;
  uint64_t beta_bits = 0;
  float alpha_f = 0;
  float beta_f = 0;
  uint32_t m = 0;
  uint32_t n = 0;
  uint32_t k = 0;
  uint32_t batch = 0;
  uint32_t a_batch = 0;
  uint32_t a_row = 0;
  uint32_t a_col = 0;
  uint32_t b_batch = 0;
  uint32_t b_row = 0;
  uint32_t b_col = 0;
};

}  // namespace

void VulkanBackend::matmul(const Tensor& out, const Tensor& a, const Tensor& b, double alpha,
                           double beta) {
  if (out.numel() == 0) return;
  if (!is_floating(out.dtype())) not_implemented(detail::concat("matmul for ", out.dtype()));
  MatmulParams p;
  p.a_addr = address_of(a);
  p.b_addr = address_of(b);
  p.out_addr = address_of(out);
  p.alpha_bits = std::bit_cast<uint64_t>(alpha);
  p.beta_bits = std::bit_cast<uint64_t>(beta);
  p.alpha_f = static_cast<float>(alpha);
  p.beta_f = static_cast<float>(beta);
  p.batch = index32(out.shape()[0], "matmul");
  p.m = index32(out.shape()[1], "matmul");
  p.n = index32(out.shape()[2], "matmul");
  p.k = index32(a.shape()[2], "matmul");
  index32(out.numel(), "matmul");
  p.a_batch = index32(a.strides()[0], "matmul");
  p.a_row = index32(a.strides()[1], "matmul");
  p.a_col = index32(a.strides()[2], "matmul");
  p.b_batch = index32(b.strides()[0], "matmul");
  p.b_row = index32(b.strides()[1], "matmul");
  p.b_col = index32(b.strides()[2], "matmul");
  const std::string_view dtype = shader_dtype(out.dtype(), "matmul");
  // Large tiles once they still give the device a few hundred workgroups.
  const int64_t large_tiles = ((p.m + 127) / 128) * ((p.n + 127) / 128) * int64_t{p.batch};
  const bool large = large_tiles >= 128;
  const uint32_t tile = large ? 128 : 32;
  context().dispatch(detail::concat(large ? "matmul_large_" : "matmul_small_", dtype), &p,
                     sizeof(p), (p.n + tile - 1) / tile, (p.m + tile - 1) / tile,
                     std::min<uint32_t>(p.batch, 65535));
}

}  // namespace st::backend::vulkan
