// st::cuda: settings and statistics of the CUDA backend, compiled in every build so that callers
// (the Python package, the benchmarks) need no build-time switch; calls that need the backend go
// through the registry, which says clearly when this build or machine lacks it.

#include <atomic>
#include <cstdlib>
#include <string_view>

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

void set_gemm_backend(GemmBackend backend) { gemm_setting().store(backend); }
GemmBackend gemm_backend() { return gemm_setting().load(); }

void set_allow_tf32(bool allow) { tf32_allowed.store(allow); }
bool allow_tf32() { return tf32_allowed.load(); }

}  // namespace st::cuda
