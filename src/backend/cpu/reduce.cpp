// Reductions on the CPU: sum, mean, max and min over a set of dims, and argmax/argmin along one dim.
//
// Accumulation: every floating input (f16, bf16, f32, f64) accumulates in double, so a sum stays accurate
// over any row length without pairwise bookkeeping; the loops are memory-bound, so the wider type costs
// little. Integer and bool inputs accumulate in int64. Max and min combine in the same type, which holds
// every input value exactly. NaN wins max and min, as in torch.
//
// Three loop shapes cover the cases: a walk along memory for each output (rows, and the general strided
// fallback), column tiles that add whole rows into a vector of outputs (reducing the outer dims of a
// contiguous tensor, e.g. bias gradients), and either of them split over the reduced elements with one
// partial result per chunk when there are fewer outputs than threads (e.g. reducing everything).

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/parallel.h"

namespace st::backend::cpu {
namespace {

// Outputs per column tile: a tile of double accumulators stays in L1 while whole rows stream past.
constexpr int64_t kTile = 256;

template <typename T>
using acc_t = std::conditional_t<std::is_floating_point_v<compute_t<T>>, double, int64_t>;

template <typename A, typename T>
A load(T v) {
  return static_cast<A>(static_cast<compute_t<T>>(v));
}

template <typename A>
bool is_nan(A v) {
  if constexpr (std::is_floating_point_v<A>) return std::isnan(v);
  else return false;
}

struct SumOp {
  template <typename A> static A init() { return A(0); }
  template <typename A> static A combine(A acc, A v) { return acc + v; }
};
struct MaxOp {
  template <typename A> static A init() {
    if constexpr (std::is_floating_point_v<A>) return -std::numeric_limits<A>::infinity();
    else return std::numeric_limits<A>::lowest();
  }
  template <typename A> static A combine(A acc, A v) { return (v > acc || is_nan(v)) ? v : acc; }
};
struct MinOp {
  template <typename A> static A init() {
    if constexpr (std::is_floating_point_v<A>) return std::numeric_limits<A>::infinity();
    else return std::numeric_limits<A>::max();
  }
  template <typename A> static A combine(A acc, A v) { return (v < acc || is_nan(v)) ? v : acc; }
};

// Sizes and strides of a group of dims, size-1 dims dropped and neighbours that step through memory as
// one dim merged, so that a contiguous block becomes a single dim.
struct Layout {
  std::vector<int64_t> sizes, strides;

  void push(int64_t size, int64_t stride) {
    if (size == 1) return;
    if (!sizes.empty() && strides.back() == size * stride) {
      sizes.back() *= size;
      strides.back() = stride;
    } else {
      sizes.push_back(size);
      strides.push_back(stride);
    }
  }
  int64_t ndim() const { return static_cast<int64_t>(sizes.size()); }
  int64_t numel() const {
    int64_t n = 1;
    for (int64_t s : sizes) n *= s;
    return n;
  }
  int64_t offset_of(int64_t linear) const {
    int64_t off = 0;
    for (int64_t d = ndim() - 1; d >= 0; --d) {
      off += (linear % sizes[d]) * strides[d];
      linear /= sizes[d];
    }
    return off;
  }
  Layout drop_last() const {
    Layout l = *this;
    l.sizes.pop_back();
    l.strides.pop_back();
    return l;
  }
};

// Steps through the offsets of a layout in row-major order, from a given linear index.
class Walker {
 public:
  Walker(const Layout& layout, int64_t start) : l_(layout), idx_(layout.sizes.size()) {
    for (int64_t d = l_.ndim() - 1; d >= 0; --d) {
      idx_[d] = start % l_.sizes[d];
      start /= l_.sizes[d];
      off_ += idx_[d] * l_.strides[d];
    }
  }
  int64_t offset() const { return off_; }
  void next() {
    for (int64_t d = l_.ndim() - 1; d >= 0; --d) {
      off_ += l_.strides[d];
      if (++idx_[d] < l_.sizes[d]) return;
      off_ -= idx_[d] * l_.strides[d];
      idx_[d] = 0;
    }
  }

 private:
  const Layout& l_;
  std::vector<int64_t> idx_;
  int64_t off_ = 0;
};

// Combines n values at stride s; independent lanes on contiguous data let the compiler vectorize.
template <typename Op, typename A, typename T>
A reduce_line(const T* x, int64_t n, int64_t s, A acc) {
  constexpr int kLanes = 8;
  int64_t i = 0;
  if (s == 1 && n >= 2 * kLanes) {
    A lane[kLanes];
    for (int j = 0; j < kLanes; ++j) lane[j] = Op::template init<A>();
    for (; i + kLanes <= n; i += kLanes)
      for (int j = 0; j < kLanes; ++j) lane[j] = Op::combine(lane[j], load<A>(x[i + j]));
    for (int j = 0; j < kLanes; ++j) acc = Op::combine(acc, lane[j]);
  }
  for (; i < n; ++i) acc = Op::combine(acc, load<A>(x[i * s]));
  return acc;
}

// The reduced dims split as an outer walk and one inner line.
struct Reduced {
  Layout outer;
  int64_t inner = 1, inner_stride = 0;
  int64_t numel() const { return outer.numel() * inner; }
};

// Combines elements [begin, end) of the reduced walk from base.
template <typename Op, typename A, typename T>
A reduce_span(const T* base, const Reduced& r, int64_t begin, int64_t end, A acc) {
  if (r.outer.ndim() == 0) return reduce_line<Op>(base + begin * r.inner_stride, end - begin, r.inner_stride, acc);
  Walker walk(r.outer, begin / r.inner);
  int64_t i = begin % r.inner;
  for (int64_t left = end - begin; left > 0; walk.next()) {
    const int64_t n = std::min(r.inner - i, left);
    acc = reduce_line<Op>(base + walk.offset() + i * r.inner_stride, n, r.inner_stride, acc);
    left -= n;
    i = 0;
  }
  return acc;
}

// How in's elements map to outputs: `outer` walks the output blocks, each of `cols` outputs that lie at
// unit stride in `in` (cols == 1 when the outputs' innermost dim is not contiguous in `in`).
struct OutputSide {
  Layout outer;
  int64_t cols = 1;
  int64_t tiles() const { return (cols + kTile - 1) / kTile; }
  int64_t items() const { return outer.numel() * tiles(); }
};

// Reduces the elements [rb, re) of the reduced walk into res[0, O) for output items [ib, ie).
template <typename Op, typename A, typename T>
void reduce_items(const T* in, const OutputSide& o, const Reduced& r, const Layout& r_full, int64_t ib,
                  int64_t ie, int64_t rb, int64_t re, A* res) {
  if (o.cols == 1) {  // one output per item: walk its elements
    for (int64_t item = ib; item < ie; ++item)
      res[item] = reduce_span<Op>(in + o.outer.offset_of(item), r, rb, re, Op::template init<A>());
    return;
  }
  for (int64_t item = ib; item < ie; ++item) {  // a tile of adjacent outputs: add whole row segments
    const int64_t block = item / o.tiles(), c0 = (item % o.tiles()) * kTile;
    const int64_t w = std::min(kTile, o.cols - c0);
    A* acc = res + block * o.cols + c0;
    for (int64_t j = 0; j < w; ++j) acc[j] = Op::template init<A>();
    const T* base = in + o.outer.offset_of(block) + c0;
    Walker walk(r_full, rb);
    for (int64_t k = rb; k < re; ++k, walk.next()) {
      const T* row = base + walk.offset();
      for (int64_t j = 0; j < w; ++j) acc[j] = Op::combine(acc[j], load<A>(row[j]));
    }
  }
}

template <typename O, typename A>
O convert(A v) {
  if constexpr (std::is_same_v<O, bool>) return v != A(0);
  else if constexpr (std::is_same_v<O, Half> || std::is_same_v<O, BFloat16>) return O(static_cast<float>(v));
  else return static_cast<O>(v);
}

// Writes the accumulated results to out in its dtype; Mean divides by the reduced count.
template <typename A>
void store(const Tensor& out, const std::vector<A>& res, bool mean, int64_t count) {
  dispatch_dtype(out.dtype(), [&](auto tag) {
    using O = decltype(tag);
    O* dst = static_cast<O*>(out.data_ptr());
    parallel_for(static_cast<int64_t>(res.size()), 1, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        if (!mean) dst[i] = convert<O>(res[i]);
        else if constexpr (std::is_floating_point_v<compute_t<O>>)
          dst[i] = convert<O>(static_cast<double>(res[i]) / static_cast<double>(count));
        else dst[i] = convert<O>(count == 0 ? A(0) : static_cast<A>(res[i] / count));
      }
    });
  });
}

template <typename Op, typename T>
void reduce_typed(const Tensor& out, const Tensor& in, const std::vector<int64_t>& dims, bool mean) {
  using A = acc_t<T>;
  Layout kept, reduced;
  for (int64_t d = 0, next = 0; d < in.dim(); ++d) {
    const bool is_reduced = next < static_cast<int64_t>(dims.size()) && dims[next] == d;
    next += is_reduced;
    (is_reduced ? reduced : kept).push(in.shape()[d], in.strides()[d]);
  }
  const int64_t n_out = out.numel(), count = reduced.numel();
  if (n_out == 0) return;
  std::vector<A> res(n_out, Op::template init<A>());
  if (count == 0) return store(out, res, mean, count);

  OutputSide o;
  o.outer = kept;
  if (kept.ndim() > 0 && kept.strides.back() == 1 && kept.sizes.back() >= 8) {
    o.cols = kept.sizes.back();
    o.outer = kept.drop_last();
  }
  Reduced r;
  r.outer = reduced.drop_last();
  r.inner = reduced.ndim() > 0 ? reduced.sizes.back() : 1;
  r.inner_stride = reduced.ndim() > 0 ? reduced.strides.back() : 0;

  const T* src = static_cast<const T*>(in.data_ptr());
  const int64_t items = o.items(), threads = omp_get_max_threads();
  const int64_t work_per_item = count * (n_out / items);
  if (items >= 2 * threads || count * n_out < kParallelGrain) {
    parallel_for(items, work_per_item, [&](int64_t b, int64_t e) {
      reduce_items<Op>(src, o, r, reduced, b, e, 0, count, res.data());
    });
    return store(out, res, mean, count);
  }
  // Too few outputs to keep every thread busy: each chunk of the reduced elements gets its own partial
  // results, combined afterwards in chunk order.
  const int64_t chunks = std::clamp(count * n_out / kParallelGrain, int64_t{1}, std::min(threads, count));
  std::vector<A> partial(chunks * n_out);
  parallel_for(chunks, count * n_out / chunks, [&](int64_t b, int64_t e) {
    for (int64_t c = b; c < e; ++c)
      reduce_items<Op>(src, o, r, reduced, 0, items, count * c / chunks, count * (c + 1) / chunks,
                       partial.data() + c * n_out);
  });
  for (int64_t c = 0; c < chunks; ++c)
    for (int64_t i = 0; i < n_out; ++i) res[i] = Op::combine(res[i], partial[c * n_out + i]);
  store(out, res, mean, count);
}

// For argmax/argmin: whether v replaces the current extreme; the first NaN is final.
template <bool kMax, typename C>
bool beats(C v, C best) {
  if (is_nan(best)) return false;
  return (kMax ? v > best : v < best) || is_nan(v);
}

template <bool kMax, typename T>
void arg_reduce_typed(const Tensor& values, const Tensor& indices, const Tensor& in, int64_t dim) {
  using C = compute_t<T>;
  Layout kept;
  for (int64_t d = 0; d < in.dim(); ++d)
    if (d != dim) kept.push(in.shape()[d], in.strides()[d]);
  const int64_t n = in.shape()[dim], step = in.strides()[dim];
  OutputSide o;
  o.outer = kept;
  if (kept.ndim() > 0 && kept.strides.back() == 1 && kept.sizes.back() >= 8) {
    o.cols = kept.sizes.back();
    o.outer = kept.drop_last();
  }
  const T* src = static_cast<const T*>(in.data_ptr());
  T* val = static_cast<T*>(values.data_ptr());
  int64_t* idx = static_cast<int64_t*>(indices.data_ptr());
  const int64_t n_out = values.numel();
  if (n_out == 0) return;
  // Each item is a tile of up to kTile adjacent outputs, scanned together down the reduced dim.
  parallel_for(o.items(), n * (n_out / o.items()), [&](int64_t b, int64_t e) {
    C best[kTile];
    int64_t at[kTile];
    for (int64_t item = b; item < e; ++item) {
      const int64_t block = item / o.tiles(), c0 = (item % o.tiles()) * kTile;
      const int64_t w = std::min(kTile, o.cols - c0);
      const T* base = src + o.outer.offset_of(block) + c0;
      for (int64_t j = 0; j < w; ++j) {
        best[j] = static_cast<C>(base[j]);
        at[j] = 0;
      }
      for (int64_t k = 1; k < n; ++k) {
        const T* row = base + k * step;
        for (int64_t j = 0; j < w; ++j) {
          const C v = static_cast<C>(row[j]);
          if (beats<kMax>(v, best[j])) {
            best[j] = v;
            at[j] = k;
          }
        }
      }
      for (int64_t j = 0; j < w; ++j) {
        val[block * o.cols + c0 + j] = T(best[j]);
        idx[block * o.cols + c0 + j] = at[j];
      }
    }
  });
}

}  // namespace

void CpuBackend::reduce(ReduceOp op, const Tensor& out, const Tensor& in, const std::vector<int64_t>& dims) {
  dispatch_dtype(in.dtype(), [&](auto tag) {
    using T = decltype(tag);
    switch (op) {
      case ReduceOp::Sum: return reduce_typed<SumOp, T>(out, in, dims, false);
      case ReduceOp::Mean: return reduce_typed<SumOp, T>(out, in, dims, true);
      case ReduceOp::Max: return reduce_typed<MaxOp, T>(out, in, dims, false);
      case ReduceOp::Min: return reduce_typed<MinOp, T>(out, in, dims, false);
    }
  });
}

void CpuBackend::arg_reduce(ArgReduceOp op, const Tensor& values, const Tensor& indices, const Tensor& in,
                            int64_t dim) {
  dispatch_dtype(in.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if (op == ArgReduceOp::Max) arg_reduce_typed<true, T>(values, indices, in, dim);
    else arg_reduce_typed<false, T>(values, indices, in, dim);
  });
}

}  // namespace st::backend::cpu
