// The backend registry, and the default of every kernel: a clear error naming op and backend.

#include "backend/backend.h"

#include <array>

namespace st::backend {

namespace {
std::array<Backend*, kNumDeviceTypes>& registry() {
  static std::array<Backend*, kNumDeviceTypes> backends{};
  return backends;
}
}  // namespace

void register_backend(Backend* backend) {
  registry()[static_cast<size_t>(backend->device_type())] = backend;
}

bool backend_available(DeviceType type) {
  Backend* backend = registry()[static_cast<size_t>(type)];
  return backend && backend->device_count() > 0;
}

Backend& backend_for(DeviceType type) {
  Backend* backend = registry()[static_cast<size_t>(type)];
  ST_CHECK(backend, DeviceError, "[device] this build of SpiralTorch has no ",
           device_type_name(type), " backend");
  ST_CHECK(backend->device_count() > 0, DeviceError, "[device] the ", device_type_name(type),
           " backend found no usable device on this machine");
  return *backend;
}

void Backend::not_implemented(std::string_view op) const {
  throw NotImplementedError(
      detail::concat("[", op, "] not implemented on the ", name(), " backend"));
}

MemoryStats Backend::memory_stats(int) { not_implemented("memory_stats"); }
void* Backend::event_create(int) { not_implemented("event"); }
void Backend::event_destroy(void*) { not_implemented("event"); }
void Backend::event_record(void*, int) { not_implemented("event"); }
void Backend::event_synchronize(void*) { not_implemented("event"); }
bool Backend::event_query(void*) { not_implemented("event"); }
double Backend::event_elapsed_ms(void*, void*) { not_implemented("event"); }
void Backend::event_wait(void*, int) { not_implemented("event"); }
void Backend::graph_capture_begin(int) { not_implemented("graph capture"); }
void* Backend::graph_capture_end(int, bool) { not_implemented("graph capture"); }
void Backend::graph_replay(void*, uint64_t, uint64_t) { not_implemented("graph capture"); }
void Backend::graph_destroy(void*) { not_implemented("graph capture"); }
Tensor Backend::graph_input(const Shape&, DType, int) { not_implemented("graph capture"); }
void Backend::copy(const Tensor&, const Tensor&) { not_implemented("copy"); }
void Backend::fill(const Tensor&, const Scalar&) { not_implemented("fill"); }
void Backend::arange(const Tensor&, double, double) { not_implemented("arange"); }
void Backend::uniform(const Tensor&, double, double, uint64_t, uint64_t) {
  not_implemented("uniform");
}
void Backend::normal(const Tensor&, double, double, uint64_t, uint64_t) {
  not_implemented("normal");
}
void Backend::unary(UnaryOp, const Tensor&, const Tensor&, double, double) {
  not_implemented("unary");
}
void Backend::binary(BinaryOp, const Tensor&, const Tensor&, const Tensor&) {
  not_implemented("binary");
}
void Backend::where(const Tensor&, const Tensor&, const Tensor&, const Tensor&) {
  not_implemented("where");
}
void Backend::reduce(ReduceOp, const Tensor&, const Tensor&, const std::vector<int64_t>&) {
  not_implemented("reduce");
}
void Backend::arg_reduce(ArgReduceOp, const Tensor&, const Tensor&, const Tensor&, int64_t) {
  not_implemented("arg_reduce");
}
void Backend::attention_forward(const Tensor&, const Tensor&, const Tensor&, const Tensor&,
                                const Tensor&, double, bool) {
  not_implemented("attention_forward");
}
bool Backend::has_fused_attention(const Tensor&, const Tensor&) { return false; }
void Backend::attention_backward(const Tensor&, const Tensor&, const Tensor&, const Tensor&,
                                 const Tensor&, const Tensor&, const Tensor&, const Tensor&,
                                 const Tensor&, double, bool) {
  not_implemented("attention_backward");
}
void Backend::matmul(const Tensor&, const Tensor&, const Tensor&, double, double) {
  not_implemented("matmul");
}
void Backend::linear(const Tensor& out, const Tensor& pre_activation, const Tensor& a,
                     const Tensor& b, const Tensor& bias, LinearActivation act) {
  const Tensor& gemm_out = act == LinearActivation::None ? out : pre_activation;
  double beta = 0;
  if (bias.defined()) {  // the bias is the GEMM's starting value
    copy(gemm_out, bias);
    beta = 1;
  }
  matmul(gemm_out, a, b, 1.0, beta);
  if (act != LinearActivation::None)
    unary(act == LinearActivation::Gelu ? UnaryOp::GeluErf : UnaryOp::GeluTanh, out, pre_activation,
          0, 0);
}
bool Backend::has_mixed_binary(BinaryOp, DType, DType) { return false; }
void Backend::softmax(const Tensor&, const Tensor&, bool, double, int64_t) {
  not_implemented("softmax");
}
void Backend::softmax_backward(const Tensor&, const Tensor&, const Tensor&, bool, double) {
  not_implemented("softmax_backward");
}
void Backend::layer_norm(const Tensor&, const Tensor&, const Tensor&, const Tensor&, const Tensor&,
                         const Tensor&, double) {
  not_implemented("layer_norm");
}
void Backend::layer_norm_backward(const Tensor&, const Tensor&, const Tensor&, const Tensor&,
                                  const Tensor&, const Tensor&, const Tensor&, const Tensor&) {
  not_implemented("layer_norm_backward");
}
void Backend::embedding(const Tensor&, const Tensor&, const Tensor&) {
  not_implemented("embedding");
}
void Backend::embedding_backward(const Tensor&, const Tensor&, const Tensor&) {
  not_implemented("embedding_backward");
}
void Backend::cross_entropy(const Tensor&, const Tensor&, const Tensor&, const Tensor&, int64_t) {
  not_implemented("cross_entropy");
}
void Backend::cross_entropy_backward(const Tensor&, const Tensor&, const Tensor&, const Tensor&,
                                     const Tensor&, int64_t) {
  not_implemented("cross_entropy_backward");
}
void Backend::dropout(const Tensor&, const Tensor&, const Tensor&, double, uint64_t, uint64_t) {
  not_implemented("dropout");
}
void Backend::sgd_update(const std::vector<Tensor>&, const std::vector<Tensor>&,
                         const std::vector<Tensor>&, const SgdUpdate&) {
  not_implemented("sgd_update");
}
void Backend::adam_update(const std::vector<Tensor>&, const std::vector<Tensor>&,
                          const std::vector<Tensor>&, const std::vector<Tensor>&,
                          const AdamUpdate&) {
  not_implemented("adam_update");
}
void Backend::sum_of_squares(const Tensor&, const std::vector<Tensor>&) {
  not_implemented("sum_of_squares");
}

}  // namespace st::backend

namespace st {

std::vector<std::string> backends() {
  std::vector<std::string> names;
  for (DeviceType type : {DeviceType::CPU, DeviceType::CUDA, DeviceType::Vulkan})
    if (backend::backend_available(type)) names.emplace_back(device_type_name(type));
  return names;
}

std::vector<Device> available_devices() {
  std::vector<Device> devices;
  for (DeviceType type : {DeviceType::CPU, DeviceType::CUDA, DeviceType::Vulkan})
    if (backend::backend_available(type)) devices.emplace_back(type, 0);
  return devices;
}

}  // namespace st
