#pragma once
// Helpers shared by the op front-end files: argument checks, output allocation, internal views.

#include <initializer_list>

#include "backend/backend.h"
#include "spiraltorch/autograd.h"
#include "spiraltorch/ops.h"

namespace st::ops {

// A new uninitialized contiguous tensor; allocates through the device's backend. `op` names the
// caller in errors about the shape or device.
Tensor new_tensor(const Shape& shape, DType dtype, Device device, const char* op = "empty");
inline Tensor new_like(const Tensor& t, std::optional<DType> dtype = std::nullopt) {
  return new_tensor(t.shape(), dtype.value_or(t.dtype()), t.device());
}

inline backend::Backend& backend_of(const Tensor& t) { return backend::backend_for(t.device()); }

// A view of t's storage with the given geometry, outside the autograd graph (for kernel arguments).
Tensor raw_view(const Tensor& t, const Shape& shape, const Shape& strides, int64_t offset);
// A new [B, H, T, E] tensor in the memory order of `like`: [B, T, H, E] when like's heads are
// closer in memory than its rows (heads split from a [B, T, H * E] projection), so that the
// tensor's transpose(1, 2).reshape(B, T, H * E) is a view; contiguous otherwise.
Tensor new_heads_like(const Tensor& like);
// A view as the view ops return it (view, slice, split...): like raw_view, and counted as a live
// view of the storage.
Tensor view_of(const Tensor& t, const Shape& shape, const Shape& strides, int64_t offset);
// t viewed with `shape` by giving broadcast dims stride 0 (shapes already checked compatible).
Tensor broadcast_view(const Tensor& t, const Shape& shape);

void check_defined(const char* op, std::initializer_list<const Tensor*> tensors);
// All defined tensors on one device; the error names each tensor's device.
void check_same_device(const char* op, std::initializer_list<const Tensor*> tensors);
void check_floating(const char* op, const Tensor& t, const char* what = "input");

// The dtype a binary op computes in, as PyTorch's result_type: dimensioned tensors outrank 0-dim
// ones of the same kind (bool < integer < float), and Python-style scalars rank lowest.
DType result_type(const Tensor& a, const Tensor& b);
DType result_type(const Tensor& a, const Scalar& b);
// The dtype of per-row statistics saved by layer_norm and cross_entropy: f64 for f64, else f32.
inline DType statistics_type(DType dtype) {
  return dtype == DType::Float64 ? dtype : DType::Float32;
}
// float32 for integer inputs of ops that always compute in floating point (exp, div, mean...).
inline DType float_type(DType dtype) { return is_floating(dtype) ? dtype : kDefaultFloat; }

// Reserves the Philox counters for n random values (four per counter) on a device type's stream;
// returns (seed, first counter) for the backend's random kernels.
std::pair<uint64_t, uint64_t> reserve_random(DeviceType type, int64_t n);

// out [M, N] (contiguous) += a [M, K] @ b [K, N]: one GEMM with beta = 1, outside autograd. The
// backward rules accumulate weight gradients straight into an existing .grad with it.
void matmul_accumulate(const Tensor& out, const Tensor& a, const Tensor& b);

// Writes `value` into `dst` (which may be a strided view), bumping dst's storage version.
void copy_into(const Tensor& dst, const Tensor& src);

// The reduced dims of x for `dims` (empty: all), wrapped, sorted and unique.
std::vector<int64_t> reduction_dims(const char* op, const Tensor& x, const Shape& dims);
// x's shape with size 1 at `dims`, and the same with those dims removed.
Shape keepdim_shape(const Shape& shape, const std::vector<int64_t>& dims);
Shape squeezed_shape(const Shape& shape, const std::vector<int64_t>& dims);

// For row-wise kernels: x (outside the graph) with `dim` moved last, made contiguous and viewed as
// [rows, size(dim)]; and the inverse, a [rows, cols] result viewed with `like`'s shape again.
Tensor as_rows(const Tensor& x, int64_t dim);
Tensor from_rows(const Tensor& rows, const Tensor& like, int64_t dim);

}  // namespace st::ops
