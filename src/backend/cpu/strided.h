#pragma once
// Iteration over operands of one shape with arbitrary strides (0 for broadcast dims), for the CPU
// kernels:
//
//   const auto layout = StridedLayout<2>::of(out, in);  // operand 0 is out, operand 1 is in
//   if (layout.contiguous()) {
//     // a plain, vectorizable loop over o[i] and x[i]
//   } else {
//     parallel_for_each_offset(layout, 1, [&](const Offsets<2>& at) { o[at[0]] = f(x[at[1]]); });
//   }
//
// Offsets count elements from each operand's data_ptr(), which already includes its storage offset.
// Elements are visited in row-major order of the shared shape: linear index i is element i of a
// contiguous output.

#include <algorithm>
#include <array>
#include <cstdint>
#include <limits>
#include <type_traits>
#include <utility>
#include <vector>

#include "backend/cpu/parallel.h"
#include "spiraltorch/tensor.h"

namespace st::backend::cpu {

template <size_t N>
using Offsets = std::array<int64_t, N>;

template <size_t N>
struct StridedLayout {
  Shape shape;                   // size-1 dims dropped, dims every operand walks as one merged
  std::array<Shape, N> strides;  // strides[k][d]: operand k's step along shape[d], in elements
  int64_t numel = 1;

  // `full_strides[k]` are operand k's strides over `full_shape`.
  StridedLayout(const Shape& full_shape, const std::array<const Shape*, N>& full_strides) {
    for (size_t d = 0; d < full_shape.size(); ++d) {
      const int64_t size = full_shape[d];
      numel *= size;
      if (size == 1) continue;
      bool merges = !shape.empty();
      for (size_t k = 0; k < N && merges; ++k)
        merges = strides[k].back() == (*full_strides[k])[d] * size;
      if (merges) {
        shape.back() *= size;
        for (size_t k = 0; k < N; ++k) strides[k].back() = (*full_strides[k])[d];
      } else {
        shape.push_back(size);
        for (size_t k = 0; k < N; ++k) strides[k].push_back((*full_strides[k])[d]);
      }
    }
  }

  // Operand k is tensors[k]; all have the first one's shape.
  template <typename... Tensors>
  static StridedLayout of(const Tensor& first, const Tensors&... rest) {
    static_assert(sizeof...(Tensors) + 1 == N);
    return StridedLayout(first.shape(), {&first.strides(), &rest.strides()...});
  }

  int64_t ndim() const { return static_cast<int64_t>(shape.size()); }
  int64_t inner_stride(size_t k) const { return shape.empty() ? 0 : strides[k].back(); }

  // True when every operand is dense row-major, so element i of each lies at offset i.
  bool contiguous() const {
    if (numel == 0 || shape.empty()) return true;
    if (shape.size() > 1) return false;
    for (size_t k = 0; k < N; ++k)
      if (strides[k][0] != 1) return false;
    return true;
  }
};

// Calls fn(start, run) over the linear indices [begin, end), cut into runs along the innermost dim:
// the run's elements of operand k lie at start[k] + j * layout.inner_stride(k), j in [0, run).
template <size_t N, typename Fn>
void for_each_run(const StridedLayout<N>& layout, int64_t begin, int64_t end, Fn&& fn) {
  if (begin >= end) return;
  const int64_t ndim = layout.ndim();
  if (ndim == 0) {  // one element
    fn(Offsets<N>{}, int64_t{1});
    return;
  }
  // Set the odometer to `begin`.
  Shape index(ndim);
  Offsets<N> start{};
  for (int64_t d = ndim - 1, rest = begin; d >= 0; --d) {
    index[d] = rest % layout.shape[d];
    rest /= layout.shape[d];
    for (size_t k = 0; k < N; ++k) start[k] += index[d] * layout.strides[k][d];
  }
  const int64_t inner = layout.shape[ndim - 1];
  for (int64_t pos = begin; pos < end;) {
    const int64_t run = std::min(inner - index[ndim - 1], end - pos);
    fn(std::as_const(start), run);
    pos += run;
    index[ndim - 1] += run;
    for (size_t k = 0; k < N; ++k) start[k] += run * layout.strides[k][ndim - 1];
    // Carry: a finished dim rewinds to 0 and the one outside it steps once.
    for (int64_t d = ndim - 1; d > 0 && index[d] == layout.shape[d]; --d) {
      index[d] = 0;
      ++index[d - 1];
      for (size_t k = 0; k < N; ++k)
        start[k] += layout.strides[k][d - 1] - layout.shape[d] * layout.strides[k][d];
    }
  }
}

// Calls fn(offsets) for each linear index in [begin, end), offsets[k] being operand k's element.
template <size_t N, typename Fn>
void for_each_offset(const StridedLayout<N>& layout, int64_t begin, int64_t end, Fn&& fn) {
  Offsets<N> step;
  for (size_t k = 0; k < N; ++k) step[k] = layout.inner_stride(k);
  for_each_run(layout, begin, end, [&](const Offsets<N>& start, int64_t run) {
    Offsets<N> at = start;
    for (int64_t j = 0; j < run; ++j) {
      fn(std::as_const(at));
      for (size_t k = 0; k < N; ++k) at[k] += step[k];
    }
  });
}

// for_each_offset over all elements, split across threads by parallel_for.
template <size_t N, typename Fn>
void parallel_for_each_offset(const StridedLayout<N>& layout, int64_t cost_per_item, Fn&& fn) {
  parallel_for(layout.numel, cost_per_item,
               [&](int64_t begin, int64_t end) { for_each_offset(layout, begin, end, fn); });
}

// Converts one element between storage types as copies between dtypes do: to bool is "nonzero",
// float to integer saturates (NaN gives 0) where a plain cast would be undefined, the rest goes
// through the compute types (f16/bf16 via f32).
template <typename To, typename From>
To element_cast(From value) {
  using FromC = compute_t<From>;
  if constexpr (std::is_same_v<To, From>) {
    return value;
  } else if constexpr (std::is_same_v<To, bool>) {
    return static_cast<FromC>(value) != FromC(0);
  } else if constexpr (std::is_integral_v<To> && !std::is_integral_v<FromC>) {
    const double v = static_cast<double>(static_cast<FromC>(value));
    constexpr double lowest = static_cast<double>(std::numeric_limits<To>::lowest());  // -2^k
    if (v != v) return 0;
    if (v <= lowest) return std::numeric_limits<To>::lowest();
    if (v >= -lowest) return std::numeric_limits<To>::max();
    return static_cast<To>(v);
  } else {
    return To(static_cast<compute_t<To>>(static_cast<FromC>(value)));
  }
}

// A 1-D tensor of any dtype and stride (targets, a per-row gradient, a weight) as values of type V.
template <typename V>
std::vector<V> read_vector(const Tensor& t) {
  std::vector<V> v(t.numel());
  dispatch_dtype(t.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* p = static_cast<const T*>(t.data_ptr());
    const int64_t stride = t.dim() == 0 ? 0 : t.strides()[0];
    for (int64_t i = 0; i < static_cast<int64_t>(v.size()); ++i)
      v[i] = static_cast<V>(static_cast<compute_t<T>>(p[i * stride]));
  });
  return v;
}

}  // namespace st::backend::cpu
