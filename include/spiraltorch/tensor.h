#pragma once
// st::Tensor: a cheap shared handle to a TensorImpl (storage + shape, strides, offset, dtype, and
// the autograd metadata). Copying a Tensor copies the handle; views share storage.

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "spiraltorch/device.h"
#include "spiraltorch/dtype.h"
#include "spiraltorch/error.h"
#include "spiraltorch/scalar.h"
#include "spiraltorch/storage.h"

namespace st {

using Shape = std::vector<int64_t>;

namespace autograd {
class Node;
}
class Tensor;

// Autograd state of a tensor that takes part in differentiation. Absent for plain data tensors.
struct AutogradMeta {
  bool requires_grad = false;
  std::shared_ptr<autograd::Node> grad_fn;  // null for leaves
  uint32_t output_nr = 0;                   // which output of grad_fn this tensor is
  std::shared_ptr<struct TensorImpl>
      grad;  // accumulated gradient of a leaf (or a retained non-leaf)
  std::weak_ptr<autograd::Node> grad_accumulator;  // the leaf's AccumulateGrad node, made on demand
  bool retains_grad = false;
  bool is_view =
      false;  // made by a view op from a tensor in the graph: in-place changes are refused
  // Hooks of a leaf run once per backward after its .grad is final, by id (see
  // Tensor::register_post_accumulate_grad_hook).
  std::vector<std::pair<uint64_t, std::function<void(const Tensor&)>>> post_accumulate_grad_hooks;
};

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  Shape shape;
  Shape strides;       // in elements
  int64_t offset = 0;  // in elements, into storage
  DType dtype = kDefaultFloat;
  bool is_view = false;  // made by a view op; counted in storage's live views while alive
  std::unique_ptr<AutogradMeta> autograd;

  ~TensorImpl() {
    if (is_view) storage->remove_view();
  }
};

class Tensor {
 public:
  Tensor() = default;  // an undefined tensor: defined() is false
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  bool defined() const { return impl_ != nullptr; }
  TensorImpl* impl() const { return impl_.get(); }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }
  bool is_same(const Tensor& other) const { return impl_ == other.impl_; }

  // Metadata.
  const Shape& shape() const { return checked().shape; }
  const Shape& strides() const { return checked().strides; }
  int64_t size(int64_t dim) const;  // negative dims count from the end
  int64_t stride(int64_t dim) const;
  int64_t dim() const { return static_cast<int64_t>(shape().size()); }
  int64_t numel() const;
  int64_t offset() const { return checked().offset; }
  DType dtype() const { return checked().dtype; }
  Device device() const { return checked().storage->device(); }
  size_t itemsize() const { return dtype_size(dtype()); }
  size_t nbytes() const { return static_cast<size_t>(numel()) * itemsize(); }
  bool is_contiguous() const;
  const std::shared_ptr<Storage>& storage() const { return checked().storage; }
  void* data_ptr() const;  // storage data + offset; a device pointer for GPU tensors
  template <typename T>
  T* data() const {
    ST_CHECK(dtype_of<T>() == dtype(), DTypeError, "[data] tensor is ", dtype(), ", asked for ",
             dtype_of<T>());
    return static_cast<T*>(data_ptr());
  }

  // Values on the host.
  Scalar item() const;  // a one-element tensor's value; waits for the device
  template <typename T>
  T item() const {
    return item().to<T>();
  }
  template <typename T>
  std::vector<T> to_vector() const;  // all values, row-major, converted to T
  std::string str() const;           // as PyTorch prints it

  // Views (share storage) and copies.
  Tensor view(const Shape& shape) const;     // -1 infers one size; needs compatible strides
  Tensor reshape(const Shape& shape) const;  // a view when possible, else a copy
  Tensor flatten(int64_t start_dim = 0, int64_t end_dim = -1) const;
  Tensor permute(const Shape& dims) const;
  Tensor transpose(int64_t dim0, int64_t dim1) const;
  Tensor t() const;  // transpose of a matrix
  Tensor narrow(int64_t dim, int64_t start, int64_t length) const;
  Tensor slice(int64_t dim, std::optional<int64_t> start, std::optional<int64_t> stop,
               int64_t step = 1) const;  // Python slicing semantics
  Tensor select(int64_t dim, int64_t index) const;
  Tensor expand(const Shape& shape) const;  // -1 keeps a size
  Tensor squeeze() const;
  Tensor squeeze(int64_t dim) const;
  Tensor unsqueeze(int64_t dim) const;
  Tensor contiguous() const;
  Tensor clone() const;
  Tensor to(DType dtype) const;
  Tensor to(Device device) const;
  Tensor to(Device device, DType dtype) const;

  // Autograd.
  bool requires_grad() const;
  Tensor& set_requires_grad(bool requires_grad = true);  // leaves only
  Tensor grad() const;                                   // undefined until backward reaches it
  void set_grad(const Tensor& grad) const;
  void zero_grad() const;  // zeroes .grad in place, when there is one
  bool is_leaf() const;
  void retain_grad() const;
  const std::shared_ptr<autograd::Node>& grad_fn() const;
  Tensor detach() const;  // same storage, out of the graph
  // Runs hook(leaf) each time a backward has finished accumulating this leaf's .grad (also when a
  // rule accumulated into it in place), as torch's register_post_accumulate_grad_hook; leaves that
  // require grad only. Returns an id for remove_post_accumulate_grad_hook.
  uint64_t register_post_accumulate_grad_hook(std::function<void(const Tensor&)> hook) const;
  void remove_post_accumulate_grad_hook(uint64_t id) const;
  // Backpropagates from this tensor. A non-scalar needs `gradient` of its shape.
  void backward(const Tensor& gradient = {}, bool retain_graph = false) const;

  // Methods mirroring the free functions in ops.h.
  Tensor sum(const Shape& dims = {}, bool keepdim = false) const;
  Tensor mean(const Shape& dims = {}, bool keepdim = false) const;
  Tensor exp() const;
  Tensor log() const;
  Tensor sqrt() const;
  Tensor abs() const;
  Tensor neg() const;
  Tensor tanh() const;
  Tensor sigmoid() const;
  Tensor relu() const;
  Tensor pow(const Scalar& exponent) const;
  Tensor matmul(const Tensor& other) const;

  // In place; each bumps the storage version.
  Tensor& add_(const Tensor& other, const Scalar& alpha = 1);
  Tensor& add_(const Scalar& other);
  Tensor& sub_(const Tensor& other);
  Tensor& sub_(const Scalar& other);
  Tensor& mul_(const Tensor& other);
  Tensor& mul_(const Scalar& other);
  Tensor& div_(const Tensor& other);
  Tensor& div_(const Scalar& other);
  Tensor& neg_();
  Tensor& exp_();
  Tensor& log_();
  Tensor& sqrt_();
  Tensor& abs_();
  Tensor& tanh_();
  Tensor& sigmoid_();
  Tensor& relu_();
  Tensor& pow_(const Scalar& exponent);
  Tensor& clamp_(std::optional<Scalar> min, std::optional<Scalar> max);
  Tensor& fill_(const Scalar& value);
  Tensor& zero_();
  Tensor& copy_(const Tensor& src);  // broadcasts src; converts dtype and device

  // Autograd metadata, made on first use.
  AutogradMeta& autograd_meta() const;
  AutogradMeta* autograd_meta_if_any() const { return impl_ ? impl_->autograd.get() : nullptr; }

 private:
  const TensorImpl& checked() const {
    ST_CHECK(impl_ != nullptr, Error, "[tensor] operation on an undefined tensor");
    return *impl_;
  }
  std::shared_ptr<TensorImpl> impl_;
};

std::ostream& operator<<(std::ostream& out, const Tensor& t);
std::ostream& operator<<(std::ostream& out, const Shape& shape);  // "[2, 3]"

// Shape helpers.
// The number of elements; ShapeError naming `op` on negative sizes, or when the sizes (zeros
// counted as 1, as contiguous strides count them) multiply past int64.
int64_t shape_numel(const Shape& shape, const char* op = "shape");
Shape contiguous_strides(const Shape& shape);
// Wraps a possibly negative dim into [0, ndim); throws IndexError naming `op` when out of range.
int64_t wrap_dim(int64_t dim, int64_t ndim, const char* op);

}  // namespace st
