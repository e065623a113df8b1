// uniform, normal and dropout from Philox4x32-10 streams (philox.h), drawing exactly the numbers
// the CPU backend draws: element i takes lane i % 4 of the block at counter offset + i / 4. Each
// thread computes whole counters, so each block of four is computed once. A kernel captured in a
// graph reads its seed and an offset shift from the graph's slot (graph_random_slot), so that each
// replay draws new numbers, the ones an uncaptured launch at that point would draw.

#include "backend/cuda/common.cuh"
#include "backend/philox.h"

namespace st::backend::cuda {
namespace {

constexpr int kThreads = 256;

int significand_bits(DType dtype) {
  return dtype == DType::Float16 ? 11 : dtype == DType::BFloat16 ? 8 : 24;
}

// A launch's key and first counter: as given, or under a graph as its replay sets them.
struct PhiloxKey {
  uint64_t seed, offset;
  const uint64_t* graph_slot;

  __device__ PhiloxKey resolved() const {
    return graph_slot ? PhiloxKey{graph_slot[0], offset + graph_slot[1], nullptr} : *this;
  }
};

PhiloxKey key_for(uint64_t seed, uint64_t offset, int device) {
  return {seed, offset, graph_random_slot(device)};
}

template <typename T, typename Draw>
__global__ void draw_kernel(int64_t n, PhiloxKey at, Draw draw, T* out) {
  const PhiloxKey key = at.resolved();
  const int64_t counters = (n + 3) / 4;
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t c = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; c < counters;
       c += step) {
    const Philox4x32 x = philox4x32_10(key.offset + static_cast<uint64_t>(c), key.seed);
#pragma unroll
    for (int lane = 0; lane < 4; ++lane) {
      const int64_t i = 4 * c + lane;
      if (i < n) out[i] = store<T>(draw(x, lane));
    }
  }
}

template <typename T, typename Draw>
void launch_draw(const Tensor& dst, uint64_t seed, uint64_t offset, Draw draw, const char* op) {
  const int64_t n = dst.numel();
  if (n == 0) return;
  draw_kernel<<<grid_for((n + 3) / 4, kThreads, dst.device().index), kThreads, 0, stream_of(dst)>>>(
      n, key_for(seed, offset, dst.device().index), draw, static_cast<T*>(dst.data_ptr()));
  check_launch(op);
}

template <typename T>
__global__ void dropout_kernel(int64_t n, PhiloxKey at, int bits, calc_t<T> threshold,
                               calc_t<T> scale, const T* in, T* out, T* mask) {
  using C = calc_t<T>;
  const PhiloxKey key = at.resolved();
  const int64_t counters = (n + 3) / 4;
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t c = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; c < counters;
       c += step) {
    const Philox4x32 r = philox4x32_10(key.offset + static_cast<uint64_t>(c), key.seed);
#pragma unroll
    for (int lane = 0; lane < 4; ++lane) {
      const int64_t i = 4 * c + lane;
      if (i >= n) break;
      const C m = static_cast<C>(philox_unit(r.lane[lane], bits)) >= threshold ? scale : C(0);
      mask[i] = store<T>(m);
      out[i] = store<T>(load(in[i]) * m);
    }
  }
}

template <typename T>
void uniform_typed(const Tensor& dst, double low, double high, uint64_t seed, uint64_t offset) {
  using C = calc_t<T>;
  const C lo = static_cast<C>(low), span = static_cast<C>(high) - lo;
  const int bits = significand_bits(dst.dtype());
  launch_draw<T>(
      dst, seed, offset,
      [=] __device__(const Philox4x32& x, int lane) {
        return lo + span * static_cast<C>(philox_unit(x.lane[lane], bits));
      },
      "uniform");
}

template <typename T>
void normal_typed(const Tensor& dst, double mean, double stddev, uint64_t seed, uint64_t offset) {
  using C = calc_t<T>;
  const C mu = static_cast<C>(mean), sigma = static_cast<C>(stddev);
  // Box-Muller on lanes (0, 1) and (2, 3), as the CPU backend: the pair's first lane gives the
  // radius (1 - u is in (0, 1], so its log is finite), the second the angle.
  launch_draw<T>(
      dst, seed, offset,
      [=] __device__(const Philox4x32& x, int lane) {
        const C u_radius = philox_unit(x.lane[lane & ~1]);
        const C u_angle = philox_unit(x.lane[lane | 1]);
        const C radius = ::sqrt(C(-2) * ::log(C(1) - u_radius));
        const C angle = C(2) * C(3.14159265358979323846) * u_angle;
        return mu + sigma * (radius * (lane % 2 == 0 ? ::cos(angle) : ::sin(angle)));
      },
      "normal");
}

}  // namespace

void CudaBackend::uniform(const Tensor& dst, double low, double high, uint64_t seed,
                          uint64_t offset) {
  dispatch_float(dst.dtype(), "uniform",
                 [&](auto tag) { uniform_typed<decltype(tag)>(dst, low, high, seed, offset); });
}

void CudaBackend::normal(const Tensor& dst, double mean, double stddev, uint64_t seed,
                         uint64_t offset) {
  dispatch_float(dst.dtype(), "normal",
                 [&](auto tag) { normal_typed<decltype(tag)>(dst, mean, stddev, seed, offset); });
}

void CudaBackend::dropout(const Tensor& out, const Tensor& mask, const Tensor& in, double p,
                          uint64_t seed, uint64_t offset) {
  dispatch_float(in.dtype(), "dropout", [&](auto tag) {
    using T = decltype(tag);
    using C = calc_t<T>;
    const int64_t n = in.numel();
    if (n == 0) return;
    dropout_kernel<T>
        <<<grid_for((n + 3) / 4, kThreads, in.device().index), kThreads, 0, stream_of(in)>>>(
            n, key_for(seed, offset, in.device().index), significand_bits(in.dtype()),
            static_cast<C>(p), static_cast<C>(1 / (1 - p)), static_cast<const T*>(in.data_ptr()),
            static_cast<T*>(out.data_ptr()), static_cast<T*>(mask.data_ptr()));
    check_launch("dropout");
  });
}

}  // namespace st::backend::cuda
