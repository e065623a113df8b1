#pragma once
// A number passed by value to an op (fill value, clamp bound, tensor + 2.5): a double, an integer
// or a bool, remembering which so that `int_tensor + 2` stays integral as in PyTorch.

#include <cstdint>
#include <limits>
#include <ostream>
#include <type_traits>

#include "spiraltorch/dtype.h"

namespace st {

class Scalar {
 public:
  enum class Kind : uint8_t { Float, Int, Bool };

  Scalar() : kind_(Kind::Int), i_(0) {}
  template <typename T, std::enable_if_t<std::is_floating_point_v<T>, int> = 0>
  Scalar(T v) : kind_(Kind::Float), d_(static_cast<double>(v)) {}  // NOLINT
  template <typename T,
            std::enable_if_t<std::is_integral_v<T> && !std::is_same_v<T, bool>, int> = 0>
  Scalar(T v) : kind_(Kind::Int), i_(static_cast<int64_t>(v)) {}  // NOLINT
  Scalar(bool v) : kind_(Kind::Bool), i_(v ? 1 : 0) {}            // NOLINT
  Scalar(Half v) : Scalar(static_cast<float>(v)) {}               // NOLINT
  Scalar(BFloat16 v) : Scalar(static_cast<float>(v)) {}           // NOLINT

  Kind kind() const { return kind_; }
  bool is_floating() const { return kind_ == Kind::Float; }
  double to_double() const { return kind_ == Kind::Float ? d_ : static_cast<double>(i_); }
  int64_t to_int() const { return to<int64_t>(); }
  template <typename T>
  T to() const {
    if constexpr (std::is_same_v<T, bool>)
      return kind_ == Kind::Float ? d_ != 0 : i_ != 0;
    else if constexpr (std::is_integral_v<T>) {
      if (kind_ != Kind::Float) return static_cast<T>(i_);
      // Saturate: converting NaN or an out-of-range double to an integer is undefined.
      constexpr double lowest = static_cast<double>(std::numeric_limits<T>::lowest());
      if (d_ != d_) return 0;
      if (d_ <= lowest) return std::numeric_limits<T>::lowest();
      if (d_ >= -lowest) return std::numeric_limits<T>::max();
      return static_cast<T>(d_);
    } else
      return T(static_cast<compute_t<T>>(to_double()));
  }
  // The dtype a tensor made of this scalar alone would have: float32, int64 or bool.
  DType dtype() const;

 private:
  Kind kind_;
  union {
    double d_;
    int64_t i_;
  };
};

std::ostream& operator<<(std::ostream& out, const Scalar& s);

}  // namespace st
