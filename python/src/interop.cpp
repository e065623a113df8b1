// Data in and out of tensors: st.tensor() from Python data, tolist(), and the zero-copy exchanges
// with NumPy (from_numpy, numpy(), __array__), DLPack (from_dlpack, __dlpack__) and the buffer
// protocol. A tensor made from outside memory keeps the exporting object alive through its
// storage's deleter, as torch.from_numpy does.

#include <nanobind/ndarray.h>

#include <spiraltorch/cuda.h>

#include <cstring>
#include <memory>

#include "bindings.h"

using namespace nb::literals;

namespace st::python {
namespace {

namespace dl = nb::dlpack;

DType dtype_from_dlpack(dl::dtype t, const char* op) {
  const auto code = static_cast<dl::dtype_code>(t.code);
  if (t.lanes == 1) {
    if (code == dl::dtype_code::Float && t.bits == 32) return DType::Float32;
    if (code == dl::dtype_code::Float && t.bits == 64) return DType::Float64;
    if (code == dl::dtype_code::Float && t.bits == 16) return DType::Float16;
    if (code == dl::dtype_code::Bfloat && t.bits == 16) return DType::BFloat16;
    if (code == dl::dtype_code::Int && t.bits == 32) return DType::Int32;
    if (code == dl::dtype_code::Int && t.bits == 64) return DType::Int64;
    if (code == dl::dtype_code::Bool && t.bits == 8) return DType::Bool;
  }
  throw DTypeError(detail::concat("[", op, "] unsupported element type (DLPack code ", int(t.code),
                                  ", ", int(t.bits), " bits, ", int(t.lanes),
                                  " lanes); expected float32/64/16, bfloat16, int32, int64 or "
                                  "bool"));
}

dl::dtype dtype_to_dlpack(DType dtype) {
  switch (dtype) {
    case DType::Float32: return nb::dtype<float>();
    case DType::Float64: return nb::dtype<double>();
    case DType::Float16: return {static_cast<uint8_t>(dl::dtype_code::Float), 16, 1};
    case DType::BFloat16: return {static_cast<uint8_t>(dl::dtype_code::Bfloat), 16, 1};
    case DType::Int32: return nb::dtype<int32_t>();
    case DType::Int64: return nb::dtype<int64_t>();
    case DType::Bool: return nb::dtype<bool>();
  }
  return {};
}

// DLPack device codes: 1 CPU, 2 CUDA, 3 CUDA host (pinned, readable as CPU memory).
Device device_from_dlpack(int type, int id, const char* op) {
  if (type == 1 || type == 3) return kCPU;
  if (type == 2) return Device(DeviceType::CUDA, id);
  throw DeviceError(detail::concat("[", op, "] unsupported DLPack device type ", type,
                                   " (expected CPU or CUDA)"));
}

int device_to_dlpack(const Device& d, const char* op) {
  if (d.is_cpu()) return 1;
  if (d.type == DeviceType::CUDA) return 2;
  throw DeviceError(detail::concat("[", op, "] tensors on ", d, " cannot be exported"));
}

// A tensor viewing memory owned by a Python object; the storage holds `owner` until it dies,
// taking the GIL to let go of it (the last tensor may die in a thread without it).
Tensor wrap_external(void* data, const Shape& shape, const Shape& strides, DType dtype,
                     Device device, nb::object owner) {
  // Negative strides (NumPy's x[::-1]) start the storage at the lowest address the view reaches.
  int64_t low = 0, high = 0, numel = 1;
  for (size_t i = 0; i < shape.size(); ++i) {
    numel *= shape[i];
    if (shape[i] == 0) continue;
    (strides[i] < 0 ? low : high) += strides[i] * (shape[i] - 1);
  }
  const auto itemsize = static_cast<int64_t>(dtype_size(dtype));
  const size_t nbytes = numel == 0 ? 0 : static_cast<size_t>((high - low + 1) * itemsize);
  char* base = static_cast<char*>(data) + low * itemsize;
  PyObject* held = owner.release().ptr();
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = std::make_shared<Storage>(base, nbytes, device, [held](void*) {
    if (!Py_IsInitialized()) return;  // at exit: the interpreter has freed everything already
    PyGILState_STATE state = PyGILState_Ensure();
    Py_DECREF(held);
    PyGILState_Release(state);
  });
  impl->shape = shape;
  impl->strides = strides;
  impl->offset = -low;
  impl->dtype = dtype;
  return Tensor(std::move(impl));
}

// Zero-copy import of anything nanobind reads as an nd-array: NumPy arrays, objects with
// __dlpack__ (PyTorch, JAX, CuPy), buffer-protocol objects, raw DLPack capsules.
Tensor import_array(nb::handle obj, const char* op) {
  nb::ndarray<nb::ro> array;
  if (!nb::try_cast(obj, array, /*convert=*/false)) {
    throw nb::type_error((std::string(op) +
                          "(): expected an array (NumPy, DLPack or buffer protocol), got " +
                          nb::inst_name(obj).c_str())
                             .c_str());
  }
  const DType dtype = dtype_from_dlpack(array.dtype(), op);
  const Device device = device_from_dlpack(array.device_type(), array.device_id(), op);
  if (!device.is_cpu()) {
    bool available = false;
    for (const Device& d : available_devices()) available |= d.type == device.type;
    ST_CHECK(available, DeviceError, "[", op, "] the array is on ", device,
             " but this build of SpiralTorch has no usable backend for it");
  }
  Shape shape(array.ndim()), strides(array.ndim());
  for (size_t i = 0; i < array.ndim(); ++i) {
    shape[i] = static_cast<int64_t>(array.shape(i));
    strides[i] = array.stride(i);
  }
  // The nd-array handle keeps the exporter's memory alive; it is released with the GIL held.
  auto* keep = new nb::ndarray<nb::ro>(array);
  nb::capsule owner(keep, [](void* p) noexcept { delete static_cast<nb::ndarray<nb::ro>*>(p); });
  return wrap_external(const_cast<void*>(array.data()), shape, strides, dtype, device,
                       std::move(owner));
}

// An nd-array viewing the tensor's memory; the owner capsule keeps a handle on the tensor (and so
// on its storage) until the array is gone.
template <typename Framework>
nb::ndarray<Framework> export_array(const Tensor& t, const char* op) {
  ST_CHECK(!t.requires_grad(), Error, "[", op,
           "] cannot export a tensor that requires grad; use tensor.detach() first");
  const int device_type = device_to_dlpack(t.device(), op);
  std::vector<size_t> shape(t.shape().begin(), t.shape().end());
  auto* keep = new Tensor(t);
  nb::capsule owner(keep, [](void* p) noexcept { delete static_cast<Tensor*>(p); });
  return nb::ndarray<Framework>(t.data_ptr(), shape.size(), shape.data(), owner, t.strides().data(),
                                dtype_to_dlpack(t.dtype()), device_type, t.device().index);
}

nb::object to_numpy(const Tensor& t, bool force) {
  ST_CHECK(t.dtype() != DType::BFloat16, DTypeError,
           "[numpy] NumPy has no bfloat16; convert first, e.g. tensor.float().numpy()");
  if (force) {
    const Tensor host = t.detach().to(kCPU).clone();
    return export_array<nb::numpy>(host, "numpy").cast();
  }
  ST_CHECK(t.device().is_cpu(), DeviceError, "[numpy] the tensor is on ", t.device(),
           "; copy it to the host first with tensor.cpu()");
  return export_array<nb::numpy>(t, "numpy").cast();
}

// Nested lists of Python numbers, row-major.
nb::object nested_list(const Tensor& host, size_t dim, int64_t offset) {
  const Shape& shape = host.shape();
  if (dim == shape.size()) {
    return dispatch_dtype(host.dtype(), [&](auto zero) -> nb::object {
      using T = decltype(zero);
      const T value = static_cast<const T*>(host.data_ptr())[offset];
      if constexpr (std::is_same_v<T, bool>)
        return nb::bool_(value);
      else if constexpr (std::is_integral_v<T>)
        return nb::int_(static_cast<int64_t>(value));
      else
        return nb::float_(static_cast<double>(static_cast<compute_t<T>>(value)));
    });
  }
  nb::list out;
  const int64_t stride = host.strides()[dim];
  for (int64_t i = 0; i < shape[dim]; ++i)
    out.append(nested_list(host, dim + 1, offset + i * stride));
  return out;
}

// Nested Python sequences of numbers, read into flat int64 and double buffers.
struct NestedData {
  Shape shape;
  std::vector<int64_t> ints;
  std::vector<double> reals;
  Scalar::Kind kind = Scalar::Kind::Bool;  // widest kind seen
  bool shape_known = false;
};

void read_nested(nb::handle obj, size_t depth, NestedData& data) {
  Scalar value;
  const bool is_sequence =
      !nb::isinstance<nb::str>(obj) && PySequence_Check(obj.ptr()) && !nb::isinstance<Tensor>(obj);
  if (!is_sequence) {
    if (nb::isinstance<Tensor>(obj)) {
      const Tensor& t = nb::cast<const Tensor&>(obj);
      ST_CHECK(t.numel() == 1 && t.dim() == 0, ValueError,
               "[tensor] only 0-dim tensors can be elements of a nested list, got shape ",
               t.shape());
      value = t.item();
    } else if (!nb::try_cast(obj, value)) {
      throw nb::type_error(("tensor(): expected numbers or nested sequences of numbers, got " +
                            std::string(nb::inst_name(obj).c_str()))
                               .c_str());
    }
    ST_CHECK(!data.shape_known || depth == data.shape.size(), ShapeError,
             "[tensor] nested sequences have inconsistent depth");
    data.shape_known = true;
    if (value.kind() == Scalar::Kind::Float) data.kind = Scalar::Kind::Float;
    if (value.kind() == Scalar::Kind::Int && data.kind == Scalar::Kind::Bool)
      data.kind = Scalar::Kind::Int;
    data.ints.push_back(value.is_floating() ? 0 : value.to_int());
    data.reals.push_back(value.to_double());
    return;
  }
  const auto length = static_cast<int64_t>(nb::len(obj));
  if (!data.shape_known && depth == data.shape.size()) {
    data.shape.push_back(length);
  } else {
    ST_CHECK(depth < data.shape.size() && data.shape[depth] == length, ShapeError,
             "[tensor] expected a sequence of length ",
             depth < data.shape.size() ? data.shape[depth] : 0, " at dim ", depth, ", got ",
             length);
  }
  if (length == 0 && depth + 1 == data.shape.size()) data.shape_known = true;
  for (nb::handle item : obj) read_nested(item, depth + 1, data);
}

Tensor tensor_from_nested(nb::handle obj, std::optional<DType> dtype,
                          const TensorOptions& options) {
  NestedData data;
  read_nested(obj, 0, data);
  if (!dtype && data.kind == Scalar::Kind::Float) {
    return from_buffer(data.reals.data(), data.shape, {DType::Float64})
        .to(options.device, kDefaultFloat);
  }
  if (dtype && is_floating(*dtype)) {
    return from_buffer(data.reals.data(), data.shape, {DType::Float64}).to(options.device, *dtype);
  }
  const DType target = dtype.value_or(data.kind == Scalar::Kind::Bool ? DType::Bool : DType::Int64);
  if (data.kind == Scalar::Kind::Float) {
    // Floats into an integer dtype truncate toward zero, as a C cast (and PyTorch) does.
    return from_buffer(data.reals.data(), data.shape, {DType::Float64}).to(options.device, target);
  }
  return from_buffer(data.ints.data(), data.shape, {DType::Int64}).to(options.device, target);
}

// The buffer protocol: CPU tensors of NumPy-known dtypes expose their memory to memoryview,
// NumPy and anything else that reads buffers.
int tensor_getbuffer(PyObject* self, Py_buffer* view, int flags) {
  const Tensor& t = *nb::inst_ptr<Tensor>(self);
  const char* format = nullptr;
  switch (t.dtype()) {
    case DType::Float32: format = "f"; break;
    case DType::Float64: format = "d"; break;
    case DType::Float16: format = "e"; break;
    case DType::Int32: format = "i"; break;
    case DType::Int64: format = "q"; break;
    case DType::Bool: format = "?"; break;
    case DType::BFloat16: break;
  }
  if (format == nullptr || !t.device().is_cpu()) {
    PyErr_SetString(PyExc_BufferError, format == nullptr
                                           ? "[buffer] bfloat16 has no buffer-protocol format"
                                           : "[buffer] only CPU tensors expose a buffer");
    view->obj = nullptr;
    return -1;
  }
  const auto ndim = static_cast<size_t>(t.dim());
  const auto itemsize = static_cast<Py_ssize_t>(t.itemsize());
  auto* dims = new Py_ssize_t[2 * ndim + 1];
  for (size_t i = 0; i < ndim; ++i) {
    dims[i] = static_cast<Py_ssize_t>(t.shape()[i]);
    dims[ndim + i] = static_cast<Py_ssize_t>(t.strides()[i]) * itemsize;
  }
  if (!t.is_contiguous() && (flags & PyBUF_STRIDES) != PyBUF_STRIDES) {
    delete[] dims;
    PyErr_SetString(PyExc_BufferError, "[buffer] the tensor is not contiguous");
    view->obj = nullptr;
    return -1;
  }
  view->buf = t.data_ptr();
  Py_INCREF(self);
  view->obj = self;
  view->len = static_cast<Py_ssize_t>(t.nbytes());
  view->readonly = 0;
  view->itemsize = itemsize;
  view->format = (flags & PyBUF_FORMAT) ? const_cast<char*>(format) : nullptr;
  view->ndim = static_cast<int>(ndim);
  view->shape = dims;
  view->strides = dims + ndim;
  view->suboffsets = nullptr;
  view->internal = dims;
  return 0;
}

void tensor_releasebuffer(PyObject*, Py_buffer* view) {
  delete[] static_cast<Py_ssize_t*>(view->internal);
}

}  // namespace

PyType_Slot tensor_buffer_slots[] = {
    {Py_bf_getbuffer, reinterpret_cast<void*>(tensor_getbuffer)},
    {Py_bf_releasebuffer, reinterpret_cast<void*>(tensor_releasebuffer)},
    {0, nullptr}};

Tensor tensor_from_data(nb::handle data, std::optional<DType> dtype, std::optional<Device> device) {
  const TensorOptions options{kDefaultFloat, device.value_or(kCPU)};
  Tensor out;
  if (nb::isinstance<Tensor>(data)) {
    const Tensor& t = nb::cast<const Tensor&>(data);
    out = t.detach().to(device.value_or(t.device()), dtype.value_or(t.dtype())).clone();
  } else if (PyBool_Check(data.ptr()) || PyLong_Check(data.ptr()) || PyFloat_Check(data.ptr())) {
    const Scalar s = nb::cast<Scalar>(data);
    out = scalar_tensor(s, {dtype.value_or(s.dtype()), options.device});
  } else if (nb::hasattr(data, "__dlpack__") || nb::hasattr(data, "__array_interface__") ||
             nb::ndarray_check(data)) {
    const Tensor view = import_array(data, "tensor");
    out = view.to(device.value_or(view.device()), dtype.value_or(view.dtype())).clone();
  } else {
    out = tensor_from_nested(data, dtype, options);
  }
  return out;  // a fresh copy: a leaf outside any graph
}

Tensor as_tensor_like(nb::handle obj, const Tensor& like, const char* op) {
  if (nb::isinstance<Tensor>(obj)) return nb::cast<Tensor>(obj);
  Scalar s;
  if (nb::try_cast(obj, s)) return scalar_tensor(s, {s.dtype(), like.device()});
  return tensor_from_data(obj, std::nullopt, like.device());
}

void init_interop(nb::module_& m, nb::class_<Tensor>& cls) {
  using T = const Tensor&;
  cls.def("numpy", &to_numpy, nb::arg("force") = false,
          "A NumPy array sharing this CPU tensor's memory (force=True copies from any device "
          "and detaches).")
      .def(
          "__array__",
          [](T t, nb::handle dtype, nb::handle copy) {
            nb::object array = to_numpy(t, false);
            if (!dtype.is_none()) array = array.attr("astype")(dtype, "copy"_a = false);
            if (!copy.is_none() && nb::cast<bool>(copy)) array = array.attr("copy")();
            return array;
          },
          nb::arg("dtype") = nb::none(), nb::arg("copy") = nb::none())
      .def(
          "tolist",
          [](T t) {
            const Tensor host = t.detach().to(kCPU).contiguous();
            return nested_list(host, 0, 0);
          },
          "The values as (nested) Python lists of numbers.")
      .def(
          "__dlpack__",
          [](T t, nb::kwargs kwargs) {
            // The consumer reads on its own stream: finish what ours has queued for this tensor.
            if (t.device().type == DeviceType::CUDA) st::cuda::synchronize(t.device().index);
            nb::object array = export_array<nb::array_api>(t, "__dlpack__").cast();
            return array.attr("__dlpack__")(**kwargs);
          },
          "A DLPack capsule viewing this tensor's memory (zero-copy).")
      .def(
          "__dlpack_device__",
          [](T t) {
            return nb::make_tuple(device_to_dlpack(t.device(), "__dlpack_device__"),
                                  t.device().index);
          },
          "The (DLPack device type, index) pair of this tensor.");

  m.def(
      "tensor",
      [](nb::handle data, std::optional<DType> dtype, std::optional<Device> device,
         bool requires_grad) {
        Tensor t = tensor_from_data(data, dtype, device);
        if (requires_grad) t.set_requires_grad(true);
        return t;
      },
      nb::arg("data"), nb::kw_only(), nb::arg("dtype") = nb::none(), nb::arg("device") = nb::none(),
      nb::arg("requires_grad") = false,
      "A new tensor holding a copy of `data`: numbers, nested sequences, NumPy arrays, tensors "
      "or DLPack objects. Python floats give float32, ints int64, bools bool.");
  m.def(
      "from_numpy", [](nb::handle array) { return import_array(array, "from_numpy"); },
      nb::arg("ndarray"),
      "A tensor sharing the memory of a NumPy array (zero-copy; writes show on both sides).");
  m.def(
      "from_dlpack", [](nb::handle obj) { return import_array(obj, "from_dlpack"); },
      nb::arg("ext_tensor"),
      "A tensor sharing the memory of any DLPack exporter (PyTorch, JAX, CuPy, NumPy) or "
      "capsule.");
}

}  // namespace st::python
