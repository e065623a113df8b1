// The CUDA backend instance and its registration: devices, one stream per device, events on those
// streams, the caching allocators, host <-> device copies and error checking.

#include <array>
#include <atomic>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <vector>

#include "backend/cuda/cuda_backend.h"
#include "core/caching_allocator.h"

namespace st::backend::cuda {
namespace {

CudaBackend instance;

struct Registration {
  Registration() { register_backend(&instance); }
} registration;

// Per-device state, made on first use of the device. Never destroyed: the driver tears down the
// context at exit, and a destructor calling cudaFree after the runtime unloads would fail.
struct DeviceState {
  cudaStream_t stream = nullptr;
  int multiprocessors = 0;
  CachingAllocator* allocator = nullptr;
  DeviceFault* fault = nullptr;         // pinned host memory the device writes through
  DeviceFault* fault_mapped = nullptr;  // the same, as the device addresses it
};

std::mutex state_mutex;
std::vector<DeviceState*>& states() {
  static auto* all = new std::vector<DeviceState*>();
  return *all;
}

// Every op asks for its device's state: once made, it is read without the lock.
constexpr int kFastDevices = 64;
std::array<std::atomic<DeviceState*>, kFastDevices> made_states{};

// cudaSetDevice costs more than asking which device is current, and every op's launch makes its
// device current.
void set_device(int device) {
  int current = -1;
  if (cudaGetDevice(&current) == cudaSuccess && current == device) return;
  check(cudaSetDevice(device), "cudaSetDevice");
}

DeviceState& state(int device) {
  if (device >= 0 && device < kFastDevices)
    if (DeviceState* made =
            made_states[static_cast<size_t>(device)].load(std::memory_order_acquire))
      return *made;
  std::lock_guard lock(state_mutex);
  auto& all = states();
  if (all.empty()) all.resize(static_cast<size_t>(instance.device_count()), nullptr);
  ST_CHECK(device >= 0 && device < static_cast<int>(all.size()), DeviceError, "[cuda] device ",
           device, " does not exist; this machine has ", all.size(), " CUDA device(s)");
  DeviceState*& s = all[static_cast<size_t>(device)];
  if (!s) {
    auto fresh = std::make_unique<DeviceState>();
    set_device(device);
    check(cudaStreamCreateWithFlags(&fresh->stream, cudaStreamNonBlocking), "cudaStreamCreate");
    check(cudaDeviceGetAttribute(&fresh->multiprocessors, cudaDevAttrMultiProcessorCount, device),
          "cudaDeviceGetAttribute");
    void* fault = nullptr;
    check(cudaHostAlloc(&fault, sizeof(DeviceFault), cudaHostAllocMapped), "cudaHostAlloc");
    fresh->fault = new (fault) DeviceFault{};
    void* mapped = nullptr;
    check(cudaHostGetDevicePointer(&mapped, fault, 0), "cudaHostGetDevicePointer");
    fresh->fault_mapped = static_cast<DeviceFault*>(mapped);
    CachingAllocator::Callbacks callbacks{
        [device](size_t nbytes) -> void* {
          set_device(device);
          void* ptr = nullptr;
          const cudaError_t status = cudaMalloc(&ptr, nbytes);
          if (status == cudaErrorMemoryAllocation) {
            cudaGetLastError();  // clear it: the allocator retries or reports it as ours
            return nullptr;
          }
          check(status, "cudaMalloc");
          return ptr;
        },
        [device](void* ptr, size_t) {
          set_device(device);
          check(cudaFree(ptr), "cudaFree");
        }};
    fresh->allocator = new CachingAllocator("cuda:" + std::to_string(device), std::move(callbacks),
                                            CachingAllocator::options_from_env("CUDA"));
    s = fresh.release();
    if (device < kFastDevices) made_states[static_cast<size_t>(device)].store(s);
  }
  return *s;
}

// Raises the fault a kernel of this device recorded, if any, and clears it. Called after the host
// waited for the whole stream (not after an event: later kernels may still be writing it).
void raise_fault(int device) {
  DeviceFault& fault = *state(device).fault;
  const auto* seen = reinterpret_cast<volatile const unsigned long long*>(&fault.set);
  if (*seen == 0) return;
  DeviceFault found{};
  {
    // Threads waiting at once: one of them takes the fault and raises it.
    static std::mutex taking;
    std::lock_guard lock(taking);
    found = fault;
    fault = DeviceFault{};
  }
  if (found.set == 0) return;
  const std::string what =
      found.kind == FaultKind::EmbeddingIndex
          ? detail::concat("[embedding] index ", found.value, " is out of range for a table of ",
                           found.limit, " rows")
          : detail::concat("[cross_entropy] target ", found.value, " is out of range for ",
                           found.limit, " classes");
  throw IndexError(detail::concat(what, " (found on cuda:", device,
                                  " by the kernel; reported at the next wait for the device)"));
}

}  // namespace

void check(cudaError_t status, const char* what) {
  if (status == cudaSuccess) return;
  cudaGetLastError();  // a non-sticky error is cleared so that later calls start clean
  throw DeviceError(detail::concat("[cuda] ", what, " failed: ", cudaGetErrorString(status), " (",
                                   cudaGetErrorName(status), ")"));
}

void check_launch(const char* kernel) {
  const cudaError_t status = cudaGetLastError();
  if (status == cudaSuccess) return;
  throw DeviceError(detail::concat("[cuda] launch of ", kernel,
                                   " failed: ", cudaGetErrorString(status), " (",
                                   cudaGetErrorName(status), ")"));
}

cudaStream_t stream_for(int device) {
  DeviceState& s = state(device);
  set_device(device);
  return s.stream;
}

int multiprocessors(int device) { return state(device).multiprocessors; }

Tensor scratch(const Shape& shape, DType dtype, Device device) {
  auto impl = std::make_shared<TensorImpl>();
  impl->shape = shape;
  impl->strides = contiguous_strides(shape);
  impl->dtype = dtype;
  const size_t nbytes = static_cast<size_t>(shape_numel(shape)) * dtype_size(dtype);
  CachingAllocator* pool = state(device.index).allocator;
  impl->storage = std::make_shared<Storage>(pool->allocate(nbytes), nbytes, device,
                                            [pool](void* p) { pool->deallocate(p); });
  return Tensor(std::move(impl));
}

DeviceFault* device_fault(int device) { return state(device).fault_mapped; }

int CudaBackend::device_count() const {
  static const int count = [] {
    int n = 0;
    // No driver or no GPU: the backend is present but has no device.
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
      cudaGetLastError();
      return 0;
    }
    return n;
  }();
  return count;
}

void* CudaBackend::allocate(size_t nbytes, int device_index) {
  return state(device_index).allocator->allocate(nbytes);
}

void CudaBackend::deallocate(void* ptr, size_t, int device_index) {
  // Work already queued on the device's one stream may still use ptr; the next user of the block
  // is queued behind it on the same stream, so it can be reused at once.
  state(device_index).allocator->deallocate(ptr);
}

void CudaBackend::copy_from_host(const Tensor& dst, const void* src) {
  const size_t n = dst.nbytes();
  if (n == 0) return;
  // From pageable memory the copy is staged before this returns, so src may be freed after.
  check(cudaMemcpyAsync(dst.data_ptr(), src, n, cudaMemcpyHostToDevice, stream_of(dst)),
        "cudaMemcpyAsync to the device");
}

void CudaBackend::copy_to_host(void* dst, const Tensor& src) {
  const size_t n = src.nbytes();
  if (n == 0) return;
  const cudaStream_t stream = stream_of(src);
  check(cudaMemcpyAsync(dst, src.data_ptr(), n, cudaMemcpyDeviceToHost, stream),
        "cudaMemcpyAsync to the host");
  // The host waits here: it is about to read the values.
  check(cudaStreamSynchronize(stream), "cudaStreamSynchronize");
  raise_fault(src.device().index);
}

void CudaBackend::synchronize(int device_index) {
  check(cudaStreamSynchronize(stream_for(device_index)), "cudaStreamSynchronize");
  raise_fault(device_index);
}

MemoryStats CudaBackend::memory_stats(int device_index) {
  return state(device_index).allocator->stats();
}

void* CudaBackend::event_create(int device_index) {
  stream_for(device_index);  // checks the index and makes the device current
  cudaEvent_t event = nullptr;
  check(cudaEventCreate(&event), "cudaEventCreate");
  return event;
}

void CudaBackend::event_destroy(void* event) {
  // A destructor's call: a failure here has nowhere to go, and the runtime frees the event anyway.
  cudaEventDestroy(static_cast<cudaEvent_t>(event));
}

void CudaBackend::event_record(void* event, int device_index) {
  check(cudaEventRecord(static_cast<cudaEvent_t>(event), stream_for(device_index)),
        "cudaEventRecord");
}

void CudaBackend::event_synchronize(void* event) {
  check(cudaEventSynchronize(static_cast<cudaEvent_t>(event)), "cudaEventSynchronize");
}

bool CudaBackend::event_query(void* event) {
  const cudaError_t status = cudaEventQuery(static_cast<cudaEvent_t>(event));
  if (status == cudaErrorNotReady) {
    cudaGetLastError();  // not an error: the work is still running
    return false;
  }
  check(status, "cudaEventQuery");
  return true;
}

double CudaBackend::event_elapsed_ms(void* start, void* end) {
  float ms = 0;
  check(cudaEventElapsedTime(&ms, static_cast<cudaEvent_t>(start), static_cast<cudaEvent_t>(end)),
        "cudaEventElapsedTime");
  return ms;
}

void CudaBackend::event_wait(void* event, int device_index) {
  check(cudaStreamWaitEvent(stream_for(device_index), static_cast<cudaEvent_t>(event), 0),
        "cudaStreamWaitEvent");
}

void CudaBackend::empty_cache() {
  for (int d = 0; d < device_count(); ++d) {
    DeviceState& s = state(d);
    // Blocks freed by the host may still be in use by queued work: cudaFree waits for it anyway,
    // but waiting first keeps the order plain.
    check(cudaStreamSynchronize(s.stream), "cudaStreamSynchronize");
    s.allocator->empty_cache();
  }
}

}  // namespace st::backend::cuda
