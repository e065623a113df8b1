#include "spiraltorch/device.h"

#include <cctype>

#include "spiraltorch/error.h"

namespace st {

std::string_view device_type_name(DeviceType type) {
  switch (type) {
    case DeviceType::CPU: return "cpu";
    case DeviceType::CUDA: return "cuda";
    case DeviceType::Vulkan: return "vulkan";
  }
  return "unknown";
}

Device::Device(std::string_view spec) {
  const size_t colon = spec.find(':');
  const std::string_view name = spec.substr(0, colon);
  bool known = false;
  for (DeviceType t : {DeviceType::CPU, DeviceType::CUDA, DeviceType::Vulkan}) {
    if (name == device_type_name(t)) {
      type = t;
      known = true;
    }
  }
  ST_CHECK(known, DeviceError, "[device] unknown device '", spec,
           "'; expected cpu, cuda or vulkan, optionally with an index as in cuda:1");
  index = 0;
  if (colon != std::string_view::npos) {
    const std::string_view digits = spec.substr(colon + 1);
    bool valid = !digits.empty() && digits.size() <= 6;
    for (char c : digits) valid = valid && std::isdigit(static_cast<unsigned char>(c));
    ST_CHECK(valid, DeviceError, "[device] bad device index in '", spec, "'; expected e.g. cuda:0");
    index = std::stoi(std::string(digits));
  }
}

std::string Device::str() const {
  std::string s(device_type_name(type));
  if (type != DeviceType::CPU) {
    s += ':';
    s += std::to_string(index);
  }
  return s;
}

std::ostream& operator<<(std::ostream& out, const Device& device) { return out << device.str(); }

}  // namespace st
