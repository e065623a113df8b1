#pragma once

#include <cstdint>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

namespace st {

enum class DeviceType : uint8_t { CPU, CUDA, Vulkan };
inline constexpr int kNumDeviceTypes = 3;

struct Device {
  DeviceType type = DeviceType::CPU;
  int index = 0;

  Device() = default;
  Device(DeviceType type, int index = 0) : type(type), index(index) {}  // NOLINT: Device(kCPU)
  // "cpu", "cuda", "cuda:1", "vulkan:0"; throws DeviceError on anything else.
  Device(std::string_view spec);                                // NOLINT
  Device(const char* spec) : Device(std::string_view(spec)) {}  // NOLINT

  bool is_cpu() const { return type == DeviceType::CPU; }
  std::string str() const;  // "cpu", "cuda:0"
  bool operator==(const Device&) const = default;
};

inline const Device kCPU{DeviceType::CPU, 0};

std::string_view device_type_name(DeviceType type);  // "cpu", "cuda", "vulkan"
std::ostream& operator<<(std::ostream& out, const Device& device);

// The backends this build has and this machine can use now, by name: {"cpu", "cuda", ...}.
std::vector<std::string> backends();
// One device of each usable backend (cpu, cuda:0, vulkan:0): what the conformance suite runs on.
std::vector<Device> available_devices();

}  // namespace st
