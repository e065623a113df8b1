// st.cuda: device count, synchronization, allocator statistics and GEMM settings (cuda.h).
// Callable in every build; without a CUDA backend is_available() is False.

#include <spiraltorch/cuda.h>

#include "bindings.h"

using namespace nb::literals;

namespace st::python {

void init_cuda(nb::module_& m) {
  nb::module_ cuda = m.def_submodule("cuda", "The CUDA backend's settings and statistics.");
  cuda.def("is_available", &st::cuda::is_available, "Whether a CUDA device can be used now.");
  cuda.def("device_count", &st::cuda::device_count, "The number of CUDA devices.");
  cuda.def(
      "synchronize",
      [](int device) {
        nb::gil_scoped_release release;
        st::cuda::synchronize(device);
      },
      "device"_a = 0, "Waits for all work queued on the device's current stream.");
  cuda.def(
      "memory_stats",
      [](int device) {
        const MemoryStats s = st::cuda::memory_stats(device);
        nb::dict out;
        out["allocated_bytes"] = s.allocated_bytes;
        out["requested_bytes"] = s.requested_bytes;
        out["reserved_bytes"] = s.reserved_bytes;
        out["cached_bytes"] = s.cached_bytes;
        out["peak_allocated_bytes"] = s.peak_allocated_bytes;
        out["peak_reserved_bytes"] = s.peak_reserved_bytes;
        out["allocations"] = s.allocations;
        out["frees"] = s.frees;
        out["cache_hits"] = s.cache_hits;
        out["device_allocations"] = s.device_allocations;
        out["device_frees"] = s.device_frees;
        out["oom_retries"] = s.oom_retries;
        return out;
      },
      "device"_a = 0, "The caching allocator's statistics for one device, in bytes and counts.");
  cuda.def("empty_cache", &st::cuda::empty_cache,
           "Gives every cached block of every device back to the driver.");
  cuda.def("set_allow_tf32", &st::cuda::set_allow_tf32, "allow"_a,
           "Whether float32 matmuls may round their inputs to TF32 on the tensor cores.");
  cuda.def("allow_tf32", &st::cuda::allow_tf32);
}

}  // namespace st::python
