// Batched GEMM. f32 operands that allow 16-byte accesses go through shaders/matmul_vec4.comp
// (128 x 128 tiles, or 64 x 64 when those would leave the device short of workgroups); everything
// else through the general tiled shader (shaders/matmul.comp): 128 x 128 tiles for large products,
// 32 x 32 for small ones, so that small matrices still fill the device.

#include <algorithm>
#include <bit>
#include <initializer_list>
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

// matmul_vec4.comp's conditions: each operand unit-stride along one of its dims, with that dim's
// length, every other stride and the base address multiples of 4 elements (16 bytes), and N a
// multiple of 4 for the vec4 stores into the contiguous output.
bool vec4_operand(uint64_t addr, uint32_t unit_len, std::initializer_list<uint32_t> strides) {
  if (addr % 16 != 0 || unit_len % 4 != 0) return false;
  for (uint32_t s : strides)
    if (s % 4 != 0) return false;
  return true;
}

bool gemm_vec4(const MatmulParams& p) {
  const bool a_ok = p.a_col == 1   ? vec4_operand(p.a_addr, p.k, {p.a_row, p.a_batch})
                    : p.a_row == 1 ? vec4_operand(p.a_addr, p.m, {p.a_col, p.a_batch})
                                   : false;
  const bool b_ok = p.b_col == 1   ? vec4_operand(p.b_addr, p.n, {p.b_row, p.b_batch})
                    : p.b_row == 1 ? vec4_operand(p.b_addr, p.k, {p.b_col, p.b_batch})
                                   : false;
  return a_ok && b_ok && p.n % 4 == 0 && p.out_addr % 16 == 0;
}

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
  const uint32_t batch_groups = std::min<uint32_t>(p.batch, 65535);
  if (out.dtype() == DType::Float32 && gemm_vec4(p)) {
    // 128 x 128 tiles while they give a few workgroups per multiprocessor of a large GPU.
    const int64_t tiles_128 = ((p.m + 127) / 128) * ((p.n + 127) / 128) * int64_t{p.batch};
    const uint32_t tile = tiles_128 >= 512 ? 128 : 64;
    context().dispatch(tile == 128 ? "matmul_vec4_large_f32" : "matmul_vec4_medium_f32", &p,
                       sizeof(p), (p.n + tile - 1) / tile, (p.m + tile - 1) / tile, batch_groups);
    return;
  }
  // Large tiles once they still give the device a few hundred workgroups.
  const int64_t large_tiles = ((p.m + 127) / 128) * ((p.n + 127) / 128) * int64_t{p.batch};
  const bool large = large_tiles >= 128;
  const uint32_t tile = large ? 128 : 32;
  context().dispatch(detail::concat(large ? "matmul_large_" : "matmul_small_", dtype), &p,
                     sizeof(p), (p.n + tile - 1) / tile, (p.m + tile - 1) / tile, batch_groups);
}

}  // namespace st::backend::vulkan
