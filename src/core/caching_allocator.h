#pragma once
// A caching allocator for device memory, shared by the GPU backends. The backend supplies the raw
// allocation and release as callbacks over opaque handles (a CUDA pointer, a Vulkan memory
// object); this class keeps freed blocks for reuse, so that the steady state of a training loop
// allocates nothing from the device.
//
// - Size classes: requests up to 1 MiB round up to a multiple of 512 B, larger ones to a multiple
//   of 2 MiB. A freed block is reused only for a request of the same class.
// - Each class keeps its free blocks newest first (warm memory is reused first); the least
//   recently freed blocks of all classes are given back to the device once the cache holds more
//   than `max_cached_bytes`, or a class more than `max_per_class` blocks.
// - When the device is out of memory, every cached block is given back and the allocation retried
//   once; only then does allocate() throw OutOfMemoryError, with the sizes in its message.
// - With `trace`, every allocation and release is logged to stderr.
//
// Options come from the environment with options_from_env("CUDA"): ST_CUDA_POOL_TRACE=1,
// ST_CUDA_POOL_MAX_BYTES (a byte count, optionally with a K, M or G suffix) and
// ST_CUDA_POOL_MAX_PER_CLASS.
//
// Private pools serve CUDA graphs. While a pool is open, allocations come from it (its own free
// blocks first, then the shared cache, then the device) and nothing is given back to the device
// (a stream capture forbids it). A pool's blocks, when freed, return to that pool alone: the
// memory a graph's replay writes is never handed to tensors outside the graph. Releasing the pool
// moves its free blocks to the shared cache; its live ones join the cache when freed.
//
// Thread-safe. The caller orders device work: a block handed back by deallocate() may be given to
// the next allocate() at once, which is safe when all work using the memory goes in one stream
// order (as with one stream per device).

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <list>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "spiraltorch/memory.h"

namespace st {

class CachingAllocator {
 public:
  // raw_alloc returns null when the device is out of memory and throws for any other failure;
  // raw_free releases what raw_alloc returned (with its size).
  struct Callbacks {
    std::function<void*(size_t nbytes)> raw_alloc;
    std::function<void(void* handle, size_t nbytes)> raw_free;
  };
  struct Options {
    size_t max_cached_bytes = SIZE_MAX;
    size_t max_per_class = SIZE_MAX;
    bool trace = false;
  };

  static constexpr size_t kSmallLimit = size_t{1} << 20;
  static constexpr size_t kSmallGranule = 512;
  static constexpr size_t kLargeGranule = size_t{2} << 20;

  // `name` prefixes errors and trace lines, e.g. "cuda:0".
  CachingAllocator(std::string name, Callbacks callbacks, Options options);
  // Gives the cached blocks back; blocks still allocated are left to the device's teardown.
  ~CachingAllocator();
  CachingAllocator(const CachingAllocator&) = delete;
  CachingAllocator& operator=(const CachingAllocator&) = delete;

  // A block of at least nbytes; null for 0 bytes. Throws OutOfMemoryError.
  void* allocate(size_t nbytes);
  // A block fresh from the device, whatever is cached or open: memory no earlier work has used
  // (a graph's inputs, which the host writes before each replay). Freed as any other block.
  void* allocate_fresh(size_t nbytes);
  // Returns a block from allocate() to the cache. Null is ignored.
  void deallocate(void* handle);
  // Gives every cached block back to the device.
  void empty_cache();
  MemoryStats stats() const;
  // Zeroes the peaks (to the current values) and the counters.
  void reset_stats();

  // Opens a new private pool (see above) and returns its id; one may be open at a time.
  int open_pool();
  // Allocations go to the shared cache again; the pool keeps its blocks.
  void close_pool();
  // Ends a closed pool: its free blocks go to the shared cache, its live ones when freed.
  void release_pool(int pool);

  // The class size a request rounds to.
  static size_t round_size(size_t nbytes);
  // Options from ST_<prefix>_POOL_TRACE, _POOL_MAX_BYTES and _POOL_MAX_PER_CLASS; a malformed value
  // throws ValueError naming the variable.
  static Options options_from_env(std::string_view prefix);

 private:
  struct FreeBlock {
    void* handle;
    size_t size;
  };
  using LruList = std::list<FreeBlock>;  // oldest first

  // allocate() when `reuse`, else allocate_fresh().
  void* allocate_from(size_t nbytes, bool reuse);
  void release_locked(LruList::iterator block, const char* why);
  void release_all_locked(const char* why);
  void enforce_caps_locked(size_t size);
  void update_peaks_locked();

  const std::string name_;
  const Callbacks callbacks_;
  const Options options_;

  mutable std::mutex mutex_;
  LruList lru_;
  std::unordered_map<size_t, std::deque<LruList::iterator>> free_by_size_;  // oldest first
  struct LiveBlock {
    size_t size;
    size_t requested;
    int pool;  // 0: the shared cache
  };
  std::unordered_map<void*, LiveBlock> live_;
  // Free blocks of each private pool by size; they count as cached but are never released.
  std::unordered_map<int, std::unordered_map<size_t, std::vector<void*>>> pools_;
  int open_pool_ = 0;
  int last_pool_ = 0;
  MemoryStats stats_;
};

}  // namespace st
