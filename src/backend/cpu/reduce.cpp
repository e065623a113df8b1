// Reductions on the CPU: sum, mean, max and min over a set of dims; argmax and argmin along one.
//
// Accumulation: every floating input (f16, bf16, f32, f64) accumulates in double, so a sum stays
// accurate over any row length without pairwise bookkeeping; the loops are memory-bound, so the
// wider type costs little. Integer and bool inputs accumulate in int64. Max and min work in the
// same types, which hold every input value exactly. NaN wins max and min, as in torch.
//
// Loop shapes: a walk along memory for each output (row reductions, and the general strided
// fallback); column tiles that add whole row segments into a vector of outputs (reducing the outer
// dims of a contiguous tensor, e.g. bias gradients); and, when there are fewer outputs than
// threads (e.g. reducing everything), either of them split over the reduced elements, with one
// partial result per chunk.

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

// Outputs per column tile: 16 KiB of double accumulators stay in L1 while row segments of this
// width stream past (narrow tiles would re-read each row once per tile when it is not in cache).
constexpr int64_t kTile = 2048;

template <typename T>
using acc_t = std::conditional_t<std::is_floating_point_v<compute_t<T>>, double, int64_t>;

template <typename A, typename T>
A load(T v) {
  return static_cast<A>(static_cast<compute_t<T>>(v));
}

template <typename A>
bool is_nan(A v) {
  if constexpr (std::is_floating_point_v<A>) return std::isnan(v);
  return false;
}

template <typename A>
A nan_of() {
  if constexpr (std::is_floating_point_v<A>) return std::numeric_limits<A>::quiet_NaN();
  return A(0);
}

// Each op has a branch-free `step` for the vectorized loops and a NaN-aware `merge`. Max and min's
// step skips a NaN value, so their loops also note whether one went by (kSeesNan). A NaN already
// in the accumulator stays there under step, since comparisons with it are false.
struct SumOp {
  static constexpr bool kSeesNan = false;
  template <typename A>
  static A init() {
    return A(0);
  }
  template <typename A>
  static A step(A acc, A v) {
    return acc + v;
  }
  template <typename A>
  static A merge(A acc, A v) {
    return acc + v;
  }
};
template <bool kMax>
struct ExtremeOp {
  static constexpr bool kSeesNan = true;
  template <typename A>
  static A init() {
    if constexpr (std::is_floating_point_v<A>)
      return kMax ? -std::numeric_limits<A>::infinity() : std::numeric_limits<A>::infinity();
    return kMax ? std::numeric_limits<A>::lowest() : std::numeric_limits<A>::max();
  }
  template <typename A>
  static A step(A acc, A v) {
    return (kMax ? v > acc : v < acc) ? v : acc;
  }
  template <typename A>
  static A merge(A acc, A v) {
    return is_nan(v) ? v : step(acc, v);
  }
};
using MaxOp = ExtremeOp<true>;
using MinOp = ExtremeOp<false>;

// Sizes and strides of a group of dims, size-1 dims dropped and neighbours that step through memory
// as one dim merged, so that a contiguous block becomes a single dim.
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
    if (!l.sizes.empty()) {
      l.sizes.pop_back();
      l.strides.pop_back();
    }
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

// Combines n values at stride s into acc; independent lanes let the compiler vectorize.
template <typename Op, typename A, typename T>
A reduce_line(const T* x, int64_t n, int64_t s, A acc) {
  constexpr int kLanes = 8;
  bool nan = false;
  int64_t i = 0;
  if (s == 1 && n >= 2 * kLanes) {
    A lane[kLanes];
    for (int j = 0; j < kLanes; ++j) lane[j] = Op::template init<A>();
    for (; i + kLanes <= n; i += kLanes) {
      for (int j = 0; j < kLanes; ++j) {
        const A v = load<A>(x[i + j]);
        lane[j] = Op::step(lane[j], v);
        if constexpr (Op::kSeesNan) nan |= is_nan(v);
      }
    }
    for (int j = 0; j < kLanes; ++j) acc = Op::merge(acc, lane[j]);
  }
  for (; i < n; ++i) acc = Op::merge(acc, load<A>(x[i * s]));
  return nan ? nan_of<A>() : acc;
}

// The reduced dims split as an outer walk and one inner line.
struct Reduced {
  Layout outer;
  int64_t inner = 1, inner_stride = 0;
};

// Combines elements [begin, end) of the reduced walk from base.
template <typename Op, typename A, typename T>
A reduce_span(const T* base, const Reduced& r, int64_t begin, int64_t end, A acc) {
  if (r.outer.ndim() == 0)
    return reduce_line<Op>(base + begin * r.inner_stride, end - begin, r.inner_stride, acc);
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

// How in's elements map to outputs: `outer` walks the output blocks, each of `cols` outputs that
// lie at unit stride in `in` (cols == 1 when the outputs' innermost dim is not contiguous in `in`).
struct OutputSide {
  Layout outer;
  int64_t cols = 1;
  int64_t tiles() const { return (cols + kTile - 1) / kTile; }
  int64_t items() const { return outer.numel() * tiles(); }
};

// Outputs lie at unit stride in `in` when the innermost kept dim is contiguous there; a handful of
// them are not worth a tile.
OutputSide output_side(const Layout& kept) {
  OutputSide o;
  o.outer = kept;
  if (kept.ndim() > 0 && kept.strides.back() == 1 && kept.sizes.back() >= 8) {
    o.cols = kept.sizes.back();
    o.outer = kept.drop_last();
  }
  return o;
}

// Adds the rows [rb, re) of the reduced walk, each a segment of w adjacent outputs from base, into
// acc. Returns whether a NaN was skipped by the fast step; `kExact` merges each value NaN-aware.
template <bool kExact, typename Op, typename A, typename T>
bool sweep_tile(A* acc, int64_t w, const T* base, const Layout& r, int64_t rb, int64_t re) {
  std::fill(acc, acc + w, Op::template init<A>());
  bool nan = false;
  Walker walk(r, rb);
  for (int64_t k = rb; k < re; ++k, walk.next()) {
    const T* row = base + walk.offset();
    for (int64_t j = 0; j < w; ++j) {
      const A v = load<A>(row[j]);
      if constexpr (kExact) {
        acc[j] = Op::merge(acc[j], v);
      } else {
        acc[j] = Op::step(acc[j], v);
        if constexpr (Op::kSeesNan) nan |= is_nan(v);
      }
    }
  }
  return nan;
}

// Reduces the elements [rb, re) of the reduced walk into res (indexed by output) for output items
// [ib, ie).
template <typename Op, typename A, typename T>
void reduce_items(const T* in, const OutputSide& o, const Reduced& r, const Layout& r_full,
                  int64_t ib, int64_t ie, int64_t rb, int64_t re, A* res) {
  for (int64_t item = ib; item < ie; ++item) {
    if (o.cols == 1) {  // one output: walk its elements
      res[item] = reduce_span<Op>(in + o.outer.offset_of(item), r, rb, re, Op::template init<A>());
      continue;
    }
    // A tile of adjacent outputs: whole row segments at a time. A NaN (rare) sends the tile through
    // again with the NaN-aware merge, so that it lands in its own column.
    const int64_t block = item / o.tiles(), c0 = (item % o.tiles()) * kTile;
    const int64_t w = std::min(kTile, o.cols - c0);
    A* acc = res + block * o.cols + c0;
    const T* base = in + o.outer.offset_of(block) + c0;
    if (sweep_tile<false, Op>(acc, w, base, r_full, rb, re))
      sweep_tile<true, Op>(acc, w, base, r_full, rb, re);
  }
}

template <typename O, typename A>
O convert(A v) {
  if constexpr (std::is_same_v<O, bool>)
    return v != A(0);
  else if constexpr (std::is_same_v<O, Half> || std::is_same_v<O, BFloat16>)
    return O(static_cast<float>(v));
  else
    return static_cast<O>(v);
}

// Writes the accumulated results to out in its dtype; Mean divides by the reduced count.
template <typename A>
void store(const Tensor& out, const std::vector<A>& res, bool mean, int64_t count) {
  dispatch_dtype(out.dtype(), [&](auto tag) {
    using O = decltype(tag);
    O* dst = static_cast<O*>(out.data_ptr());
    parallel_for(static_cast<int64_t>(res.size()), 1, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        if (!mean)
          dst[i] = convert<O>(res[i]);
        else if constexpr (std::is_floating_point_v<compute_t<O>>)
          dst[i] = convert<O>(static_cast<double>(res[i]) / static_cast<double>(count));
        else
          dst[i] = convert<O>(count == 0 ? A(0) : static_cast<A>(res[i] / count));
      }
    });
  });
}

template <typename Op, typename T>
void reduce_typed(const Tensor& out, const Tensor& in, const std::vector<int64_t>& dims,
                  bool mean) {
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

  const OutputSide o = output_side(kept);
  Reduced r;
  r.outer = reduced.drop_last();
  r.inner = reduced.ndim() > 0 ? reduced.sizes.back() : 1;
  r.inner_stride = reduced.ndim() > 0 ? reduced.strides.back() : 0;

  const T* src = in.data<T>();
  const int64_t items = o.items(), threads = omp_get_max_threads();
  if (items >= 2 * threads || count * n_out < kParallelGrain) {
    parallel_for(items, count * (n_out / items), [&](int64_t b, int64_t e) {
      reduce_items<Op>(src, o, r, reduced, b, e, 0, count, res.data());
    });
    return store(out, res, mean, count);
  }
  // Too few outputs to keep every thread busy: each chunk of the reduced elements gets its own
  // partial results, combined afterwards in chunk order.
  const int64_t chunks =
      std::clamp(count * n_out / kParallelGrain, int64_t{1}, std::min(threads, count));
  std::vector<A> partial(chunks * n_out);
  parallel_for(chunks, count * n_out / chunks, [&](int64_t b, int64_t e) {
    for (int64_t c = b; c < e; ++c)
      reduce_items<Op>(src, o, r, reduced, 0, items, count * c / chunks, count * (c + 1) / chunks,
                       partial.data() + c * n_out);
  });
  for (int64_t c = 0; c < chunks; ++c)
    for (int64_t i = 0; i < n_out; ++i) res[i] = Op::merge(res[i], partial[c * n_out + i]);
  store(out, res, mean, count);
}

// For argmax/argmin: whether v replaces the current extreme; the first NaN wins and stays. `&` and
// `|` rather than `&&` and `||` keep the tile loop below free of branches.
template <bool kMax, typename A>
bool beats(A v, A best) {
  const int wins = int{kMax ? v > best : v < best} | int{is_nan(v)};
  return (!is_nan(best)) & wins;
}

template <bool kMax, typename T>
void arg_reduce_typed(const Tensor& values, const Tensor& indices, const Tensor& in, int64_t dim) {
  using A = acc_t<T>;  // exact for every T, and as wide as the int64 indices beside it
  Layout kept;
  for (int64_t d = 0; d < in.dim(); ++d)
    if (d != dim) kept.push(in.shape()[d], in.strides()[d]);
  const OutputSide o = output_side(kept);
  const int64_t n = in.shape()[dim], step = in.strides()[dim], n_out = values.numel();
  const T* src = in.data<T>();
  T* val = values.data<T>();
  int64_t* idx = indices.data<int64_t>();
  if (n_out == 0) return;
  parallel_for(o.items(), n * (n_out / o.items()), [&](int64_t b, int64_t e) {
    std::vector<A> best_tile(kTile);
    std::vector<int64_t> at_tile(kTile);
    A* best = best_tile.data();  // raw pointers let the compiler vectorize the loops below
    int64_t* at = at_tile.data();
    for (int64_t item = b; item < e; ++item) {
      if (o.cols == 1 && step == 1) {
        // A contiguous line: the extreme by the vectorized reduction, then its first position.
        const T* x = src + o.outer.offset_of(item);
        const A ext = reduce_line<ExtremeOp<kMax>>(x, n, 1, ExtremeOp<kMax>::template init<A>());
        int64_t k = 0;
        while (k < n - 1 && !(is_nan(ext) ? is_nan(load<A>(x[k])) : load<A>(x[k]) == ext)) ++k;
        val[item] = x[k];
        idx[item] = k;
        continue;
      }
      // A tile of adjacent outputs (or one strided line), scanned together down the reduced dim.
      const int64_t block = item / o.tiles(), c0 = (item % o.tiles()) * kTile;
      const int64_t w = std::min(kTile, o.cols - c0);
      const T* base = src + o.outer.offset_of(block) + c0;
      for (int64_t j = 0; j < w; ++j) {
        best[j] = load<A>(base[j]);
        at[j] = 0;
      }
      for (int64_t k = 1; k < n; ++k) {
        const T* row = base + k * step;
        for (int64_t j = 0; j < w; ++j) {
          const A v = load<A>(row[j]);
          const bool better = beats<kMax>(v, best[j]);
          best[j] = better ? v : best[j];
          at[j] = better ? k : at[j];
        }
      }
      for (int64_t j = 0; j < w; ++j) {
        val[block * o.cols + c0 + j] = convert<T>(best[j]);
        idx[block * o.cols + c0 + j] = at[j];
      }
    }
  });
}

}  // namespace

void CpuBackend::reduce(ReduceOp op, const Tensor& out, const Tensor& in,
                        const std::vector<int64_t>& dims) {
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

void CpuBackend::arg_reduce(ArgReduceOp op, const Tensor& values, const Tensor& indices,
                            const Tensor& in, int64_t dim) {
  dispatch_dtype(in.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if (op == ArgReduceOp::Max)
      arg_reduce_typed<true, T>(values, indices, in, dim);
    else
      arg_reduce_typed<false, T>(values, indices, in, dim);
  });
}

}  // namespace st::backend::cpu
