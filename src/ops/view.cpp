// Views: new shape/strides/offset over the same storage. Each is differentiable.

#include <algorithm>
#include <limits>

#include "autograd/derivatives.h"
#include "ops/op_utils.h"

namespace st {

namespace {

Shape infer_shape(const char* op, const Shape& requested, int64_t numel, const Shape& from) {
  Shape shape = requested;
  int64_t known = 1, infer = -1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == -1) {
      ST_CHECK(infer < 0, ShapeError, "[", op, "] only one dim can be -1, got ", requested);
      infer = static_cast<int64_t>(i);
    } else {
      ST_CHECK(shape[i] >= 0, ShapeError, "[", op, "] invalid size ", shape[i], " in ", requested);
      known *= shape[i];
    }
  }
  if (infer >= 0) {
    ST_CHECK(known != 0, ShapeError, "[", op, "] shape ", requested,
             " is ambiguous for a tensor of shape ", from,
             ": the other sizes multiply to 0, so -1 could be any size");
    ST_CHECK(numel % known == 0, ShapeError, "[", op, "] shape ", requested,
             " is invalid for a tensor of shape ", from, " (", numel, " elements)");
    shape[infer] = numel / known;
  }
  ST_CHECK(shape_numel(shape) == numel, ShapeError, "[", op, "] shape ", requested,
           " is invalid for a tensor of shape ", from, " (", numel, " elements)");
  return shape;
}

// Strides that give `shape` over the same memory as (old_shape, old_strides), if any exist: each
// run of old dims that is contiguous within itself can be split or merged freely.
std::optional<Shape> view_strides(const Shape& old_shape, const Shape& old_strides,
                                  const Shape& shape) {
  Shape strides(shape.size());
  if (shape_numel(old_shape) == 0) return contiguous_strides(shape);
  int64_t view_d = static_cast<int64_t>(shape.size()) - 1;
  int64_t chunk_base_stride = old_strides.empty() ? 1 : old_strides.back();
  int64_t tensor_numel = 1, view_numel = 1;
  for (int64_t d = static_cast<int64_t>(old_shape.size()) - 1; d >= 0; --d) {
    tensor_numel *= old_shape[d];
    // The chunk ends where the next-outer dim is not laid out right after this one.
    if (d == 0 ||
        (old_shape[d - 1] != 1 && old_strides[d - 1] != tensor_numel * chunk_base_stride)) {
      while (view_d >= 0 && (view_numel < tensor_numel || shape[view_d] == 1)) {
        strides[view_d] = view_numel * chunk_base_stride;
        view_numel *= shape[view_d];
        --view_d;
      }
      if (view_numel != tensor_numel) return std::nullopt;
      if (d > 0) {
        chunk_base_stride = old_strides[d - 1];
        tensor_numel = 1;
        view_numel = 1;
      }
    }
  }
  if (view_d != -1) {
    for (; view_d >= 0; --view_d) {
      if (shape[view_d] != 1) return std::nullopt;
      strides[view_d] = 1;
    }
  }
  return strides;
}

Tensor make_view(const Tensor& x, Shape shape, Shape strides, int64_t offset) {
  return ops::view_of(x, std::move(shape), std::move(strides), offset);
}

}  // namespace

Tensor Tensor::view(const Shape& requested) const {
  const Shape shape = infer_shape("view", requested, numel(), this->shape());
  std::optional<Shape> strides = view_strides(this->shape(), this->strides(), shape);
  ST_CHECK(strides.has_value(), ShapeError, "[view] shape ", requested,
           " is not compatible with the strides ", this->strides(), " of a tensor of shape ",
           this->shape(), "; use reshape(), which copies when needed");
  Tensor out = make_view(*this, shape, *strides, offset());
  autograd::record_reshape("ViewBackward", *this, out);
  return out;
}

Tensor Tensor::reshape(const Shape& requested) const {
  const Shape shape = infer_shape("reshape", requested, numel(), this->shape());
  if (view_strides(this->shape(), this->strides(), shape)) return view(shape);
  return clone().view(shape);
}

Tensor Tensor::flatten(int64_t start_dim, int64_t end_dim) const {
  if (dim() == 0) return reshape({1});
  start_dim = wrap_dim(start_dim, dim(), "flatten");
  end_dim = wrap_dim(end_dim, dim(), "flatten");
  ST_CHECK(start_dim <= end_dim, IndexError, "[flatten] start_dim ", start_dim,
           " is after end_dim ", end_dim);
  Shape shape(this->shape().begin(), this->shape().begin() + start_dim);
  int64_t merged = 1;
  for (int64_t d = start_dim; d <= end_dim; ++d) merged *= this->shape()[d];
  shape.push_back(merged);
  shape.insert(shape.end(), this->shape().begin() + end_dim + 1, this->shape().end());
  return reshape(shape);
}

Tensor Tensor::permute(const Shape& dims) const {
  ST_CHECK(static_cast<int64_t>(dims.size()) == dim(), ShapeError, "[permute] got ", dims.size(),
           " dims ", dims, " for a tensor with ", dim(), " dims");
  Shape shape(dims.size()), strides(dims.size()), wrapped(dims.size());
  std::vector<bool> seen(dims.size());
  for (size_t i = 0; i < dims.size(); ++i) {
    const int64_t d = wrap_dim(dims[i], dim(), "permute");
    ST_CHECK(!seen[d], ValueError, "[permute] dim ", d, " repeats in ", dims);
    seen[d] = true;
    wrapped[i] = d;
    shape[i] = this->shape()[d];
    strides[i] = this->strides()[d];
  }
  Tensor out = make_view(*this, shape, strides, offset());
  autograd::record_permute(*this, out, wrapped);
  return out;
}

Tensor Tensor::transpose(int64_t dim0, int64_t dim1) const {
  if (dim() == 0) return *this;
  Shape dims(dim());
  for (int64_t i = 0; i < dim(); ++i) dims[i] = i;
  std::swap(dims[wrap_dim(dim0, dim(), "transpose")], dims[wrap_dim(dim1, dim(), "transpose")]);
  return permute(dims);
}

Tensor Tensor::t() const {
  ST_CHECK(dim() <= 2, ShapeError, "[t] expects a tensor with at most 2 dims, got shape ", shape());
  return dim() < 2 ? *this : transpose(0, 1);
}

Tensor Tensor::slice(int64_t dim, std::optional<int64_t> start, std::optional<int64_t> stop,
                     int64_t step) const {
  ST_CHECK(this->dim() > 0, IndexError, "[slice] cannot slice a 0-dim tensor");
  dim = wrap_dim(dim, this->dim(), "slice");
  ST_CHECK(step > 0, ValueError, "[slice] step must be positive, got ", step);
  const int64_t size = shape()[dim];
  auto clip = [size](int64_t i) { return std::clamp<int64_t>(i < 0 ? i + size : i, 0, size); };
  const int64_t begin = start ? clip(*start) : 0;
  const int64_t end = std::max(begin, stop ? clip(*stop) : size);
  const int64_t length = (end - begin + step - 1) / step;
  Shape new_shape = shape(), new_strides = strides();
  new_shape[dim] = length;
  new_strides[dim] *= step;
  Tensor out = make_view(*this, new_shape, new_strides, offset() + begin * strides()[dim]);
  autograd::record_slice("SliceBackward", *this, out, dim, begin, step, false);
  return out;
}

Tensor Tensor::narrow(int64_t dim, int64_t start, int64_t length) const {
  ST_CHECK(this->dim() > 0, IndexError, "[narrow] cannot narrow a 0-dim tensor");
  dim = wrap_dim(dim, this->dim(), "narrow");
  const int64_t size = shape()[dim];
  if (start < 0) start += size;
  ST_CHECK(start >= 0 && length >= 0 && start + length <= size, IndexError, "[narrow] start ",
           start, " and length ", length, " are out of range for dim ", dim, " of size ", size);
  return slice(dim, start, start + length, 1);
}

Tensor Tensor::select(int64_t dim, int64_t index) const {
  ST_CHECK(this->dim() > 0, IndexError, "[select] cannot index a 0-dim tensor");
  dim = wrap_dim(dim, this->dim(), "select");
  const int64_t size = shape()[dim];
  ST_CHECK(index >= -size && index < size, IndexError, "[select] index ", index,
           " is out of range for dim ", dim, " of size ", size);
  if (index < 0) index += size;
  Shape new_shape = shape(), new_strides = strides();
  new_shape.erase(new_shape.begin() + dim);
  new_strides.erase(new_strides.begin() + dim);
  Tensor out = make_view(*this, new_shape, new_strides, offset() + index * strides()[dim]);
  autograd::record_slice("SelectBackward", *this, out, dim, index, 1, true);
  return out;
}

Tensor Tensor::expand(const Shape& requested) const {
  ST_CHECK(static_cast<int64_t>(requested.size()) >= dim(), ShapeError,
           "[expand] cannot expand shape ", shape(), " to ", requested, ", which has fewer dims");
  const int64_t lead = static_cast<int64_t>(requested.size()) - dim();
  Shape new_shape(requested.size()), new_strides(requested.size(), 0);
  for (int64_t i = 0; i < static_cast<int64_t>(requested.size()); ++i) {
    const int64_t own = i >= lead ? shape()[i - lead] : 1;
    int64_t want = requested[i];
    if (want == -1) {
      ST_CHECK(i >= lead, ShapeError, "[expand] -1 is not allowed for the new leading dim ", i,
               " in ", requested);
      want = own;
    }
    ST_CHECK(want >= 0 && (own == want || own == 1), ShapeError, "[expand] cannot expand shape ",
             shape(), " to ", requested, ": dim ", i, " has size ", own,
             ", expected it to be 1 or ", want);
    new_shape[i] = want;
    if (i >= lead && own == want) new_strides[i] = strides()[i - lead];
  }
  if (new_shape == shape()) return *this;
  // A view's element count must fit int64 as an allocation's must: kernels index with it.
  if (std::find(new_shape.begin(), new_shape.end(), 0) == new_shape.end()) {
    int64_t n = 1;
    for (int64_t s : new_shape) {
      ST_CHECK(n <= std::numeric_limits<int64_t>::max() / s, ShapeError,
               "[expand] cannot expand shape ", shape(), " to ", requested,
               ": the number of elements overflows int64");
      n *= s;
    }
  }
  Tensor out = make_view(*this, new_shape, new_strides, offset());
  autograd::record_expand(*this, out);
  return out;
}

Tensor Tensor::squeeze() const {
  Shape new_shape, new_strides;
  for (int64_t i = 0; i < dim(); ++i)
    if (shape()[i] != 1) {
      new_shape.push_back(shape()[i]);
      new_strides.push_back(strides()[i]);
    }
  Tensor out = make_view(*this, new_shape, new_strides, offset());
  autograd::record_reshape("SqueezeBackward", *this, out);
  return out;
}

Tensor Tensor::squeeze(int64_t dim) const {
  if (this->dim() == 0) return *this;
  dim = wrap_dim(dim, this->dim(), "squeeze");
  if (shape()[dim] != 1) return *this;
  Shape new_shape = shape(), new_strides = strides();
  new_shape.erase(new_shape.begin() + dim);
  new_strides.erase(new_strides.begin() + dim);
  Tensor out = make_view(*this, new_shape, new_strides, offset());
  autograd::record_reshape("SqueezeBackward", *this, out);
  return out;
}

Tensor Tensor::unsqueeze(int64_t dim) const {
  dim = wrap_dim(dim, this->dim() + 1, "unsqueeze");
  Shape new_shape = shape(), new_strides = strides();
  const int64_t stride = dim < this->dim() ? strides()[dim] * shape()[dim] : 1;
  new_shape.insert(new_shape.begin() + dim, 1);
  new_strides.insert(new_strides.begin() + dim, stride);
  Tensor out = make_view(*this, new_shape, new_strides, offset());
  autograd::record_reshape("UnsqueezeBackward", *this, out);
  return out;
}

}  // namespace st
