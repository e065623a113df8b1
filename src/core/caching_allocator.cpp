#include "core/caching_allocator.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <iostream>
#include <string>

#include "spiraltorch/error.h"

namespace st {

namespace {

// "123", "64K", "512M", "2G" (powers of 1024) into out; false on anything else.
bool parse_bytes(std::string_view text, size_t& out) {
  if (text.empty()) return false;
  size_t multiplier = 1;
  switch (std::toupper(static_cast<unsigned char>(text.back()))) {
    case 'K': multiplier = size_t{1} << 10; break;
    case 'M': multiplier = size_t{1} << 20; break;
    case 'G': multiplier = size_t{1} << 30; break;
    default: break;
  }
  if (multiplier != 1) text.remove_suffix(1);
  if (text.empty() || text.size() > 19) return false;
  size_t value = 0;
  for (char c : text) {
    if (!std::isdigit(static_cast<unsigned char>(c))) return false;
    value = value * 10 + static_cast<size_t>(c - '0');
  }
  if (value > SIZE_MAX / multiplier) return false;
  out = value * multiplier;
  return true;
}

size_t env_size(const std::string& name, size_t fallback) {
  const char* value = std::getenv(name.c_str());
  if (!value || !*value) return fallback;
  size_t parsed = 0;
  ST_CHECK(parse_bytes(value, parsed), ValueError, "[", name,
           "] expected a number, optionally with ", "a K, M or G suffix, got '", value, "'");
  return parsed;
}

}  // namespace

CachingAllocator::CachingAllocator(std::string name, Callbacks callbacks, Options options)
    : name_(std::move(name)), callbacks_(std::move(callbacks)), options_(options) {}

CachingAllocator::~CachingAllocator() {
  std::lock_guard lock(mutex_);
  release_all_locked("teardown");
}

size_t CachingAllocator::round_size(size_t nbytes) {
  const size_t granule = nbytes <= kSmallLimit ? kSmallGranule : kLargeGranule;
  if (nbytes > SIZE_MAX - granule) return nbytes;  // cannot round; the device will refuse it
  return (nbytes + granule - 1) / granule * granule;
}

CachingAllocator::Options CachingAllocator::options_from_env(std::string_view prefix) {
  const std::string base = "ST_" + std::string(prefix) + "_POOL_";
  Options options;
  options.max_cached_bytes = env_size(base + "MAX_BYTES", SIZE_MAX);
  options.max_per_class = env_size(base + "MAX_PER_CLASS", SIZE_MAX);
  const char* trace = std::getenv((base + "TRACE").c_str());
  options.trace = trace && *trace && std::string_view(trace) != "0";
  return options;
}

void* CachingAllocator::allocate(size_t nbytes) { return allocate_from(nbytes, true); }

void* CachingAllocator::allocate_fresh(size_t nbytes) { return allocate_from(nbytes, false); }

void* CachingAllocator::allocate_from(size_t nbytes, bool reuse) {
  if (nbytes == 0) return nullptr;
  const size_t size = round_size(nbytes);
  std::lock_guard lock(mutex_);
  void* handle = nullptr;
  const char* source = "(from device)";
  // A fresh block belongs to no pool: it is not the open pool's to recycle.
  const int pool = reuse ? open_pool_ : 0;
  if (pool != 0) {
    std::vector<void*>& own = pools_.at(pool)[size];
    if (!own.empty()) {
      handle = own.back();
      own.pop_back();
      source = "(cached in the pool)";
    }
  }
  if (!handle && reuse) {
    if (auto it = free_by_size_.find(size); it != free_by_size_.end() && !it->second.empty()) {
      const LruList::iterator block = it->second.back();  // the newest: its memory is warm
      it->second.pop_back();
      handle = block->handle;
      lru_.erase(block);
      source = "(cached)";
    }
  }
  if (handle) {
    stats_.cached_bytes -= size;
    ++stats_.cache_hits;
  } else {
    handle = callbacks_.raw_alloc(size);
    // The cache may hold what the device lacks: give all of it back and try once more (not while
    // a pool is open: a capture may not free device memory).
    if (!handle && stats_.cached_bytes > 0 && open_pool_ == 0) {
      ++stats_.oom_retries;
      release_all_locked("out of memory");
      handle = callbacks_.raw_alloc(size);
    }
    ST_CHECK(handle, OutOfMemoryError, "[", name_, "] out of memory allocating ", nbytes,
             " bytes (", size, " after rounding); ", stats_.allocated_bytes,
             " bytes are allocated in ", live_.size(), " blocks",
             open_pool_ == 0 ? " and the cache was released" : " (a graph capture is open)");
    ++stats_.device_allocations;
    stats_.reserved_bytes += size;
  }
  live_.emplace(handle, LiveBlock{size, nbytes, pool});
  stats_.allocated_bytes += size;
  stats_.requested_bytes += nbytes;
  ++stats_.allocations;
  update_peaks_locked();
  if (options_.trace) {
    std::cerr << "[" << name_ << " pool] alloc " << nbytes << " B as " << size << " B at " << handle
              << " " << source << "; allocated " << stats_.allocated_bytes << " B, reserved "
              << stats_.reserved_bytes << " B\n";
  }
  return handle;
}

void CachingAllocator::deallocate(void* handle) {
  if (!handle) return;
  std::lock_guard lock(mutex_);
  const auto it = live_.find(handle);
  ST_CHECK(it != live_.end(), Error, "[", name_, "] free of ", handle,
           ", which this allocator did not hand out or was already freed");
  const LiveBlock block = it->second;
  live_.erase(it);
  stats_.allocated_bytes -= block.size;
  stats_.requested_bytes -= block.requested;
  stats_.cached_bytes += block.size;
  ++stats_.frees;
  const auto pool = pools_.find(block.pool);
  if (pool != pools_.end()) {
    pool->second[block.size].push_back(handle);
  } else {
    lru_.push_back({handle, block.size});
    free_by_size_[block.size].push_back(std::prev(lru_.end()));
  }
  if (options_.trace) {
    std::cerr << "[" << name_ << " pool] free " << block.size << " B at " << handle
              << (pool != pools_.end() ? " (cached in its pool)" : " (cached)") << "; allocated "
              << stats_.allocated_bytes << " B, cached " << stats_.cached_bytes << " B\n";
  }
  if (pool == pools_.end()) enforce_caps_locked(block.size);
}

int CachingAllocator::open_pool() {
  std::lock_guard lock(mutex_);
  ST_CHECK(open_pool_ == 0, Error, "[", name_, "] a private pool is already open (", open_pool_,
           "); close it first");
  open_pool_ = ++last_pool_;
  pools_[open_pool_];
  return open_pool_;
}

void CachingAllocator::close_pool() {
  std::lock_guard lock(mutex_);
  open_pool_ = 0;
}

void CachingAllocator::release_pool(int pool) {
  std::lock_guard lock(mutex_);
  ST_CHECK(pool != open_pool_, Error, "[", name_, "] pool ", pool, " is still open");
  const auto it = pools_.find(pool);
  if (it == pools_.end()) return;
  for (auto& [size, handles] : it->second) {
    for (void* handle : handles) {
      lru_.push_back({handle, size});
      free_by_size_[size].push_back(std::prev(lru_.end()));
    }
    enforce_caps_locked(size);  // as for any block freed into the shared cache
  }
  pools_.erase(it);
}

void CachingAllocator::enforce_caps_locked(size_t size) {
  if (open_pool_ != 0) return;  // a capture may not free device memory
  auto& same_size = free_by_size_[size];
  while (same_size.size() > options_.max_per_class)
    release_locked(same_size.front(), "over the per-class cap");
  while (stats_.cached_bytes > options_.max_cached_bytes && !lru_.empty())
    release_locked(lru_.begin(), "over the cache cap");
}

void CachingAllocator::release_locked(LruList::iterator block, const char* why) {
  // The oldest block of a class is at the front of the class's list too: both are in free order.
  auto& same_size = free_by_size_[block->size];
  ST_ASSERT(!same_size.empty() && same_size.front() == block);
  same_size.pop_front();
  const FreeBlock freed = *block;
  lru_.erase(block);
  stats_.cached_bytes -= freed.size;
  stats_.reserved_bytes -= freed.size;
  ++stats_.device_frees;
  if (options_.trace) {
    std::cerr << "[" << name_ << " pool] release " << freed.size << " B at " << freed.handle
              << " to the device (" << why << "); reserved " << stats_.reserved_bytes << " B\n";
  }
  callbacks_.raw_free(freed.handle, freed.size);
}

void CachingAllocator::release_all_locked(const char* why) {
  while (!lru_.empty()) release_locked(lru_.begin(), why);
  free_by_size_.clear();
}

void CachingAllocator::empty_cache() {
  std::lock_guard lock(mutex_);
  release_all_locked("empty_cache");
}

MemoryStats CachingAllocator::stats() const {
  std::lock_guard lock(mutex_);
  return stats_;
}

void CachingAllocator::reset_stats() {
  std::lock_guard lock(mutex_);
  MemoryStats fresh;
  fresh.allocated_bytes = stats_.allocated_bytes;
  fresh.requested_bytes = stats_.requested_bytes;
  fresh.reserved_bytes = stats_.reserved_bytes;
  fresh.cached_bytes = stats_.cached_bytes;
  stats_ = fresh;
  update_peaks_locked();
}

void CachingAllocator::update_peaks_locked() {
  stats_.peak_allocated_bytes = std::max(stats_.peak_allocated_bytes, stats_.allocated_bytes);
  stats_.peak_reserved_bytes = std::max(stats_.peak_reserved_bytes, stats_.reserved_bytes);
}

}  // namespace st
