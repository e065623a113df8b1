// Reductions: sum, mean, max and min over a set of dims in one pass (a workgroup per output), or
// in two when there are few outputs over many elements (partials per chunk, then a second pass
// over the partials); argmax and argmin along one dim.

#include <string>
#include <vector>

#include "backend/vulkan/elementwise.h"

namespace st::backend::vulkan {
namespace {

// Mirrors ArgReduceParams of shaders/arg_reduce.comp.
struct ArgReduceParams {
  uint64_t in_addr = 0;
  uint64_t values_addr = 0;
  uint64_t indices_addr = 0;
  uint32_t n_out = 0;
  uint32_t n = 0;
  uint32_t stride = 0;
  uint32_t is_max = 0;
  uint32_t kept_ndim = 0;
  uint32_t pad = 0;
  uint32_t kept_shape[kMaxDims] = {};
  uint32_t kept_strides[kMaxDims] = {};
};

// Dims of one side (kept or reduced) with size-1 dims dropped and mergeable neighbours merged.
struct Dims {
  std::vector<int64_t> shape, strides;
  void push(int64_t size, int64_t stride) {
    if (size == 1) return;
    if (!shape.empty() && strides.back() == stride * size) {
      shape.back() *= size;
      strides.back() = stride;
      return;
    }
    shape.push_back(size);
    strides.push_back(stride);
  }
  void store(std::string_view op, uint32_t& ndim, uint32_t* shape_out,
             uint32_t* strides_out) const {
    ST_CHECK(shape.size() <= static_cast<size_t>(kMaxDims), NotImplementedError, "[", op,
             "] more than ", kMaxDims, " unmergeable dims are not supported on the Vulkan backend");
    ndim = static_cast<uint32_t>(shape.size());
    for (size_t d = 0; d < shape.size(); ++d) {
      shape_out[d] = index32(shape[d], op);
      strides_out[d] = index32(strides[d], op);
    }
  }
};

// The dtype a first pass accumulates partials in.
DType accumulation_dtype(DType in) {
  if (in == DType::Float64) return DType::Float64;
  if (is_floating(in)) return DType::Float32;
  return DType::Int64;
}

}  // namespace

void VulkanBackend::reduce(ReduceOp op, const Tensor& out, const Tensor& in,
                           const std::vector<int64_t>& dims) {
  const int64_t n_out = out.numel();
  if (n_out == 0) return;
  Dims kept, reduced;
  for (int64_t d = 0, next = 0; d < in.dim(); ++d) {
    const bool is_reduced = next < static_cast<int64_t>(dims.size()) && dims[next] == d;
    next += is_reduced;
    (is_reduced ? reduced : kept).push(in.shape()[d], in.strides()[d]);
  }
  ReduceParams p;
  p.in_addr = address_of(in);
  p.out_addr = address_of(out);
  p.n_out = index32(n_out, "reduce");
  p.count = index32(in.numel() / n_out, "reduce");
  p.op = static_cast<uint32_t>(op);
  p.divisor = p.count;
  kept.store("reduce", p.kept_ndim, p.kept_shape, p.kept_strides);
  reduced.store("reduce", p.reduced_ndim, p.reduced_shape, p.reduced_strides);
  if (p.reduced_ndim == 0) {
    p.reduced_ndim = 1;  // nothing reduced (or an empty reduction): one element, or none
    p.reduced_shape[0] = 1;
    p.reduced_strides[0] = 0;
  }
  const std::string_view in_name = shader_dtype(in.dtype(), "reduce");
  const std::string_view out_name = shader_dtype(out.dtype(), "reduce");

  // Few outputs over many elements: one pass would leave most of the device idle.
  constexpr uint32_t kChunkElements = 8192;
  const uint32_t chunks =
      n_out >= 256 ? 1 : std::min<uint32_t>(1024, (p.count + kChunkElements - 1) / kChunkElements);
  if (chunks <= 1) {
    context().dispatch(detail::concat("reduce_", in_name, "_", out_name), &p, sizeof(p),
                       groups_for(n_out, 1));
    return;
  }
  const DType acc = accumulation_dtype(in.dtype());
  const size_t partial_bytes = static_cast<size_t>(n_out) * chunks * dtype_size(acc);
  // Stream-ordered scratch: freed right after recording, reused only by later commands.
  void* partials = context().allocate(partial_bytes);
  ReduceParams first = p;
  first.out_addr = reinterpret_cast<uint64_t>(partials);
  first.chunks = chunks;
  context().dispatch(detail::concat("reduce_", in_name, "_", shader_dtype(acc, "reduce")), &first,
                     sizeof(first), groups_for(n_out, 1), chunks);
  ReduceParams second = p;
  second.in_addr = first.out_addr;
  second.count = chunks;
  second.kept_ndim = 1;
  second.kept_shape[0] = p.n_out;
  second.kept_strides[0] = chunks;
  second.reduced_ndim = 1;
  second.reduced_shape[0] = chunks;
  second.reduced_strides[0] = 1;
  // A mean's second pass sums partial sums, then divides by the original count.
  context().dispatch(detail::concat("reduce_", shader_dtype(acc, "reduce"), "_", out_name), &second,
                     sizeof(second), groups_for(n_out, 1));
  context().deallocate(partials);
}

void VulkanBackend::arg_reduce(ArgReduceOp op, const Tensor& values, const Tensor& indices,
                               const Tensor& in, int64_t dim) {
  const int64_t n_out = values.numel();
  if (n_out == 0) return;
  Dims kept;
  for (int64_t d = 0; d < in.dim(); ++d)
    if (d != dim) kept.push(in.shape()[d], in.strides()[d]);
  ArgReduceParams p;
  p.in_addr = address_of(in);
  p.values_addr = address_of(values);
  p.indices_addr = address_of(indices);
  p.n_out = index32(n_out, "arg_reduce");
  p.n = index32(in.dim() == 0 ? 1 : in.shape()[dim], "arg_reduce");
  p.stride = in.dim() == 0 ? 0 : index32(in.strides()[dim], "arg_reduce");
  p.is_max = op == ArgReduceOp::Max;
  kept.store("arg_reduce", p.kept_ndim, p.kept_shape, p.kept_strides);
  context().dispatch(detail::concat("arg_reduce_", shader_dtype(in.dtype(), "arg_reduce")), &p,
                     sizeof(p), groups_for(n_out, 1));
}

}  // namespace st::backend::vulkan
