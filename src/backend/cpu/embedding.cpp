// Embedding lookup and its gradient. Indices are validated in a serial pass before any parallel
// loop, so that the IndexError is thrown outside OpenMP regions (throwing out of one is undefined).

#include <algorithm>
#include <cstring>
#include <numeric>
#include <type_traits>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/parallel.h"

namespace st::backend::cpu {
namespace {

template <typename Fn>
void dispatch_index(DType dtype, Fn&& fn) {
  if (dtype == DType::Int32)
    fn(int32_t{});
  else
    fn(int64_t{});
}

template <typename I>
void check_indices(const I* idx, int64_t n, int64_t rows) {
  for (int64_t i = 0; i < n; ++i)
    ST_CHECK(idx[i] >= 0 && idx[i] < rows, IndexError, "[embedding] index ",
             static_cast<int64_t>(idx[i]), " is out of range for a table of ", rows, " rows");
}

// The scatter-add is race free by construction: positions are grouped by index (a stable sort, so
// the order of addition is fixed and results are reproducible), and each group, i.e. each table
// row, belongs to one thread. Each row sums in compute_t before one write, so 16-bit tables do not
// round per term.
template <typename T, typename I>
void embedding_backward_typed(const Tensor& grad_weight, const Tensor& grad_out, const I* idx,
                              int64_t n) {
  using C = compute_t<T>;
  const int64_t dim = grad_weight.shape()[1];
  const T* go = grad_out.data<T>();
  T* gw = grad_weight.data<T>();

  std::vector<int64_t> order(n);
  std::iota(order.begin(), order.end(), int64_t{0});
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t a, int64_t b) { return idx[a] < idx[b]; });
  std::vector<int64_t> starts;
  for (int64_t i = 0; i < n; ++i)
    if (i == 0 || idx[order[i]] != idx[order[i - 1]]) starts.push_back(i);
  const int64_t groups = static_cast<int64_t>(starts.size());
  starts.push_back(n);

  const int64_t rows_per_group = n / std::max<int64_t>(1, groups);
  parallel_for(groups, dim * std::max<int64_t>(1, rows_per_group), [&](int64_t b, int64_t e) {
    std::vector<C> acc_row(dim);
    C* acc = acc_row.data();  // a raw pointer lets the compiler vectorize the loops below
    for (int64_t g = b; g < e; ++g) {
      T* row = gw + static_cast<int64_t>(idx[order[starts[g]]]) * dim;
      for (int64_t d = 0; d < dim; ++d) acc[d] = static_cast<C>(row[d]);
      for (int64_t k = starts[g]; k < starts[g + 1]; ++k) {
        const T* src = go + order[k] * dim;
        for (int64_t d = 0; d < dim; ++d) acc[d] += static_cast<C>(src[d]);
      }
      for (int64_t d = 0; d < dim; ++d) row[d] = T(acc[d]);
    }
  });
}

}  // namespace

void CpuBackend::embedding(const Tensor& out, const Tensor& weight, const Tensor& indices) {
  const int64_t n = indices.numel(), rows = weight.shape()[0], dim = weight.shape()[1];
  const size_t row_bytes = static_cast<size_t>(dim) * weight.itemsize();
  const auto* table = static_cast<const char*>(weight.data_ptr());
  auto* dst = static_cast<char*>(out.data_ptr());
  dispatch_index(indices.dtype(), [&](auto tag) {
    using I = decltype(tag);
    const I* idx = indices.data<I>();
    check_indices(idx, n, rows);
    if (row_bytes == 0) return;
    // A plain row copy: same dtype on both sides, so bytes suffice.
    parallel_for(n, dim, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i)
        std::memcpy(dst + i * row_bytes, table + static_cast<int64_t>(idx[i]) * row_bytes,
                    row_bytes);
    });
  });
}

void CpuBackend::embedding_backward(const Tensor& grad_weight, const Tensor& grad_out,
                                    const Tensor& indices) {
  const int64_t n = indices.numel(), rows = grad_weight.shape()[0];
  dispatch_index(indices.dtype(), [&](auto index_tag) {
    using I = decltype(index_tag);
    const I* idx = indices.data<I>();
    check_indices(idx, n, rows);
    dispatch_dtype(grad_weight.dtype(), [&](auto tag) {
      using T = decltype(tag);
      if constexpr (std::is_floating_point_v<compute_t<T>>)
        embedding_backward_typed<T>(grad_weight, grad_out, idx, n);
      else
        not_implemented("embedding_backward");
    });
  });
}

}  // namespace st::backend::cpu
