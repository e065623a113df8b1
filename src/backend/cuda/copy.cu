// copy (strided, converting dtypes), fill, arange and where.

#include <cstring>

#include "backend/cuda/map.cuh"

namespace st::backend::cuda {
namespace {

struct Identity {
  template <typename V>
  __device__ __forceinline__ V operator()(V v) const {
    return v;
  }
};

struct Select {
  template <typename V>
  __device__ __forceinline__ V operator()(int c, V a, V b) const {
    return c ? a : b;
  }
};

// A fill writes bit patterns, so one kernel per element size serves every dtype.
template <typename Bits>
__global__ void fill_kernel(Layout<1> layout, int64_t n, Bits value, Bits* out, bool dense) {
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step)
    out[dense ? i : layout.offsets(i)[0]] = value;
}

template <typename T>
__global__ void arange_kernel(int64_t n, double start, double step, T* out) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    out[i] = store<T>(start + static_cast<double>(i) * step);
}

template <typename Bits>
void fill_bits(const Tensor& dst, Bits bits) {
  const Layout<1> layout = make_layout<1>(dst.shape(), {&dst.strides()}, "fill");
  const int64_t n = dst.numel();
  const cudaStream_t stream = stream_of(dst);
  Bits zero{};
  if (is_dense(layout) && std::memcmp(&bits, &zero, sizeof(Bits)) == 0) {
    check(cudaMemsetAsync(dst.data_ptr(), 0, n * sizeof(Bits), stream), "cudaMemsetAsync");
    return;
  }
  fill_kernel<<<grid_for(n, kMapThreads, dst.device().index), kMapThreads, 0, stream>>>(
      layout, n, bits, static_cast<Bits*>(dst.data_ptr()), is_dense(layout));
  check_launch("fill");
}

// The host value of a Scalar as dtype T's bits, converted as the CPU backend converts it.
template <typename Bits, typename HostT>
Bits bits_of(const Scalar& value) {
  const HostT v = value.to<HostT>();
  Bits bits;
  static_assert(sizeof(Bits) == sizeof(HostT));
  std::memcpy(&bits, &v, sizeof(Bits));
  return bits;
}

}  // namespace

void CudaBackend::copy(const Tensor& dst, const Tensor& src) {
  const int64_t n = dst.numel();
  if (n == 0) return;
  if (dst.dtype() == src.dtype() && dst.is_contiguous() && src.is_contiguous()) {
    check(cudaMemcpyAsync(dst.data_ptr(), src.data_ptr(), dst.nbytes(), cudaMemcpyDeviceToDevice,
                          stream_of(dst)),
          "cudaMemcpyAsync on the device");
    return;
  }
  dispatch(dst.dtype(), [&](auto to) {
    dispatch(src.dtype(),
             [&](auto from) { map<decltype(to), decltype(from)>("copy", Identity{}, dst, src); });
  });
}

void CudaBackend::fill(const Tensor& dst, const Scalar& value) {
  if (dst.numel() == 0) return;
  switch (dst.dtype()) {
    case DType::Float32: fill_bits(dst, bits_of<uint32_t, float>(value)); break;
    case DType::Float64: fill_bits(dst, bits_of<uint64_t, double>(value)); break;
    case DType::Float16: fill_bits(dst, bits_of<uint16_t, Half>(value)); break;
    case DType::BFloat16: fill_bits(dst, bits_of<uint16_t, BFloat16>(value)); break;
    case DType::Int32: fill_bits(dst, bits_of<uint32_t, int32_t>(value)); break;
    case DType::Int64: fill_bits(dst, bits_of<uint64_t, int64_t>(value)); break;
    case DType::Bool: fill_bits(dst, bits_of<uint8_t, bool>(value)); break;
  }
}

void CudaBackend::arange(const Tensor& dst, double start, double step) {
  const int64_t n = dst.numel();
  if (n == 0) return;
  dispatch(dst.dtype(), [&](auto tag) {
    using T = decltype(tag);
    arange_kernel<<<grid_for(n, kMapThreads, dst.device().index), kMapThreads, 0, stream_of(dst)>>>(
        n, start, step, static_cast<T*>(dst.data_ptr()));
    check_launch("arange");
  });
}

void CudaBackend::where(const Tensor& out, const Tensor& cond, const Tensor& a, const Tensor& b) {
  dispatch(out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    map<T, bool, T, T>("where", Select{}, out, cond, a, b);
  });
}

}  // namespace st::backend::cuda
