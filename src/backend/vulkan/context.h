#pragma once
// The Vulkan device, its memory and its command stream. Private to src/backend/vulkan/.
//
// Memory: every block is one VkBuffer with its own memory, made with a device address; the
// address is the pointer Storage holds, so a view's data_ptr() (address + offset) is itself an
// address that shaders read through GL_EXT_buffer_reference. Blocks are pooled by the shared
// CachingAllocator (ST_VULKAN_POOL_*).
//
// Commands: dispatches and copies are recorded into one command buffer after another in a small
// ring; a full buffer is submitted without waiting, and the host waits only when it reads values
// (copy_to_host, synchronize). Every command is followed by a global memory barrier, so commands
// run in recording order, as on one CUDA stream. Each dispatch gets one push constant, the device
// address of its parameter block, written into the recording buffer's host-visible arena.

#include <vulkan/vulkan.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/caching_allocator.h"

namespace st::backend::vulkan {

struct DeviceCaps {
  bool float64 = false;
  bool storage16 = false;  // f16 and bf16 tensors
  // Arithmetic subgroup operations in compute shaders, and the subgroup size.
  bool subgroup_arithmetic = false;
  uint32_t subgroup_size = 0;
};

class Context {
 public:
  // The process's context, made on first use; null when no usable device exists.
  static Context* get();
  ~Context();
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  const DeviceCaps& caps() const { return caps_; }
  const std::string& device_name() const { return device_name_; }

  // Memory: device addresses as void*. allocate(0) returns null.
  void* allocate(size_t nbytes);
  void deallocate(void* ptr);
  CachingAllocator& pool() { return *pool_; }

  // Transfers of contiguous bytes at device addresses.
  void upload(uint64_t dst, const void* src, size_t nbytes);
  void download(void* dst, uint64_t src, size_t nbytes);  // waits for the device
  void copy_device(uint64_t dst, uint64_t src, size_t nbytes);

  // Records `kernel` (a shader variant name) over the given workgroups with a parameter block.
  // When `relocate` is set, the uint64 at that byte offset of the block is an offset into the
  // block itself and becomes its device address: how a kernel reads a constant (a fill value)
  // shipped inside its parameters.
  void dispatch(std::string_view kernel, const void* params, size_t nbytes, uint32_t groups_x,
                uint32_t groups_y = 1, uint32_t groups_z = 1, int relocate = -1);

  // Submits what is recorded and waits for the device to finish all of it.
  void synchronize();

 private:
  struct Block {
    VkBuffer buffer = VK_NULL_HANDLE;
    VkDeviceMemory memory = VK_NULL_HANDLE;
    size_t size = 0;
    void* mapped = nullptr;  // host-visible blocks only
  };
  // One command buffer of the ring, with what must live until the device has run it.
  struct Batch {
    VkCommandBuffer commands = VK_NULL_HANDLE;
    VkFence fence = VK_NULL_HANDLE;
    Block arena;  // host-visible: parameter blocks and staged uploads
    size_t arena_used = 0;
    uint64_t arena_address = 0;
    std::vector<Block> garbage;  // released when the fence signals
    bool recording = false;
    bool submitted = false;
    uint32_t commands_recorded = 0;
  };

  Context() = default;
  bool init();
  Block make_block(size_t nbytes, bool host_visible, bool device_address);
  void destroy_block(Block& block);
  void* raw_alloc(size_t nbytes);
  void raw_free(void* ptr);
  // The buffer holding device address `address`, and the offset of the address in it.
  std::pair<VkBuffer, VkDeviceSize> locate(uint64_t address);
  Batch& recording_locked();
  uint64_t arena_alloc_locked(size_t nbytes, const void* data);
  void barrier_locked(Batch& batch);
  void submit_locked();
  void wait_batch_locked(Batch& batch);
  void synchronize_locked();
  VkPipeline pipeline_locked(std::string_view kernel);

  VkInstance instance_ = VK_NULL_HANDLE;
  VkDebugUtilsMessengerEXT messenger_ = VK_NULL_HANDLE;
  VkPhysicalDevice physical_ = VK_NULL_HANDLE;
  VkDevice device_ = VK_NULL_HANDLE;
  VkQueue queue_ = VK_NULL_HANDLE;
  uint32_t queue_family_ = 0;
  VkPhysicalDeviceMemoryProperties memory_properties_{};
  VkCommandPool command_pool_ = VK_NULL_HANDLE;
  VkPipelineLayout pipeline_layout_ = VK_NULL_HANDLE;
  DeviceCaps caps_;
  std::string device_name_;

  std::recursive_mutex mutex_;
  std::unique_ptr<CachingAllocator> pool_;
  std::map<uint64_t, Block> blocks_;  // by device address
  std::unordered_map<std::string, VkPipeline> pipelines_;
  static constexpr size_t kRing = 3;
  Batch ring_[kRing];
  size_t current_ = 0;
  Block readback_;
};

}  // namespace st::backend::vulkan
