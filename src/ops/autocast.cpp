// Autocast: the per-thread state of each device type and the input casts of the hook.

#include "ops/autocast.h"

#include "spiraltorch/error.h"

namespace st {

namespace {

struct AutocastState {
  bool enabled = false;
  DType dtype = DType::BFloat16;
};

thread_local AutocastState states[kNumDeviceTypes];

AutocastState& state_of(DeviceType type) { return states[static_cast<int>(type)]; }

void refresh_any_enabled() {
  bool any = false;
  for (const AutocastState& s : states) any = any || s.enabled;
  ops::detail::any_autocast_enabled = any;
}

void check_autocast_dtype(DType dtype) {
  ST_CHECK(dtype == DType::BFloat16 || dtype == DType::Float16, DTypeError,
           "[autocast] expected the dtype bfloat16 or float16, got ", dtype);
}

}  // namespace

bool is_autocast_enabled(DeviceType device_type) { return state_of(device_type).enabled; }
DType get_autocast_dtype(DeviceType device_type) { return state_of(device_type).dtype; }

void set_autocast_enabled(DeviceType device_type, bool enabled) {
  state_of(device_type).enabled = enabled;
  refresh_any_enabled();
}

void set_autocast_dtype(DeviceType device_type, DType dtype) {
  check_autocast_dtype(dtype);
  state_of(device_type).dtype = dtype;
}

AutocastGuard::AutocastGuard(DeviceType device_type, DType dtype, bool enabled)
    : device_type_(device_type),
      previous_enabled_(is_autocast_enabled(device_type)),
      previous_dtype_(get_autocast_dtype(device_type)) {
  // A disabled scope keeps the enclosing dtype, as torch.autocast(enabled=False) does.
  if (enabled) set_autocast_dtype(device_type, dtype);
  set_autocast_enabled(device_type, enabled);
}

AutocastGuard::~AutocastGuard() {
  state_of(device_type_).dtype = previous_dtype_;
  set_autocast_enabled(device_type_, previous_enabled_);
}

namespace ops {

namespace detail {

thread_local bool any_autocast_enabled = false;

std::optional<std::vector<Tensor>> autocast_inputs_slow(
    CastPolicy policy, std::initializer_list<const Tensor*> inputs) {
  const Tensor* first = nullptr;
  for (const Tensor* t : inputs)
    if (t->defined()) {
      first = t;
      break;
    }
  if (first == nullptr) return std::nullopt;
  const AutocastState& state = state_of(first->device().type);
  if (!state.enabled) return std::nullopt;
  const DType target = policy == CastPolicy::LowerPrecision ? state.dtype : DType::Float32;
  // f64 stays f64, as in PyTorch: a caller asking for f64 wants its precision.
  const auto casts = [target](const Tensor& t) {
    return t.defined() && is_floating(t.dtype()) && t.dtype() != DType::Float64 &&
           t.dtype() != target;
  };
  bool any = false;
  for (const Tensor* t : inputs) any = any || casts(*t);
  if (!any) return std::nullopt;
  std::vector<Tensor> cast;
  cast.reserve(inputs.size());
  for (const Tensor* t : inputs) cast.push_back(casts(*t) ? t->to(target) : *t);
  return cast;
}

}  // namespace detail

std::optional<DType> autocast_output_dtype(const Tensor& t) {
  if (!detail::any_autocast_enabled || !t.defined() || !is_floating(t.dtype()) ||
      t.dtype() == DType::Float64)
    return std::nullopt;
  const AutocastState& state = state_of(t.device().type);
  if (!state.enabled) return std::nullopt;
  return state.dtype;
}

AutocastSuspend::AutocastSuspend() {
  for (int i = 0; i < kNumDeviceTypes; ++i) {
    previous_[i] = states[i].enabled;
    states[i].enabled = false;
  }
  detail::any_autocast_enabled = false;
}

AutocastSuspend::~AutocastSuspend() {
  for (int i = 0; i < kNumDeviceTypes; ++i) states[i].enabled = previous_[i];
  refresh_any_enabled();
}

}  // namespace ops

}  // namespace st
