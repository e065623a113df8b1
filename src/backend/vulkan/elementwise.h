#pragma once
// Parameter blocks of the elementwise shaders (shaders/elementwise.glsl) and of the reduce shader,
// and the elementwise builder.

#include <cstdint>
#include <initializer_list>
#include <string_view>
#include <vector>

#include "backend/vulkan/vulkan_backend.h"

namespace st::backend::vulkan {

constexpr int kMaxDims = 6;

// Mirrors ElementwiseParams of shaders/elementwise.glsl (std430: natural alignment, no padding).
struct ElementwiseParams {
  uint64_t addr[4] = {};
  uint32_t numel = 0;
  uint32_t ndim = 0;
  uint32_t op = 0;
  uint32_t contiguous = 0;
  float alpha_f = 0;
  float beta_f = 0;
  uint64_t alpha_bits = 0;
  uint64_t beta_bits = 0;
  int64_t alpha_i = 0;
  int64_t beta_i = 0;
  uint32_t shape[kMaxDims] = {};
  uint32_t strides[4 * kMaxDims] = {};
};
static_assert(sizeof(ElementwiseParams) == 208);

// The copy shader's parameters followed by a fill value of up to 8 bytes.
struct FillParams {
  ElementwiseParams base;
  unsigned char value[8];
};

// Mirrors CopyVec4Params of shaders/copy_vec4.comp.
struct CopyVec4Params {
  uint64_t dst = 0;
  uint64_t src = 0;
  uint32_t count = 0;
  uint32_t pad = 0;
};

// Mirrors ReduceParams of shaders/reduce.comp (also used by sum_of_squares for its last pass).
struct ReduceParams {
  uint64_t in_addr = 0;
  uint64_t out_addr = 0;
  uint32_t n_out = 0;
  uint32_t count = 0;
  uint32_t chunks = 1;
  uint32_t op = 0;
  uint32_t divisor = 0;
  uint32_t kept_ndim = 0;
  uint32_t reduced_ndim = 0;
  uint32_t pad = 0;
  uint32_t kept_shape[kMaxDims] = {};
  uint32_t kept_strides[kMaxDims] = {};
  uint32_t reduced_shape[kMaxDims] = {};
  uint32_t reduced_strides[kMaxDims] = {};
};

// Parameters over operands of one shape (the first is the output): size-1 dims dropped, and
// neighbouring dims merged wherever every operand's strides allow.
ElementwiseParams make_elementwise_params(std::string_view op,
                                          std::initializer_list<const Tensor*> operands);
// Builds the parameters and dispatches `kernel` over every element, or `vec4_kernel` (when given)
// where every operand is f32, dense and 16-byte aligned.
void run_elementwise(std::string_view kernel, std::string_view op,
                     std::initializer_list<const Tensor*> operands, uint32_t code = 0,
                     double alpha = 0, double beta = 0, std::string_view vec4_kernel = {});

}  // namespace st::backend::vulkan
