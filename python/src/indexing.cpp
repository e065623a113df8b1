// Tensor.__getitem__ and __setitem__ with PyTorch's (NumPy's) rules. Ints, slices, None and
// Ellipsis make views; integer and boolean index tensors (or lists) gather a copy. The gather is an
// embedding lookup over the indexed dims flattened into rows, so it runs on every backend and has
// its gradient.

#include <string>

#include "bindings.h"

namespace st::python {
namespace {

// An index tensor for one dim of the basic-indexed view, int64 on the view's device.
struct AdvancedIndex {
  int64_t dim;
  Tensor index;
};

struct Parsed {
  Tensor view;                     // the tensor after the basic (view-making) indices
  std::vector<AdvancedIndex> adv;  // integer indices still to apply, in order
  Tensor whole_mask;  // a bool mask index covering every dim of the tensor, if that is all
};

enum class Kind { None, Ellipsis, Bool, Int, Slice, Tensor };

struct Item {
  Kind kind;
  nb::handle obj;
  Tensor tensor;  // for Kind::Tensor
  int64_t consumed = 0;
};

Item classify(nb::handle obj, const Tensor& self) {
  if (obj.is_none()) return {Kind::None, obj, {}, 0};
  if (obj.is(nb::ellipsis())) return {Kind::Ellipsis, obj, {}, 0};
  if (PyBool_Check(obj.ptr())) return {Kind::Bool, obj, {}, 0};
  if (PyLong_Check(obj.ptr())) return {Kind::Int, obj, {}, 1};
  if (PySlice_Check(obj.ptr())) return {Kind::Slice, obj, {}, 1};
  Tensor t;
  if (nb::isinstance<Tensor>(obj)) {
    t = nb::cast<Tensor>(obj);
  } else if (PySequence_Check(obj.ptr()) && !nb::isinstance<nb::str>(obj)) {
    t = tensor_from_data(obj, std::nullopt, self.device());
    if (t.numel() == 0) t = t.to(DType::Int64);  // [] indexes nothing, as in NumPy
  } else if (PyObject_HasAttrString(obj.ptr(), "__index__")) {
    return {Kind::Int, obj, {}, 1};  // NumPy integers
  } else {
    throw nb::type_error(("[index] indices must be ints, slices, None, Ellipsis, bools or "
                          "integer/bool tensors, got " +
                          std::string(nb::inst_name(obj).c_str()))
                             .c_str());
  }
  ST_CHECK(!is_floating(t.dtype()), IndexError,
           "[index] tensors used as indices must be integer or bool, got ", t.dtype());
  if (t.dtype() == DType::Bool && t.dim() == 0) {
    return {Kind::Bool, nb::bool_(t.item().to<bool>()), {}, 0};
  }
  return {Kind::Tensor, obj, t, t.dtype() == DType::Bool ? t.dim() : 1};
}

// The positions of the true elements of `mask`, one int64 tensor per mask dim (nonzero).
std::vector<Tensor> mask_positions(const Tensor& mask, Device device) {
  const Tensor host = mask.detach().to(kCPU).contiguous();
  const bool* values = static_cast<const bool*>(host.data_ptr());
  const Shape& shape = host.shape();
  const size_t k = shape.size();
  std::vector<std::vector<int64_t>> coords(k);
  Shape position(k, 0);
  for (int64_t i = 0; i < host.numel(); ++i) {
    if (values[i])
      for (size_t d = 0; d < k; ++d) coords[d].push_back(position[d]);
    for (size_t d = k; d-- > 0;) {  // odometer increment
      if (++position[d] < shape[d]) break;
      position[d] = 0;
    }
  }
  std::vector<Tensor> out;
  for (const auto& c : coords) {
    out.push_back(from_buffer(c.data(), {static_cast<int64_t>(c.size())}, {DType::Int64, device}));
  }
  return out;
}

Parsed apply_basic(const Tensor& self, nb::handle index) {
  std::vector<Item> items;
  if (PyTuple_Check(index.ptr())) {
    for (nb::handle obj : index) items.push_back(classify(obj, self));
  } else {
    items.push_back(classify(index, self));
  }
  int64_t consumed = 0, ellipses = 0;
  for (const Item& item : items) {
    consumed += item.consumed;
    ellipses += item.kind == Kind::Ellipsis;
  }
  ST_CHECK(ellipses <= 1, IndexError, "[index] an index can only have a single ellipsis ('...')");
  ST_CHECK(consumed <= self.dim(), IndexError, "[index] too many indices for a tensor of ",
           self.dim(), " dims: ", consumed, " were given");

  Parsed out{self, {}, {}};
  if (items.size() == 1 && items[0].kind == Kind::Tensor &&
      items[0].tensor.dtype() == DType::Bool && items[0].tensor.shape() == self.shape()) {
    out.whole_mask = items[0].tensor;
  }
  int64_t d = 0;  // the dim of out.view the next item applies to
  for (const Item& item : items) {
    switch (item.kind) {
      case Kind::None: out.view = out.view.unsqueeze(d++); break;
      case Kind::Ellipsis: d += self.dim() - consumed; break;
      case Kind::Bool:
        // x[True] adds a dim of size 1; x[False] one of size 0.
        out.view = out.view.unsqueeze(d);
        if (!nb::cast<bool>(item.obj)) out.view = out.view.narrow(d, 0, 0);
        ++d;
        break;
      case Kind::Int: out.view = out.view.select(d, nb::cast<int64_t>(item.obj)); break;
      case Kind::Slice: {
        auto bound = [&](const char* name) -> std::optional<int64_t> {
          nb::object v = item.obj.attr(name);
          if (v.is_none()) return std::nullopt;
          return nb::cast<int64_t>(nb::steal(PyNumber_Index(v.ptr())));
        };
        const std::optional<int64_t> step = bound("step");
        out.view = out.view.slice(d++, bound("start"), bound("stop"), step.value_or(1));
        break;
      }
      case Kind::Tensor: {
        const Tensor& t = item.tensor;
        if (t.dtype() == DType::Bool) {
          for (int64_t k = 0; k < t.dim(); ++k) {
            ST_CHECK(t.shape()[k] == out.view.shape()[d + k], IndexError,
                     "[index] the mask of shape ", t.shape(),
                     " does not match the indexed dims: size ", out.view.shape()[d + k], " at dim ",
                     d + k, " against ", t.shape()[k], " in the mask");
          }
          for (Tensor& positions : mask_positions(t, out.view.device())) {
            out.adv.push_back({d++, positions});
          }
        } else {
          out.adv.push_back({d++, t.to(out.view.device(), DType::Int64)});
        }
        break;
      }
    }
  }
  return out;
}

// Wraps negative indices and checks the bounds; returns the indices broadcast to one shape.
std::vector<Tensor> checked_indices(const Tensor& view, const std::vector<AdvancedIndex>& adv,
                                    Shape& broadcast) {
  broadcast = adv[0].index.shape();
  for (const AdvancedIndex& a : adv)
    broadcast = broadcast_shapes(broadcast, a.index.shape(), "index");
  std::vector<Tensor> out;
  for (const AdvancedIndex& a : adv) {
    const int64_t size = view.shape()[a.dim];
    Tensor idx = a.index.detach();
    if (idx.numel() > 0) {
      const int64_t low = st::min(idx).item<int64_t>(), high = st::max(idx).item<int64_t>();
      const int64_t bad = low < -size ? low : high;
      ST_CHECK(low >= -size && high < size, IndexError, "[index] index ", bad,
               " is out of bounds for dim ", a.dim, " with size ", size);
      if (low < 0) idx = where(lt(idx, Scalar(0)), add(idx, Scalar(size)), idx);
    }
    out.push_back(idx.expand(broadcast));
  }
  return out;
}

bool adjacent(const std::vector<AdvancedIndex>& adv) {
  for (size_t k = 1; k < adv.size(); ++k)
    if (adv[k].dim != adv[k - 1].dim + 1) return false;
  return true;
}

// The view with the indexed dims moved to the front (in index order), and the other dims' sizes.
Tensor indexed_dims_first(const Tensor& view, const std::vector<AdvancedIndex>& adv, Shape& rest) {
  Shape perm;
  std::vector<bool> indexed(static_cast<size_t>(view.dim()), false);
  for (const AdvancedIndex& a : adv) {
    perm.push_back(a.dim);
    indexed[a.dim] = true;
  }
  for (int64_t i = 0; i < view.dim(); ++i) {
    if (indexed[i]) continue;
    perm.push_back(i);
    rest.push_back(view.shape()[i]);
  }
  return view.permute(perm);
}

// PyTorch's placement: the indexed dims' result goes where they were when they are adjacent,
// else in front. Returns the permutation that moves [B..., rest...] to that layout.
Shape result_permutation(const std::vector<AdvancedIndex>& adv, size_t broadcast_dims,
                         size_t rest_dims) {
  Shape perm;
  const auto b = static_cast<int64_t>(broadcast_dims);
  const int64_t p = adjacent(adv) ? adv[0].dim : 0;
  for (int64_t i = 0; i < p; ++i) perm.push_back(b + i);
  for (int64_t i = 0; i < b; ++i) perm.push_back(i);
  for (int64_t i = p; i < static_cast<int64_t>(rest_dims); ++i) perm.push_back(b + i);
  return perm;
}

Tensor gather(const Tensor& view, const std::vector<AdvancedIndex>& adv) {
  Shape broadcast, rest;
  const std::vector<Tensor> idx = checked_indices(view, adv, broadcast);
  Tensor linear = idx[0];
  for (size_t k = 1; k < idx.size(); ++k) {
    linear = add(mul(linear, Scalar(view.shape()[adv[k].dim])), idx[k]);
  }
  const Tensor front = indexed_dims_first(view, adv, rest);
  int64_t rows = 1;
  for (const AdvancedIndex& a : adv) rows *= view.shape()[a.dim];
  const Tensor table = front.reshape({rows, shape_numel(rest)});
  Shape out_shape = broadcast;
  out_shape.insert(out_shape.end(), rest.begin(), rest.end());
  const Tensor out = embedding(table, linear.contiguous()).reshape(out_shape);
  return out.permute(result_permutation(adv, broadcast.size(), rest.size()));
}

void scatter(const Tensor& view, const std::vector<AdvancedIndex>& adv, const Tensor& value,
             const std::optional<Scalar>& scalar) {
  Shape broadcast, rest;
  const std::vector<Tensor> idx = checked_indices(view, adv, broadcast);
  const Tensor front = indexed_dims_first(view, adv, rest);
  const int64_t n = shape_numel(broadcast);
  std::vector<std::vector<int64_t>> positions;
  for (const Tensor& i : idx) positions.push_back(i.contiguous().to_vector<int64_t>());
  Tensor values;
  if (!scalar) {
    // The value broadcasts against the result's layout, then is read in [B..., rest...] order.
    const Shape perm = result_permutation(adv, broadcast.size(), rest.size());
    Shape layout(perm.size());
    Shape natural = broadcast;
    natural.insert(natural.end(), rest.begin(), rest.end());
    for (size_t i = 0; i < perm.size(); ++i) layout[i] = natural[perm[i]];
    Shape inverse(perm.size());
    for (size_t i = 0; i < perm.size(); ++i) inverse[perm[i]] = static_cast<int64_t>(i);
    Shape flat{n};
    flat.insert(flat.end(), rest.begin(), rest.end());
    values = value.to(view.device(), view.dtype()).expand(layout).permute(inverse).reshape(flat);
  }
  // One write per index, in order: for repeated indices the last one wins.
  for (int64_t i = 0; i < n; ++i) {
    Tensor target = front;
    for (const auto& p : positions) target = target.select(0, p[i]);
    if (scalar)
      target.fill_(*scalar);
    else
      target.copy_(values.select(0, i));
  }
}

}  // namespace

nb::object tensor_getitem(const Tensor& self, nb::handle index) {
  Parsed p = apply_basic(self, index);
  if (p.adv.empty()) return nb::cast(p.view);
  return nb::cast(gather(p.view, p.adv));
}

void tensor_setitem(Tensor& self, nb::handle index, nb::handle value) {
  Parsed p = apply_basic(self, index);
  std::optional<Scalar> scalar;
  Tensor tensor_value;
  Scalar s;
  if (nb::isinstance<Tensor>(value)) {
    tensor_value = nb::cast<Tensor>(value);
  } else if (nb::try_cast(value, s)) {
    scalar = s;
  } else {
    tensor_value = tensor_from_data(value, self.dtype(), self.device());
  }
  if (p.adv.empty()) {
    if (scalar)
      p.view.fill_(*scalar);
    else
      p.view.copy_(tensor_value);
    return;
  }
  if (p.whole_mask.defined() && (!is_grad_enabled() || !self.requires_grad())) {
    // x[mask] = v over the whole tensor, when no graph is recorded: one elementwise select.
    const Tensor v = scalar ? scalar_tensor(*scalar, {self.dtype(), self.device()})
                            : tensor_value.to(self.device(), self.dtype());
    if (!scalar && v.numel() != 1) {
      scatter(p.view, p.adv, tensor_value, scalar);  // values in mask order, not broadcast
      return;
    }
    self.copy_(where(p.whole_mask, v, self));
    return;
  }
  scatter(p.view, p.adv, tensor_value, scalar);
}

}  // namespace st::python
