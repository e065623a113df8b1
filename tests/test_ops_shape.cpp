// Conformance suite, data movement: views (values, strides, shared storage), contiguous/clone,
// cat/stack/split/chunk, and the in-place ops, on every available device and several dtypes.

#include <functional>
#include <numeric>

#include "reference.h"

namespace st_test {
namespace {

// An in-place op applied to a tensor holding `a`, and the values it should leave.
struct InPlaceCase {
  const char* name;
  std::function<Tensor&(Tensor&)> op;
  std::function<NDArray()> ref;
};

class Shapes : public DeviceDTypeTest {
 protected:
  // Distinct values 1, 2, 3, ... (exact in every dtype up to 256 elements).
  static NDArray iota(const Shape& shape, double start = 1) {
    NDArray a(shape);
    for (int64_t i = 0; i < a.numel(); ++i) a[i] = start + static_cast<double>(i);
    return a;
  }
  void run_in_place(const NDArray& a, const std::vector<InPlaceCase>& cases);
  // Random values exact in the dtype under test: grid values for floats, integers otherwise.
  NDArray random_values(const Shape& shape) {
    return is_float(dtype()) ? grid_random(shape, rng) : int_random(shape, rng, -100, 100);
  }
  std::mt19937 rng{5150};
};

// A view op and its reference on NDArrays. Applying the reference to an array of flat positions
// tells which base element each view element aliases, so writes through the view can be checked.
struct ViewCase {
  std::string name;
  Shape base;
  std::function<Tensor(const Tensor&)> view;
  std::function<NDArray(const NDArray&)> ref;
  bool writable = true;
};

// The table's lambdas: a view of Tensor x, and the same view of NDArray a.
#define VIEW(expr) [](const Tensor& x) { return expr; }
#define REF(expr) [](const NDArray& a) { return expr; }

std::vector<ViewCase> view_cases() {
  const Shape s = {2, 3, 4};
  return {
      {"view [6, 4]", s, VIEW(x.view({6, 4})), REF(reshape(a, {6, 4}))},
      {"view [-1]", s, VIEW(x.view({-1})), REF(reshape(a, {24}))},
      {"view [4, -1, 2]", s, VIEW(x.view({4, -1, 2})), REF(reshape(a, {4, 3, 2}))},
      {"reshape [3, 8]", s, VIEW(x.reshape({3, 8})), REF(reshape(a, {3, 8}))},
      {"flatten 1..2", s, VIEW(x.flatten(1)), REF(reshape(a, {2, 12}))},
      {"flatten", s, VIEW(x.flatten()), REF(reshape(a, {24}))},
      {"permute [2, 0, 1]", s, VIEW(x.permute({2, 0, 1})), REF(permute(a, {2, 0, 1}))},
      {"permute [-1, 1, 0]", s, VIEW(x.permute({-1, 1, 0})), REF(permute(a, {2, 1, 0}))},
      {"transpose 0 2", s, VIEW(x.transpose(0, 2)), REF(transpose(a, 0, 2))},
      {"transpose -1 -2", s, VIEW(x.transpose(-1, -2)), REF(transpose(a, 1, 2))},
      {"t", {3, 5}, VIEW(x.t()), REF(transpose(a, 0, 1))},
      {"narrow 1 1 2", s, VIEW(x.narrow(1, 1, 2)), REF(slice(a, 1, 1, 3))},
      {"narrow -1 3 1", s, VIEW(x.narrow(-1, 3, 1)), REF(slice(a, 2, 3, 4))},
      {"narrow negative start", s, VIEW(x.narrow(1, -2, 2)), REF(slice(a, 1, 1, 3))},
      {"slice 2 1: step 2", s, VIEW(x.slice(2, 1, std::nullopt, 2)), REF(slice(a, 2, 1, 4, 2))},
      {"slice 1 ::3", s, VIEW(x.slice(1, std::nullopt, std::nullopt, 3)),
       REF(slice(a, 1, 0, 3, 3))},
      {"slice 0 -1:", s, VIEW(x.slice(0, -1, std::nullopt)), REF(slice(a, 0, 1, 2))},
      {"slice 2 :-1", s, VIEW(x.slice(2, std::nullopt, -1)), REF(slice(a, 2, 0, 3))},
      {"slice 2 -3:100:2 (stop clamped)", s, VIEW(x.slice(2, -3, 100, 2)),
       REF(slice(a, 2, 1, 4, 2))},
      {"slice -10:2 (start clamped)", s, VIEW(x.slice(1, -10, 2)), REF(slice(a, 1, 0, 2))},
      {"slice 2:1 (empty)", s, VIEW(x.slice(1, 2, 1)), REF(slice(a, 1, 2, 2))},
      {"select 1 2", s, VIEW(x.select(1, 2)), REF(select(a, 1, 2))},
      {"select -1 -1", s, VIEW(x.select(-1, -1)), REF(select(a, 2, 3))},
      {"select 0 of 1-D", {5}, VIEW(x.select(0, 3)), REF(select(a, 0, 3))},
      {"unsqueeze 0", s, VIEW(x.unsqueeze(0)), REF(reshape(a, {1, 2, 3, 4}))},
      {"unsqueeze -1", s, VIEW(x.unsqueeze(-1)), REF(reshape(a, {2, 3, 4, 1}))},
      {"unsqueeze 2", s, VIEW(x.unsqueeze(2)), REF(reshape(a, {2, 3, 1, 4}))},
      {"squeeze", {2, 1, 3, 1}, VIEW(x.squeeze()), REF(reshape(a, {2, 3}))},
      {"squeeze 1", {2, 1, 3, 1}, VIEW(x.squeeze(1)), REF(reshape(a, {2, 3, 1}))},
      {"squeeze -1", {2, 1, 3, 1}, VIEW(x.squeeze(-1)), REF(reshape(a, {2, 1, 3}))},
      {"squeeze 0 (size 2: no-op)", {2, 1, 3, 1}, VIEW(x.squeeze(0)), REF(a)},
      {"squeeze of 0-d", {}, VIEW(x.squeeze()), REF(a)},
      {"unsqueeze of 0-d", {}, VIEW(x.unsqueeze(0)), REF(reshape(a, {1}))},
      {"view of empty [-1, 3]", {0, 3}, VIEW(x.view({-1, 3})), REF(a)},
      {"expand of 0-d", {}, VIEW(x.expand({2, 3})), REF(broadcast_to(a, {2, 3})), false},
      {"expand [2, 3, 4] from [3, 1]",
       {3, 1},
       VIEW(x.expand({2, 3, 4})),
       REF(broadcast_to(a, {2, 3, 4})),
       false},
      {"expand [-1, 5]", {3, 1}, VIEW(x.expand({-1, 5})), REF(broadcast_to(a, {3, 5})), false},
      {"transpose then view", s, VIEW(x.transpose(0, 1).view({3, 2, 2, 2})),
       REF(reshape(transpose(a, 0, 1), {3, 2, 2, 2}))},
      {"chain transpose narrow select", s, VIEW(x.transpose(0, 1).narrow(0, 1, 2).select(-1, 3)),
       REF(select(slice(transpose(a, 0, 1), 0, 1, 3), 2, 3))},
      {"chain slice permute slice", s,
       VIEW(x.slice(2, 0, std::nullopt, 2).permute({1, 2, 0}).slice(0, 1, std::nullopt)),
       REF(slice(permute(slice(a, 2, 0, 4, 2), {1, 2, 0}), 0, 1, 3))},
  };
}

TEST_P(Shapes, ViewsHaveTheRightValuesAndShareStorage) {
  for (const auto& c : view_cases()) {
    SCOPED_TRACE(c.name);
    NDArray base = iota(c.base);
    Tensor x = input(base);
    Tensor v = c.view(x);
    EXPECT_EQ(v.dtype(), dtype());
    EXPECT_EQ(v.device(), device());
    EXPECT_EXACT(v, c.ref(base));
    EXPECT_EQ(v.storage().get(), x.storage().get()) << "a view must share its base's storage";
    if (!c.writable) continue;
    // Write distinct values through the view; the base must change exactly where the view aliases
    // it.
    NDArray positions = c.ref(iota(c.base, 0));
    NDArray written = iota(positions.shape, 101);
    v.copy_(input(written));
    NDArray expected = base;
    for (int64_t k = 0; k < positions.numel(); ++k)
      expected[static_cast<int64_t>(positions[k])] = written[k];
    EXPECT_EXACT(x, expected);
    EXPECT_EXACT(v, written);
  }
}

TEST_P(Shapes, StridesAndOffsets) {
  Tensor x = input(iota({2, 3, 4}));
  EXPECT_TRUE(x.is_contiguous());
  EXPECT_EQ(x.strides(), (Shape{12, 4, 1}));
  EXPECT_EQ(x.numel(), 24);
  EXPECT_EQ(x.dim(), 3);
  EXPECT_EQ(x.size(-1), 4);
  EXPECT_EQ(x.stride(0), 12);
  Tensor t = x.transpose(0, 2);
  EXPECT_EQ(t.shape(), (Shape{4, 3, 2}));
  EXPECT_EQ(t.strides(), (Shape{1, 4, 12}));
  EXPECT_FALSE(t.is_contiguous());
  Tensor n = x.narrow(1, 1, 2);
  EXPECT_EQ(n.offset(), x.offset() + 4);
  EXPECT_EQ(n.strides(), (Shape{12, 4, 1}));
  EXPECT_FALSE(n.is_contiguous());
  EXPECT_TRUE(x.narrow(0, 1, 1).is_contiguous());
  Tensor s = x.slice(2, 1, std::nullopt, 2);
  EXPECT_EQ(s.shape(), (Shape{2, 3, 2}));
  EXPECT_EQ(s.strides(), (Shape{12, 4, 2}));
  EXPECT_EQ(s.offset(), x.offset() + 1);
  Tensor sel = x.select(1, 2);
  EXPECT_EQ(sel.shape(), (Shape{2, 4}));
  EXPECT_EQ(sel.strides(), (Shape{12, 1}));
  EXPECT_EQ(sel.offset(), x.offset() + 8);
  Tensor e = input(iota({3, 1})).expand({2, 3, 4});
  EXPECT_EQ(e.shape(), (Shape{2, 3, 4}));
  EXPECT_EQ(e.stride(0), 0);
  EXPECT_EQ(e.stride(2), 0);
  EXPECT_FALSE(e.is_contiguous());
  EXPECT_EQ(x.permute({1, 2, 0}).strides(), (Shape{4, 1, 12}));
}

TEST_P(Shapes, ContiguousAndClone) {
  NDArray base = iota({3, 4});
  Tensor x = input(base);
  Tensor same = x.contiguous();
  EXPECT_EQ(same.storage().get(), x.storage().get())
      << "contiguous() of a contiguous tensor is itself";
  Tensor t = x.t();
  Tensor c = t.contiguous();
  EXPECT_TRUE(c.is_contiguous());
  EXPECT_NE(c.storage().get(), x.storage().get());
  EXPECT_EXACT(c, transpose(base, 0, 1));
  c.fill_(0);
  EXPECT_EXACT(x, base);
  Tensor k = x.clone();
  EXPECT_NE(k.storage().get(), x.storage().get());
  EXPECT_EXACT(k, base);
  k.zero_();
  EXPECT_EXACT(x, base);
  // reshape of a tensor that cannot be viewed copies, with the right values.
  Tensor r = t.reshape({12});
  EXPECT_EXACT(r, reshape(transpose(base, 0, 1), {12}));
  Tensor empty = input(NDArray({0, 3})).t().contiguous();
  EXPECT_EQ(empty.shape(), (Shape{3, 0}));
}

// ---------------------------------------------------------------------------------------------
// cat, stack, split, chunk

TEST_P(Shapes, Cat) {
  struct Case {
    std::vector<Shape> shapes;
    int64_t dim;
  };
  for (const auto& c : std::vector<Case>{{{{2, 3}, {4, 3}}, 0},
                                         {{{2, 3}, {2, 1}, {2, 5}}, 1},
                                         {{{2, 3}, {2, 1}, {2, 5}}, -1},
                                         {{{2, 3}, {0, 3}, {1, 3}}, 0},
                                         {{{2, 3, 4}, {2, 2, 4}}, 1},
                                         {{{2, 3, 4}, {2, 3, 1}}, 2},
                                         {{{5}}, 0},
                                         {{{3}, {4}, {1}}, 0}}) {
    SCOPED_TRACE(shape_str(c.shapes[0]) + " ... dim " + std::to_string(c.dim));
    std::vector<NDArray> parts;
    std::vector<Tensor> tensors;
    const Layout layouts[] = {Layout::Contiguous, Layout::Transposed, Layout::Strided};
    for (size_t i = 0; i < c.shapes.size(); ++i) {
      parts.push_back(random_values(c.shapes[i]));
      tensors.push_back(input(parts.back(), layouts[i % 3]));
    }
    Tensor y = st::cat(tensors, c.dim);
    EXPECT_EQ(y.dtype(), dtype());
    EXPECT_EXACT(y, concat(parts, c.dim));
  }
}

TEST_P(Shapes, Stack) {
  for (int64_t dim : {0, 1, 2, -1, -3}) {
    SCOPED_TRACE("dim " + std::to_string(dim));
    std::vector<NDArray> parts;
    std::vector<Tensor> tensors;
    for (int i = 0; i < 3; ++i) {
      parts.push_back(random_values({2, 3}));
      tensors.push_back(input(parts.back(), i == 1 ? Layout::Transposed : Layout::Contiguous));
    }
    // Reference: unsqueeze each part at dim, then concatenate.
    int64_t d = dim < 0 ? dim + 3 : dim;
    std::vector<NDArray> unsqueezed;
    for (const auto& p : parts) {
      Shape s = p.shape;
      s.insert(s.begin() + d, 1);
      unsqueezed.push_back(reshape(p, s));
    }
    EXPECT_EXACT(st::stack(tensors, dim), concat(unsqueezed, d));
  }
  std::vector<Tensor> scalars = {input(scalar_array(1)), input(scalar_array(2)),
                                 input(scalar_array(3))};
  EXPECT_EXACT(st::stack(scalars), NDArray(Shape{3}, {1, 2, 3}));
}

TEST_P(Shapes, SplitAndChunk) {
  NDArray base = iota({7, 3});
  Tensor x = input(base);
  auto expect_pieces = [&](const std::vector<Tensor>& pieces, const std::vector<int64_t>& sizes,
                           int64_t dim) {
    ASSERT_EQ(pieces.size(), sizes.size());
    int64_t start = 0;
    for (size_t i = 0; i < sizes.size(); ++i) {
      SCOPED_TRACE("piece " + std::to_string(i));
      EXPECT_EXACT(pieces[i], slice(base, dim, start, start + sizes[i]));
      start += sizes[i];
    }
  };
  expect_pieces(st::split(x, 3), {3, 3, 1}, 0);
  expect_pieces(st::split(x, 7), {7}, 0);
  expect_pieces(st::split(x, 10), {7}, 0);
  expect_pieces(st::split(x, Shape{2, 5}), {2, 5}, 0);
  expect_pieces(st::split(x, Shape{1, 0, 6}), {1, 0, 6}, 0);
  expect_pieces(st::split(x, 2, 1), {2, 1}, 1);
  expect_pieces(st::split(x, 1, -1), {1, 1, 1}, 1);
  expect_pieces(st::chunk(x, 3), {3, 3, 1}, 0);
  expect_pieces(st::chunk(x, 7), {1, 1, 1, 1, 1, 1, 1}, 0);
  expect_pieces(st::chunk(x, 2, 1), {2, 1}, 1);
  expect_pieces(st::chunk(x, 5, 1), {1, 1, 1}, 1);  // fewer chunks than asked, as in PyTorch
  NDArray six = iota({6});
  std::vector<Tensor> pieces = st::chunk(input(six), 4);  // ceil(6 / 4) = 2 -> three chunks of 2
  ASSERT_EQ(pieces.size(), 3u);
  for (const auto& p : pieces) EXPECT_EQ(p.shape(), (Shape{2}));

  // Pieces are views: writing one changes the base.
  std::vector<Tensor> parts = st::split(x, 3);
  EXPECT_EQ(parts[1].storage().get(), x.storage().get());
  parts[1].fill_(0);
  NDArray expected = base;
  for (int64_t i = 9; i < 18; ++i) expected[i] = 0;
  EXPECT_EXACT(x, expected);
}

// ---------------------------------------------------------------------------------------------
// In-place ops

TEST_P(Shapes, InPlaceArithmetic) {
  NDArray a = random_values({2, 3}), b = random_values({3});
  NDArray nz = grid_random_away_from_zero({2, 1}, rng, 0.5, 4);
  if (!is_float(dtype())) {
    // Integer tensors: only ops whose results stay integral.
    run_in_place(
        a,
        {
            {"add_ tensor", [&](Tensor& x) -> Tensor& { return x.add_(input(b)); },
             [&] { return zip(a, b, [](double u, double v) { return u + v; }); }},
            {"add_ alpha", [&](Tensor& x) -> Tensor& { return x.add_(input(b), 3); },
             [&] { return zip(a, b, [](double u, double v) { return u + 3 * v; }); }},
            {"add_ scalar", [&](Tensor& x) -> Tensor& { return x.add_(7); },
             [&] { return map(a, [](double u) { return u + 7; }); }},
            {"sub_ tensor", [&](Tensor& x) -> Tensor& { return x.sub_(input(b)); },
             [&] { return zip(a, b, [](double u, double v) { return u - v; }); }},
            {"mul_ tensor", [&](Tensor& x) -> Tensor& { return x.mul_(input(b)); },
             [&] { return zip(a, b, [](double u, double v) { return u * v; }); }},
            {"mul_ scalar", [&](Tensor& x) -> Tensor& { return x.mul_(-2); },
             [&] { return map(a, [](double u) { return -2 * u; }); }},
            {"neg_", [&](Tensor& x) -> Tensor& { return x.neg_(); },
             [&] { return map(a, [](double u) { return -u; }); }},
            {"relu_", [&](Tensor& x) -> Tensor& { return x.relu_(); },
             [&] { return map(a, [](double u) { return u > 0 ? u : 0.0; }); }},
            {"clamp_", [&](Tensor& x) -> Tensor& { return x.clamp_(-10, 20); },
             [&] { return map(a, [](double u) { return std::min(std::max(u, -10.0), 20.0); }); }},
            {"fill_", [&](Tensor& x) -> Tensor& { return x.fill_(-3); },
             [&] {
               return NDArray({2, 3}, -3.0);
             }},
            {"zero_", [&](Tensor& x) -> Tensor& { return x.zero_(); },
             [&] {
               return NDArray({2, 3}, 0.0);
             }},
            {"copy_ broadcast", [&](Tensor& x) -> Tensor& { return x.copy_(input(b)); },
             [&] {
               return broadcast_to(b, {2, 3});
             }},
            {"copy_ from float64",
             [&](Tensor& x) -> Tensor& {
               return x.copy_(make_tensor(b, DType::Float64, device()));
             },
             [&] {
               return broadcast_to(b, {2, 3});
             }},
        });
    return;
  }
  run_in_place(
      a,
      {
          {"add_ tensor", [&](Tensor& x) -> Tensor& { return x.add_(input(b)); },
           [&] { return zip(a, b, [](double u, double v) { return u + v; }); }},
          {"add_ alpha", [&](Tensor& x) -> Tensor& { return x.add_(input(b), 2); },
           [&] { return zip(a, b, [](double u, double v) { return u + 2 * v; }); }},
          {"add_ scalar", [&](Tensor& x) -> Tensor& { return x.add_(1.5); },
           [&] { return map(a, [](double u) { return u + 1.5; }); }},
          {"sub_ tensor", [&](Tensor& x) -> Tensor& { return x.sub_(input(b)); },
           [&] { return zip(a, b, [](double u, double v) { return u - v; }); }},
          {"sub_ scalar", [&](Tensor& x) -> Tensor& { return x.sub_(2); },
           [&] { return map(a, [](double u) { return u - 2; }); }},
          {"mul_ tensor", [&](Tensor& x) -> Tensor& { return x.mul_(input(b)); },
           [&] { return zip(a, b, [](double u, double v) { return u * v; }); }},
          {"mul_ scalar", [&](Tensor& x) -> Tensor& { return x.mul_(-0.5); },
           [&] { return map(a, [](double u) { return -0.5 * u; }); }},
          {"div_ tensor", [&](Tensor& x) -> Tensor& { return x.div_(input(nz)); },
           [&] { return zip(a, nz, [](double u, double v) { return u / v; }); }},
          {"div_ scalar", [&](Tensor& x) -> Tensor& { return x.div_(4); },
           [&] { return map(a, [](double u) { return u / 4; }); }},
          {"neg_", [&](Tensor& x) -> Tensor& { return x.neg_(); },
           [&] { return map(a, [](double u) { return -u; }); }},
          {"exp_", [&](Tensor& x) -> Tensor& { return x.exp_(); },
           [&] { return map(a, [](double u) { return std::exp(u); }); }},
          {"log_", [&](Tensor& x) -> Tensor& { return x.abs_().add_(0.5).log_(); },
           [&] { return map(a, [](double u) { return std::log(std::abs(u) + 0.5); }); }},
          {"sqrt_", [&](Tensor& x) -> Tensor& { return x.abs_().sqrt_(); },
           [&] { return map(a, [](double u) { return std::sqrt(std::abs(u)); }); }},
          {"tanh_", [&](Tensor& x) -> Tensor& { return x.tanh_(); },
           [&] { return map(a, [](double u) { return std::tanh(u); }); }},
          {"sigmoid_", [&](Tensor& x) -> Tensor& { return x.sigmoid_(); },
           [&] { return map(a, [](double u) { return 1 / (1 + std::exp(-u)); }); }},
          {"pow_", [&](Tensor& x) -> Tensor& { return x.pow_(3); },
           [&] { return map(a, [](double u) { return u * u * u; }); }},
          {"relu_", [&](Tensor& x) -> Tensor& { return x.relu_(); },
           [&] { return map(a, [](double u) { return u > 0 ? u : 0.0; }); }},
          {"clamp_", [&](Tensor& x) -> Tensor& { return x.clamp_(-1.0, 1.0); },
           [&] { return map(a, [](double u) { return std::min(std::max(u, -1.0), 1.0); }); }},
          {"clamp_ max only", [&](Tensor& x) -> Tensor& { return x.clamp_(std::nullopt, 0.5); },
           [&] { return map(a, [](double u) { return std::min(u, 0.5); }); }},
          {"fill_", [&](Tensor& x) -> Tensor& { return x.fill_(2.5); },
           [&] {
             return NDArray({2, 3}, 2.5);
           }},
          {"zero_", [&](Tensor& x) -> Tensor& { return x.zero_(); },
           [&] {
             return NDArray({2, 3}, 0.0);
           }},
          {"copy_ broadcast", [&](Tensor& x) -> Tensor& { return x.copy_(input(b)); },
           [&] {
             return broadcast_to(b, {2, 3});
           }},
          {"copy_ from float64",
           [&](Tensor& x) -> Tensor& { return x.copy_(make_tensor(b, DType::Float64, device())); },
           [&] {
             return broadcast_to(b, {2, 3});
           }},
          {"copy_ from the cpu",
           [&](Tensor& x) -> Tensor& { return x.copy_(make_tensor(a, DType::Float32)); },
           [&] { return a; }},
      });
}

void Shapes::run_in_place(const NDArray& a, const std::vector<InPlaceCase>& cases) {
  Tolerance tol = tolerance_for(dtype());
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    for (Layout layout : {Layout::Contiguous, Layout::Transposed}) {
      SCOPED_TRACE(layout_name(layout));
      Tensor x = input(a, layout);
      auto storage = x.storage();
      uint64_t version = storage->version();
      Tensor& result = c.op(x);
      EXPECT_EQ(&result, &x) << "in-place ops return *this";
      EXPECT_EQ(x.storage().get(), storage.get());
      EXPECT_GT(storage->version(), version) << "in-place ops bump the storage version";
      EXPECT_EQ(x.dtype(), dtype());
      EXPECT_CLOSE(x, c.ref(), tol);
    }
  }
}

TEST_P(Shapes, InPlaceThroughAView) {
  NDArray base = iota({4, 5});
  Tensor x = input(base);
  x.slice(1, 1, std::nullopt, 2).fill_(0);
  x.t().narrow(0, 0, 1).add_(input(NDArray(Shape{4}, 100.0)));
  NDArray expected = base;
  for (int64_t r = 0; r < 4; ++r) {
    expected[r * 5 + 1] = expected[r * 5 + 3] = 0;
    expected[r * 5 + 0] += 100;
  }
  EXPECT_EXACT(x, expected);
}

TEST_P(Shapes, CopyBetweenNonContiguousTensorsConverts) {
  NDArray src = random_values({4, 3});
  NDArray dst = random_values({3, 4});
  Tensor d = input(dst, Layout::Transposed);  // a [3, 4] view over [4, 3] memory
  d.t().copy_(make_tensor(src, DType::Float64, device(), Layout::Strided));
  EXPECT_EXACT(d, transpose(src, 0, 1));
  // Into a strided slice: only every other element changes.
  NDArray base = random_values({2, 6});
  Tensor b = input(base);
  NDArray v = random_values({2, 3});
  b.slice(1, 0, std::nullopt, 2).copy_(make_tensor(v, DType::Float32, device()));
  NDArray expected = base;
  for (int64_t r = 0; r < 2; ++r) {
    for (int64_t c = 0; c < 3; ++c) expected[r * 6 + 2 * c] = v[r * 3 + c];
  }
  EXPECT_EXACT(b, expected);
}

// Contiguous copies of views with the last two dims swapped, with and without a batch dim, at
// sizes that leave partial tiles.
TEST_P(Shapes, TransposedCopy) {
  for (const Shape& shape : {Shape{130, 67}, Shape{3, 70, 45}, Shape{1, 33}}) {
    SCOPED_TRACE(shape_str(shape));
    NDArray a = random_values(shape);
    const int64_t last = static_cast<int64_t>(shape.size()) - 1;
    EXPECT_EXACT(input(a).transpose(last - 1, last).contiguous(), transpose(a, last - 1, last));
  }
}

// Dense same-dtype copies whose ends sit at every alignment and whose lengths leave a tail past
// any vector width: only the addressed elements change.
TEST_P(Shapes, DenseCopyAtEveryOffsetAndLength) {
  for (int64_t src_at : {0, 1, 3}) {
    for (int64_t dst_at : {0, 2, 5}) {
      for (int64_t n : {1, 7, 64, 1027}) {
        SCOPED_TRACE("from " + std::to_string(src_at) + " to " + std::to_string(dst_at) + ", " +
                     std::to_string(n) + " elements");
        NDArray src = random_values({n + 8}), dst = random_values({n + 8});
        Tensor d = input(dst);
        d.narrow(0, dst_at, n).copy_(input(src).narrow(0, src_at, n));
        NDArray expected = dst;
        for (int64_t i = 0; i < n; ++i) expected[dst_at + i] = src[src_at + i];
        EXPECT_EXACT(d, expected);
      }
    }
  }
}

TEST_P(Shapes, CopyBetweenOverlappingViewsReadsTheSourceFirst) {
  // As NumPy: the result is as if the source were read whole before anything is written.
  NDArray a = iota({8}, 1);
  Tensor x = input(a);
  x.slice(0, 1, std::nullopt).copy_(x.slice(0, 0, 7));
  NDArray expected = a;
  for (int64_t i = 1; i < 8; ++i) expected[i] = a[i - 1];
  EXPECT_EXACT(x, expected);
  // A tensor copied onto itself, through another handle of the same storage, keeps its values.
  Tensor y = input(a);
  y.copy_(y.detach());
  EXPECT_EXACT(y, a);
  Tensor m = input(iota({3, 3}, 1));
  m.copy_(m.t());
  EXPECT_EXACT(m, transpose(iota({3, 3}, 1), 0, 1));
}

TEST_P(Shapes, ItemAndDeviceRoundTrip) {
  NDArray a = iota({2, 3}, 3);
  Tensor x = input(a);
  EXPECT_EQ(x.select(0, 1).select(0, 2).item<double>(), 8.0);
  EXPECT_EQ(input(scalar_array(5)).item<int64_t>(), 5);
  EXPECT_EQ(input(NDArray({1, 1}, 7.0)).item<double>(), 7.0);
  Tensor host = x.to(st::kCPU);
  EXPECT_EQ(host.device(), st::kCPU);
  EXPECT_EXACT(host.to(device()), a);
  Tensor back = make_tensor(a, dtype()).to(device());
  EXPECT_EQ(back.device(), device());
  EXPECT_EXACT(back, a);
}

INSTANTIATE_TEST_SUITE_P(Ops, Shapes,
                         ::testing::Combine(::testing::ValuesIn(st::available_devices()),
                                            ::testing::Values(DType::Float32, DType::Float64,
                                                              DType::Float16, DType::BFloat16,
                                                              DType::Int32, DType::Int64)),
                         DeviceDTypeName());

}  // namespace
}  // namespace st_test
