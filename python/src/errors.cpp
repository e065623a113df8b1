// The exception mapping: each st::Error kind becomes a Python exception class that derives from
// both st.SpiralTorchError (so one except clause catches them all) and the built-in exception
// Python code expects for that kind. The message is the C++ text.

#include <cstring>

#include "bindings.h"

namespace st::python {
namespace {

PyObject* new_error(nb::module_& m, const char* name, PyObject* base, PyObject* builtin,
                    const char* doc) {
  const std::string qualified = std::string("spiraltorch.") + name;
  nb::object bases = builtin ? nb::make_tuple(nb::handle(base), nb::handle(builtin))
                             : nb::make_tuple(nb::handle(base));
  PyObject* type = PyErr_NewExceptionWithDoc(qualified.c_str(), doc, bases.ptr(), /*dict=*/nullptr);
  if (type == nullptr) throw nb::python_error();
  m.attr(name) = nb::handle(type);  // the module keeps the reference for the process lifetime
  return type;
}

// Messages can quote bytes of the input (a damaged checkpoint's header): invalid UTF-8 is escaped,
// so the error raised is ours and not a UnicodeDecodeError.
void set_error(PyObject* type, const char* what) {
  PyObject* message =
      PyUnicode_DecodeUTF8(what, static_cast<Py_ssize_t>(std::strlen(what)), "backslashreplace");
  if (message == nullptr) {
    PyErr_Clear();
    PyErr_SetString(type, "(the message could not be decoded)");
    return;
  }
  PyErr_SetObject(type, message);
  Py_DECREF(message);
}

}  // namespace

void init_errors(nb::module_& m) {
  static PyObject* base = new_error(
      m, "SpiralTorchError", PyExc_Exception, nullptr,
      "Base class of every error raised by SpiralTorch's C++ core; the message is the C++ text.");
  static PyObject* shape = new_error(m, "ShapeError", base, PyExc_ValueError,
                                     "Shapes that do not fit together (also a ValueError).");
  static PyObject* dtype =
      new_error(m, "DTypeError", base, PyExc_TypeError,
                "An argument of a dtype the op does not accept (a TypeError).");
  static PyObject* index = new_error(m, "IndexError", base, PyExc_IndexError,
                                     "An index or dim out of range (also an IndexError).");
  static PyObject* value = new_error(m, "ValueError", base, PyExc_ValueError,
                                     "A value outside what the op accepts (also a ValueError).");
  static PyObject* not_implemented =
      new_error(m, "NotImplementedError", base, PyExc_NotImplementedError,
                "An op this backend or dtype does not provide (a NotImplementedError).");
  static PyObject* memory = new_error(m, "OutOfMemoryError", base, PyExc_MemoryError,
                                      "An allocation that failed (also a MemoryError).");
  static PyObject* device = new_error(m, "DeviceError", base, PyExc_RuntimeError,
                                      "Tensors on different devices, or no such device.");
  static PyObject* serialization =
      new_error(m, "SerializationError", base, PyExc_RuntimeError,
                "A malformed checkpoint, or a file that cannot be read or written.");
  static PyObject* other = new_error(m, "Error", base, PyExc_RuntimeError,
                                     "Any other SpiralTorch error (a RuntimeError).");

  nb::register_exception_translator([](const std::exception_ptr& p, void*) {
    try {
      std::rethrow_exception(p);
    } catch (const st::ShapeError& e) {
      set_error(shape, e.what());
    } catch (const st::DTypeError& e) {
      set_error(dtype, e.what());
    } catch (const st::IndexError& e) {
      set_error(index, e.what());
    } catch (const st::ValueError& e) {
      set_error(value, e.what());
    } catch (const st::NotImplementedError& e) {
      set_error(not_implemented, e.what());
    } catch (const st::OutOfMemoryError& e) {
      set_error(memory, e.what());
    } catch (const st::DeviceError& e) {
      set_error(device, e.what());
    } catch (const st::SerializationError& e) {
      set_error(serialization, e.what());
    } catch (const st::Error& e) {
      set_error(other, e.what());
    }
  });
}

}  // namespace st::python
