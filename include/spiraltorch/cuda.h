#pragma once
// The CUDA backend's settings, memory statistics and events. Callable in every build: without a
// CUDA backend (or without a GPU), device_count() is 0 and the calls that need a device throw
// DeviceError; the settings are plain process-wide values either way.

#include "spiraltorch/memory.h"

namespace st::cuda {

bool is_available();
int device_count();
// Waits for all work queued on the device's current stream.
void synchronize(int device = 0);
// The device's current stream as a cudaStream_t, for libraries that queue work in order with
// ours (as torch.cuda.current_stream().cuda_stream).
void* current_stream(int device = 0);

// The caching allocator of one device (see DESIGN: ST_CUDA_POOL_TRACE, ST_CUDA_POOL_MAX_BYTES and
// ST_CUDA_POOL_MAX_PER_CLASS set its trace and caps).
MemoryStats memory_stats(int device = 0);
// Gives every cached block of every device back to the driver.
void empty_cache();

// A CUDA event: a mark in the work queued on a device's stream, for timing and for ordering work
// across devices without the host waiting. Created on a device (DeviceError without one).
class Event {
 public:
  explicit Event(int device = 0);
  ~Event();
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;
  Event(Event&& other) noexcept;
  Event& operator=(Event&& other) noexcept;

  // Marks the work queued so far on the current stream of the event's device; records again move
  // the mark.
  void record();
  // Waits on the host until the marked work has finished (at once when never recorded).
  void synchronize() const;
  // Whether the marked work has finished (true when never recorded).
  bool query() const;
  // Milliseconds from this event to `end`, both recorded on one device; waits for `end`.
  double elapsed_time(const Event& end) const;
  // Makes the current stream of `device` wait for the marked work before running what is queued
  // on it afterwards; the host does not wait.
  void wait(int device) const;
  int device() const { return device_; }

 private:
  void* handle_ = nullptr;
  int device_ = 0;
  bool recorded_ = false;
};

// Which GEMM serves matmul on CUDA. The default comes from ST_CUDA_GEMM (cublaslt, tiled or
// tensorcore), else cublaslt. tensorcore covers f16 and bf16 (other dtypes take the tiled
// kernel); integer matmuls always take the tiled kernel.
enum class GemmBackend { CublasLt, Tiled, TensorCore };
void set_gemm_backend(GemmBackend backend);
GemmBackend gemm_backend();

// Whether f32 matmuls may round their inputs to TF32 on the tensor cores, as PyTorch's
// torch.backends.cuda.matmul.allow_tf32. Off by default: f32 products stay f32-accurate.
void set_allow_tf32(bool allow);
bool allow_tf32();

}  // namespace st::cuda
