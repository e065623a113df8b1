// The C++ layers of nn.h as st.nn classes. They carry the methods of st.nn.Module (parameters,
// named_parameters, state_dict, load_state_dict, train/eval, to, zero_grad, __call__), so Python
// modules hold them as submodules; their parameters are the layers' own tensors (shared storage),
// so an optimizer over model.parameters() updates what the C++ forward computes with.

#include <nanobind/stl/map.h>
#include <nanobind/stl/pair.h>
#include <nanobind/stl/shared_ptr.h>

#include <spiraltorch/nn.h>

#include "bindings.h"

using namespace nb::literals;

namespace st::python {
namespace {

using nn::Module;

TensorOptions layer_options(std::optional<Device> device, std::optional<DType> dtype) {
  return {dtype.value_or(kDefaultFloat), device.value_or(kCPU), false};
}

nb::list named(const nn::NamedTensors& tensors, const std::string& prefix) {
  nb::list out;
  for (const auto& [name, t] : tensors) {
    out.append(nb::make_tuple(prefix.empty() ? name : prefix + "." + name, t));
  }
  return out;
}

// Module.to(...) with Tensor.to's arguments: a device, a dtype, or both.
void module_to(Module& m, const nb::args& args, const nb::kwargs& kwargs) {
  std::optional<Device> device;
  std::optional<DType> dtype;
  for (nb::handle arg : args) {
    if (nb::isinstance<DType>(arg))
      dtype = nb::cast<DType>(arg);
    else
      device = device_from_object(arg);
  }
  for (auto [key, value] : kwargs) {
    const std::string name = nb::cast<std::string>(key);
    if (name == "dtype" && !value.is_none()) dtype = nb::cast<DType>(value);
    if (name == "device" && !value.is_none()) device = device_from_object(value);
  }
  nb::gil_scoped_release release;
  if (device) m.to(*device);
  if (dtype) m.to(*dtype);
}

Tensor forward(Module& m, const Tensor& x) {
  if (x.numel() < kReleaseGilElements) return m.forward(x);
  nb::gil_scoped_release release;
  return m.forward(x);
}

// A settable tensor attribute of a layer: assigning replaces the member the layer computes with.
template <typename Layer, typename Class>
void tensor_member(Class& cls, const char* name, Tensor Layer::*member) {
  cls.def_prop_rw(
      name,
      [member](const Layer& l) -> std::optional<Tensor> {
        if (!(l.*member).defined()) return std::nullopt;
        return l.*member;
      },
      [member, name](Layer& l, const Tensor& value) {
        ST_CHECK((l.*member).defined() && value.shape() == (l.*member).shape(), ShapeError, "[",
                 l.name(), "] ", name, " must keep its shape ", (l.*member).shape(), ", got ",
                 value.shape());
        l.*member = value;
      });
}

}  // namespace

void init_nn(nb::module_& m) {
  nb::module_ nn = m.def_submodule("nn", "The C++ layers of st.nn.");
  nb::class_<Module>(nn, "CppModule",
                     "A module implemented in C++: the methods of st.nn.Module, with its forward "
                     "in C++.")
      .def("forward", &forward, "input"_a)
      // Through the attribute, so a Python subclass that overrides forward() is honoured.
      .def(
          "__call__", [](nb::handle self, nb::handle input) { return self.attr("forward")(input); },
          "input"_a)
      .def(
          "named_parameters",
          [](const Module& m, const std::string& prefix, bool recurse) {
            return named(m.named_parameters(), prefix);
          },
          "prefix"_a = "", "recurse"_a = true)
      .def(
          "parameters", [](const Module& m, bool) { return m.parameters(); }, "recurse"_a = true)
      .def(
          "named_buffers",
          [](const Module& m, const std::string& prefix, bool) {
            return named(m.named_buffers(), prefix);
          },
          "prefix"_a = "", "recurse"_a = true)
      .def(
          "buffers",
          [](const Module& m, bool) {
            std::vector<Tensor> out;
            for (auto& [name, t] : m.named_buffers()) out.push_back(t);
            return out;
          },
          "recurse"_a = true)
      .def("named_children",
           [](const Module& m) {
             nb::list out;
             for (auto& [name, child] : m.named_children()) out.append(nb::make_tuple(name, child));
             return out;
           })
      .def("state_dict", &Module::state_dict,
           "Parameters and buffers by dotted name, detached but sharing storage.")
      .def(
          "load_state_dict",
          [](Module& m, const nn::StateDict& state, bool strict) {
            nb::gil_scoped_release release;
            m.load_state_dict(state, strict);
          },
          "state_dict"_a, "strict"_a = true)
      .def(
          "train",
          [](Module& m, bool mode) -> Module& {
            m.train(mode);
            return m;
          },
          "mode"_a = true, nb::rv_policy::reference)
      .def(
          "eval",
          [](Module& m) -> Module& {
            m.eval();
            return m;
          },
          nb::rv_policy::reference)
      .def_prop_ro("training", &Module::is_training)
      .def("zero_grad", &Module::zero_grad, "set_to_none"_a = true)
      .def(
          "to",
          [](Module& m, nb::args args, nb::kwargs kwargs) -> Module& {
            module_to(m, args, kwargs);
            return m;
          },
          nb::rv_policy::reference)
      .def("__repr__", &Module::str);

  auto linear = nb::class_<nn::Linear, Module>(nn, "Linear", "y = x W^T + b, as torch.nn.Linear.")
                    .def(
                        "__init__",
                        [](nn::Linear* self, int64_t in, int64_t out, bool bias,
                           std::optional<Device> device, std::optional<DType> dtype) {
                          new (self) nn::Linear(in, out, bias, layer_options(device, dtype));
                        },
                        "in_features"_a, "out_features"_a, "bias"_a = true, nb::kw_only(),
                        "device"_a = nb::none(), "dtype"_a = nb::none());
  tensor_member(linear, "weight", &nn::Linear::weight);
  tensor_member(linear, "bias", &nn::Linear::bias);

  auto layer_norm = nb::class_<nn::LayerNorm, Module>(nn, "LayerNorm", "As torch.nn.LayerNorm.")
                        .def(
                            "__init__",
                            [](nn::LayerNorm* self, nb::handle shape, double eps, bool affine,
                               std::optional<Device> device, std::optional<DType> dtype) {
                              new (self) nn::LayerNorm(shape_from_object(shape, "LayerNorm"), eps,
                                                       affine, layer_options(device, dtype));
                            },
                            "normalized_shape"_a, "eps"_a = 1e-5, "elementwise_affine"_a = true,
                            nb::kw_only(), "device"_a = nb::none(), "dtype"_a = nb::none());
  tensor_member(layer_norm, "weight", &nn::LayerNorm::weight);
  tensor_member(layer_norm, "bias", &nn::LayerNorm::bias);

  auto embedding =
      nb::class_<nn::Embedding, Module>(nn, "Embedding", "A lookup table, as torch.nn.Embedding.")
          .def(
              "__init__",
              [](nn::Embedding* self, int64_t num, int64_t dim, std::optional<Device> device,
                 std::optional<DType> dtype) {
                new (self) nn::Embedding(num, dim, layer_options(device, dtype));
              },
              "num_embeddings"_a, "embedding_dim"_a, nb::kw_only(), "device"_a = nb::none(),
              "dtype"_a = nb::none());
  tensor_member(embedding, "weight", &nn::Embedding::weight);

  nb::class_<nn::Dropout, Module>(nn, "Dropout", "As torch.nn.Dropout.")
      .def(nb::init<double>(), "p"_a = 0.5);
  nb::class_<nn::ReLU, Module>(nn, "ReLU").def(nb::init<>());
  nb::class_<nn::GELU, Module>(nn, "GELU")
      .def(
          "__init__",
          [](nn::GELU* self, const std::string& approximate) {
            ST_CHECK(approximate == "none" || approximate == "tanh", ValueError,
                     "[GELU] approximate must be 'none' or 'tanh', got '", approximate, "'");
            new (self)
                nn::GELU(approximate == "tanh" ? GeluApproximate::Tanh : GeluApproximate::None);
          },
          "approximate"_a = "none");
  nb::class_<nn::CausalSelfAttention, Module>(
      nn, "CausalSelfAttention",
      "Multi-head causal self-attention over [B, T, d_model], with fused qkv and output "
      "projections.")
      .def(
          "__init__",
          [](nn::CausalSelfAttention* self, int64_t d_model, int64_t heads, double dropout,
             bool bias, std::optional<Device> device, std::optional<DType> dtype) {
            new (self) nn::CausalSelfAttention(d_model, heads, dropout, bias,
                                               layer_options(device, dtype));
          },
          "d_model"_a, "num_heads"_a, "dropout"_a = 0.0, "bias"_a = true, nb::kw_only(),
          "device"_a = nb::none(), "dtype"_a = nb::none())
      .def_ro("qkv", &nn::CausalSelfAttention::qkv)
      .def_ro("proj", &nn::CausalSelfAttention::proj);

  nb::module_ init =
      nn.def_submodule("init", "Parameter initialization, in place, outside autograd.");
  init.def(
      "uniform_",
      [](const Tensor& t, double a, double b) {
        nn::init::uniform_(t, a, b);
        return t;
      },
      "tensor"_a, "a"_a = 0.0, "b"_a = 1.0);
  init.def(
      "normal_",
      [](const Tensor& t, double mean, double std) {
        nn::init::normal_(t, mean, std);
        return t;
      },
      "tensor"_a, "mean"_a = 0.0, "std"_a = 1.0);
  init.def(
      "zeros_",
      [](const Tensor& t) {
        nn::init::zeros_(t);
        return t;
      },
      "tensor"_a);
  init.def(
      "ones_",
      [](const Tensor& t) {
        nn::init::ones_(t);
        return t;
      },
      "tensor"_a);
  init.def(
      "kaiming_uniform_",
      [](const Tensor& t, double a) {
        nn::init::kaiming_uniform_(t, a);
        return t;
      },
      "tensor"_a, "a"_a = 0.0);
  init.def(
      "xavier_uniform_",
      [](const Tensor& t, double gain) {
        nn::init::xavier_uniform_(t, gain);
        return t;
      },
      "tensor"_a, "gain"_a = 1.0);
}

}  // namespace st::python
