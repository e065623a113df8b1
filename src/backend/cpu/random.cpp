// uniform and normal from Philox4x32-10 streams: element i of the output takes lane i % 4 of the
// block at counter offset + i / 4.

#include <cmath>
#include <numbers>
#include <type_traits>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/parallel.h"
#include "backend/philox.h"

namespace st::backend::cpu {
namespace {

// Calls draw(i, block) for each element i of an n-element tensor, block being the Philox output of
// its counter. Threads take whole counters, so each block is computed once.
template <typename Draw>
void for_each_draw(int64_t n, uint64_t seed, uint64_t offset, Draw draw) {
  parallel_for((n + 3) / 4, 16, [&](int64_t begin, int64_t end) {
    for (int64_t c = begin; c < end; ++c) {
      const Philox4x32 x = philox4x32_10(offset + static_cast<uint64_t>(c), seed);
      for (int64_t i = 4 * c; i < 4 * c + 4 && i < n; ++i) draw(i, x);
    }
  });
}

int significand_bits(DType dtype) {
  return dtype == DType::Float16 ? 11 : dtype == DType::BFloat16 ? 8 : 24;
}

}  // namespace

void CpuBackend::uniform(const Tensor& dst, double low, double high, uint64_t seed,
                         uint64_t offset) {
  dispatch_dtype(dst.dtype(), [&](auto tag) {
    using T = decltype(tag);
    using C = compute_t<T>;  // f64 for f64, f32 otherwise
    if constexpr (!std::is_floating_point_v<C>) {
      not_implemented(detail::concat("uniform for ", dst.dtype()));
    } else {
      T* d = static_cast<T*>(dst.data_ptr());
      const C lo = static_cast<C>(low), span = static_cast<C>(high) - lo;
      const int bits = significand_bits(dst.dtype());
      for_each_draw(dst.numel(), seed, offset, [&](int64_t i, const Philox4x32& x) {
        d[i] = T(lo + span * static_cast<C>(philox_unit(x.lane[i % 4], bits)));
      });
    }
  });
}

void CpuBackend::normal(const Tensor& dst, double mean, double stddev, uint64_t seed,
                        uint64_t offset) {
  dispatch_dtype(dst.dtype(), [&](auto tag) {
    using T = decltype(tag);
    using C = compute_t<T>;
    if constexpr (!std::is_floating_point_v<C>) {
      not_implemented(detail::concat("normal for ", dst.dtype()));
    } else {
      T* d = static_cast<T*>(dst.data_ptr());
      const C mu = static_cast<C>(mean), sigma = static_cast<C>(stddev);
      // Box-Muller on lanes (0, 1) and (2, 3): the pair's first lane gives the radius (1 - u is in
      // (0, 1], so its log is finite), the second the angle; even lanes take the cosine.
      for_each_draw(dst.numel(), seed, offset, [&](int64_t i, const Philox4x32& x) {
        const int64_t lane = i % 4;
        const C u_radius = philox_unit(x.lane[lane & ~int64_t{1}]);
        const C u_angle = philox_unit(x.lane[lane | 1]);
        const C radius = std::sqrt(C(-2) * std::log(1 - u_radius));
        const C angle = 2 * std::numbers::pi_v<C> * u_angle;
        d[i] = T(mu + sigma * (radius * (lane % 2 == 0 ? std::cos(angle) : std::sin(angle))));
      });
    }
  });
}

void CpuBackend::dropout(const Tensor& out, const Tensor& mask, const Tensor& in, double p,
                         uint64_t seed, uint64_t offset) {
  dispatch_dtype(in.dtype(), [&](auto tag) {
    using T = decltype(tag);
    using C = compute_t<T>;
    if constexpr (!std::is_floating_point_v<C>) {
      not_implemented(detail::concat("dropout for ", in.dtype()));
    } else {
      const T* x = in.data<T>();
      T* y = out.data<T>();
      T* keep = mask.data<T>();
      const C threshold = static_cast<C>(p), scale = static_cast<C>(1 / (1 - p));
      const int bits = significand_bits(in.dtype());
      for_each_draw(in.numel(), seed, offset, [&](int64_t i, const Philox4x32& r) {
        const C m = static_cast<C>(philox_unit(r.lane[i % 4], bits)) >= threshold ? scale : C(0);
        keep[i] = T(m);
        y[i] = T(static_cast<C>(x[i]) * m);
      });
    }
  });
}

}  // namespace st::backend::cpu
