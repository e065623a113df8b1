#pragma once
// Statistics of a GPU backend's caching allocator (st::cuda::memory_stats(), and the Vulkan
// backend's alike). Sizes are in bytes, after rounding to the allocator's size classes.

#include <cstddef>
#include <cstdint>

namespace st {

struct MemoryStats {
  size_t allocated_bytes = 0;       // in blocks handed out and not yet returned
  size_t requested_bytes = 0;       // what those blocks were asked for, before rounding
  size_t reserved_bytes = 0;        // held from the device: allocated plus cached
  size_t cached_bytes = 0;          // free blocks kept for reuse
  size_t peak_allocated_bytes = 0;  // highest allocated_bytes so far
  size_t peak_reserved_bytes = 0;   // highest reserved_bytes so far
  uint64_t allocations = 0;         // allocate() calls that returned memory
  uint64_t frees = 0;               // deallocate() calls
  uint64_t cache_hits = 0;          // allocations served from the cache
  uint64_t device_allocations = 0;  // blocks taken from the device
  uint64_t device_frees = 0;        // blocks given back to the device
  uint64_t oom_retries = 0;         // times the cache was released to retry a failed allocation
};

}  // namespace st
