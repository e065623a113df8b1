// The CPU backend instance and its registration; memory, copies, fill and arange.

#include "backend/cpu/cpu_backend.h"

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <type_traits>

#include "backend/cpu/strided.h"

namespace st::backend::cpu {
namespace {

// 64 bytes: a cache line, and the widest (AVX-512) vector load.
constexpr size_t kAlignment = 64;

CpuBackend instance;

// Registers the backend when the library loads.
struct Registration {
  Registration() { register_backend(&instance); }
} registration;

template <typename To, typename From>
void convert_tensor(const Tensor& dst, const Tensor& src) {
  To* d = static_cast<To*>(dst.data_ptr());
  const From* s = static_cast<const From*>(src.data_ptr());
  const auto layout = StridedLayout<2>::of(dst, src);
  if (layout.contiguous()) {
    if constexpr (std::is_same_v<To, From>) {
      if (layout.numel) std::memcpy(d, s, layout.numel * sizeof(To));
    } else {
      parallel_for(layout.numel, 1, [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) d[i] = element_cast<To>(s[i]);
      });
    }
  } else {
    parallel_for_each_offset(layout, 1,
                             [&](const Offsets<2>& at) { d[at[0]] = element_cast<To>(s[at[1]]); });
  }
}

}  // namespace

void* CpuBackend::allocate(size_t nbytes, int /*device_index*/) {
  if (nbytes == 0) return nullptr;
  // aligned_alloc wants a multiple of the alignment; sizes next to SIZE_MAX cannot be rounded up.
  void* ptr = nbytes <= SIZE_MAX - kAlignment
                  ? std::aligned_alloc(kAlignment, (nbytes + kAlignment - 1) & ~(kAlignment - 1))
                  : nullptr;
  ST_CHECK(ptr, OutOfMemoryError, "[cpu] out of memory allocating ", nbytes, " bytes");
  return ptr;
}

void CpuBackend::deallocate(void* ptr, size_t /*nbytes*/, int /*device_index*/) { std::free(ptr); }

void CpuBackend::copy_from_host(const Tensor& dst, const void* src) {
  if (const size_t n = dst.nbytes()) std::memcpy(dst.data_ptr(), src, n);
}

void CpuBackend::copy_to_host(void* dst, const Tensor& src) {
  if (const size_t n = src.nbytes()) std::memcpy(dst, src.data_ptr(), n);
}

void CpuBackend::copy(const Tensor& dst, const Tensor& src) {
  dispatch_dtype(dst.dtype(), [&](auto to) {
    dispatch_dtype(src.dtype(),
                   [&](auto from) { convert_tensor<decltype(to), decltype(from)>(dst, src); });
  });
}

void CpuBackend::fill(const Tensor& dst, const Scalar& value) {
  dispatch_dtype(dst.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T v = value.to<T>();  // saturates a float that an integer type cannot hold
    T* d = static_cast<T*>(dst.data_ptr());
    const auto layout = StridedLayout<1>::of(dst);
    if (layout.contiguous()) {
      parallel_for(layout.numel, 1,
                   [&](int64_t begin, int64_t end) { std::fill(d + begin, d + end, v); });
    } else {
      parallel_for_each_offset(layout, 1, [&](const Offsets<1>& at) { d[at[0]] = v; });
    }
  });
}

void CpuBackend::arange(const Tensor& dst, double start, double step) {
  dispatch_dtype(dst.dtype(), [&](auto tag) {
    using T = decltype(tag);
    T* d = static_cast<T*>(dst.data_ptr());
    parallel_for(dst.numel(), 1, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i)
        d[i] = element_cast<T>(start + static_cast<double>(i) * step);
    });
  });
}

}  // namespace st::backend::cpu
