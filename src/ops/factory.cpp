// Factories, random numbers, and the copy ops: contiguous, clone, to(dtype/device), copy_.

#include <array>
#include <cmath>
#include <mutex>

#include "autograd/node.h"
#include "ops/op_utils.h"

namespace st {

using ops::backend_of;
using ops::new_tensor;

namespace {
void check_requires_grad_dtype(const char* op, const TensorOptions& options) {
  ST_CHECK(!options.requires_grad || is_floating(options.dtype), DTypeError, "[", op,
           "] only floating-point tensors can require gradients, got ", options.dtype);
}

Tensor finish(Tensor t, const TensorOptions& options) {
  if (options.requires_grad) t.set_requires_grad(true);
  return t;
}
}  // namespace

Tensor empty(const Shape& shape, const TensorOptions& options) {
  check_requires_grad_dtype("empty", options);
  return finish(new_tensor(shape, options.dtype, options.device, "empty"), options);
}

namespace {
Tensor filled(const char* op, const Shape& shape, const Scalar& value,
              const TensorOptions& options) {
  check_requires_grad_dtype(op, options);
  Tensor t = new_tensor(shape, options.dtype, options.device, op);
  if (t.numel() > 0) backend_of(t).fill(t, value);
  return finish(t, options);
}
}  // namespace

Tensor full(const Shape& shape, const Scalar& value, const TensorOptions& options) {
  return filled("full", shape, value, options);
}
Tensor zeros(const Shape& shape, const TensorOptions& options) {
  return filled("zeros", shape, 0, options);
}
Tensor ones(const Shape& shape, const TensorOptions& options) {
  return filled("ones", shape, 1, options);
}
Tensor empty_like(const Tensor& t) { return empty(t.shape(), {t.dtype(), t.device()}); }
Tensor zeros_like(const Tensor& t) { return zeros(t.shape(), {t.dtype(), t.device()}); }
Tensor ones_like(const Tensor& t) { return ones(t.shape(), {t.dtype(), t.device()}); }
Tensor full_like(const Tensor& t, const Scalar& value) {
  return full(t.shape(), value, {t.dtype(), t.device()});
}
Tensor scalar_tensor(const Scalar& value, const TensorOptions& options) {
  return full({}, value, options);
}

Tensor arange(const Scalar& end, std::optional<TensorOptions> options) {
  return arange(0, end, 1, options);
}

Tensor arange(const Scalar& start, const Scalar& end, const Scalar& step,
              std::optional<TensorOptions> options) {
  const double s = start.to_double(), e = end.to_double(), d = step.to_double();
  ST_CHECK(std::isfinite(s) && std::isfinite(e) && std::isfinite(d), ValueError,
           "[arange] bounds and step must be finite, got start ", start, ", end ", end, ", step ",
           step);
  ST_CHECK(d != 0, ValueError, "[arange] step must be nonzero");
  ST_CHECK((d > 0 && e >= s) || (d < 0 && e <= s), ValueError, "[arange] step ", step,
           " has the wrong sign for start ", start, " and end ", end);
  const double count = std::ceil((e - s) / d);
  ST_CHECK(count < 9.0e18, ShapeError, "[arange] ", count, " elements is too many");
  TensorOptions opts = options.value_or(
      TensorOptions{start.is_floating() || end.is_floating() || step.is_floating() ? kDefaultFloat
                                                                                   : DType::Int64});
  Tensor t = new_tensor({static_cast<int64_t>(count)}, opts.dtype, opts.device, "arange");
  if (t.numel() > 0) backend_of(t).arange(t, s, d);
  return finish(t, opts);
}

// One Philox stream per device type: a seed and the next unused counter.
namespace {
std::mutex generator_mutex;
std::array<RngState, kNumDeviceTypes> generators;
}  // namespace

std::pair<uint64_t, uint64_t> ops::reserve_random(DeviceType type, int64_t n) {
  std::lock_guard lock(generator_mutex);
  RngState& g = generators[static_cast<size_t>(type)];
  const uint64_t offset = g.offset;
  g.offset += (static_cast<uint64_t>(n) + 3) / 4;
  return {g.seed, offset};
}

namespace {

Tensor random(const char* op, const Shape& shape, const TensorOptions& options, bool normal) {
  ST_CHECK(is_floating(options.dtype), DTypeError, "[", op,
           "] expected a floating-point dtype, got ", options.dtype);
  Tensor t = new_tensor(shape, options.dtype, options.device, op);
  if (t.numel() == 0) return finish(t, options);
  auto [seed, offset] = ops::reserve_random(options.device.type, t.numel());
  if (normal)
    backend_of(t).normal(t, 0.0, 1.0, seed, offset);
  else
    backend_of(t).uniform(t, 0.0, 1.0, seed, offset);
  return finish(t, options);
}
}  // namespace

void manual_seed(uint64_t seed) {
  std::lock_guard lock(generator_mutex);
  for (RngState& g : generators) g = {seed, 0};
}

RngState rng_state(DeviceType type) {
  std::lock_guard lock(generator_mutex);
  return generators[static_cast<size_t>(type)];
}

void set_rng_state(const RngState& state, DeviceType type) {
  std::lock_guard lock(generator_mutex);
  generators[static_cast<size_t>(type)] = state;
}

Tensor rand(const Shape& shape, const TensorOptions& options) {
  return random("rand", shape, options, false);
}
Tensor randn(const Shape& shape, const TensorOptions& options) {
  return random("randn", shape, options, true);
}
Tensor rand_like(const Tensor& t) { return rand(t.shape(), {t.dtype(), t.device()}); }
Tensor randn_like(const Tensor& t) { return randn(t.shape(), {t.dtype(), t.device()}); }

template <typename T>
Tensor from_buffer(const T* data, const Shape& shape, const TensorOptions& options) {
  check_requires_grad_dtype("from_buffer", options);
  Tensor host = new_tensor(shape, dtype_of<T>(), kCPU, "from_buffer");
  if (host.numel() > 0) backend_of(host).copy_from_host(host, data);
  Tensor t = host.to(options.device, options.dtype);
  if (t.is_same(host)) t = t.detach();
  return finish(t, options);
}
template Tensor from_buffer(const float*, const Shape&, const TensorOptions&);
template Tensor from_buffer(const double*, const Shape&, const TensorOptions&);
template Tensor from_buffer(const Half*, const Shape&, const TensorOptions&);
template Tensor from_buffer(const BFloat16*, const Shape&, const TensorOptions&);
template Tensor from_buffer(const int32_t*, const Shape&, const TensorOptions&);
template Tensor from_buffer(const int64_t*, const Shape&, const TensorOptions&);
template Tensor from_buffer(const bool*, const Shape&, const TensorOptions&);

// A copy of x converted to `dtype` on `device`; differentiable. Cross-device copies go through host
// memory in contiguous form.
static Tensor copy_to(const Tensor& x, Device device, DType dtype, const char* op) {
  Tensor out;
  if (x.device() == device) {
    out = new_tensor(x.shape(), dtype, device);
    if (out.numel() > 0) backend_of(x).copy(out, x);
  } else {
    const Tensor source = x.contiguous().detach();
    Tensor host = source;
    if (!source.device().is_cpu()) {
      host = new_tensor(x.shape(), x.dtype(), kCPU);
      if (x.numel() > 0) backend_of(source).copy_to_host(host.data_ptr(), source);
    }
    Tensor moved = new_tensor(x.shape(), x.dtype(), device);
    if (x.numel() > 0) backend_of(moved).copy_from_host(moved, host.data_ptr());
    out = moved;
    if (dtype != x.dtype()) {
      out = new_tensor(x.shape(), dtype, device);
      if (out.numel() > 0) backend_of(out).copy(out, moved);
    }
  }
  if (autograd::needs_grad({x})) {
    const Device from = x.device();
    const DType from_dtype = x.dtype();
    autograd::record(op, {x}, {out},
                     [from, from_dtype](const autograd::Grads& g, const std::vector<bool>&) {
                       return autograd::Grads{g[0].to(from, from_dtype)};
                     });
  }
  return out;
}

Tensor Tensor::to(DType dtype) const { return to(device(), dtype); }
Tensor Tensor::to(Device device) const { return to(device, dtype()); }
Tensor Tensor::to(Device device, DType dtype) const {
  if (device == this->device() && dtype == this->dtype()) return *this;
  ST_CHECK(!requires_grad() || is_floating(dtype), DTypeError,
           "[to] a tensor that requires grad can only be converted to a floating-point dtype, not ",
           dtype);
  return copy_to(*this, device, dtype, "ToBackward");
}

Tensor Tensor::contiguous() const { return is_contiguous() ? *this : clone(); }
Tensor Tensor::clone() const { return copy_to(*this, device(), dtype(), "CloneBackward"); }

}  // namespace st
