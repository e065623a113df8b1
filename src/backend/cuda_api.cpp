// st::cuda: settings and statistics of the CUDA backend, compiled in every build so that callers
// (the Python package, the benchmarks) need no build-time switch; calls that need the backend go
// through the registry, which says clearly when this build or machine lacks it.

#include <atomic>
#include <cstdlib>
#include <map>
#include <mutex>
#include <string_view>
#include <utility>

#include "backend/backend.h"
#include "ops/op_utils.h"
#include "spiraltorch/cuda.h"
#include "spiraltorch/ops.h"

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

// The graph capturing on each device.
std::mutex capture_mutex;
std::map<int, Graph*>& captures() {
  static auto* by_device = new std::map<int, Graph*>();
  return *by_device;
}

backend::Backend& device_backend(int device, const char* op) {
  backend::Backend& be = backend::backend_for(DeviceType::CUDA);
  ST_CHECK(device >= 0 && device < be.device_count(), DeviceError, "[", op,
           "] device cuda:", device, " does not exist; this machine has ", be.device_count(),
           " CUDA device(s)");
  return be;
}

}  // namespace

Graph* capturing_graph(int device) {
  std::lock_guard lock(capture_mutex);
  const auto it = captures().find(device);
  return it == captures().end() ? nullptr : it->second;
}

Graph::~Graph() {
  try {
    reset();
  } catch (...) {  // a destructor's path: the graph's memory is returned regardless
  }
}

void Graph::capture_begin(int device) {
  ST_CHECK(!handle_ && !capturing_, ValueError, "[Graph.capture_begin] the graph already ",
           capturing_ ? "is capturing" : "holds a capture", "; reset() it first");
  backend::Backend& be = device_backend(device, "Graph.capture_begin");
  {
    std::lock_guard lock(capture_mutex);
    ST_CHECK(captures().emplace(device, this).second, ValueError,
             "[Graph.capture_begin] another graph is capturing on cuda:", device);
  }
  try {
    be.graph_capture_begin(device);
  } catch (...) {
    std::lock_guard lock(capture_mutex);
    captures().erase(device);
    throw;
  }
  device_ = device;
  capturing_ = true;
  random_start_ = rng_state(DeviceType::CUDA).offset;
}

void Graph::finish_capture(bool keep) {
  ST_CHECK(capturing_, ValueError, "[Graph.capture_end] the graph is not capturing");
  capturing_ = false;
  {
    std::lock_guard lock(capture_mutex);
    captures().erase(device_);
  }
  // The capture draws nothing: the generator goes back to where it stood, and each replay draws
  // what uncaptured code would draw at its point.
  RngState rng = rng_state(DeviceType::CUDA);
  random_used_ = rng.offset - random_start_;
  rng.offset = random_start_;
  set_rng_state(rng, DeviceType::CUDA);
  if (!keep) before_replay_.clear();
  handle_ = backend::backend_for(DeviceType::CUDA).graph_capture_end(device_, keep);
}

void Graph::capture_end() { finish_capture(true); }
void Graph::capture_abort() { finish_capture(false); }

void Graph::before_replay(std::function<void()> hook) {
  ST_CHECK(capturing_, ValueError, "[Graph.before_replay] the graph is not capturing");
  before_replay_.push_back(std::move(hook));
}

Tensor Graph::replay_input(const Shape& shape, DType dtype) {
  ST_CHECK(capturing_, ValueError, "[Graph.replay_input] the graph is not capturing");
  return backend::backend_for(DeviceType::CUDA).graph_input(shape, dtype, device_);
}

void Graph::replay() {
  ST_CHECK(handle_, ValueError, "[Graph.replay] nothing captured",
           capturing_ ? ": the capture is still open (capture_end first)" : "");
  for (const auto& hook : before_replay_) hook();
  // Each replay's random ops take the next counters of the generator, as uncaptured ones would.
  uint64_t seed = 0, shift = 0;
  if (random_used_ > 0) {
    const auto [key, first] =
        ops::reserve_random(DeviceType::CUDA, static_cast<int64_t>(4 * random_used_));
    seed = key;
    shift = first - random_start_;
  }
  backend::backend_for(DeviceType::CUDA).graph_replay(handle_, seed, shift);
}

void Graph::reset() {
  if (capturing_) capture_abort();
  if (handle_)
    backend::backend_for(DeviceType::CUDA).graph_destroy(std::exchange(handle_, nullptr));
  before_replay_.clear();
  random_used_ = 0;
}

int device_count() {
  return backend::backend_available(DeviceType::CUDA)
             ? backend::backend_for(DeviceType::CUDA).device_count()
             : 0;
}

bool is_available() { return device_count() > 0; }

void synchronize(int device) { backend::backend_for(DeviceType::CUDA).synchronize(device); }

void* current_stream(int device) {
  return device_backend(device, "current_stream").native_stream(device);
}

MemoryStats memory_stats(int device) {
  return device_backend(device, "memory_stats").memory_stats(device);
}

void empty_cache() {
  if (is_available()) backend::backend_for(DeviceType::CUDA).empty_cache();
}

Event::Event(int device) : device_(device) {
  handle_ = device_backend(device, "Event").event_create(device);
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
  backend::Backend& be = device_backend(device, "Event.wait");
  if (recorded_) be.event_wait(handle_, device);
}

void set_gemm_backend(GemmBackend backend) { gemm_setting().store(backend); }
GemmBackend gemm_backend() { return gemm_setting().load(); }

void set_allow_tf32(bool allow) { tf32_allowed.store(allow); }
bool allow_tf32() { return tf32_allowed.load(); }

}  // namespace st::cuda
