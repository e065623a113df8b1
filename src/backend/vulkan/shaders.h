#pragma once
// The SPIR-V of every shader variant, embedded at build time (CMakeLists.txt, embed_spirv.cmake).

#include <cstddef>
#include <cstdint>
#include <vector>

namespace st::backend::vulkan {

struct EmbeddedShader {
  const char* name;  // variant name, e.g. "unary_f16"
  const uint32_t* code;
  size_t nbytes;
};

const std::vector<EmbeddedShader>& embedded_shaders();

}  // namespace st::backend::vulkan
