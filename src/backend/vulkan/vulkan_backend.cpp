// The Vulkan backend instance and its registration; memory, transfers, copies, fill and arange.

#include "backend/vulkan/vulkan_backend.h"

#include <algorithm>
#include <cstring>

#include "backend/vulkan/elementwise.h"

namespace st::backend::vulkan {
namespace {

VulkanBackend instance;

// Registers the backend when the library loads; the device is probed on first use.
struct Registration {
  Registration() { register_backend(&instance); }
} registration;

}  // namespace

Context& context() {
  Context* c = Context::get();
  ST_CHECK(c, DeviceError, "[vulkan] no usable Vulkan device on this machine");
  return *c;
}

std::string_view shader_dtype(DType dtype, std::string_view op) {
  const DeviceCaps& caps = context().caps();
  const bool ok = dtype == DType::Float64                               ? caps.float64
                  : dtype == DType::Float16 || dtype == DType::BFloat16 ? caps.storage16
                                                                        : true;
  ST_CHECK(ok, NotImplementedError, "[", op, "] ", dtype,
           " is not supported on the Vulkan device '", context().device_name(), "' (it lacks ",
           dtype == DType::Float64 ? "shaderFloat64" : "storageBuffer16BitAccess", ")");
  switch (dtype) {
    case DType::Float32: return "f32";
    case DType::Float64: return "f64";
    case DType::Float16: return "f16";
    case DType::BFloat16: return "bf16";
    case DType::Int32: return "i32";
    case DType::Int64: return "i64";
    case DType::Bool: return "bool";
  }
  return "";
}

uint32_t groups_for(int64_t n, int64_t per_group) {
  // 65535 workgroups per dimension is what every device supports; shaders loop past it.
  return static_cast<uint32_t>(std::clamp<int64_t>((n + per_group - 1) / per_group, 0, 65535));
}

uint32_t index32(int64_t value, std::string_view op) {
  ST_CHECK(value >= 0 && value <= INT32_MAX, NotImplementedError, "[", op, "] ", value,
           " elements exceed the 32-bit indexing of the Vulkan backend");
  return static_cast<uint32_t>(value);
}

void* VulkanBackend::allocate(size_t nbytes, int) { return context().allocate(nbytes); }

void VulkanBackend::deallocate(void* ptr, size_t, int) {
  if (ptr) context().deallocate(ptr);
}

void VulkanBackend::copy_from_host(const Tensor& dst, const void* src) {
  context().upload(address_of(dst), src, dst.nbytes());
}

void VulkanBackend::copy_to_host(void* dst, const Tensor& src) {
  context().download(dst, address_of(src), src.nbytes());
}

void VulkanBackend::synchronize(int) { context().synchronize(); }

namespace {

// Mirrors TransposeParams of shaders/transpose.comp.
struct TransposeParams {
  uint64_t dst = 0;
  uint64_t src = 0;
  uint32_t batch = 0;
  uint32_t rows = 0;
  uint32_t cols = 0;
  uint32_t src_col = 0;
  uint32_t src_batch = 0;
  uint32_t pad = 0;
};

// A contiguous copy of a view whose last two dims are swapped (x.t().contiguous()), 4-byte
// elements, at most one batch dim: through shaders/transpose.comp. False for anything else.
bool transposed_copy(const Tensor& dst, const Tensor& src) {
  const int64_t ndim = src.dim();
  if (dst.dtype() != src.dtype() || dtype_size(src.dtype()) != 4 || !dst.is_contiguous() ||
      ndim < 2 || ndim > 3 || src.strides()[ndim - 2] != 1 || src.strides()[ndim - 1] == 1)
    return false;
  TransposeParams p;
  p.dst = address_of(dst);
  p.src = address_of(src);
  p.batch = ndim == 3 ? index32(src.shape()[0], "copy") : 1;
  p.rows = index32(src.shape()[ndim - 2], "copy");
  p.cols = index32(src.shape()[ndim - 1], "copy");
  p.src_col = index32(src.strides()[ndim - 1], "copy");
  p.src_batch = ndim == 3 ? index32(src.strides()[0], "copy") : 0;
  index32(src.numel(), "copy");
  context().dispatch("transpose_32", &p, sizeof(p), (p.cols + 31) / 32, (p.rows + 31) / 32,
                     std::min<uint32_t>(p.batch, 65535));
  return true;
}

}  // namespace

void VulkanBackend::copy(const Tensor& dst, const Tensor& src) {
  if (dst.numel() == 0) return;
  if (dst.dtype() == src.dtype() && dst.is_contiguous() && src.is_contiguous()) {
    // A shader with 16-byte accesses where both ends are aligned (several times the bandwidth of
    // vkCmdCopyBuffer on NVIDIA's driver); the copy command for the tail and unaligned views.
    const uint64_t dst_addr = address_of(dst), src_addr = address_of(src);
    const size_t nbytes = dst.nbytes();
    size_t done = 0;
    if (dst_addr % 16 == 0 && src_addr % 16 == 0 && nbytes >= 16) {
      CopyVec4Params p;
      p.dst = dst_addr;
      p.src = src_addr;
      p.count = index32(static_cast<int64_t>(nbytes / 16), "copy");
      context().dispatch("copy_vec4", &p, sizeof(p), groups_for(p.count, 256 * 4));
      done = size_t{p.count} * 16;
    }
    if (done < nbytes) context().copy_device(dst_addr + done, src_addr + done, nbytes - done);
    return;
  }
  if (transposed_copy(dst, src)) return;
  const std::string kernel = detail::concat("copy_", shader_dtype(dst.dtype(), "copy"), "_",
                                            shader_dtype(src.dtype(), "copy"));
  run_elementwise(kernel, "copy", {&dst, &src});
}

void VulkanBackend::fill(const Tensor& dst, const Scalar& value) {
  if (dst.numel() == 0) return;
  // The value travels inside the parameter block as a one-element source of dst's dtype, read
  // with stride 0 by the copy shader.
  const std::string kernel = detail::concat("copy_", shader_dtype(dst.dtype(), "fill"), "_",
                                            shader_dtype(dst.dtype(), "fill"));
  FillParams params;
  params.base = make_elementwise_params("fill", {&dst, &dst});
  params.base.addr[1] = offsetof(FillParams, value);
  std::memset(params.value, 0, sizeof(params.value));
  dispatch_dtype(dst.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T v = value.to<T>();  // saturates, as the CPU's fill
    std::memcpy(params.value, &v, sizeof(T));
  });
  for (int d = 0; d < kMaxDims; ++d) params.base.strides[kMaxDims + d] = 0;
  params.base.contiguous = 0;
  context().dispatch(kernel, &params, sizeof(params), groups_for(params.base.numel, 256), 1, 1,
                     offsetof(FillParams, base.addr) + sizeof(uint64_t));
}

void VulkanBackend::arange(const Tensor& dst, double start, double step) {
  // A factory op: computed by the CPU backend (whose conversions define the values) and uploaded.
  Tensor host = st::empty(dst.shape(), TensorOptions{dst.dtype()});
  backend_for(DeviceType::CPU).arange(host, start, step);
  copy_from_host(dst, host.data_ptr());
}

}  // namespace st::backend::vulkan
