#pragma once
// OpenMP loops that run serially below a size threshold, where thread start-up costs more than it
// saves.

#include <omp.h>

#include <cstdint>

namespace st::backend::cpu {

// Marks a kernel's innermost loop function to be compiled twice, for x86-64-v3 (AVX2, FMA) and for
// the baseline, the loader picking one for the machine: the library itself targets the baseline.
// Keep it off functions that open OpenMP regions (the outlined region would not be cloned).
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && \
    !defined(__SANITIZE_ADDRESS__)
#define ST_CPU_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define ST_CPU_CLONES
#endif

// Work items (elements, or rows times row length) below which a loop stays on one thread. Waking
// the thread team costs microseconds, and far more when the cores are busy with other processes,
// so only loops that run well past that go parallel.
inline constexpr int64_t kParallelGrain = 1 << 16;

// Calls fn(begin, end) over [0, n) in contiguous chunks, one per thread when cost_per_item * n is
// large enough.
template <typename Fn>
void parallel_for(int64_t n, int64_t cost_per_item, Fn&& fn) {
  if (n <= 0) return;
  if (n * cost_per_item < kParallelGrain || n == 1) {
    fn(int64_t{0}, n);
    return;
  }
#pragma omp parallel
  {
    const int64_t threads = omp_get_num_threads();
    const int64_t id = omp_get_thread_num();
    const int64_t chunk = (n + threads - 1) / threads;
    const int64_t begin = id * chunk;
    const int64_t end = begin + chunk < n ? begin + chunk : n;
    if (begin < end) fn(begin, end);
  }
}

}  // namespace st::backend::cpu
