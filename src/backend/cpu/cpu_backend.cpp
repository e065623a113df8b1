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

// Edge of the square tiles a transposing copy walks: 32 x 32 elements keep the rows it reads and
// the rows it writes in L1 at once.
constexpr int64_t kTile = 32;

// dst[r, c] = src[r, c] over the two innermost dims of `layout`, where dst is unit-stride along c
// and src along r: done tile by tile, so that each cache line read or written is used whole.
template <typename To, typename From>
void copy_transposed(const StridedLayout<2>& layout, To* d, const From* s) {
  const int64_t nd = layout.ndim();
  const int64_t rows = layout.shape[nd - 2], cols = layout.shape[nd - 1];
  const int64_t d_row = layout.strides[0][nd - 2], s_col = layout.strides[1][nd - 1];
  const Shape outer_shape(layout.shape.begin(), layout.shape.end() - 2);
  const Shape d_outer(layout.strides[0].begin(), layout.strides[0].end() - 2);
  const Shape s_outer(layout.strides[1].begin(), layout.strides[1].end() - 2);
  const StridedLayout<2> outer(outer_shape, {&d_outer, &s_outer});
  const int64_t row_tiles = (rows + kTile - 1) / kTile;
  parallel_for(outer.numel * row_tiles, kTile * cols, [&](int64_t begin, int64_t end) {
    for (int64_t task = begin; task < end; ++task) {
      const int64_t r0 = (task % row_tiles) * kTile, r1 = std::min(rows, r0 + kTile);
      for_each_offset(outer, task / row_tiles, task / row_tiles + 1, [&](const Offsets<2>& base) {
        // The tile is read in src's order into a buffer, then written in dst's: reading it in
        // dst's order would touch kTile lines kTile times, and power-of-two strides map those
        // lines to one cache set, which then thrashes.
        To tile[kTile][kTile];
        for (int64_t c0 = 0; c0 < cols; c0 += kTile) {
          const int64_t c1 = std::min(cols, c0 + kTile);
          for (int64_t c = c0; c < c1; ++c) {
            const From* in = s + base[1] + c * s_col;
            for (int64_t r = r0; r < r1; ++r) tile[c - c0][r - r0] = element_cast<To>(in[r]);
          }
          for (int64_t r = r0; r < r1; ++r) {
            To* out = d + base[0] + r * d_row;
            for (int64_t c = c0; c < c1; ++c) out[c] = tile[c - c0][r - r0];
          }
        }
      });
    }
  });
}

template <typename To, typename From>
void convert_tensor(const Tensor& dst, const Tensor& src) {
  To* d = static_cast<To*>(dst.data_ptr());
  const From* s = static_cast<const From*>(src.data_ptr());
  const auto layout = StridedLayout<2>::of(dst, src);
  const int64_t nd = layout.ndim();
  if (layout.contiguous()) {
    if constexpr (std::is_same_v<To, From>) {
      if (layout.numel) std::memcpy(d, s, layout.numel * sizeof(To));
    } else {
      parallel_for(layout.numel, 1, [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) d[i] = element_cast<To>(s[i]);
      });
    }
  } else if (nd >= 2 && layout.strides[0][nd - 1] == 1 && layout.strides[1][nd - 2] == 1 &&
             layout.shape[nd - 1] >= kTile && layout.shape[nd - 2] >= kTile) {
    copy_transposed(layout, d, s);
  } else {
    // Runs along the innermost dim; a run that is dense on both sides is a plain loop.
    const int64_t d_step = layout.inner_stride(0), s_step = layout.inner_stride(1);
    parallel_for(layout.numel, 1, [&](int64_t begin, int64_t end) {
      for_each_run(layout, begin, end, [&](const Offsets<2>& at, int64_t run) {
        To* out = d + at[0];
        const From* in = s + at[1];
        if (d_step == 1 && s_step == 1) {
          for (int64_t j = 0; j < run; ++j) out[j] = element_cast<To>(in[j]);
        } else {
          for (int64_t j = 0; j < run; ++j) out[j * d_step] = element_cast<To>(in[j * s_step]);
        }
      });
    });
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
