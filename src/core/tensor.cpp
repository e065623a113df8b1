// Tensor metadata and autograd-state accessors. Everything that computes lives in src/ops/.

#include "spiraltorch/tensor.h"

#include <algorithm>
#include <limits>

namespace st {

int64_t shape_numel(const Shape& shape, const char* op) {
  // The sizes with zeros counted as 1 must multiply within int64 too: contiguous strides are
  // those products, also in a tensor with no elements.
  int64_t n = 1, span = 1;
  for (int64_t s : shape) {
    ST_CHECK(s >= 0, ShapeError, "[", op, "] negative size in shape ", shape);
    const int64_t factor = std::max<int64_t>(s, 1);
    ST_CHECK(span <= std::numeric_limits<int64_t>::max() / factor, ShapeError, "[", op,
             "] the number of elements of shape ", shape, " overflows int64",
             std::find(shape.begin(), shape.end(), 0) != shape.end()
                 ? " (its zero sizes counted as 1, as in its strides)"
                 : "");
    span *= factor;
    n *= s;
  }
  return n;
}

Shape contiguous_strides(const Shape& shape) {
  Shape strides(shape.size());
  int64_t stride = 1;
  for (size_t i = shape.size(); i-- > 0;) {
    strides[i] = stride;
    stride *= std::max<int64_t>(shape[i], 1);
  }
  return strides;
}

int64_t wrap_dim(int64_t dim, int64_t ndim, const char* op) {
  // A 0-dim tensor accepts dims 0 and -1, as in PyTorch.
  const int64_t n = std::max<int64_t>(ndim, 1);
  ST_CHECK(dim >= -n && dim < n, IndexError, "[", op, "] dim ", dim,
           " is out of range for a tensor with ", ndim, " dims (expected ", -n, " to ", n - 1, ")");
  return dim < 0 ? dim + n : dim;
}

std::ostream& operator<<(std::ostream& out, const Shape& shape) {
  detail::append(out, shape);
  return out;
}

int64_t Tensor::size(int64_t dim) const { return shape()[wrap_dim(dim, this->dim(), "size")]; }
int64_t Tensor::stride(int64_t dim) const {
  return strides()[wrap_dim(dim, this->dim(), "stride")];
}

int64_t Tensor::numel() const {
  int64_t n = 1;
  for (int64_t s : shape()) n *= s;  // validated when the tensor was made
  return n;
}

bool Tensor::is_contiguous() const {
  int64_t expected = 1;
  const Shape& sh = shape();
  const Shape& st = strides();
  for (size_t i = sh.size(); i-- > 0;) {
    if (sh[i] == 1) continue;  // a size-1 dim's stride never matters
    if (sh[i] == 0) return true;
    if (st[i] != expected) return false;
    expected *= sh[i];
  }
  return true;
}

void* Tensor::data_ptr() const {
  const TensorImpl& impl = checked();
  auto* base = static_cast<char*>(impl.storage->data());
  return base ? base + impl.offset * static_cast<int64_t>(dtype_size(impl.dtype)) : nullptr;
}

AutogradMeta& Tensor::autograd_meta() const {
  TensorImpl& impl = const_cast<TensorImpl&>(checked());
  if (!impl.autograd) impl.autograd = std::make_unique<AutogradMeta>();
  return *impl.autograd;
}

bool Tensor::requires_grad() const {
  const AutogradMeta* meta = autograd_meta_if_any();
  return meta && (meta->requires_grad || meta->grad_fn);
}

Tensor& Tensor::set_requires_grad(bool requires_grad) {
  ST_CHECK(is_leaf(), Error,
           "[requires_grad_] can only change requires_grad of a leaf tensor; "
           "use detach() to make a leaf from a computed one");
  ST_CHECK(!requires_grad || is_floating(dtype()), DTypeError,
           "[requires_grad_] only floating-point tensors can require gradients, got ", dtype());
  autograd_meta().requires_grad = requires_grad;
  return *this;
}

Tensor Tensor::grad() const {
  const AutogradMeta* meta = autograd_meta_if_any();
  return meta && meta->grad ? Tensor(meta->grad) : Tensor();
}

void Tensor::set_grad(const Tensor& grad) const {
  if (grad.defined()) {
    ST_CHECK(grad.shape() == shape(), ShapeError, "[grad] assigned gradient of shape ",
             grad.shape(), " to a tensor of shape ", shape());
    ST_CHECK(grad.dtype() == dtype(), DTypeError, "[grad] assigned gradient of dtype ",
             grad.dtype(), " to a tensor of dtype ", dtype());
    ST_CHECK(grad.device() == device(), DeviceError, "[grad] assigned gradient on ", grad.device(),
             " to a tensor on ", device());
  }
  autograd_meta().grad = grad.impl_ptr();
}

bool Tensor::is_leaf() const {
  const AutogradMeta* meta = autograd_meta_if_any();
  return !meta || !meta->grad_fn;
}

const std::shared_ptr<autograd::Node>& Tensor::grad_fn() const {
  static const std::shared_ptr<autograd::Node> none;
  const AutogradMeta* meta = autograd_meta_if_any();
  return meta ? meta->grad_fn : none;
}

Tensor Tensor::detach() const {
  const TensorImpl& impl = checked();
  auto out = std::make_shared<TensorImpl>();
  out->storage = impl.storage;
  out->shape = impl.shape;
  out->strides = impl.strides;
  out->offset = impl.offset;
  out->dtype = impl.dtype;
  return Tensor(std::move(out));
}

}  // namespace st
