// Grad mode (the C++ switch under st.no_grad / st.enable_grad), the autocast state under
// st.autocast, backward over several roots, and the objects Tensor.grad_fn returns.

#include <memory>

#include "bindings.h"

namespace st::python {
namespace {

// What Tensor.grad_fn shows of a graph node: its name, and the node itself kept alive, so the
// object stays valid as long as Python holds it.
struct GradFn {
  std::shared_ptr<autograd::Node> node;
  std::string name;
};

}  // namespace

nb::object grad_fn_object(const Tensor& t) {
  const AutogradMeta* meta = t.autograd_meta_if_any();
  if (meta == nullptr || !meta->grad_fn) return nb::none();
  return nb::cast(GradFn{meta->grad_fn, grad_fn_name(t)});
}

void init_autograd(nb::module_& m) {
  nb::class_<GradFn>(m, "GradFn", "The autograd node that made a tensor.")
      .def("name", [](const GradFn& f) { return f.name; })
      .def("__repr__", [](const GradFn& f) { return "<" + f.name + " object>"; });

  m.def("is_grad_enabled", &is_grad_enabled,
        "Whether ops record the autograd graph on this thread.");
  m.def("_set_grad_enabled", &set_grad_enabled, nb::arg("enabled"));
  // Autocast, per device type given as "cpu", "cuda" or "vulkan" (or a device such as "cuda:0").
  const auto type_of = [](std::string_view device_type) { return Device(device_type).type; };
  m.def(
      "is_autocast_enabled",
      [type_of](std::string_view device_type) { return is_autocast_enabled(type_of(device_type)); },
      nb::arg("device_type") = "cuda", "Whether an autocast scope is on for the device type.");
  m.def(
      "get_autocast_dtype",
      [type_of](std::string_view device_type) { return get_autocast_dtype(type_of(device_type)); },
      nb::arg("device_type") = "cuda", "The dtype autocast computes GEMMs in for the device type.");
  m.def(
      "_set_autocast_state",
      [type_of](std::string_view device_type, bool enabled, DType dtype) {
        const DeviceType type = type_of(device_type);
        set_autocast_dtype(type, dtype);
        set_autocast_enabled(type, enabled);
      },
      nb::arg("device_type"), nb::arg("enabled"), nb::arg("dtype"));
  m.def(
      "_backward",
      [](const std::vector<Tensor>& roots, const std::vector<std::optional<Tensor>>& gradients,
         bool retain_graph) {
        std::vector<Tensor> grads;
        for (const auto& g : gradients) grads.push_back(g.value_or(Tensor()));
        nb::gil_scoped_release release;
        backward(roots, grads, retain_graph);
      },
      nb::arg("tensors"), nb::arg("grad_tensors"), nb::arg("retain_graph") = false);
}

}  // namespace st::python
