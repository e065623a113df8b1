// st.dtype, st.device and st.Tensor: metadata, views, math methods, operators and in-place ops.
// Methods are bound straight to C++ (no Python layer in between): a tiny op's cost from Python is
// the binding's dispatch plus the op itself.

#include <string>

#include "bindings.h"

namespace st::python {
namespace {

int64_t as_int(nb::handle obj, const char* op) {
  // bool is an int to Python, but not a size or a dim (as in PyTorch).
  const bool is_int = PyLong_Check(obj.ptr()) && !PyBool_Check(obj.ptr());
  if (!is_int && (PyBool_Check(obj.ptr()) || nb::isinstance<Tensor>(obj) ||
                  !PyObject_HasAttrString(obj.ptr(), "__index__"))) {
    throw DTypeError(
        detail::concat("[", op, "] expected an int, got ", nb::inst_name(obj).c_str()));
  }
  nb::object index = is_int ? nb::borrow(obj) : nb::steal(PyNumber_Index(obj.ptr()));
  if (!index.is_valid()) throw nb::python_error();
  int overflow = 0;
  const long long value = PyLong_AsLongLongAndOverflow(index.ptr(), &overflow);
  if (overflow != 0) {
    throw ValueError(
        detail::concat("[", op, "] ", nb::str(index).c_str(), " does not fit in int64"));
  }
  if (value == -1 && PyErr_Occurred()) throw nb::python_error();
  return value;
}

std::string dtype_repr(DType dtype) { return "st." + std::string(dtype_name(dtype)); }

std::string device_repr(const Device& d) {
  std::string out = "device(type='" + std::string(device_type_name(d.type)) + "'";
  if (!d.is_cpu()) out += ", index=" + std::to_string(d.index);
  return out + ")";
}

// Tensor.to(...) takes, as PyTorch's: (dtype), (device), (device, dtype), (tensor), and keywords
// dtype=, device=, copy=, non_blocking= (accepted; copies are synchronous).
Tensor tensor_to(const Tensor& self, const nb::args& args, const nb::kwargs& kwargs) {
  std::optional<Device> device;
  std::optional<DType> dtype;
  bool copy = false;
  for (nb::handle arg : args) {
    if (nb::isinstance<DType>(arg)) {
      dtype = nb::cast<DType>(arg);
    } else if (nb::isinstance<Tensor>(arg)) {
      const Tensor& other = nb::cast<const Tensor&>(arg);
      device = other.device();
      dtype = other.dtype();
    } else if (PyBool_Check(arg.ptr())) {
      continue;  // positional non_blocking
    } else {
      device = device_from_object(arg);
    }
  }
  for (auto [key, value] : kwargs) {
    const std::string name = nb::cast<std::string>(key);
    if (name == "dtype") {
      if (!value.is_none()) dtype = nb::cast<DType>(value);
    } else if (name == "device") {
      if (!value.is_none()) device = device_from_object(value);
    } else if (name == "copy") {
      copy = nb::cast<bool>(value);
    } else if (name != "non_blocking" && name != "memory_format") {
      throw nb::type_error(("to() got an unexpected keyword argument '" + name + "'").c_str());
    }
  }
  const Device target_device = device.value_or(self.device());
  const DType target_dtype = dtype.value_or(self.dtype());
  return maybe_without_gil(self.numel(), [&] {
    if (copy && target_device == self.device() && target_dtype == self.dtype()) return self.clone();
    return self.to(target_device, target_dtype);
  });
}

// The (values, indices) pair of max/min along a dim, as a tuple.
nb::tuple values_indices(std::tuple<Tensor, Tensor> pair) {
  return nb::make_tuple(std::get<0>(pair), std::get<1>(pair));
}

template <typename Class>
void bind_binary_operators(Class& cls) {
  using T = const Tensor&;
  using S = const Scalar&;
  // Tensor overloads come first, so a tensor never goes through the number conversion.
  cls.def(
         "__add__",
         [](T a, T b) { return maybe_without_gil(a.numel() + b.numel(), [&] { return a + b; }); },
         nb::is_operator())
      .def(
          "__add__", [](T a, S b) { return maybe_without_gil(a.numel(), [&] { return a + b; }); },
          nb::is_operator())
      .def(
          "__radd__", [](T a, S b) { return maybe_without_gil(a.numel(), [&] { return b + a; }); },
          nb::is_operator())
      .def(
          "__sub__",
          [](T a, T b) { return maybe_without_gil(a.numel() + b.numel(), [&] { return a - b; }); },
          nb::is_operator())
      .def(
          "__sub__", [](T a, S b) { return maybe_without_gil(a.numel(), [&] { return a - b; }); },
          nb::is_operator())
      .def(
          "__rsub__", [](T a, S b) { return maybe_without_gil(a.numel(), [&] { return b - a; }); },
          nb::is_operator())
      .def(
          "__mul__",
          [](T a, T b) { return maybe_without_gil(a.numel() + b.numel(), [&] { return a * b; }); },
          nb::is_operator())
      .def(
          "__mul__", [](T a, S b) { return maybe_without_gil(a.numel(), [&] { return a * b; }); },
          nb::is_operator())
      .def(
          "__rmul__", [](T a, S b) { return maybe_without_gil(a.numel(), [&] { return b * a; }); },
          nb::is_operator())
      .def(
          "__truediv__",
          [](T a, T b) { return maybe_without_gil(a.numel() + b.numel(), [&] { return a / b; }); },
          nb::is_operator())
      .def(
          "__truediv__",
          [](T a, S b) { return maybe_without_gil(a.numel(), [&] { return a / b; }); },
          nb::is_operator())
      .def(
          "__rtruediv__",
          [](T a, S b) { return maybe_without_gil(a.numel(), [&] { return b / a; }); },
          nb::is_operator())
      .def(
          "__pow__", [](T a, T b) { return st::pow(a, b); }, nb::is_operator())
      .def(
          "__pow__", [](T a, S b) { return st::pow(a, b); }, nb::is_operator())
      .def(
          "__rpow__",
          [](T a, S b) {
            return st::pow(scalar_tensor(b, {b.dtype(), a.device()}), a);
          },
          nb::is_operator())
      .def(
          "__matmul__",
          [](T a, T b) {
            return maybe_without_gil(a.numel() + b.numel(), [&] { return matmul(a, b); });
          },
          nb::is_operator())
      .def(
          "__eq__", [](T a, T b) { return eq(a, b); }, nb::is_operator())
      .def(
          "__eq__", [](T a, S b) { return eq(a, b); }, nb::is_operator())
      .def(
          "__ne__", [](T a, T b) { return ne(a, b); }, nb::is_operator())
      .def(
          "__ne__", [](T a, S b) { return ne(a, b); }, nb::is_operator())
      .def(
          "__lt__", [](T a, T b) { return lt(a, b); }, nb::is_operator())
      .def(
          "__lt__", [](T a, S b) { return lt(a, b); }, nb::is_operator())
      .def(
          "__le__", [](T a, T b) { return le(a, b); }, nb::is_operator())
      .def(
          "__le__", [](T a, S b) { return le(a, b); }, nb::is_operator())
      .def(
          "__gt__", [](T a, T b) { return gt(a, b); }, nb::is_operator())
      .def(
          "__gt__", [](T a, S b) { return gt(a, b); }, nb::is_operator())
      .def(
          "__ge__", [](T a, T b) { return ge(a, b); }, nb::is_operator())
      .def(
          "__ge__", [](T a, S b) { return ge(a, b); }, nb::is_operator())
      .def("__neg__", [](T a) { return -a; })
      .def("__pos__", [](T a) { return a; })
      .def("__abs__", [](T a) { return st::abs(a); });
  // Logical ops on bool tensors (masks): & is a product, | a maximum, ~ a comparison with false.
  auto check_bool = [](T a, const char* op) {
    ST_CHECK(a.dtype() == DType::Bool, NotImplementedError, "[", op,
             "] only bool tensors take logical operators, got ", a.dtype());
  };
  cls.def(
         "__and__",
         [check_bool](T a, nb::handle b) {
           check_bool(a, "and");
           const Tensor other = as_tensor_like(b, a, "and");
           check_bool(other, "and");
           return a * other;
         },
         nb::is_operator())
      .def(
          "__or__",
          [check_bool](T a, nb::handle b) {
            check_bool(a, "or");
            const Tensor other = as_tensor_like(b, a, "or");
            check_bool(other, "or");
            return maximum(a, other);
          },
          nb::is_operator())
      .def("__invert__", [check_bool](T a) {
        check_bool(a, "invert");
        return eq(a, Scalar(false));
      });
}

template <typename Class>
void bind_in_place(Class& cls) {
  using S = const Scalar&;
  auto self_ref = nb::rv_policy::reference_internal;
  // In-place ops return self, as in PyTorch; the Python object is the one the method was called on.
  cls.def(
         "add_", [](Tensor& a, const Tensor& b, S alpha) -> Tensor& { return a.add_(b, alpha); },
         nb::arg("other"), nb::kw_only(), nb::arg("alpha") = 1, self_ref)
      .def(
          "add_", [](Tensor& a, S b) -> Tensor& { return a.add_(b); }, self_ref)
      .def(
          "sub_", [](Tensor& a, const Tensor& b) -> Tensor& { return a.sub_(b); }, self_ref)
      .def(
          "sub_", [](Tensor& a, S b) -> Tensor& { return a.sub_(b); }, self_ref)
      .def(
          "mul_", [](Tensor& a, const Tensor& b) -> Tensor& { return a.mul_(b); }, self_ref)
      .def(
          "mul_", [](Tensor& a, S b) -> Tensor& { return a.mul_(b); }, self_ref)
      .def(
          "div_", [](Tensor& a, const Tensor& b) -> Tensor& { return a.div_(b); }, self_ref)
      .def(
          "div_", [](Tensor& a, S b) -> Tensor& { return a.div_(b); }, self_ref)
      .def("neg_", &Tensor::neg_, self_ref)
      .def("exp_", &Tensor::exp_, self_ref)
      .def("log_", &Tensor::log_, self_ref)
      .def("sqrt_", &Tensor::sqrt_, self_ref)
      .def("abs_", &Tensor::abs_, self_ref)
      .def("tanh_", &Tensor::tanh_, self_ref)
      .def("sigmoid_", &Tensor::sigmoid_, self_ref)
      .def("relu_", &Tensor::relu_, self_ref)
      .def("pow_", &Tensor::pow_, self_ref)
      .def("clamp_", &Tensor::clamp_, nb::arg("min") = nb::none(), nb::arg("max") = nb::none(),
           self_ref)
      .def("fill_", &Tensor::fill_, self_ref)
      .def("zero_", &Tensor::zero_, self_ref)
      .def(
          "copy_",
          [](Tensor& a, const Tensor& src) -> Tensor& {
            return maybe_without_gil(a.numel(), [&]() -> Tensor& { return a.copy_(src); });
          },
          self_ref)
      .def(
          "__iadd__", [](Tensor& a, const Tensor& b) -> Tensor& { return a.add_(b); }, self_ref)
      .def(
          "__iadd__", [](Tensor& a, S b) -> Tensor& { return a.add_(b); }, self_ref)
      .def(
          "__isub__", [](Tensor& a, const Tensor& b) -> Tensor& { return a.sub_(b); }, self_ref)
      .def(
          "__isub__", [](Tensor& a, S b) -> Tensor& { return a.sub_(b); }, self_ref)
      .def(
          "__imul__", [](Tensor& a, const Tensor& b) -> Tensor& { return a.mul_(b); }, self_ref)
      .def(
          "__imul__", [](Tensor& a, S b) -> Tensor& { return a.mul_(b); }, self_ref)
      .def(
          "__itruediv__", [](Tensor& a, const Tensor& b) -> Tensor& { return a.div_(b); }, self_ref)
      .def(
          "__itruediv__", [](Tensor& a, S b) -> Tensor& { return a.div_(b); }, self_ref);
}

template <typename Class>
void bind_math_methods(Class& cls) {
  using T = const Tensor&;
  using S = const Scalar&;
  cls.def(
         "sum",
         [](T x, nb::handle dim, bool keepdim, std::optional<DType> dtype) {
           const Shape dims = dims_from_object(dim, "sum");
           return maybe_without_gil(
               x.numel(), [&] { return st::sum(dtype ? x.to(*dtype) : x, dims, keepdim); });
         },
         nb::arg("dim") = nb::none(), nb::arg("keepdim") = false, nb::kw_only(),
         nb::arg("dtype") = nb::none(), "Sum over `dim` (an int, a sequence, or None: all dims).")
      .def(
          "mean",
          [](T x, nb::handle dim, bool keepdim, std::optional<DType> dtype) {
            const Shape dims = dims_from_object(dim, "mean");
            return maybe_without_gil(
                x.numel(), [&] { return st::mean(dtype ? x.to(*dtype) : x, dims, keepdim); });
          },
          nb::arg("dim") = nb::none(), nb::arg("keepdim") = false, nb::kw_only(),
          nb::arg("dtype") = nb::none(), "Mean over `dim` (an int, a sequence, or None: all dims).")
      .def("max", [](T x) { return st::max(x); })
      .def(
          "max",
          [](T x, int64_t dim, bool keepdim) { return values_indices(st::max(x, dim, keepdim)); },
          nb::arg("dim"), nb::arg("keepdim") = false,
          "Largest values along `dim` and their int64 indices, as (values, indices).")
      .def("max", [](T x, T other) { return maximum(x, other); })
      .def("min", [](T x) { return st::min(x); })
      .def(
          "min",
          [](T x, int64_t dim, bool keepdim) { return values_indices(st::min(x, dim, keepdim)); },
          nb::arg("dim"), nb::arg("keepdim") = false)
      .def("min", [](T x, T other) { return minimum(x, other); })
      .def(
          "amax",
          [](T x, nb::handle dim, bool keepdim) {
            return st::amax(x, dims_from_object(dim, "amax"), keepdim);
          },
          nb::arg("dim") = nb::none(), nb::arg("keepdim") = false)
      .def(
          "amin",
          [](T x, nb::handle dim, bool keepdim) {
            return st::amin(x, dims_from_object(dim, "amin"), keepdim);
          },
          nb::arg("dim") = nb::none(), nb::arg("keepdim") = false)
      .def("argmax", &st::argmax, nb::arg("dim") = nb::none(), nb::arg("keepdim") = false)
      .def("argmin", &st::argmin, nb::arg("dim") = nb::none(), nb::arg("keepdim") = false)
      .def("exp", [](T x) { return st::exp(x); })
      .def("log", [](T x) { return st::log(x); })
      .def("sqrt", [](T x) { return st::sqrt(x); })
      .def("rsqrt", [](T x) { return st::rsqrt(x); })
      .def("abs", [](T x) { return st::abs(x); })
      .def("neg", [](T x) { return st::neg(x); })
      .def("tanh", [](T x) { return st::tanh(x); })
      .def("sigmoid", [](T x) { return st::sigmoid(x); })
      .def("relu", [](T x) { return st::relu(x); })
      .def("pow", [](T x, T e) { return st::pow(x, e); })
      .def("pow", [](T x, S e) { return st::pow(x, e); })
      .def("clamp", &st::clamp, nb::arg("min") = nb::none(), nb::arg("max") = nb::none())
      .def("clip", &st::clamp, nb::arg("min") = nb::none(), nb::arg("max") = nb::none())
      .def("maximum", [](T a, T b) { return maximum(a, b); })
      .def("minimum", [](T a, T b) { return minimum(a, b); })
      .def("matmul",
           [](T a, T b) {
             return maybe_without_gil(a.numel() + b.numel(), [&] { return matmul(a, b); });
           })
      .def(
          "softmax", [](T x, int64_t dim) { return softmax(x, dim); }, nb::arg("dim"))
      .def(
          "log_softmax", [](T x, int64_t dim) { return log_softmax(x, dim); }, nb::arg("dim"))
      .def(
          "add", [](T a, T b, S alpha) { return add(a, b, alpha); }, nb::arg("other"),
          nb::kw_only(), nb::arg("alpha") = 1)
      .def("add", [](T a, S b) { return add(a, b); })
      .def(
          "sub", [](T a, T b, S alpha) { return sub(a, b, alpha); }, nb::arg("other"),
          nb::kw_only(), nb::arg("alpha") = 1)
      .def("sub", [](T a, S b) { return sub(a, b); })
      .def("mul", [](T a, T b) { return mul(a, b); })
      .def("mul", [](T a, S b) { return mul(a, b); })
      .def("div", [](T a, T b) { return div(a, b); })
      .def("div", [](T a, S b) { return div(a, b); })
      .def("eq", [](T a, T b) { return eq(a, b); })
      .def("eq", [](T a, S b) { return eq(a, b); })
      .def("ne", [](T a, T b) { return ne(a, b); })
      .def("ne", [](T a, S b) { return ne(a, b); })
      .def("lt", [](T a, T b) { return lt(a, b); })
      .def("lt", [](T a, S b) { return lt(a, b); })
      .def("le", [](T a, T b) { return le(a, b); })
      .def("le", [](T a, S b) { return le(a, b); })
      .def("gt", [](T a, T b) { return gt(a, b); })
      .def("gt", [](T a, S b) { return gt(a, b); })
      .def("ge", [](T a, T b) { return ge(a, b); })
      .def("ge", [](T a, S b) { return ge(a, b); })
      .def(
          "where",
          [](T x, T condition, nb::handle other) {
            return where(condition, x, as_tensor_like(other, x, "where"));
          },
          nb::arg("condition"), nb::arg("other"), "x where `condition` holds, else `other`.")
      .def(
          "masked_fill",
          [](T x, T mask, S value) {
            return where(mask, scalar_tensor(value, {x.dtype(), x.device()}), x);
          },
          nb::arg("mask"), nb::arg("value"), "A copy of x with `value` where `mask` is true.")
      .def(
          "split",
          [](T x, nb::handle split_size, int64_t dim) {
            if (PyLong_Check(split_size.ptr())) return split(x, nb::cast<int64_t>(split_size), dim);
            return split(x, shape_from_object(split_size, "split"), dim);
          },
          nb::arg("split_size_or_sections"), nb::arg("dim") = 0)
      .def("chunk", &st::chunk, nb::arg("chunks"), nb::arg("dim") = 0);
}

template <typename Class>
void bind_views(Class& cls) {
  using T = const Tensor&;
  cls.def("view", [](T x, nb::args shape) { return x.view(shape_from_args(shape, "view")); })
      .def("reshape",
           [](T x, nb::args shape) { return x.reshape(shape_from_args(shape, "reshape")); })
      .def("view_as", [](T x, T other) { return x.view(other.shape()); })
      .def("reshape_as", [](T x, T other) { return x.reshape(other.shape()); })
      .def("flatten", &Tensor::flatten, nb::arg("start_dim") = 0, nb::arg("end_dim") = -1)
      .def("permute",
           [](T x, nb::args dims) { return x.permute(shape_from_args(dims, "permute")); })
      .def("transpose", &Tensor::transpose, nb::arg("dim0"), nb::arg("dim1"))
      .def("t", &Tensor::t)
      .def("narrow", &Tensor::narrow, nb::arg("dim"), nb::arg("start"), nb::arg("length"))
      .def("select", &Tensor::select, nb::arg("dim"), nb::arg("index"))
      .def("expand", [](T x, nb::args shape) { return x.expand(shape_from_args(shape, "expand")); })
      .def("expand_as", [](T x, T other) { return x.expand(other.shape()); })
      .def(
          "squeeze",
          [](T x, std::optional<int64_t> dim) { return dim ? x.squeeze(*dim) : x.squeeze(); },
          nb::arg("dim") = nb::none())
      .def("unsqueeze", &Tensor::unsqueeze, nb::arg("dim"))
      .def("contiguous",
           [](T x) { return maybe_without_gil(x.numel(), [&] { return x.contiguous(); }); })
      .def("clone", [](T x) { return maybe_without_gil(x.numel(), [&] { return x.clone(); }); })
      .def("detach", &Tensor::detach, "The same data, outside the autograd graph.")
      .def("to", &tensor_to,
           "to(dtype) / to(device) / to(device, dtype) / to(tensor): a converted copy, or self "
           "when nothing changes.")
      .def("cpu", [](T x) { return maybe_without_gil(x.numel(), [&] { return x.to(kCPU); }); })
      .def(
          "cuda",
          [](T x, std::optional<int> index) {
            return maybe_without_gil(
                x.numel(), [&] { return x.to(Device(DeviceType::CUDA, index.value_or(0))); });
          },
          nb::arg("device") = nb::none())
      .def("float", [](T x) { return x.to(DType::Float32); })
      .def("double", [](T x) { return x.to(DType::Float64); })
      .def("half", [](T x) { return x.to(DType::Float16); })
      .def("bfloat16", [](T x) { return x.to(DType::BFloat16); })
      .def("int", [](T x) { return x.to(DType::Int32); })
      .def("long", [](T x) { return x.to(DType::Int64); })
      .def("bool", [](T x) { return x.to(DType::Bool); })
      .def("type_as", [](T x, T other) { return x.to(other.dtype()); });
}

template <typename Class>
void bind_autograd(Class& cls) {
  using T = const Tensor&;
  cls.def_prop_rw(
         "requires_grad", [](T x) { return x.requires_grad(); },
         [](Tensor& x, bool value) { x.set_requires_grad(value); },
         "Whether gradients flow to this tensor; settable on leaves.")
      .def(
          "requires_grad_",
          [](Tensor& x, bool value) -> Tensor& { return x.set_requires_grad(value); },
          nb::arg("requires_grad") = true, nb::rv_policy::reference_internal)
      .def_prop_rw(
          "grad",
          [](T x) -> std::optional<Tensor> {
            Tensor g = x.grad();
            if (!g.defined()) return std::nullopt;
            return g;
          },
          [](T x, std::optional<Tensor> g) { x.set_grad(g ? *g : Tensor()); },
          "The accumulated gradient, or None before backward reaches this tensor.")
      .def_prop_ro("is_leaf", &Tensor::is_leaf)
      .def_prop_ro("grad_fn", &grad_fn_object,
                   "The node that made this tensor (its name(), e.g. 'MulBackward'), None for "
                   "leaves.")
      .def("retain_grad", &Tensor::retain_grad)
      .def_prop_rw(
          "data", [](T x) { return x.detach(); },
          [](Tensor& x, T value) {
            NoGradGuard no_grad;
            x.copy_(value);
          },
          "The tensor's values outside autograd (setting copies values in).")
      .def(
          "backward",
          [](T x, std::optional<Tensor> gradient, bool retain_graph) {
            nb::gil_scoped_release release;
            x.backward(gradient.value_or(Tensor()), retain_graph);
          },
          nb::arg("gradient") = nb::none(), nb::arg("retain_graph") = false,
          "Backpropagates from this tensor; a non-scalar needs `gradient` of its shape.");
}

}  // namespace

Device device_from_object(nb::handle obj) {
  if (nb::isinstance<Device>(obj)) return nb::cast<Device>(obj);
  if (nb::isinstance<nb::str>(obj)) return Device(nb::cast<std::string>(obj));
  if (PyLong_Check(obj.ptr())) return Device(DeviceType::CUDA, nb::cast<int>(obj));
  throw DeviceError(
      detail::concat("[device] expected a device, a string such as 'cuda:0' or an "
                     "int, got ",
                     nb::inst_name(obj).c_str()));
}

Shape shape_from_object(nb::handle obj, const char* op) {
  if (nb::isinstance<Tensor>(obj) || nb::isinstance<nb::str>(obj) || !PySequence_Check(obj.ptr())) {
    return {as_int(obj, op)};
  }
  Shape shape;
  for (nb::handle item : obj) shape.push_back(as_int(item, op));
  return shape;
}

Shape shape_from_args(const nb::args& args, const char* op) {
  if (args.size() == 1 && !PyLong_Check(args[0].ptr())) return shape_from_object(args[0], op);
  Shape shape;
  shape.reserve(args.size());
  for (nb::handle item : args) shape.push_back(as_int(item, op));
  return shape;
}

Shape dims_from_object(nb::handle obj, const char* op) {
  if (obj.is_none()) return {};
  return shape_from_object(obj, op);
}

nb::object size_object(const Shape& shape) {
  // Leaked on purpose: the type outlives every tensor, and a static nb::object would be released
  // after the interpreter is gone.
  static PyObject* size_type =
      nb::object(nb::module_::import_("spiraltorch._size").attr("Size")).release().ptr();
  nb::object items = nb::steal(PyTuple_New(static_cast<Py_ssize_t>(shape.size())));
  for (size_t i = 0; i < shape.size(); ++i) {
    PyTuple_SetItem(items.ptr(), static_cast<Py_ssize_t>(i), PyLong_FromLongLong(shape[i]));
  }
  return nb::handle(size_type)(items);
}

void init_tensor(nb::module_& m) {
  nb::enum_<DType>(m, "dtype", "An element type: st.float32, st.bfloat16, st.int64, ...")
      .value("float32", DType::Float32)
      .value("float64", DType::Float64)
      .value("float16", DType::Float16)
      .value("bfloat16", DType::BFloat16)
      .value("int32", DType::Int32)
      .value("int64", DType::Int64)
      .value("bool", DType::Bool)
      .def("__repr__", &dtype_repr)
      .def("__str__", &dtype_repr)
      .def_prop_ro("is_floating_point", [](DType d) { return is_floating(d); })
      .def_prop_ro("itemsize", [](DType d) { return dtype_size(d); });

  nb::class_<Device>(m, "device", "A device: st.device('cpu'), st.device('cuda:1').")
      .def(nb::init<std::string_view>(), nb::arg("type"))
      .def(
          "__init__",
          [](Device* self, std::string_view type, int index) {
            const Device parsed(type);
            new (self) Device(parsed.type, index);
          },
          nb::arg("type"), nb::arg("index"))
      .def_prop_ro("type", [](const Device& d) { return std::string(device_type_name(d.type)); })
      .def_prop_ro("index",
                   [](const Device& d) -> std::optional<int> {
                     if (d.is_cpu()) return std::nullopt;
                     return d.index;
                   })
      .def("__repr__", &device_repr)
      .def("__str__", &Device::str)
      .def("__eq__", [](const Device& a, const Device& b) { return a == b; })
      .def("__eq__", [](const Device& a, std::string_view b) { return a == Device(b); })
      .def("__hash__", [](const Device& d) { return std::hash<std::string>()(d.str()); });
  nb::implicitly_convertible<std::string_view, Device>();

  auto cls = nb::class_<Tensor>(m, "Tensor", nb::type_slots(tensor_buffer_slots),
                                "A multi-dimensional array with autograd; make one with "
                                "st.tensor(), st.zeros(), st.from_numpy(), ...");
  using T = const Tensor&;
  cls.def(nb::init<const Tensor&>(), nb::arg("other"),
          "A new handle on `other`'s data and autograd state (used by subclasses such as "
          "st.nn.Parameter).")
      .def_prop_ro("shape", [](T x) { return size_object(x.shape()); })
      .def(
          "size",
          [](T x, std::optional<int64_t> dim) -> nb::object {
            if (dim) return nb::int_(x.size(*dim));
            return size_object(x.shape());
          },
          nb::arg("dim") = nb::none())
      .def(
          "stride",
          [](T x, std::optional<int64_t> dim) -> nb::object {
            if (dim) return nb::int_(x.stride(*dim));
            return nb::tuple(nb::cast(x.strides()));
          },
          nb::arg("dim") = nb::none())
      .def_prop_ro("dtype", &Tensor::dtype)
      .def_prop_ro("device", &Tensor::device)
      .def_prop_ro("is_cuda", [](T x) { return x.device().type == DeviceType::CUDA; })
      .def_prop_ro("ndim", &Tensor::dim)
      .def("dim", &Tensor::dim)
      .def("ndimension", &Tensor::dim)
      .def("numel", &Tensor::numel)
      .def("nelement", &Tensor::numel)
      .def("element_size", &Tensor::itemsize)
      .def_prop_ro("itemsize", &Tensor::itemsize)
      .def_prop_ro("nbytes", &Tensor::nbytes)
      .def("storage_offset", &Tensor::offset)
      .def("is_contiguous", &Tensor::is_contiguous)
      .def("is_floating_point", [](T x) { return is_floating(x.dtype()); })
      .def("data_ptr", [](T x) { return reinterpret_cast<uintptr_t>(x.data_ptr()); })
      .def_prop_ro("T",
                   [](T x) {
                     Shape dims(static_cast<size_t>(x.dim()));
                     for (int64_t i = 0; i < x.dim(); ++i) dims[i] = x.dim() - 1 - i;
                     return x.permute(dims);
                   })
      .def_prop_ro("mT", [](T x) { return x.transpose(-2, -1); })
      .def(
          "item", [](T x) { return x.item(); }, "The value of a one-element tensor.")
      .def("__repr__", [](T x) { return x.str(); })
      .def("__len__",
           [](T x) {
             if (x.dim() == 0) throw nb::type_error("len() of a 0-d tensor");
             return x.size(0);
           })
      .def("__bool__",
           [](T x) {
             ST_CHECK(x.numel() == 1, Error, "[bool] the truth value of a tensor with ", x.numel(),
                      " elements is ambiguous");
             return x.item().to<bool>();
           })
      .def("__float__", [](T x) { return x.item().to_double(); })
      .def("__int__", [](T x) { return x.item().to<int64_t>(); })
      .def("__index__",
           [](T x) {
             ST_CHECK(is_integral(x.dtype()) && x.numel() == 1, DTypeError,
                      "[index] only one-element integer tensors can be used as an index, got ",
                      x.dtype(), " of shape ", x.shape());
             return x.item().to<int64_t>();
           })
      .def("__hash__", [](T x) { return reinterpret_cast<uintptr_t>(x.impl()); })
      .def("__getitem__", &tensor_getitem)
      .def("__setitem__", &tensor_setitem);
  bind_binary_operators(cls);
  bind_in_place(cls);
  bind_math_methods(cls);
  bind_views(cls);
  bind_autograd(cls);
  init_interop(m, cls);
}

}  // namespace st::python
