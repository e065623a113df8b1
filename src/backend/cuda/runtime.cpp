// The CUDA backend instance and its registration: devices, one stream per device, events on those
// streams, the caching allocators, host <-> device copies, graph capture and error checking.

#include <array>
#include <atomic>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <utility>
#include <vector>

#include "backend/cuda/cuda_backend.h"
#include "core/caching_allocator.h"

namespace st::backend::cuda {
namespace {

CudaBackend instance;

struct Registration {
  Registration() { register_backend(&instance); }
} registration;

// A captured graph and what its replays need: the private pool its memory came from, the device
// copies of the host data it copies in, and the slot its random kernels read.
struct CapturedGraph {
  int device = 0;
  int pool = 0;
  cudaGraphExec_t exec = nullptr;
  uint64_t* random_slot = nullptr;  // {seed, counter offset shift}, fresh memory of the allocator
  std::vector<void*> host_data;     // fresh blocks of the allocator, never written by the graph
};

// Per-device state, made on first use of the device. Never destroyed: the driver tears down the
// context at exit, and a destructor calling cudaFree after the runtime unloads would fail.
struct DeviceState {
  cudaStream_t stream = nullptr;
  int multiprocessors = 0;
  CachingAllocator* allocator = nullptr;
  DeviceFault* fault = nullptr;         // pinned host memory the device writes through
  DeviceFault* fault_mapped = nullptr;  // the same, as the device addresses it
  CapturedGraph* capture = nullptr;     // the graph being captured on the stream, if any
  std::vector<CapturedGraph*> retired;  // graphs destroyed during a capture, freed after it
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

// Waiting on a capturing stream would fail (and spoil the capture): its work is only recorded.
void refuse_wait_while_capturing(int device, const char* what) {
  ST_CHECK(!state(device).capture, DeviceError, "[", what, "] cuda:", device,
           " is capturing a graph: its work is recorded, not run, so the host can neither wait for "
           "it nor read its values; do that after the capture, once the graph has been replayed");
}

// Frees what a graph holds once its last replay is done. Not during a capture of the same device,
// whose stream cannot be waited on: the graph is retired until that capture ends.
void free_graph(CapturedGraph* graph) {
  DeviceState& s = state(graph->device);
  if (s.capture) {
    s.retired.push_back(graph);
    return;
  }
  set_device(graph->device);
  // A destructor's path: a failure here has nowhere to go, and the memory is returned regardless.
  cudaStreamSynchronize(s.stream);
  if (graph->exec) cudaGraphExecDestroy(graph->exec);
  s.allocator->deallocate(graph->random_slot);
  s.allocator->release_pool(graph->pool);
  for (void* p : graph->host_data) s.allocator->deallocate(p);
  delete graph;
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

namespace {
Tensor tensor_in_pool(const Shape& shape, DType dtype, Device device, bool fresh) {
  auto impl = std::make_shared<TensorImpl>();
  impl->shape = shape;
  impl->strides = contiguous_strides(shape);
  impl->dtype = dtype;
  const size_t nbytes = static_cast<size_t>(shape_numel(shape)) * dtype_size(dtype);
  CachingAllocator* pool = state(device.index).allocator;
  void* memory = fresh ? pool->allocate_fresh(nbytes) : pool->allocate(nbytes);
  impl->storage =
      std::make_shared<Storage>(memory, nbytes, device, [pool](void* p) { pool->deallocate(p); });
  return Tensor(std::move(impl));
}
}  // namespace

Tensor scratch(const Shape& shape, DType dtype, Device device) {
  return tensor_in_pool(shape, dtype, device, false);
}

DeviceFault* device_fault(int device) { return state(device).fault_mapped; }

void copy_host_to_device(void* dst, const void* src, size_t n, int device, const char* what) {
  DeviceState& s = state(device);
  set_device(device);
  if (CapturedGraph* graph = s.capture) {
    // The bytes go once, now, to device memory of the graph's own that no kernel writes (through
    // the legacy stream, which our non-blocking stream's capture does not see); the graph copies
    // them to dst at this point of every replay.
    void* held = s.allocator->allocate_fresh(n);
    graph->host_data.push_back(held);
    check(cudaMemcpy(held, src, n, cudaMemcpyHostToDevice), what);
    check(cudaMemcpyAsync(dst, held, n, cudaMemcpyDeviceToDevice, s.stream), what);
    return;
  }
  // From pageable memory the copy is staged before this returns, so src may be freed after.
  check(cudaMemcpyAsync(dst, src, n, cudaMemcpyHostToDevice, s.stream), what);
}

const uint64_t* graph_random_slot(int device) {
  DeviceState& s = state(device);
  if (!s.capture) return nullptr;
  // Written before each launch: memory the graph's own kernels never touch.
  if (!s.capture->random_slot)
    s.capture->random_slot =
        static_cast<uint64_t*>(s.allocator->allocate_fresh(2 * sizeof(uint64_t)));
  return s.capture->random_slot;
}

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
  copy_host_to_device(dst.data_ptr(), src, n, dst.device().index, "cudaMemcpyAsync to the device");
}

void CudaBackend::copy_to_host(void* dst, const Tensor& src) {
  const size_t n = src.nbytes();
  if (n == 0) return;
  refuse_wait_while_capturing(src.device().index, "copy to the host");
  const cudaStream_t stream = stream_of(src);
  check(cudaMemcpyAsync(dst, src.data_ptr(), n, cudaMemcpyDeviceToHost, stream),
        "cudaMemcpyAsync to the host");
  // The host waits here: it is about to read the values.
  check(cudaStreamSynchronize(stream), "cudaStreamSynchronize");
  raise_fault(src.device().index);
}

void CudaBackend::synchronize(int device_index) {
  refuse_wait_while_capturing(device_index, "synchronize");
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
    refuse_wait_while_capturing(d, "empty_cache");
    // Blocks freed by the host may still be in use by queued work: cudaFree waits for it anyway,
    // but waiting first keeps the order plain.
    check(cudaStreamSynchronize(s.stream), "cudaStreamSynchronize");
    s.allocator->empty_cache();
  }
}

void CudaBackend::graph_capture_begin(int device_index) {
  DeviceState& s = state(device_index);
  ST_CHECK(!s.capture, ValueError, "[cuda graph] cuda:", device_index,
           " is already capturing a graph; end that capture first");
  set_device(device_index);
  auto graph = std::make_unique<CapturedGraph>();
  graph->device = device_index;
  graph->pool = s.allocator->open_pool();
  // Relaxed: while the stream records, the pool may take memory from the driver and copies from
  // the host write their bytes once through the legacy stream.
  const cudaError_t status = cudaStreamBeginCapture(s.stream, cudaStreamCaptureModeRelaxed);
  if (status != cudaSuccess) {
    s.allocator->close_pool();
    s.allocator->release_pool(graph->pool);
    check(status, "cudaStreamBeginCapture");
  }
  s.capture = graph.release();
}

void* CudaBackend::graph_capture_end(int device_index, bool keep) {
  DeviceState& s = state(device_index);
  ST_CHECK(s.capture, ValueError, "[cuda graph] cuda:", device_index, " is not capturing a graph");
  CapturedGraph* graph = std::exchange(s.capture, nullptr);
  s.allocator->close_pool();
  cudaGraph_t captured = nullptr;
  set_device(device_index);
  cudaError_t status = cudaStreamEndCapture(s.stream, &captured);
  if (status == cudaSuccess && keep) status = cudaGraphInstantiate(&graph->exec, captured, 0);
  if (captured) cudaGraphDestroy(captured);
  for (CapturedGraph* retired : std::exchange(s.retired, {})) free_graph(retired);
  if (status != cudaSuccess || !keep) {
    if (status != cudaSuccess) cudaGetLastError();
    free_graph(graph);
    if (keep) check(status, "ending the graph's capture");
    return nullptr;
  }
  return graph;
}

void CudaBackend::graph_replay(void* handle, uint64_t seed, uint64_t offset_shift) {
  const CapturedGraph& graph = *static_cast<const CapturedGraph*>(handle);
  const cudaStream_t stream = stream_for(graph.device);
  if (graph.random_slot) {
    const uint64_t slot[2] = {seed, offset_shift};
    check(cudaMemcpyAsync(graph.random_slot, slot, sizeof slot, cudaMemcpyHostToDevice, stream),
          "cudaMemcpyAsync of the graph's random offset");
  }
  check(cudaGraphLaunch(graph.exec, stream), "cudaGraphLaunch");
}

void CudaBackend::graph_destroy(void* handle) { free_graph(static_cast<CapturedGraph*>(handle)); }

Tensor CudaBackend::graph_input(const Shape& shape, DType dtype, int device_index) {
  ST_CHECK(state(device_index).capture, ValueError, "[cuda graph] cuda:", device_index,
           " is not capturing a graph");
  return tensor_in_pool(shape, dtype, Device(DeviceType::CUDA, device_index), true);
}

}  // namespace st::backend::cuda
