#pragma once
// The one exception hierarchy of SpiralTorch. Every message starts with the op in brackets and says
// what was expected, e.g. "[add] shapes [2, 3] and [4] cannot be broadcast".

#include <cstdint>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace st {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Shapes that do not fit together, or sizes that cannot be.
class ShapeError : public Error {
  using Error::Error;
};
// An argument of a dtype the op does not accept.
class DTypeError : public Error {
  using Error::Error;
};
// Tensors on different devices, or a device that does not exist.
class DeviceError : public Error {
  using Error::Error;
};
// An index or dimension out of range.
class IndexError : public Error {
  using Error::Error;
};
// A value outside what the op accepts (a probability above 1, a negative size).
class ValueError : public Error {
  using Error::Error;
};
// An op this backend or dtype does not provide.
class NotImplementedError : public Error {
  using Error::Error;
};
// An allocation that failed after the allocator released its cache.
class OutOfMemoryError : public Error {
  using Error::Error;
};
// A checkpoint that is malformed, or a file that cannot be read or written.
class SerializationError : public Error {
  using Error::Error;
};

namespace detail {
// Shapes print as [2, 3]; they are std::vector, so ADL would not find an operator<< of ours.
inline void append(std::ostream& out, const std::vector<int64_t>& shape) {
  out << '[';
  for (size_t i = 0; i < shape.size(); ++i) out << (i ? ", " : "") << shape[i];
  out << ']';
}
template <typename T>
void append(std::ostream& out, const T& value) {
  out << value;
}
template <typename... Args>
std::string concat(const Args&... args) {
  std::ostringstream out;
  (append(out, args), ...);
  return out.str();
}
}  // namespace detail

}  // namespace st

// ST_CHECK(cond, ShapeError, "[op] message parts ", value, ...): throws st::<Kind> when cond is
// false.
#define ST_CHECK(cond, Kind, ...)                                     \
  do {                                                                \
    if (!(cond)) throw ::st::Kind(::st::detail::concat(__VA_ARGS__)); \
  } while (0)

// Invariants of our own code, checked in debug builds only.
#ifdef NDEBUG
#define ST_ASSERT(cond) ((void)0)
#else
#define ST_ASSERT(cond)                                                                    \
  do {                                                                                     \
    if (!(cond))                                                                           \
      throw ::st::Error(::st::detail::concat("[internal] assertion failed: " #cond " at ", \
                                             __FILE__, ":", __LINE__));                    \
  } while (0)
#endif
