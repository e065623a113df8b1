#include "ops/op_utils.h"

#include <algorithm>

#include "spiraltorch/autograd.h"

namespace st::ops {

Tensor new_tensor(const Shape& shape, DType dtype, Device device, const char* op) {
  const int64_t numel = shape_numel(shape, op);
  const size_t itemsize = dtype_size(dtype);
  ST_CHECK(numel <= static_cast<int64_t>(SIZE_MAX / 2 / itemsize), ShapeError, "[", op,
           "] a tensor of shape ", shape, " and dtype ", dtype, " is too large to allocate");
  const size_t nbytes = static_cast<size_t>(numel) * itemsize;
  backend::Backend& be = backend::backend_for(device);
  ST_CHECK(device.index >= 0 && device.index < be.device_count(), DeviceError, "[", op, "] device ",
           device, " does not exist; this machine has ", be.device_count(), " ",
           device_type_name(device.type), " device(s)");
  void* data = nullptr;
  try {
    data = be.allocate(nbytes, device.index);
  } catch (const OutOfMemoryError& e) {
    // The allocator knows its pool's state; the op and the tensor are known here.
    throw OutOfMemoryError(detail::concat("[", op, "] cannot allocate a tensor of shape ", shape,
                                          " and dtype ", dtype, " on ", device, ": ", e.what()));
  }
  auto impl = std::make_shared<TensorImpl>();
  // Captures 16 bytes, which std::function keeps inline: no second heap allocation per tensor.
  impl->storage = std::make_shared<Storage>(data, nbytes, device, [nbytes, device](void* p) {
    backend::backend_for(device).deallocate(p, nbytes, device.index);
  });
  impl->shape = shape;
  impl->strides = contiguous_strides(shape);
  impl->dtype = dtype;
  return Tensor(std::move(impl));
}

Tensor new_heads_like(const Tensor& like) {
  const Shape& shape = like.shape();
  if (like.dim() != 4 || shape[1] == 1 || like.strides()[1] >= like.strides()[2])
    return new_like(like);
  const Tensor memory =
      new_tensor({shape[0], shape[2], shape[1], shape[3]}, like.dtype(), like.device());
  const int64_t row = shape[1] * shape[3];
  return raw_view(memory, shape, {shape[2] * row, shape[3], row, 1}, 0);
}

Tensor raw_view(const Tensor& t, const Shape& shape, const Shape& strides, int64_t offset) {
#ifndef NDEBUG
  // Every view the front-end makes must stay inside its storage: kernels read it unchecked.
  int64_t lowest = offset, highest = offset;
  bool empty = false;
  for (size_t d = 0; d < shape.size(); ++d) {
    empty = empty || shape[d] == 0;
    (strides[d] < 0 ? lowest : highest) += (shape[d] - 1) * strides[d];
  }
  ST_ASSERT(shape.size() == strides.size());
  ST_ASSERT(empty || (lowest >= 0 && (highest + 1) * static_cast<int64_t>(dtype_size(t.dtype())) <=
                                         static_cast<int64_t>(t.storage()->nbytes())));
#endif
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = t.storage();
  impl->shape = shape;
  impl->strides = strides;
  impl->offset = offset;
  impl->dtype = t.dtype();
  return Tensor(std::move(impl));
}

Tensor view_of(const Tensor& t, const Shape& shape, const Shape& strides, int64_t offset) {
  Tensor view = raw_view(t, shape, strides, offset);
  view.impl()->is_view = true;
  view.storage()->add_view();
  return view;
}

Tensor broadcast_view(const Tensor& t, const Shape& shape) {
  if (t.shape() == shape) return t;
  const int64_t lead = static_cast<int64_t>(shape.size()) - t.dim();
  Shape strides(shape.size(), 0);
  for (int64_t i = 0; i < t.dim(); ++i)
    strides[lead + i] = t.shape()[i] == shape[lead + i] ? t.strides()[i] : 0;
  return raw_view(t, shape, strides, t.offset());
}

void check_defined(const char* op, std::initializer_list<const Tensor*> tensors) {
  for (const Tensor* t : tensors)
    ST_CHECK(t->defined(), ValueError, "[", op, "] got an undefined tensor");
}

void check_same_device(const char* op, std::initializer_list<const Tensor*> tensors) {
  const Tensor* first = nullptr;
  for (const Tensor* t : tensors) {
    if (!t->defined()) continue;
    if (!first) first = t;
    ST_CHECK(t->device() == first->device(), DeviceError, "[", op,
             "] expected all tensors on one device, got ", first->device(), " and ", t->device());
  }
}

void check_floating(const char* op, const Tensor& t, const char* what) {
  ST_CHECK(is_floating(t.dtype()), DTypeError, "[", op, "] expected a floating-point ", what,
           ", got ", t.dtype());
}

namespace {
int category(DType d) { return d == DType::Bool ? 0 : is_floating(d) ? 2 : 1; }
}  // namespace

DType result_type(const Tensor& a, const Tensor& b) {
  const bool a0 = a.dim() == 0, b0 = b.dim() == 0;
  if (a0 == b0) return promote_types(a.dtype(), b.dtype());
  const Tensor& dimensioned = a0 ? b : a;
  const Tensor& zero_dim = a0 ? a : b;
  return category(zero_dim.dtype()) > category(dimensioned.dtype()) ? zero_dim.dtype()
                                                                    : dimensioned.dtype();
}

DType result_type(const Tensor& a, const Scalar& b) {
  const int scalar_category = b.is_floating() ? 2 : b.kind() == Scalar::Kind::Int ? 1 : 0;
  if (scalar_category <= category(a.dtype())) return a.dtype();
  return scalar_category == 2 ? kDefaultFloat : DType::Int64;
}

void copy_into(const Tensor& dst, const Tensor& src) {
  if (dst.numel() > 0) backend_of(dst).copy(dst, src);
  dst.storage()->bump_version();
}

std::vector<int64_t> reduction_dims(const char* op, const Tensor& x, const Shape& dims) {
  std::vector<int64_t> out;
  if (dims.empty()) {
    for (int64_t d = 0; d < x.dim(); ++d) out.push_back(d);
    return out;
  }
  for (int64_t d : dims) out.push_back(wrap_dim(d, x.dim(), op));
  std::sort(out.begin(), out.end());
  ST_CHECK(std::adjacent_find(out.begin(), out.end()) == out.end(), ValueError, "[", op, "] dim ",
           *std::adjacent_find(out.begin(), out.end()), " appears more than once in ", dims);
  if (x.dim() == 0) out.clear();  // dim 0 / -1 of a 0-dim tensor is the tensor itself
  return out;
}

Shape keepdim_shape(const Shape& shape, const std::vector<int64_t>& dims) {
  Shape out = shape;
  for (int64_t d : dims) out[d] = 1;
  return out;
}

Shape squeezed_shape(const Shape& shape, const std::vector<int64_t>& dims) {
  Shape out;
  for (int64_t i = 0; i < static_cast<int64_t>(shape.size()); ++i)
    if (std::find(dims.begin(), dims.end(), i) == dims.end()) out.push_back(shape[i]);
  return out;
}

Tensor as_rows(const Tensor& x, int64_t dim) {
  NoGradGuard no_grad;
  const bool last = x.dim() == 0 || dim == x.dim() - 1;
  const Tensor moved = (last ? x.detach() : x.detach().transpose(dim, -1)).contiguous();
  const int64_t cols = x.dim() == 0 ? 1 : x.shape()[dim];
  const int64_t rows = cols == 0 ? 0 : moved.numel() / cols;
  return raw_view(moved, {rows, cols}, {cols, 1}, moved.offset());
}

Tensor from_rows(const Tensor& rows, const Tensor& like, int64_t dim) {
  NoGradGuard no_grad;
  if (like.dim() == 0 || dim == like.dim() - 1)
    return raw_view(rows, like.shape(), contiguous_strides(like.shape()), rows.offset());
  Shape moved = like.shape();
  std::swap(moved[dim], moved.back());
  return raw_view(rows, moved, contiguous_strides(moved), rows.offset())
      .transpose(dim, -1)
      .detach();
}

}  // namespace st::ops
