// The caching allocator of src/core against a fake device: size classes, reuse, the LRU and
// per-class caps, statistics, out-of-memory recovery, tracing and the environment options. No GPU
// is needed; the GPU backends run the same component under their own suites.

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/caching_allocator.h"
#include "spiraltorch/error.h"

namespace {

using st::CachingAllocator;

constexpr size_t KiB = 1024, MiB = 1024 * 1024;

// A device with a fixed capacity that hands out opaque handles and records what it is given back.
struct FakeDevice {
  size_t capacity = SIZE_MAX;
  size_t used = 0;
  uintptr_t next = 1;
  std::map<void*, size_t> blocks;
  std::vector<void*> released;  // in release order
  std::mutex mutex;

  CachingAllocator::Callbacks callbacks() {
    return {[this](size_t n) -> void* {
              std::lock_guard lock(mutex);
              if (n > capacity - used) return nullptr;
              used += n;
              void* h = reinterpret_cast<void*>(next++ * 4096);
              blocks[h] = n;
              return h;
            },
            [this](void* h, size_t n) {
              std::lock_guard lock(mutex);
              EXPECT_EQ(blocks.at(h), n) << "released with a size other than allocated";
              used -= n;
              blocks.erase(h);
              released.push_back(h);
            }};
  }
};

CachingAllocator::Options options(size_t max_cached = SIZE_MAX, size_t per_class = SIZE_MAX) {
  CachingAllocator::Options o;
  o.max_cached_bytes = max_cached;
  o.max_per_class = per_class;
  return o;
}

TEST(CachingAllocator, SizeClasses) {
  EXPECT_EQ(CachingAllocator::round_size(1), 512u);
  EXPECT_EQ(CachingAllocator::round_size(512), 512u);
  EXPECT_EQ(CachingAllocator::round_size(513), 1024u);
  EXPECT_EQ(CachingAllocator::round_size(1 * MiB), 1 * MiB);
  EXPECT_EQ(CachingAllocator::round_size(1 * MiB + 1), 2 * MiB);
  EXPECT_EQ(CachingAllocator::round_size(3 * MiB), 4 * MiB);
  EXPECT_EQ(CachingAllocator::round_size(4 * MiB), 4 * MiB);
}

TEST(CachingAllocator, ReusesFreedBlocksOfTheSameClass) {
  FakeDevice device;
  CachingAllocator pool("fake", device.callbacks(), options());
  EXPECT_EQ(pool.allocate(0), nullptr);
  void* a = pool.allocate(1000);
  EXPECT_EQ(device.blocks.at(a), 1024u);
  pool.deallocate(a);
  EXPECT_EQ(device.blocks.size(), 1u) << "a freed block stays cached";
  EXPECT_EQ(pool.allocate(600), a) << "600 B rounds to the same 1024 B class";
  void* b = pool.allocate(2000);  // another class: from the device
  EXPECT_NE(b, a);
  const st::MemoryStats s = pool.stats();
  EXPECT_EQ(s.allocations, 3u);
  EXPECT_EQ(s.cache_hits, 1u);
  EXPECT_EQ(s.device_allocations, 2u);
  EXPECT_EQ(s.allocated_bytes, 1024u + 2048u);
  EXPECT_EQ(s.requested_bytes, 600u + 2000u);
  EXPECT_EQ(s.reserved_bytes, 1024u + 2048u);
  EXPECT_EQ(s.cached_bytes, 0u);
  pool.deallocate(a);
  pool.deallocate(b);
}

TEST(CachingAllocator, NewestFreedBlockIsReusedFirst) {
  FakeDevice device;
  CachingAllocator pool("fake", device.callbacks(), options());
  void* a = pool.allocate(4 * KiB);
  void* b = pool.allocate(4 * KiB);
  pool.deallocate(a);
  pool.deallocate(b);
  EXPECT_EQ(pool.allocate(4 * KiB), b);
  EXPECT_EQ(pool.allocate(4 * KiB), a);
}

TEST(CachingAllocator, StatisticsAndPeaks) {
  FakeDevice device;
  CachingAllocator pool("fake", device.callbacks(), options());
  void* a = pool.allocate(3 * MiB);  // 4 MiB class
  void* b = pool.allocate(100);      // 512 B class
  pool.deallocate(a);
  st::MemoryStats s = pool.stats();
  EXPECT_EQ(s.allocated_bytes, 512u);
  EXPECT_EQ(s.cached_bytes, 4 * MiB);
  EXPECT_EQ(s.reserved_bytes, 4 * MiB + 512);
  EXPECT_EQ(s.peak_allocated_bytes, 4 * MiB + 512);
  EXPECT_EQ(s.peak_reserved_bytes, 4 * MiB + 512);
  EXPECT_EQ(s.frees, 1u);
  pool.empty_cache();
  s = pool.stats();
  EXPECT_EQ(s.reserved_bytes, 512u);
  EXPECT_EQ(s.cached_bytes, 0u);
  EXPECT_EQ(s.device_frees, 1u);
  EXPECT_EQ(device.used, 512u);
  pool.reset_stats();
  s = pool.stats();
  EXPECT_EQ(s.peak_allocated_bytes, 512u);
  EXPECT_EQ(s.allocations, 0u);
  pool.deallocate(b);
}

TEST(CachingAllocator, LeastRecentlyFreedGoBackAboveTheByteCap) {
  FakeDevice device;
  CachingAllocator pool("fake", device.callbacks(), options(/*max_cached=*/5 * KiB));
  void* a = pool.allocate(2 * KiB);
  void* b = pool.allocate(1 * KiB);
  void* c = pool.allocate(3 * KiB);
  pool.deallocate(a);
  pool.deallocate(b);
  EXPECT_TRUE(device.released.empty()) << "3 KiB cached is under the cap";
  pool.deallocate(c);  // 6 KiB cached: the oldest, a, goes back
  ASSERT_EQ(device.released.size(), 1u);
  EXPECT_EQ(device.released[0], a);
  EXPECT_EQ(pool.stats().cached_bytes, 4 * KiB);
  EXPECT_EQ(pool.allocate(1 * KiB), b) << "the blocks still cached are reused";
}

TEST(CachingAllocator, PerClassCap) {
  FakeDevice device;
  CachingAllocator pool("fake", device.callbacks(), options(SIZE_MAX, /*per_class=*/2));
  std::vector<void*> blocks;
  for (int i = 0; i < 4; ++i) blocks.push_back(pool.allocate(512));
  void* other = pool.allocate(8 * KiB);
  for (void* p : blocks) pool.deallocate(p);
  pool.deallocate(other);
  // Two of the four 512 B blocks stay, the first two freed went back; the other class is untouched.
  ASSERT_EQ(device.released.size(), 2u);
  EXPECT_EQ(device.released[0], blocks[0]);
  EXPECT_EQ(device.released[1], blocks[1]);
  EXPECT_EQ(pool.stats().cached_bytes, 2 * 512u + 8 * KiB);
}

TEST(CachingAllocator, OutOfMemoryReleasesTheCacheAndRetries) {
  FakeDevice device;
  device.capacity = 10 * MiB;
  CachingAllocator pool("fake:0", device.callbacks(), options());
  void* a = pool.allocate(4 * MiB);
  void* b = pool.allocate(4 * MiB);
  pool.deallocate(a);
  // 6 MiB does not fit beside the two 4 MiB blocks; releasing the cached one makes room.
  void* c = pool.allocate(5 * MiB);
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(pool.stats().oom_retries, 1u);
  EXPECT_EQ(device.released.size(), 1u);
  // 8 MiB cannot fit even with an empty cache: a clear error, with the sizes.
  try {
    pool.allocate(8 * MiB - 100);
    ADD_FAILURE() << "expected OutOfMemoryError";
  } catch (const st::OutOfMemoryError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("[fake:0]"), std::string::npos) << what;
    EXPECT_NE(what.find(std::to_string(8 * MiB - 100)), std::string::npos) << what;
    EXPECT_NE(what.find(std::to_string(8 * MiB)), std::string::npos) << what;
  }
  // Still usable afterwards.
  pool.deallocate(c);
  void* d = pool.allocate(1 * MiB);
  EXPECT_NE(d, nullptr);
  pool.deallocate(d);
  pool.deallocate(b);
}

TEST(CachingAllocator, PrivatePoolKeepsItsBlocks) {
  FakeDevice device;
  CachingAllocator pool("fake", device.callbacks(), options(/*max_cached=*/0));
  void* shared = pool.allocate(1000);
  pool.deallocate(pool.allocate(4000));  // over the 0-byte cap: back to the device at once
  EXPECT_EQ(device.blocks.size(), 1u);

  const int graph = pool.open_pool();
  EXPECT_THROW(pool.open_pool(), st::Error) << "one pool open at a time";
  pool.deallocate(shared);  // a block of the shared cache freed while the pool is open
  EXPECT_EQ(device.blocks.size(), 1u) << "nothing goes back to the device while a pool is open";
  void* reused = pool.allocate(700);
  EXPECT_EQ(reused, shared) << "the open pool may take a free block of the shared cache";
  void* fresh = pool.allocate(1000);
  EXPECT_NE(fresh, shared);
  pool.deallocate(fresh);
  EXPECT_EQ(pool.allocate(900), fresh) << "the pool's own free blocks come first";
  pool.deallocate(fresh);
  pool.close_pool();

  // Outside the capture the pool's free blocks serve no one else, and survive empty_cache.
  void* outside = pool.allocate(1000);
  EXPECT_NE(outside, fresh);
  pool.deallocate(outside);  // shared, over the cap: released
  pool.empty_cache();
  EXPECT_EQ(device.blocks.count(fresh), 1u);
  EXPECT_EQ(device.blocks.count(outside), 0u);
  const st::MemoryStats s = pool.stats();
  EXPECT_EQ(s.cached_bytes, 1024u) << "the pool's free block counts as cached";
  EXPECT_EQ(s.allocated_bytes, 1024u) << "`reused` is still live";

  // Released: the free block joins the shared cache (and the cap), the live one when freed.
  pool.release_pool(graph);
  EXPECT_EQ(device.blocks.count(fresh), 0u);
  pool.deallocate(reused);
  EXPECT_EQ(device.blocks.count(reused), 0u);
  EXPECT_EQ(pool.stats().reserved_bytes, 0u);
}

TEST(CachingAllocator, OpenPoolDoesNotRetryByReleasing) {
  FakeDevice device;
  device.capacity = 2 * MiB;
  CachingAllocator pool("fake", device.callbacks(), options());
  pool.deallocate(pool.allocate(2 * MiB));  // cached, filling the device
  pool.open_pool();
  try {
    pool.allocate(4 * MiB);
    FAIL() << "expected OutOfMemoryError";
  } catch (const st::OutOfMemoryError& e) {
    EXPECT_NE(std::string(e.what()).find("a graph capture is open"), std::string::npos) << e.what();
  }
  EXPECT_EQ(device.blocks.size(), 1u) << "the cache is kept while a pool is open";
  pool.close_pool();
}

TEST(CachingAllocator, FreeOfUnknownBlockIsAnError) {
  FakeDevice device;
  CachingAllocator pool("fake", device.callbacks(), options());
  void* a = pool.allocate(64);
  pool.deallocate(a);
  EXPECT_THROW(pool.deallocate(a), st::Error);
  EXPECT_THROW(pool.deallocate(reinterpret_cast<void*>(uintptr_t{12345})), st::Error);
  pool.deallocate(nullptr);  // ignored, as free(NULL)
}

TEST(CachingAllocator, DestructorReleasesTheCache) {
  FakeDevice device;
  {
    CachingAllocator pool("fake", device.callbacks(), options());
    pool.deallocate(pool.allocate(3 * MiB));
    pool.deallocate(pool.allocate(100));
    EXPECT_EQ(device.blocks.size(), 2u);
  }
  EXPECT_TRUE(device.blocks.empty());
  EXPECT_EQ(device.used, 0u);
}

TEST(CachingAllocator, TraceLogsEveryAllocationAndRelease) {
  FakeDevice device;
  CachingAllocator::Options o = options();
  o.trace = true;
  CachingAllocator pool("fake:1", device.callbacks(), o);
  ::testing::internal::CaptureStderr();
  void* a = pool.allocate(700);
  pool.deallocate(a);
  a = pool.allocate(700);
  pool.deallocate(a);
  pool.empty_cache();
  const std::string log = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(log.find("[fake:1 pool] alloc 700 B as 1024 B at"), std::string::npos) << log;
  EXPECT_NE(log.find("(from device)"), std::string::npos) << log;
  EXPECT_NE(log.find("(cached)"), std::string::npos) << log;
  EXPECT_NE(log.find("[fake:1 pool] free 1024 B"), std::string::npos) << log;
  EXPECT_NE(log.find("release 1024 B"), std::string::npos) << log;
  EXPECT_NE(log.find("(empty_cache)"), std::string::npos) << log;
  size_t lines = 0;
  for (char c : log) lines += c == '\n';
  EXPECT_EQ(lines, 5u) << log;
}

TEST(CachingAllocator, OptionsFromEnvironment) {
  ::setenv("ST_TESTDEV_POOL_MAX_BYTES", "64K", 1);
  ::setenv("ST_TESTDEV_POOL_MAX_PER_CLASS", "3", 1);
  ::setenv("ST_TESTDEV_POOL_TRACE", "1", 1);
  CachingAllocator::Options o = CachingAllocator::options_from_env("TESTDEV");
  EXPECT_EQ(o.max_cached_bytes, 64 * KiB);
  EXPECT_EQ(o.max_per_class, 3u);
  EXPECT_TRUE(o.trace);
  ::setenv("ST_TESTDEV_POOL_MAX_BYTES", "2G", 1);
  ::setenv("ST_TESTDEV_POOL_TRACE", "0", 1);
  o = CachingAllocator::options_from_env("TESTDEV");
  EXPECT_EQ(o.max_cached_bytes, size_t{2} << 30);
  EXPECT_FALSE(o.trace);
  ::setenv("ST_TESTDEV_POOL_MAX_BYTES", "12 MB", 1);
  try {
    CachingAllocator::options_from_env("TESTDEV");
    ADD_FAILURE() << "expected ValueError";
  } catch (const st::ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("ST_TESTDEV_POOL_MAX_BYTES"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("12 MB"), std::string::npos);
  }
  ::unsetenv("ST_TESTDEV_POOL_MAX_BYTES");
  ::unsetenv("ST_TESTDEV_POOL_MAX_PER_CLASS");
  ::unsetenv("ST_TESTDEV_POOL_TRACE");
  o = CachingAllocator::options_from_env("TESTDEV");
  EXPECT_EQ(o.max_cached_bytes, SIZE_MAX);
  EXPECT_EQ(o.max_per_class, SIZE_MAX);
  EXPECT_FALSE(o.trace);
}

TEST(CachingAllocator, ConcurrentUseKeepsTheBooks) {
  FakeDevice device;
  CachingAllocator pool("fake", device.callbacks(), options(256 * KiB));
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&pool, t] {
      std::vector<void*> held;
      for (int i = 0; i < 2000; ++i) {
        held.push_back(pool.allocate(static_cast<size_t>((i * 7 + t) % 50 + 1) * 512));
        if (held.size() > 8) {
          pool.deallocate(held.front());
          held.erase(held.begin());
        }
      }
      for (void* p : held) pool.deallocate(p);
    });
  }
  for (auto& th : threads) th.join();
  const st::MemoryStats s = pool.stats();
  EXPECT_EQ(s.allocated_bytes, 0u);
  EXPECT_EQ(s.allocations, 8000u);
  EXPECT_EQ(s.frees, 8000u);
  EXPECT_EQ(s.reserved_bytes, s.cached_bytes);
  EXPECT_LE(s.cached_bytes, 256 * KiB);
  EXPECT_EQ(device.used, s.reserved_bytes);
  EXPECT_EQ(s.device_allocations - s.device_frees, device.blocks.size());
}

}  // namespace
