// Joining and splitting: cat, stack, split, chunk.

#include "autograd/derivatives.h"
#include "ops/op_utils.h"

namespace st {

Tensor cat(const std::vector<Tensor>& tensors, int64_t dim) {
  ST_CHECK(!tensors.empty(), ValueError, "[cat] expected a non-empty list of tensors");
  const Tensor& first = tensors[0];
  ops::check_defined("cat", {&first});
  dim = wrap_dim(dim, first.dim(), "cat");
  ST_CHECK(first.dim() > 0, ShapeError, "[cat] zero-dim tensors cannot be concatenated; use stack");
  DType dtype = first.dtype();
  Shape shape = first.shape();
  shape[dim] = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const Tensor& t = tensors[i];
    ops::check_defined("cat", {&t});
    ops::check_same_device("cat", {&first, &t});
    ST_CHECK(t.dim() == first.dim(), ShapeError, "[cat] tensor ", i, " has shape ", t.shape(),
             " but tensor 0 has shape ", first.shape(), "; expected the same number of dims");
    for (int64_t d = 0; d < t.dim(); ++d)
      ST_CHECK(d == dim || t.shape()[d] == first.shape()[d], ShapeError, "[cat] tensor ", i,
               " has shape ", t.shape(), " but tensor 0 has shape ", first.shape(),
               "; sizes must match except in dim ", dim);
    shape[dim] += t.shape()[dim];
    dtype = promote_types(dtype, t.dtype());
  }
  Tensor out = ops::new_tensor(shape, dtype, first.device());
  std::vector<Tensor> inputs;
  int64_t offset = 0;
  for (const Tensor& t : tensors) {
    const int64_t size = t.shape()[dim];
    if (t.numel() > 0) {
      Shape strides = out.strides();
      Shape window_shape = out.shape();
      window_shape[dim] = size;
      const Tensor window = ops::raw_view(out, window_shape, strides, offset * strides[dim]);
      ops::backend_of(out).copy(window, t);
    }
    offset += size;
    inputs.push_back(t.dtype() == dtype ? t : t.to(dtype));
  }
  autograd::record_cat(inputs, out, dim);
  return out;
}

Tensor stack(const std::vector<Tensor>& tensors, int64_t dim) {
  ST_CHECK(!tensors.empty(), ValueError, "[stack] expected a non-empty list of tensors");
  ops::check_defined("stack", {&tensors[0]});
  dim = wrap_dim(dim, tensors[0].dim() + 1, "stack");
  std::vector<Tensor> expanded;
  for (size_t i = 0; i < tensors.size(); ++i) {
    ops::check_defined("stack", {&tensors[i]});
    ST_CHECK(tensors[i].shape() == tensors[0].shape(), ShapeError,
             "[stack] expected tensors of one shape, got ", tensors[0].shape(), " and ",
             tensors[i].shape(), " (tensor ", i, ")");
    expanded.push_back(tensors[i].unsqueeze(dim));
  }
  return cat(expanded, dim);
}

std::vector<Tensor> split(const Tensor& x, const Shape& sizes, int64_t dim) {
  ops::check_defined("split", {&x});
  ST_CHECK(x.dim() > 0, ShapeError, "[split] cannot split a 0-dim tensor");
  dim = wrap_dim(dim, x.dim(), "split");
  int64_t total = 0;
  for (int64_t s : sizes) {
    ST_CHECK(s >= 0, ValueError, "[split] sizes must be non-negative, got ", sizes);
    total += s;
  }
  ST_CHECK(total == x.shape()[dim], ShapeError, "[split] sizes ", sizes, " add up to ", total,
           " but dim ", dim, " of shape ", x.shape(), " has size ", x.shape()[dim]);
  std::vector<Tensor> pieces;
  int64_t offset = 0;
  for (int64_t s : sizes) {
    Shape shape = x.shape();
    shape[dim] = s;
    pieces.push_back(ops::view_of(x, shape, x.strides(), x.offset() + offset * x.strides()[dim]));
    offset += s;
  }
  autograd::record_split(x, pieces, dim);
  return pieces;
}

std::vector<Tensor> split(const Tensor& x, int64_t split_size, int64_t dim) {
  ops::check_defined("split", {&x});
  ST_CHECK(split_size > 0, ValueError, "[split] split_size must be positive, got ", split_size);
  ST_CHECK(x.dim() > 0, ShapeError, "[split] cannot split a 0-dim tensor");
  const int64_t size = x.shape()[wrap_dim(dim, x.dim(), "split")];
  Shape sizes;
  for (int64_t at = 0; at < size; at += split_size)
    sizes.push_back(std::min(split_size, size - at));
  if (sizes.empty()) sizes.push_back(0);
  return split(x, sizes, dim);
}

std::vector<Tensor> chunk(const Tensor& x, int64_t chunks, int64_t dim) {
  ops::check_defined("chunk", {&x});
  ST_CHECK(chunks > 0, ValueError, "[chunk] chunks must be positive, got ", chunks);
  ST_CHECK(x.dim() > 0, ShapeError, "[chunk] cannot chunk a 0-dim tensor");
  const int64_t size = x.shape()[wrap_dim(dim, x.dim(), "chunk")];
  return split(x, std::max<int64_t>((size + chunks - 1) / chunks, 1), dim);
}

}  // namespace st
