// Tensor printing that follows PyTorch's repr: one number format per tensor (fixed, integer-valued
// or scientific) chosen from the values shown and right-aligned to a common width, with torch's
// summarization of large tensors and its line wrapping.

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "autograd/node.h"
#include "spiraltorch/tensor.h"

namespace st {
namespace {

// PyTorch's default print options.
constexpr int kPrecision = 4;
constexpr int64_t kLineWidth = 80;
constexpr int64_t kEdgeItems = 3;     // shown at each end of a summarized dim
constexpr int64_t kThreshold = 1000;  // tensors with more elements are summarized
constexpr int64_t kIndent = 7;        // length of "tensor("

// The host values of a tensor, row-major: doubles for floating dtypes, int64 (exact) otherwise.
struct Values {
  DType dtype;
  std::vector<double> reals;
  std::vector<int64_t> ints;
};

// Appends the row-major index of each element printed: all of them, or the edges of each dim.
void collect_shown(const Shape& shape, const Shape& strides, size_t d, int64_t base, bool summarize,
                   std::vector<int64_t>& out) {
  if (d == shape.size()) {
    out.push_back(base);
    return;
  }
  const int64_t n = shape[d];
  for (int64_t i = 0; i < n; ++i) {
    if (summarize && n > 2 * kEdgeItems && i == kEdgeItems) i = n - kEdgeItems;
    collect_shown(shape, strides, d + 1, base + i * strides[d], summarize, out);
  }
}

class Formatter {
 public:
  // The format is chosen from the shown elements only, as PyTorch does for summarized tensors.
  Formatter(const Values& values, const std::vector<int64_t>& shown) : values_(values) {
    if (!is_floating(values.dtype)) {
      for (int64_t i : shown) width_ = std::max(width_, static_cast<int64_t>(text(i).size()));
      return;
    }
    std::vector<int64_t> nonzero_finite;
    for (int64_t i : shown) {
      const double v = values.reals[i];
      if (std::isfinite(v) && v != 0) nonzero_finite.push_back(i);
    }
    if (nonzero_finite.empty()) return;  // only zeros and non-finite values: integer mode
    double lo = INFINITY, hi = 0;
    bool integral = true;
    for (int64_t i : nonzero_finite) {
      const double v = values.reals[i];
      lo = std::min(lo, std::abs(v));
      hi = std::max(hi, std::abs(v));
      integral = integral && v == std::ceil(v);
    }
    // Digits would be lost in fixed notation for values this far apart, this large or this small.
    if (integral) {
      mode_ = (hi / lo > 1000.0 || hi > 1.0e8) ? Mode::Scientific : Mode::Integer;
    } else {
      mode_ = (hi / lo > 1000.0 || hi > 1.0e8 || lo < 1.0e-4) ? Mode::Scientific : Mode::Fixed;
    }
    for (int64_t i : nonzero_finite)
      width_ = std::max(width_, static_cast<int64_t>(text(i).size()));
  }

  int64_t width() const { return width_; }

  std::string format(int64_t i) const {
    std::string s = text(i);
    if (static_cast<int64_t>(s.size()) < width_) s.insert(0, width_ - s.size(), ' ');
    return s;
  }

 private:
  enum class Mode { Integer, Fixed, Scientific };

  std::string text(int64_t i) const {
    if (!is_floating(values_.dtype)) {
      const int64_t v = values_.ints[i];
      if (values_.dtype == DType::Bool) return v ? "True" : "False";
      return std::to_string(v);
    }
    const double v = values_.reals[i];
    if (std::isnan(v)) return "nan";  // printf could write "-nan"
    if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
    char buf[64];
    switch (mode_) {
      // The trailing dot marks integer-valued floats as floats: "tensor([1., 2.])".
      case Mode::Integer: std::snprintf(buf, sizeof(buf), "%.0f.", v); break;
      case Mode::Fixed: std::snprintf(buf, sizeof(buf), "%.*f", kPrecision, v); break;
      case Mode::Scientific: std::snprintf(buf, sizeof(buf), "%.*e", kPrecision, v); break;
    }
    return buf;
  }

  const Values& values_;
  Mode mode_ = Mode::Integer;
  int64_t width_ = 1;
};

// Formats dim `d` and below of the element block starting at `base`; `indent` is the column of
// the opening bracket.
std::string format_block(const Formatter& f, const Shape& shape, const Shape& strides, size_t d,
                         int64_t base, int64_t indent, bool summarize) {
  const bool last = d + 1 == shape.size();
  const int64_t n = shape[d];
  std::vector<std::string> items;
  for (int64_t i = 0; i < n; ++i) {
    if (summarize && n > 2 * kEdgeItems && i == kEdgeItems) {
      items.push_back(last ? " ..." : "...");
      i = n - kEdgeItems;
    }
    const int64_t at = base + i * strides[d];
    items.push_back(last ? f.format(at)
                         : format_block(f, shape, strides, d + 1, at, indent + 1, summarize));
  }
  std::string out = "[";
  if (last) {
    // As many elements per line as fit in the line width, counting ", " after each.
    const int64_t per_line = std::max<int64_t>(1, (kLineWidth - indent) / (f.width() + 2));
    for (size_t i = 0; i < items.size(); ++i) {
      if (i > 0) out += i % per_line == 0 ? ",\n" + std::string(indent + 1, ' ') : ", ";
      out += items[i];
    }
  } else {
    // Blocks of 2-D and up are set apart by as many newlines as they have dims below.
    const std::string sep =
        "," + std::string(shape.size() - d - 1, '\n') + std::string(indent + 1, ' ');
    for (size_t i = 0; i < items.size(); ++i) out += (i > 0 ? sep : "") + items[i];
  }
  return out + "]";
}

std::string format_values(const Tensor& t) {
  // Values only: printing must not record autograd nodes.
  const Tensor host = t.detach().to(kCPU);
  Values values{t.dtype(), {}, {}};
  if (is_floating(t.dtype())) {
    values.reals = host.to(DType::Float64).contiguous().to_vector<double>();
  } else {
    values.ints = host.to(DType::Int64).contiguous().to_vector<int64_t>();
  }
  const Shape& shape = t.shape();
  const Shape strides = contiguous_strides(shape);
  const bool summarize = t.numel() > kThreshold;
  std::vector<int64_t> shown;
  collect_shown(shape, strides, 0, 0, summarize, shown);
  const Formatter formatter(values, shown);
  if (shape.empty()) return formatter.format(0);
  return format_block(formatter, shape, strides, 0, 0, kIndent, summarize);
}

std::string dtype_suffix(DType dtype) { return "dtype=st." + std::string(dtype_name(dtype)); }

}  // namespace

std::string Tensor::str() const {
  if (!defined()) return "tensor(undefined)";
  std::vector<std::string> suffixes;
  if (!device().is_cpu()) suffixes.push_back("device='" + device().str() + "'");
  std::string body;
  if (numel() == 0) {
    if (dim() != 1) {
      std::string size = "size=(";
      for (int64_t i = 0; i < dim(); ++i) size += (i > 0 ? ", " : "") + std::to_string(shape()[i]);
      suffixes.push_back(size + ")");
    }
    // No values to tell an integer tensor by, so every dtype but the default float one is named.
    if (dtype() != kDefaultFloat) suffixes.push_back(dtype_suffix(dtype()));
    body = "[]";
  } else {
    // As in PyTorch, float32, int64 and bool go unnamed.
    if (dtype() != DType::Float32 && dtype() != DType::Int64 && dtype() != DType::Bool) {
      suffixes.push_back(dtype_suffix(dtype()));
    }
    body = format_values(*this);
  }
  const AutogradMeta* meta = autograd_meta_if_any();
  if (meta != nullptr && meta->grad_fn) {
    suffixes.push_back("grad_fn=<" + meta->grad_fn->name() + ">");
  } else if (requires_grad()) {
    suffixes.push_back("requires_grad=True");
  }

  // A suffix that would pass the line width goes on a line of its own.
  std::string out = "tensor(" + body;
  const size_t newline = out.rfind('\n');
  int64_t last_line = static_cast<int64_t>(out.size()) -
                      (newline == std::string::npos ? -1 : static_cast<int64_t>(newline)) + 1;
  for (const std::string& suffix : suffixes) {
    const auto len = static_cast<int64_t>(suffix.size());
    if (last_line + len + 2 > kLineWidth) {
      out += ",\n" + std::string(kIndent, ' ') + suffix;
      last_line = kIndent + len;
    } else {
      out += ", " + suffix;
      last_line += len + 2;
    }
  }
  return out + ")";
}

std::ostream& operator<<(std::ostream& out, const Tensor& t) { return out << t.str(); }

}  // namespace st
