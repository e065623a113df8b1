// The Vulkan instance and device, memory blocks, the command ring and the pipeline cache.

#include "backend/vulkan/context.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "backend/vulkan/shaders.h"
#include "spiraltorch/error.h"

namespace st::backend::vulkan {
namespace {

// Per command buffer: room for parameter blocks and small uploads.
constexpr size_t kArenaBytes = size_t{4} << 20;
// Uploads above this get their own staging buffer rather than arena space.
constexpr size_t kArenaUploadLimit = size_t{1} << 20;
// Commands recorded before a buffer is submitted (without waiting), so the device starts early.
constexpr uint32_t kCommandsPerBatch = 256;

// A Vulkan info struct, zeroed, with its type tag.
template <typename T>
T vk_struct(VkStructureType type) {
  T s{};
  s.sType = type;
  return s;
}

void check_vk(VkResult result, const char* what) {
  ST_CHECK(result == VK_SUCCESS, Error, "[vulkan] ", what, " failed with VkResult ",
           static_cast<int>(result));
}

bool env_flag(const char* name) {
  const char* value = std::getenv(name);
  return value != nullptr && value[0] != '\0' && std::strcmp(value, "0") != 0;
}

// With ST_VULKAN_VALIDATION=1 every validation message is a bug in the backend: print it and
// abort, so that the test that caused it fails.
VKAPI_ATTR VkBool32 VKAPI_CALL on_validation_message(
    VkDebugUtilsMessageSeverityFlagBitsEXT severity, VkDebugUtilsMessageTypeFlagsEXT type,
    const VkDebugUtilsMessengerCallbackDataEXT* data, void*) {
  const bool serious = severity & (VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT |
                                   VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT);
  if (serious && (type & VK_DEBUG_UTILS_MESSAGE_TYPE_VALIDATION_BIT_EXT)) {
    std::fprintf(stderr, "[vulkan] validation: %s\n", data->pMessage);
    std::abort();
  }
  return VK_FALSE;
}

bool has_layer(const char* name) {
  uint32_t count = 0;
  vkEnumerateInstanceLayerProperties(&count, nullptr);
  std::vector<VkLayerProperties> layers(count);
  vkEnumerateInstanceLayerProperties(&count, layers.data());
  for (const auto& layer : layers)
    if (std::strcmp(layer.layerName, name) == 0) return true;
  return false;
}

int type_rank(VkPhysicalDeviceType type) {
  switch (type) {
    case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU: return 0;
    case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU: return 1;
    case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU: return 2;
    case VK_PHYSICAL_DEVICE_TYPE_CPU: return 3;
    default: return 4;
  }
}

struct Features {
  VkPhysicalDeviceFeatures2 base =
      vk_struct<VkPhysicalDeviceFeatures2>(VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2);
  VkPhysicalDeviceVulkan11Features v11 = vk_struct<VkPhysicalDeviceVulkan11Features>(
      VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_1_FEATURES);
  VkPhysicalDeviceVulkan12Features v12 = vk_struct<VkPhysicalDeviceVulkan12Features>(
      VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES);
  Features() {
    base.pNext = &v11;
    v11.pNext = &v12;
  }
  Features(const Features&) = delete;
};

// What the backend needs of a device: Vulkan 1.2, a compute queue, device addresses, 64-bit
// integers (addresses, int64 tensors) and 8-bit storage (bool tensors).
bool usable(VkPhysicalDevice device, std::string* why) {
  VkPhysicalDeviceProperties props;
  vkGetPhysicalDeviceProperties(device, &props);
  Features f;
  vkGetPhysicalDeviceFeatures2(device, &f.base);
  uint32_t families = 0;
  vkGetPhysicalDeviceQueueFamilyProperties(device, &families, nullptr);
  std::vector<VkQueueFamilyProperties> family(families);
  vkGetPhysicalDeviceQueueFamilyProperties(device, &families, family.data());
  bool compute = false;
  for (const auto& q : family) compute = compute || (q.queueFlags & VK_QUEUE_COMPUTE_BIT);
  const char* missing = props.apiVersion < VK_API_VERSION_1_2 ? "Vulkan 1.2"
                        : !compute                            ? "a compute queue"
                        : !f.v12.bufferDeviceAddress          ? "bufferDeviceAddress"
                        : !f.base.features.shaderInt64        ? "shaderInt64"
                        : !f.v12.storageBuffer8BitAccess      ? "storageBuffer8BitAccess"
                                                              : nullptr;
  if (missing && why) *why = missing;
  return missing == nullptr;
}

}  // namespace

Context* Context::get() {
  // Made once and never destroyed: tensors held in static objects may free memory at exit.
  static Context* context = [] {
    auto* c = new Context();
    try {
      if (c->init()) return c;
    } catch (const std::exception& e) {
      std::fprintf(stderr, "[vulkan] backend disabled: %s\n", e.what());
    }
    return static_cast<Context*>(nullptr);
  }();
  return context;
}

Context::~Context() = default;

bool Context::init() {
  uint32_t version = 0;
  if (vkEnumerateInstanceVersion(&version) != VK_SUCCESS || version < VK_API_VERSION_1_2)
    return false;
  const bool validation =
      env_flag("ST_VULKAN_VALIDATION") && has_layer("VK_LAYER_KHRONOS_validation");
  if (env_flag("ST_VULKAN_VALIDATION") && !validation)
    std::fprintf(stderr,
                 "[vulkan] ST_VULKAN_VALIDATION is set but VK_LAYER_KHRONOS_validation is "
                 "not installed\n");

  auto app = vk_struct<VkApplicationInfo>(VK_STRUCTURE_TYPE_APPLICATION_INFO);
  app.pApplicationName = "SpiralTorch";
  app.apiVersion = VK_API_VERSION_1_2;
  std::vector<const char*> layers, extensions;
  if (validation) {
    layers.push_back("VK_LAYER_KHRONOS_validation");
    extensions.push_back(VK_EXT_DEBUG_UTILS_EXTENSION_NAME);
  }
  auto info = vk_struct<VkInstanceCreateInfo>(VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO);
  info.pApplicationInfo = &app;
  info.enabledLayerCount = static_cast<uint32_t>(layers.size());
  info.ppEnabledLayerNames = layers.data();
  info.enabledExtensionCount = static_cast<uint32_t>(extensions.size());
  info.ppEnabledExtensionNames = extensions.data();
  if (vkCreateInstance(&info, nullptr, &instance_) != VK_SUCCESS) return false;
  if (validation) {
    auto create = reinterpret_cast<PFN_vkCreateDebugUtilsMessengerEXT>(
        vkGetInstanceProcAddr(instance_, "vkCreateDebugUtilsMessengerEXT"));
    auto m = vk_struct<VkDebugUtilsMessengerCreateInfoEXT>(
        VK_STRUCTURE_TYPE_DEBUG_UTILS_MESSENGER_CREATE_INFO_EXT);
    m.messageSeverity = VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT |
                        VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT;
    m.messageType = VK_DEBUG_UTILS_MESSAGE_TYPE_VALIDATION_BIT_EXT |
                    VK_DEBUG_UTILS_MESSAGE_TYPE_GENERAL_BIT_EXT;
    m.pfnUserCallback = on_validation_message;
    if (create)
      check_vk(create(instance_, &m, nullptr, &messenger_), "vkCreateDebugUtilsMessengerEXT");
  }

  uint32_t count = 0;
  vkEnumeratePhysicalDevices(instance_, &count, nullptr);
  std::vector<VkPhysicalDevice> devices(count);
  vkEnumeratePhysicalDevices(instance_, &count, devices.data());
  if (const char* chosen = std::getenv("ST_VULKAN_DEVICE"); chosen && chosen[0] != '\0') {
    // ST_VULKAN_DEVICE=N: the N-th device of the loader's enumeration, whatever its type.
    char* end = nullptr;
    const long n = std::strtol(chosen, &end, 10);
    std::string why;
    if (*end != '\0' || n < 0 || n >= static_cast<long>(count)) {
      std::fprintf(stderr, "[vulkan] ST_VULKAN_DEVICE=%s: expected an index below %u\n", chosen,
                   count);
      return false;
    }
    if (!usable(devices[n], &why)) {
      std::fprintf(stderr, "[vulkan] ST_VULKAN_DEVICE=%s: the device lacks %s\n", chosen,
                   why.c_str());
      return false;
    }
    physical_ = devices[n];
  } else {
    int best = 1 << 30;
    for (VkPhysicalDevice d : devices) {
      VkPhysicalDeviceProperties props;
      vkGetPhysicalDeviceProperties(d, &props);
      if (usable(d, nullptr) && type_rank(props.deviceType) < best) {
        best = type_rank(props.deviceType);
        physical_ = d;
      }
    }
  }
  if (physical_ == VK_NULL_HANDLE) return false;

  VkPhysicalDeviceProperties props;
  vkGetPhysicalDeviceProperties(physical_, &props);
  device_name_ = props.deviceName;
  vkGetPhysicalDeviceMemoryProperties(physical_, &memory_properties_);
  Features supported;
  vkGetPhysicalDeviceFeatures2(physical_, &supported.base);
  caps_.float64 = supported.base.features.shaderFloat64;
  caps_.storage16 = supported.v11.storageBuffer16BitAccess;
  auto subgroup = vk_struct<VkPhysicalDeviceSubgroupProperties>(
      VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_PROPERTIES);
  auto props2 =
      vk_struct<VkPhysicalDeviceProperties2>(VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2);
  props2.pNext = &subgroup;
  vkGetPhysicalDeviceProperties2(physical_, &props2);
  const VkSubgroupFeatureFlags needed = VK_SUBGROUP_FEATURE_BASIC_BIT |
                                        VK_SUBGROUP_FEATURE_VOTE_BIT |
                                        VK_SUBGROUP_FEATURE_ARITHMETIC_BIT;
  caps_.subgroup_arithmetic = (subgroup.supportedStages & VK_SHADER_STAGE_COMPUTE_BIT) &&
                              (subgroup.supportedOperations & needed) == needed;
  caps_.subgroup_size = subgroup.subgroupSize;

  uint32_t families = 0;
  vkGetPhysicalDeviceQueueFamilyProperties(physical_, &families, nullptr);
  std::vector<VkQueueFamilyProperties> family(families);
  vkGetPhysicalDeviceQueueFamilyProperties(physical_, &families, family.data());
  for (uint32_t i = 0; i < families; ++i) {
    if (family[i].queueFlags & VK_QUEUE_COMPUTE_BIT) {
      queue_family_ = i;
      break;
    }
  }
  const float priority = 1.0f;
  auto queue = vk_struct<VkDeviceQueueCreateInfo>(VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO);
  queue.queueFamilyIndex = queue_family_;
  queue.queueCount = 1;
  queue.pQueuePriorities = &priority;
  Features enabled;
  enabled.base.features.shaderInt64 = VK_TRUE;
  enabled.base.features.shaderFloat64 = caps_.float64;
  enabled.v11.storageBuffer16BitAccess = caps_.storage16;
  enabled.v12.bufferDeviceAddress = VK_TRUE;
  enabled.v12.storageBuffer8BitAccess = VK_TRUE;
  auto dinfo = vk_struct<VkDeviceCreateInfo>(VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO);
  dinfo.pNext = &enabled.base;
  dinfo.queueCreateInfoCount = 1;
  dinfo.pQueueCreateInfos = &queue;
  check_vk(vkCreateDevice(physical_, &dinfo, nullptr, &device_), "vkCreateDevice");
  vkGetDeviceQueue(device_, queue_family_, 0, &queue_);

  auto pool = vk_struct<VkCommandPoolCreateInfo>(VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO);
  pool.flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT;
  pool.queueFamilyIndex = queue_family_;
  check_vk(vkCreateCommandPool(device_, &pool, nullptr, &command_pool_), "vkCreateCommandPool");
  for (Batch& batch : ring_) {
    auto alloc =
        vk_struct<VkCommandBufferAllocateInfo>(VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO);
    alloc.commandPool = command_pool_;
    alloc.level = VK_COMMAND_BUFFER_LEVEL_PRIMARY;
    alloc.commandBufferCount = 1;
    check_vk(vkAllocateCommandBuffers(device_, &alloc, &batch.commands),
             "vkAllocateCommandBuffers");
    auto fence = vk_struct<VkFenceCreateInfo>(VK_STRUCTURE_TYPE_FENCE_CREATE_INFO);
    check_vk(vkCreateFence(device_, &fence, nullptr, &batch.fence), "vkCreateFence");
    batch.arena = make_block(kArenaBytes, true, true);
    ST_CHECK(batch.arena.buffer != VK_NULL_HANDLE, OutOfMemoryError,
             "[vulkan] out of memory allocating the parameter arena");
    auto address =
        vk_struct<VkBufferDeviceAddressInfo>(VK_STRUCTURE_TYPE_BUFFER_DEVICE_ADDRESS_INFO);
    address.buffer = batch.arena.buffer;
    batch.arena_address = vkGetBufferDeviceAddress(device_, &address);
  }

  VkPushConstantRange push{VK_SHADER_STAGE_COMPUTE_BIT, 0, sizeof(uint64_t)};
  auto layout =
      vk_struct<VkPipelineLayoutCreateInfo>(VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO);
  layout.pushConstantRangeCount = 1;
  layout.pPushConstantRanges = &push;
  check_vk(vkCreatePipelineLayout(device_, &layout, nullptr, &pipeline_layout_),
           "vkCreatePipelineLayout");

  pool_ = std::make_unique<CachingAllocator>(
      "vulkan:0",
      CachingAllocator::Callbacks{[this](size_t n) { return raw_alloc(n); },
                                  [this](void* p, size_t) { raw_free(p); }},
      CachingAllocator::options_from_env("VULKAN"));
  return true;
}

Context::Block Context::make_block(size_t nbytes, bool host_visible, bool device_address) {
  Block block;
  // Larger than any heap: out of memory, without asking the driver for an impossible buffer.
  VkDeviceSize largest_heap = 0;
  for (uint32_t i = 0; i < memory_properties_.memoryHeapCount; ++i)
    largest_heap = std::max(largest_heap, memory_properties_.memoryHeaps[i].size);
  if (nbytes == 0 || nbytes > largest_heap) return block;

  auto info = vk_struct<VkBufferCreateInfo>(VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO);
  info.size = nbytes;
  info.usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_TRANSFER_SRC_BIT |
               VK_BUFFER_USAGE_TRANSFER_DST_BIT;
  if (device_address) info.usage |= VK_BUFFER_USAGE_SHADER_DEVICE_ADDRESS_BIT;
  info.sharingMode = VK_SHARING_MODE_EXCLUSIVE;
  if (vkCreateBuffer(device_, &info, nullptr, &block.buffer) != VK_SUCCESS) {
    block.buffer = VK_NULL_HANDLE;
    return block;
  }
  VkMemoryRequirements req;
  vkGetBufferMemoryRequirements(device_, block.buffer, &req);

  // Preferences, best first: device-local for tensors; host-visible and coherent for staging,
  // device-local too where the device offers such memory.
  std::vector<VkMemoryPropertyFlags> wanted;
  const VkMemoryPropertyFlags host =
      VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT;
  if (host_visible)
    wanted = {host | VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT, host};
  else
    wanted = {VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT, 0};
  auto flags = vk_struct<VkMemoryAllocateFlagsInfo>(VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_FLAGS_INFO);
  flags.flags = VK_MEMORY_ALLOCATE_DEVICE_ADDRESS_BIT;
  auto alloc = vk_struct<VkMemoryAllocateInfo>(VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO);
  alloc.pNext = device_address ? &flags : nullptr;
  alloc.allocationSize = req.size;
  bool allocated = false;
  for (VkMemoryPropertyFlags want : wanted) {
    for (uint32_t i = 0; i < memory_properties_.memoryTypeCount && !allocated; ++i) {
      const auto& type = memory_properties_.memoryTypes[i];
      if (!(req.memoryTypeBits & (1u << i)) || (type.propertyFlags & want) != want) continue;
      if (memory_properties_.memoryHeaps[type.heapIndex].size < req.size) continue;
      alloc.memoryTypeIndex = i;
      allocated = vkAllocateMemory(device_, &alloc, nullptr, &block.memory) == VK_SUCCESS;
    }
    if (allocated) break;
  }
  if (!allocated) {
    vkDestroyBuffer(device_, block.buffer, nullptr);
    return Block{};
  }
  check_vk(vkBindBufferMemory(device_, block.buffer, block.memory, 0), "vkBindBufferMemory");
  if (host_visible)
    check_vk(vkMapMemory(device_, block.memory, 0, VK_WHOLE_SIZE, 0, &block.mapped), "vkMapMemory");
  block.size = nbytes;
  return block;
}

void Context::destroy_block(Block& block) {
  if (block.mapped) vkUnmapMemory(device_, block.memory);
  vkDestroyBuffer(device_, block.buffer, nullptr);
  vkFreeMemory(device_, block.memory, nullptr);
  block = Block{};
}

void* Context::raw_alloc(size_t nbytes) {
  std::lock_guard lock(mutex_);
  Block block = make_block(nbytes, false, true);
  if (block.buffer == VK_NULL_HANDLE) {
    // Blocks the pool just released wait for the device to finish with them; free them first.
    synchronize_locked();
    block = make_block(nbytes, false, true);
    if (block.buffer == VK_NULL_HANDLE) return nullptr;
  }
  auto info = vk_struct<VkBufferDeviceAddressInfo>(VK_STRUCTURE_TYPE_BUFFER_DEVICE_ADDRESS_INFO);
  info.buffer = block.buffer;
  const uint64_t address = vkGetBufferDeviceAddress(device_, &info);
  blocks_[address] = block;
  return reinterpret_cast<void*>(address);
}

void Context::raw_free(void* ptr) {
  std::lock_guard lock(mutex_);
  auto it = blocks_.find(reinterpret_cast<uint64_t>(ptr));
  if (it == blocks_.end()) return;
  // Commands already recorded may still use the block: it goes when they have run.
  recording_locked().garbage.push_back(it->second);
  blocks_.erase(it);
}

void* Context::allocate(size_t nbytes) { return nbytes == 0 ? nullptr : pool_->allocate(nbytes); }

void Context::deallocate(void* ptr) { pool_->deallocate(ptr); }

std::pair<VkBuffer, VkDeviceSize> Context::locate(uint64_t address) {
  auto it = blocks_.upper_bound(address);
  ST_CHECK(it != blocks_.begin(), Error, "[vulkan] address ", address, " is not in any buffer");
  --it;
  ST_CHECK(address - it->first <= it->second.size, Error, "[vulkan] address ", address,
           " is not in any buffer");
  return {it->second.buffer, address - it->first};
}

Context::Batch& Context::recording_locked() {
  Batch& batch = ring_[current_];
  if (!batch.recording) {
    if (batch.submitted) wait_batch_locked(batch);
    check_vk(vkResetCommandBuffer(batch.commands, 0), "vkResetCommandBuffer");
    auto begin = vk_struct<VkCommandBufferBeginInfo>(VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO);
    begin.flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT;
    check_vk(vkBeginCommandBuffer(batch.commands, &begin), "vkBeginCommandBuffer");
    batch.recording = true;
    batch.arena_used = 0;
    batch.commands_recorded = 0;
  }
  return batch;
}

uint64_t Context::arena_alloc_locked(size_t nbytes, const void* data) {
  Batch* batch = &recording_locked();
  const size_t start = (batch->arena_used + 15) & ~size_t{15};
  if (start + nbytes > kArenaBytes) {
    submit_locked();
    batch = &recording_locked();
    return arena_alloc_locked(nbytes, data);
  }
  std::memcpy(static_cast<char*>(batch->arena.mapped) + start, data, nbytes);
  batch->arena_used = start + nbytes;
  return batch->arena_address + start;
}

void Context::barrier_locked(Batch& batch) {
  auto barrier = vk_struct<VkMemoryBarrier>(VK_STRUCTURE_TYPE_MEMORY_BARRIER);
  barrier.srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT;
  barrier.dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT |
                          VK_ACCESS_TRANSFER_READ_BIT | VK_ACCESS_TRANSFER_WRITE_BIT;
  const VkPipelineStageFlags stages =
      VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT;
  vkCmdPipelineBarrier(batch.commands, stages, stages, 0, 1, &barrier, 0, nullptr, 0, nullptr);
  if (++batch.commands_recorded >= kCommandsPerBatch) submit_locked();
}

void Context::submit_locked() {
  Batch& batch = ring_[current_];
  if (!batch.recording) return;
  check_vk(vkEndCommandBuffer(batch.commands), "vkEndCommandBuffer");
  auto submit = vk_struct<VkSubmitInfo>(VK_STRUCTURE_TYPE_SUBMIT_INFO);
  submit.commandBufferCount = 1;
  submit.pCommandBuffers = &batch.commands;
  check_vk(vkQueueSubmit(queue_, 1, &submit, batch.fence), "vkQueueSubmit");
  batch.recording = false;
  batch.submitted = true;
  current_ = (current_ + 1) % kRing;
}

void Context::wait_batch_locked(Batch& batch) {
  const VkResult waited = vkWaitForFences(device_, 1, &batch.fence, VK_TRUE, UINT64_MAX);
  ST_CHECK(waited == VK_SUCCESS, Error, "[vulkan] waiting for the device failed with VkResult ",
           static_cast<int>(waited), waited == VK_ERROR_DEVICE_LOST ? " (device lost)" : "");
  check_vk(vkResetFences(device_, 1, &batch.fence), "vkResetFences");
  for (Block& block : batch.garbage) destroy_block(block);
  batch.garbage.clear();
  batch.submitted = false;
}

void Context::synchronize_locked() {
  submit_locked();
  for (Batch& batch : ring_)
    if (batch.submitted) wait_batch_locked(batch);
}

void Context::synchronize() {
  std::lock_guard lock(mutex_);
  synchronize_locked();
}

void Context::upload(uint64_t dst, const void* src, size_t nbytes) {
  if (nbytes == 0) return;
  std::lock_guard lock(mutex_);
  const auto [buffer, offset] = locate(dst);
  VkBufferCopy region{0, offset, nbytes};
  VkBuffer staging;
  if (nbytes <= kArenaUploadLimit) {
    const uint64_t at = arena_alloc_locked(nbytes, src);
    region.srcOffset = at - ring_[current_].arena_address;
    staging = ring_[current_].arena.buffer;
  } else {
    Block block = make_block(nbytes, true, false);
    ST_CHECK(block.buffer != VK_NULL_HANDLE, OutOfMemoryError,
             "[vulkan] out of host memory staging an upload of ", nbytes, " bytes");
    std::memcpy(block.mapped, src, nbytes);
    staging = block.buffer;
    recording_locked().garbage.push_back(block);
  }
  Batch& batch = recording_locked();
  vkCmdCopyBuffer(batch.commands, staging, buffer, 1, &region);
  barrier_locked(batch);
}

void Context::download(void* dst, uint64_t src, size_t nbytes) {
  if (nbytes == 0) return;
  std::lock_guard lock(mutex_);
  const auto [buffer, offset] = locate(src);
  if (readback_.size < nbytes) {
    // Every download waits for its copy, so no command still uses the old buffer.
    if (readback_.buffer != VK_NULL_HANDLE) destroy_block(readback_);
    readback_ = make_block(std::max(nbytes, size_t{1} << 16), true, false);
    ST_CHECK(readback_.buffer != VK_NULL_HANDLE, OutOfMemoryError,
             "[vulkan] out of host memory reading back ", nbytes, " bytes");
  }
  Batch& batch = recording_locked();
  VkBufferCopy region{offset, 0, nbytes};
  vkCmdCopyBuffer(batch.commands, buffer, readback_.buffer, 1, &region);
  barrier_locked(batch);
  synchronize_locked();
  std::memcpy(dst, readback_.mapped, nbytes);
}

void Context::copy_device(uint64_t dst, uint64_t src, size_t nbytes) {
  if (nbytes == 0) return;
  std::lock_guard lock(mutex_);
  const auto [dst_buffer, dst_offset] = locate(dst);
  const auto [src_buffer, src_offset] = locate(src);
  Batch& batch = recording_locked();
  VkBufferCopy region{src_offset, dst_offset, nbytes};
  vkCmdCopyBuffer(batch.commands, src_buffer, dst_buffer, 1, &region);
  barrier_locked(batch);
}

VkPipeline Context::pipeline_locked(std::string_view kernel) {
  const std::string name(kernel);
  if (auto it = pipelines_.find(name); it != pipelines_.end()) return it->second;
  const EmbeddedShader* shader = nullptr;
  for (const EmbeddedShader& s : embedded_shaders())
    if (name == s.name) shader = &s;
  ST_CHECK(shader, NotImplementedError, "[vulkan] no shader variant '", name, "' in this build");
  auto module_info =
      vk_struct<VkShaderModuleCreateInfo>(VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO);
  module_info.codeSize = shader->nbytes;
  module_info.pCode = shader->code;
  VkShaderModule module;
  check_vk(vkCreateShaderModule(device_, &module_info, nullptr, &module), "vkCreateShaderModule");
  auto info =
      vk_struct<VkComputePipelineCreateInfo>(VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO);
  info.stage.sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO;
  info.stage.stage = VK_SHADER_STAGE_COMPUTE_BIT;
  info.stage.module = module;
  info.stage.pName = "main";
  info.layout = pipeline_layout_;
  VkPipeline pipeline;
  const VkResult made =
      vkCreateComputePipelines(device_, VK_NULL_HANDLE, 1, &info, nullptr, &pipeline);
  vkDestroyShaderModule(device_, module, nullptr);
  check_vk(made, "vkCreateComputePipelines");
  pipelines_.emplace(name, pipeline);
  return pipeline;
}

void Context::dispatch(std::string_view kernel, const void* params, size_t nbytes,
                       uint32_t groups_x, uint32_t groups_y, uint32_t groups_z, int relocate) {
  if (groups_x == 0 || groups_y == 0 || groups_z == 0) return;
  std::lock_guard lock(mutex_);
  const VkPipeline pipeline = pipeline_locked(kernel);
  const uint64_t address = arena_alloc_locked(nbytes, params);
  if (relocate >= 0) {
    char* block = static_cast<char*>(ring_[current_].arena.mapped) +
                  (address - ring_[current_].arena_address);
    uint64_t at;
    std::memcpy(&at, block + relocate, sizeof(at));
    at += address;
    std::memcpy(block + relocate, &at, sizeof(at));
  }
  Batch& batch = recording_locked();
  vkCmdBindPipeline(batch.commands, VK_PIPELINE_BIND_POINT_COMPUTE, pipeline);
  vkCmdPushConstants(batch.commands, pipeline_layout_, VK_SHADER_STAGE_COMPUTE_BIT, 0,
                     sizeof(address), &address);
  vkCmdDispatch(batch.commands, groups_x, groups_y, groups_z);
  barrier_locked(batch);
}

}  // namespace st::backend::vulkan
