// Safetensors checkpoints (serialize.h) for st.save / st.load.

#include <nanobind/stl/map.h>

#include <spiraltorch/serialize.h>

#include "bindings.h"

using namespace nb::literals;

namespace st::python {

void init_serialize(nb::module_& m) {
  m.def(
      "_save_safetensors",
      [](const std::string& path, const std::map<std::string, Tensor>& tensors,
         const std::map<std::string, std::string>& metadata) {
        nb::gil_scoped_release release;
        save_safetensors(path, tensors, metadata);
      },
      "path"_a, "tensors"_a, "metadata"_a,
      "Writes tensors to a safetensors file, atomically (temporary file, fsync, rename).");
  m.def(
      "_load_safetensors",
      [](const std::string& path, std::optional<Device> device) {
        SafetensorsFile file;
        {
          nb::gil_scoped_release release;
          file = load_safetensors(path, device.value_or(kCPU));
        }
        return nb::make_tuple(file.tensors, file.metadata);
      },
      "path"_a, "device"_a = nb::none(), "Reads a safetensors file: (tensors, metadata).");
}

}  // namespace st::python
