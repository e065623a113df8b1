#pragma once
// The CUDA backend's settings and memory statistics. Callable in every build: without a CUDA
// backend (or without a GPU), device_count() is 0 and the calls that need a device throw
// DeviceError; the settings are plain process-wide values either way.

#include "spiraltorch/memory.h"

namespace st::cuda {

bool is_available();
int device_count();
// Waits for all work queued on the device's current stream.
void synchronize(int device = 0);

// The caching allocator of one device (see DESIGN: ST_CUDA_POOL_TRACE, ST_CUDA_POOL_MAX_BYTES and
// ST_CUDA_POOL_MAX_PER_CLASS set its trace and caps).
MemoryStats memory_stats(int device = 0);
// Gives every cached block of every device back to the driver.
void empty_cache();

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
