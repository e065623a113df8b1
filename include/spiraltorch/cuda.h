#pragma once
// The CUDA backend's settings, memory statistics and events. Callable in every build: without a
// CUDA backend (or without a GPU), device_count() is 0 and the calls that need a device throw
// DeviceError; the settings are plain process-wide values either way.

#include <cstdint>
#include <functional>
#include <vector>

#include "spiraltorch/memory.h"
#include "spiraltorch/tensor.h"

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

// A CUDA graph: the work queued on one device between capture_begin and capture_end, recorded
// once and then run by replay() with one launch, without the host's per-op cost (as
// torch.cuda.CUDAGraph). The ops called while capturing run on the host as usual but queue nothing
// for the device to run then; each replay runs what they queued, on the same memory:
// - Tensors made while capturing take memory from a pool private to the graph; it lives as long as
//   the graph, and the graph's replays write it (the outputs of the captured code stay where they
//   were made). Tensors the captured code reads that were made before must be kept alive, and
//   refilled in place (copy_) for a replay to see new values.
// - Host values the captured code passes to ops are fixed at capture: copies from the host copy
//   the same bytes at every replay. Random ops draw new numbers at each replay, those uncaptured
//   code would draw at that point of the generator. The optimizers take their learning rate and
//   step count from the host before every replay (LR schedules work as without a graph); their
//   state must exist before capture, so run one step first.
// - The host cannot wait for the device or read values while capturing (DeviceError); one thread
//   queues the device's work during a capture.
class Graph {
 public:
  Graph() = default;
  // Waits for the graph's replays, then frees it and its memory pool.
  ~Graph();
  Graph(const Graph&) = delete;
  Graph& operator=(const Graph&) = delete;

  // Starts recording the work queued on `device`; the graph must be empty (reset() first).
  void capture_begin(int device = 0);
  // Stops recording and makes the graph replayable. If the captured code failed, call
  // capture_abort() instead: it discards what was recorded.
  void capture_end();
  void capture_abort();
  // Queues the recorded work once more; the host does not wait.
  void replay();
  // Frees the graph and its memory (as the destructor); it can then capture again.
  void reset();
  bool captured() const { return handle_ != nullptr; }
  bool capturing() const { return capturing_; }
  int device() const { return device_; }
  // While capturing: runs `hook` on the host before each replay, for captured code that keeps
  // device-side values in step with the host (the optimizers' learning rate and step count).
  void before_replay(std::function<void()> hook);
  // While capturing: a tensor for such a hook to write, in memory that the captured work never
  // uses otherwise (memory the pool recycles may be written by the graph's earlier kernels after
  // the hook has run). The captured code reads it; keep it as long as the graph.
  Tensor replay_input(const Shape& shape, DType dtype);

 private:
  void finish_capture(bool keep);

  void* handle_ = nullptr;
  int device_ = 0;
  bool capturing_ = false;
  uint64_t random_start_ = 0, random_used_ = 0;  // Philox counters the captured code reserved
  std::vector<std::function<void()>> before_replay_;
};

// The Graph being captured on a device, or null.
Graph* capturing_graph(int device = 0);
inline bool is_capturing(int device = 0) { return capturing_graph(device) != nullptr; }

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
