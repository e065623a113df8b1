// st::cuda: settings and statistics of the CUDA backend, compiled in every build so that callers
// (the Python package, the benchmarks) need no build-time switch; calls that need the backend go
// through the registry, which says clearly when this build or machine lacks it.

#include <atomic>
#include <cstdlib>
#include <string_view>
#include <utility>

#include "backend/backend.h"
#include "spiraltorch/cuda.h"

namespace st::cuda {

namespace {

std::atomic<bool> tf32_allowed{false};

GemmBackend gemm_from_env() {
  const char* value = std::getenv("ST_CUDA_GEMM");
  if (!value || !*value) return GemmBackend::CublasLt;
  const std::string_view name(value);
  if (name == "cublaslt") return GemmBackend::CublasLt;
  if (name == "tiled") return GemmBackend::Tiled;
  if (name == "tensorcore") return GemmBackend::TensorCore;
  throw ValueError(
      detail::concat("[ST_CUDA_GEMM] expected cublaslt, tiled or tensorcore, got '", name, "'"));
}

std::atomic<GemmBackend>& gemm_setting() {
  static std::atomic<GemmBackend> setting{gemm_from_env()};
  return setting;
}

}  // namespace

int device_count() {
  return backend::backend_available(DeviceType::CUDA)
             ? backend::backend_for(DeviceType::CUDA).device_count()
             : 0;
}

bool is_available() { return device_count() > 0; }

void synchronize(int device) { backend::backend_for(DeviceType::CUDA).synchronize(device); }

void* current_stream(int device) {
  backend::Backend& be = backend::backend_for(DeviceType::CUDA);
  ST_CHECK(device >= 0 && device < be.device_count(), DeviceError, "[current_stream] device cuda:",
           device, " does not exist; this machine has ", be.device_count(), " CUDA device(s)");
  return be.native_stream(device);
}

MemoryStats memory_stats(int device) {
  backend::Backend& be = backend::backend_for(DeviceType::CUDA);
  ST_CHECK(device >= 0 && device < be.device_count(), DeviceError,
           "[memory_stats] device cuda:", device, " does not exist; this machine has ",
           be.device_count(), " CUDA device(s)");
  return be.memory_stats(device);
}

void empty_cache() {
  if (is_available()) backend::backend_for(DeviceType::CUDA).empty_cache();
}

Event::Event(int device) : device_(device) {
  backend::Backend& be = backend::backend_for(DeviceType::CUDA);
  ST_CHECK(device >= 0 && device < be.device_count(), DeviceError, "[Event] device cuda:", device,
           " does not exist; this machine has ", be.device_count(), " CUDA device(s)");
  handle_ = be.event_create(device);
}

Event::~Event() {
  if (handle_) backend::backend_for(DeviceType::CUDA).event_destroy(handle_);
}

Event::Event(Event&& other) noexcept
    : handle_(std::exchange(other.handle_, nullptr)),
      device_(other.device_),
      recorded_(other.recorded_) {}

Event& Event::operator=(Event&& other) noexcept {
  if (this != &other) {
    if (handle_) backend::backend_for(DeviceType::CUDA).event_destroy(handle_);
    handle_ = std::exchange(other.handle_, nullptr);
    device_ = other.device_;
    recorded_ = other.recorded_;
  }
  return *this;
}

void Event::record() {
  ST_CHECK(handle_, ValueError, "[Event] record on a moved-from event");
  backend::backend_for(DeviceType::CUDA).event_record(handle_, device_);
  recorded_ = true;
}

void Event::synchronize() const {
  if (recorded_) backend::backend_for(DeviceType::CUDA).event_synchronize(handle_);
}

bool Event::query() const {
  return !recorded_ || backend::backend_for(DeviceType::CUDA).event_query(handle_);
}

double Event::elapsed_time(const Event& end) const {
  ST_CHECK(recorded_ && end.recorded_, ValueError,
           "[Event.elapsed_time] both events must be recorded first");
  ST_CHECK(device_ == end.device_, ValueError,
           "[Event.elapsed_time] the events are on cuda:", device_, " and cuda:", end.device_,
           "; expected one device");
  end.synchronize();
  return backend::backend_for(DeviceType::CUDA).event_elapsed_ms(handle_, end.handle_);
}

void Event::wait(int device) const {
  backend::Backend& be = backend::backend_for(DeviceType::CUDA);
  ST_CHECK(device >= 0 && device < be.device_count(), DeviceError,
           "[Event.wait] device cuda:", device, " does not exist; this machine has ",
           be.device_count(), " CUDA device(s)");
  if (recorded_) be.event_wait(handle_, device);
}

void set_gemm_backend(GemmBackend backend) { gemm_setting().store(backend); }
GemmBackend gemm_backend() { return gemm_setting().load(); }

void set_allow_tf32(bool allow) { tf32_allowed.store(allow); }
bool allow_tf32() { return tf32_allowed.load(); }

}  // namespace st::cuda
