#pragma once
// Shared pieces of the Python bindings: the conversions of Python numbers, shapes, dims, dtypes and
// devices to their C++ types, and one init_* function per file (each binds one part of the API).

#include <nanobind/nanobind.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/string_view.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/vector.h>

#include <spiraltorch/spiraltorch.h>
#include <optional>

namespace nb = nanobind;

// Python bool, int and float (and objects with __index__ or __float__, such as NumPy scalars, when
// conversions are allowed) as st::Scalar, keeping the kind so that int_tensor + 2 stays integral.
namespace nanobind::detail {
template <>
struct type_caster<st::Scalar> {
  NB_TYPE_CASTER(st::Scalar, const_name("float | int | bool"))

  bool from_python(handle src, uint8_t flags, cleanup_list*) noexcept {
    PyObject* o = src.ptr();
    if (PyBool_Check(o)) {
      value = st::Scalar(o == Py_True);
      return true;
    }
    if (PyLong_Check(o)) return from_long(o);
    if (PyFloat_Check(o)) {
      value = st::Scalar(PyFloat_AsDouble(o));
      return true;
    }
    if (!(flags & static_cast<uint8_t>(cast_flags::convert))) return false;
    // A tensor is never a number here: tensor overloads must take it.
    if (is_tensor(src)) return false;
    if (PyObject_HasAttrString(o, "__index__")) {
      PyObject* index = PyNumber_Index(o);
      if (index == nullptr) {
        PyErr_Clear();
        return false;
      }
      const bool ok = from_long(index);
      Py_DECREF(index);
      return ok;
    }
    if (PyObject_HasAttrString(o, "__float__")) {
      const double d = PyFloat_AsDouble(o);
      if (d == -1.0 && PyErr_Occurred()) {
        PyErr_Clear();
        return false;
      }
      value = st::Scalar(d);
      return true;
    }
    return false;
  }

  static handle from_cpp(const st::Scalar& s, rv_policy, cleanup_list*) noexcept {
    switch (s.kind()) {
      case st::Scalar::Kind::Float: return PyFloat_FromDouble(s.to_double());
      case st::Scalar::Kind::Int: return PyLong_FromLongLong(s.to_int());
      case st::Scalar::Kind::Bool: return PyBool_FromLong(s.to<bool>() ? 1 : 0);
    }
    return nullptr;
  }

 private:
  bool from_long(PyObject* o) noexcept {
    int overflow = 0;
    const long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
    if (overflow != 0 || (v == -1 && PyErr_Occurred())) {
      PyErr_Clear();
      return false;
    }
    value = st::Scalar(static_cast<int64_t>(v));
    return true;
  }
  static bool is_tensor(handle src) noexcept { return nanobind::isinstance<st::Tensor>(src); }
};
}  // namespace nanobind::detail

namespace st::python {

// One place that decides whether a call releases the GIL: only for work big enough that another
// Python thread may run meanwhile (releasing and taking it back costs about 0.1 us).
inline constexpr int64_t kReleaseGilElements = 1 << 15;

// Runs `fn` with the GIL released when `work` elements are enough to be worth it. `fn` must not
// touch Python objects: it runs while other Python threads do.
template <typename Fn>
decltype(auto) maybe_without_gil(int64_t work, Fn&& fn) {
  if (work >= kReleaseGilElements) {
    nb::gil_scoped_release release;
    return fn();
  }
  return fn();
}

// A unary op bound with the GIL released for large inputs: m.def("exp", released<&st::exp>).
template <auto Op>
Tensor released(const Tensor& x) {
  return maybe_without_gil(x.numel(), [&] { return Op(x); });
}

// A shape given as ints, as one sequence of ints (list, tuple, st.Size), or as nothing.
Shape shape_from_args(const nb::args& args, const char* op);
Shape shape_from_object(nb::handle obj, const char* op);
// A dim argument: None (all dims), an int, or a sequence of ints.
Shape dims_from_object(nb::handle obj, const char* op);
// The st.Size object of a shape (a tuple subclass defined in Python).
nb::object size_object(const Shape& shape);
// A tensor from a Tensor, a Python number (as a 0-dim tensor shaped after `like`'s device), or
// nested sequences.
Tensor as_tensor_like(nb::handle obj, const Tensor& like, const char* op);
// st.tensor(data): copies nested sequences, numbers, NumPy arrays, DLPack and buffer objects.
Tensor tensor_from_data(nb::handle data, std::optional<DType> dtype, std::optional<Device> device);
// Device from a Device, a string ("cuda:0") or an int (a CUDA ordinal, as in PyTorch).
Device device_from_object(nb::handle obj);
// Tensor.grad_fn: None for leaves, else an object naming the node that made the tensor.
nb::object grad_fn_object(const Tensor& t);

nb::object tensor_getitem(const Tensor& self, nb::handle index);
void tensor_setitem(Tensor& self, nb::handle index, nb::handle value);

// Py_bf_getbuffer / Py_bf_releasebuffer of st.Tensor (the buffer protocol), from interop.cpp.
extern PyType_Slot tensor_buffer_slots[];

void init_errors(nb::module_& m);
void init_tensor(nb::module_& m);
void init_interop(nb::module_& m, nb::class_<Tensor>& cls);
void init_ops(nb::module_& m);
void init_autograd(nb::module_& m);
void init_nn(nb::module_& m);
void init_serialize(nb::module_& m);
void init_cuda(nb::module_& m);
void init_optim(nb::module_& m);
void init_distributed(nb::module_& m);

}  // namespace st::python
