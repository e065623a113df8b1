// Core: dtypes and their conversions, Scalar, Device, shape helpers, tensor metadata, factories,
// random numbers and printing.

#include <cmath>
#include <cstring>
#include <set>
#include <sstream>

#include "reference.h"

namespace st_test {
namespace {

using st::BFloat16;
using st::Half;
using st::Scalar;

// ---------------------------------------------------------------------------------------------
// DType

TEST(DTypeTest, SizesAndNames) {
  const std::vector<std::tuple<DType, size_t, const char*, bool, bool>> table = {
      {DType::Float32, 4, "float32", true, false}, {DType::Float64, 8, "float64", true, false},
      {DType::Float16, 2, "float16", true, false}, {DType::BFloat16, 2, "bfloat16", true, false},
      {DType::Int32, 4, "int32", false, true},     {DType::Int64, 8, "int64", false, true},
      {DType::Bool, 1, "bool", false, true},
  };
  for (const auto& [dtype, size, name, floating, integral] : table) {
    SCOPED_TRACE(name);
    EXPECT_EQ(st::dtype_size(dtype), size);
    EXPECT_EQ(st::dtype_name(dtype), name);
    EXPECT_EQ(st::is_floating(dtype), floating);
    EXPECT_EQ(st::is_integral(dtype), integral);
    std::ostringstream out;
    out << dtype;
    EXPECT_EQ(out.str(), name);
  }
  EXPECT_EQ(st::kDefaultFloat, DType::Float32);
}

TEST(DTypeTest, PromotionLattice) {
  // The table PyTorch's torch.promote_types gives, written out by hand.
  using D = DType;
  const D f32 = D::Float32, f64 = D::Float64, f16 = D::Float16, bf16 = D::BFloat16, i32 = D::Int32,
          i64 = D::Int64, b = D::Bool;
  const std::vector<D> order = {b, i32, i64, f16, bf16, f32, f64};
  const D expected[7][7] = {
      /*          b     i32   i64   f16   bf16  f32   f64 */
      /* b    */ {b, i32, i64, f16, bf16, f32, f64},
      /* i32  */ {i32, i32, i64, f16, bf16, f32, f64},
      /* i64  */ {i64, i64, i64, f16, bf16, f32, f64},
      /* f16  */ {f16, f16, f16, f16, f32, f32, f64},
      /* bf16 */ {bf16, bf16, bf16, f32, bf16, f32, f64},
      /* f32  */ {f32, f32, f32, f32, f32, f32, f64},
      /* f64  */ {f64, f64, f64, f64, f64, f64, f64},
  };
  for (size_t i = 0; i < order.size(); ++i) {
    for (size_t j = 0; j < order.size(); ++j) {
      EXPECT_EQ(st::promote_types(order[i], order[j]), expected[i][j])
          << order[i] << " with " << order[j];
    }
  }
}

TEST(DTypeTest, HalfRoundsToNearestEven) {
  auto bits = [](float f) { return Half(f).bits; };
  EXPECT_EQ(bits(1.0f), 0x3C00);
  EXPECT_EQ(bits(-2.0f), 0xC000);
  EXPECT_EQ(bits(65504.0f), 0x7BFF);                          // largest finite
  EXPECT_EQ(bits(65520.0f), 0x7C00);                          // halfway to 2^16: rounds to inf
  EXPECT_EQ(bits(1.0f + std::ldexp(1.0f, -11)), 0x3C00);      // tie: to even (1.0)
  EXPECT_EQ(bits(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3C02);  // tie: to even (1 + 2^-9)
  EXPECT_EQ(bits(std::ldexp(1.0f, -24)), 0x0001);             // smallest subnormal
  EXPECT_EQ(bits(std::ldexp(1.0f, -26)), 0x0000);             // below half of it
  EXPECT_EQ(bits(3 * std::ldexp(1.0f, -26)), 0x0001);         // above half of it
  EXPECT_EQ(bits(INFINITY), 0x7C00);
  EXPECT_TRUE(std::isnan(static_cast<float>(Half(NAN))));
  EXPECT_EQ(static_cast<float>(Half(0.333251953125f)), 0.333251953125f);  // exact in f16
  Half h;
  h.bits = 0x3555;
  EXPECT_EQ(static_cast<float>(h), 0.333251953125f);
}

TEST(DTypeTest, BFloat16RoundsToNearestEven) {
  auto bits = [](float f) { return BFloat16(f).bits; };
  EXPECT_EQ(bits(1.0f), 0x3F80);
  EXPECT_EQ(bits(1.0f + std::ldexp(1.0f, -8)), 0x3F80);      // tie: to even (1.0)
  EXPECT_EQ(bits(1.0f + 3 * std::ldexp(1.0f, -8)), 0x3F82);  // tie: to even (1 + 2^-6)
  EXPECT_EQ(bits(1.0f + std::ldexp(1.0f, -8) + std::ldexp(1.0f, -16)), 0x3F81);  // above the tie
  EXPECT_EQ(bits(-3.0f), 0xC040);
  EXPECT_TRUE(std::isnan(static_cast<float>(BFloat16(NAN))));
}

TEST(ScalarTest, KindsAndDtypes) {
  EXPECT_EQ(Scalar(2.5).kind(), Scalar::Kind::Float);
  EXPECT_EQ(Scalar(2.5f).dtype(), DType::Float32);
  EXPECT_EQ(Scalar(2.5).dtype(), DType::Float32);
  EXPECT_EQ(Scalar(3).kind(), Scalar::Kind::Int);
  EXPECT_EQ(Scalar(int64_t{3}).dtype(), DType::Int64);
  EXPECT_EQ(Scalar(true).kind(), Scalar::Kind::Bool);
  EXPECT_EQ(Scalar(true).dtype(), DType::Bool);
  EXPECT_EQ(Scalar(-7).to_double(), -7.0);
  EXPECT_EQ(Scalar(2.75).to_int(), 2);
  EXPECT_EQ(Scalar(2.75).to<float>(), 2.75f);
  EXPECT_TRUE(Scalar(0.5).to<bool>());
  EXPECT_FALSE(Scalar(0).to<bool>());
}

// ---------------------------------------------------------------------------------------------
// Device

TEST(DeviceTest, Parsing) {
  EXPECT_EQ(Device("cpu"), st::kCPU);
  EXPECT_EQ(Device("cpu").str(), "cpu");
  Device cuda1("cuda:1");
  EXPECT_EQ(cuda1.type, st::DeviceType::CUDA);
  EXPECT_EQ(cuda1.index, 1);
  EXPECT_EQ(cuda1.str(), "cuda:1");
  EXPECT_EQ(Device("cuda"), Device(st::DeviceType::CUDA, 0));
  EXPECT_EQ(Device("vulkan:0").type, st::DeviceType::Vulkan);
  std::ostringstream out;
  out << Device("cuda:2");
  EXPECT_EQ(out.str(), "cuda:2");
  EXPECT_EQ(st::device_type_name(st::DeviceType::CPU), "cpu");
  EXPECT_EQ(st::device_type_name(st::DeviceType::CUDA), "cuda");
  EXPECT_EQ(st::device_type_name(st::DeviceType::Vulkan), "vulkan");
  EXPECT_NE(Device("cuda:0"), Device("cuda:1"));
}

TEST(DeviceTest, AvailableDevicesMatchBackends) {
  std::vector<std::string> names = st::backends();
  std::vector<Device> devices = st::available_devices();
  ASSERT_FALSE(devices.empty());
  EXPECT_EQ(devices[0], st::kCPU);
  EXPECT_NE(std::find(names.begin(), names.end(), "cpu"), names.end());
  EXPECT_EQ(devices.size(), names.size());
  std::set<st::DeviceType> seen;
  for (const auto& d : devices) {
    EXPECT_TRUE(seen.insert(d.type).second) << "one device per backend";
    EXPECT_NE(std::find(names.begin(), names.end(), std::string(st::device_type_name(d.type))),
              names.end());
  }
}

// ---------------------------------------------------------------------------------------------
// Shape helpers

TEST(ShapeTest, Helpers) {
  using st::operator<<;  // Shape is a std::vector: argument-dependent lookup does not reach st.
  std::ostringstream out;
  out << Shape{2, 3};
  EXPECT_EQ(out.str(), "[2, 3]");
  std::ostringstream empty;
  empty << Shape{};
  EXPECT_EQ(empty.str(), "[]");
  EXPECT_EQ(st::shape_numel({2, 3, 4}), 24);
  EXPECT_EQ(st::shape_numel({}), 1);
  EXPECT_EQ(st::shape_numel({3, 0}), 0);
  EXPECT_EQ(st::contiguous_strides({2, 3, 4}), (Shape{12, 4, 1}));
  EXPECT_EQ(st::contiguous_strides({}), (Shape{}));
  EXPECT_EQ(st::wrap_dim(-1, 3, "test"), 2);
  EXPECT_EQ(st::wrap_dim(-3, 3, "test"), 0);
  EXPECT_EQ(st::wrap_dim(2, 3, "test"), 2);
  EXPECT_EQ(st::broadcast_shapes({3, 1, 5}, {4, 1}), (Shape{3, 4, 5}));
  EXPECT_EQ(st::broadcast_shapes({}, {2, 3}), (Shape{2, 3}));
  EXPECT_EQ(st::broadcast_shapes({0, 1}, {1, 3}), (Shape{0, 3}));
}

// ---------------------------------------------------------------------------------------------
// Tensors on each device

class TensorCore : public ::testing::TestWithParam<Device> {
 protected:
  Device device() const { return GetParam(); }
  st::TensorOptions options(DType dtype) const { return {.dtype = dtype, .device = device()}; }
};

TEST_P(TensorCore, Metadata) {
  Tensor x = st::zeros({2, 3}, options(DType::Float16));
  EXPECT_TRUE(x.defined());
  EXPECT_EQ(x.shape(), (Shape{2, 3}));
  EXPECT_EQ(x.dim(), 2);
  EXPECT_EQ(x.numel(), 6);
  EXPECT_EQ(x.itemsize(), 2u);
  EXPECT_EQ(x.nbytes(), 12u);
  EXPECT_EQ(x.dtype(), DType::Float16);
  EXPECT_EQ(x.device(), device());
  EXPECT_TRUE(x.is_contiguous());
  EXPECT_FALSE(x.requires_grad());
  EXPECT_TRUE(x.is_leaf());
  Tensor handle = x;
  EXPECT_TRUE(handle.is_same(x));
  EXPECT_FALSE(x.clone().is_same(x));
  EXPECT_FALSE(Tensor().defined());
  Tensor s = st::scalar_tensor(2.5, options(DType::Float64));
  EXPECT_EQ(s.dim(), 0);
  EXPECT_EQ(s.numel(), 1);
  EXPECT_EQ(s.item<double>(), 2.5);
}

TEST_P(TensorCore, Factories) {
  for (DType dtype : {DType::Float32, DType::Float64, DType::Float16, DType::BFloat16, DType::Int32,
                      DType::Int64}) {
    SCOPED_TRACE(st::dtype_name(dtype));
    Tensor z = st::zeros({2, 3}, options(dtype));
    EXPECT_EQ(z.dtype(), dtype);
    EXPECT_EQ(z.device(), device());
    EXPECT_EXACT(z, NDArray({2, 3}, 0.0));
    EXPECT_EXACT(st::ones({4}, options(dtype)), NDArray({4}, 1.0));
    EXPECT_EXACT(st::full({3, 1}, 7, options(dtype)), NDArray({3, 1}, 7.0));
    Tensor e = st::empty({0, 5}, options(dtype));
    EXPECT_EQ(e.shape(), (Shape{0, 5}));
    EXPECT_EQ(st::empty({3, 2}, options(dtype)).shape(), (Shape{3, 2}));
    EXPECT_EXACT(st::zeros_like(st::ones({2, 2}, options(dtype))), NDArray({2, 2}, 0.0));
    Tensor ol = st::ones_like(z);
    EXPECT_EQ(ol.dtype(), dtype);
    EXPECT_EQ(ol.device(), device());
    EXPECT_EXACT(ol, NDArray({2, 3}, 1.0));
    EXPECT_EXACT(st::full_like(z, 3), NDArray({2, 3}, 3.0));
    EXPECT_EQ(st::empty_like(z).shape(), z.shape());
    EXPECT_EQ(st::zeros({}, options(dtype)).dim(), 0);
  }
  EXPECT_EXACT(st::full({2}, 2.5, options(DType::BFloat16)), NDArray({2}, 2.5));
  EXPECT_EXACT(st::full({2}, true, options(DType::Bool)), NDArray({2}, 1.0));
  EXPECT_EQ(st::zeros({2}).dtype(), DType::Float32);  // the default dtype
  EXPECT_EQ(st::zeros({2}).device(), st::kCPU);
  Tensor g = st::zeros({2}, {.dtype = DType::Float32, .device = device(), .requires_grad = true});
  EXPECT_TRUE(g.requires_grad());
  EXPECT_TRUE(g.is_leaf());
}

TEST_P(TensorCore, FromBufferAndTensor) {
  Tensor f = st::tensor<float>({1.5f, -2.0f, 3.25f}).to(device());
  EXPECT_EQ(f.dtype(), DType::Float32);
  EXPECT_EXACT(f, NDArray({3}, {1.5, -2.0, 3.25}));
  Tensor i = st::tensor<int64_t>({4, -5}).to(device());
  EXPECT_EQ(i.dtype(), DType::Int64);
  EXPECT_EXACT(i, NDArray({2}, {4, -5}));
  const int32_t raw[6] = {1, 2, 3, 4, 5, 6};
  Tensor m = st::from_buffer<int32_t>(raw, {2, 3}, {.dtype = DType::Int32, .device = device()});
  EXPECT_EQ(m.device(), device());
  EXPECT_EXACT(m, NDArray({2, 3}, {1, 2, 3, 4, 5, 6}));
  const double d[2] = {0.1, 0.2};
  Tensor v = st::from_buffer<double>(d, {2}, {.dtype = DType::Float64, .device = device()});
  std::vector<double> back = to_f64(v);
  EXPECT_EQ(back, (std::vector<double>{0.1, 0.2}));
}

TEST_P(TensorCore, Arange) {
  auto opts = [&](DType dtype) { return std::optional<st::TensorOptions>(options(dtype)); };
  Tensor a = st::arange(5, opts(DType::Int64));
  EXPECT_EQ(a.dtype(), DType::Int64);
  EXPECT_EXACT(a, NDArray({5}, {0, 1, 2, 3, 4}));
  EXPECT_EQ(st::arange(5).dtype(), DType::Int64);
  EXPECT_EXACT(st::arange(5), NDArray({5}, {0, 1, 2, 3, 4}));
  Tensor f = st::arange(2.5);
  EXPECT_EQ(f.dtype(), DType::Float32);
  EXPECT_EXACT(f, NDArray({3}, {0, 1, 2}));
  EXPECT_EXACT(st::arange(1, 10, 3), NDArray({3}, {1, 4, 7}));
  Tensor q = st::arange(0, 1, 0.25, opts(DType::Float32));
  EXPECT_EQ(q.dtype(), DType::Float32);
  EXPECT_EXACT(q, NDArray({4}, {0, 0.25, 0.5, 0.75}));
  EXPECT_EXACT(st::arange(10, 0, -3, opts(DType::Int32)), NDArray({4}, {10, 7, 4, 1}));
  Tensor d = st::arange(-1, 2, 1, opts(DType::Float64));
  EXPECT_EQ(d.dtype(), DType::Float64);
  EXPECT_EQ(d.device(), device());
  EXPECT_EXACT(d, NDArray({3}, {-1, 0, 1}));
  EXPECT_EQ(st::arange(0).shape(), (Shape{0}));
  EXPECT_EQ(st::arange(0, 1, 0.1).numel(), 10);  // ceil((end - start) / step)
  EXPECT_EQ(st::arange(0, 10, 3).numel(), 4);
  EXPECT_EQ(st::arange(5, 0, -2).numel(), 3);
  Tensor fractional = st::arange(1, 2.5);
  EXPECT_EQ(fractional.dtype(), DType::Float32);
  EXPECT_EXACT(fractional, NDArray({2}, {1, 2}));
  EXPECT_EXACT(st::arange(0, 1000, 1, opts(DType::BFloat16)).slice(0, 0, 5),
               NDArray({5}, {0, 1, 2, 3, 4}));
}

TEST_P(TensorCore, RandIsUniformInUnitInterval) {
  for (DType dtype : float_dtypes()) {
    SCOPED_TRACE(st::dtype_name(dtype));
    st::manual_seed(2024);
    Tensor r = st::rand({100000}, options(dtype));
    EXPECT_EQ(r.dtype(), dtype);
    EXPECT_EQ(r.device(), device());
    std::vector<double> v = to_f64(r);
    double lo = *std::min_element(v.begin(), v.end()), hi = *std::max_element(v.begin(), v.end());
    EXPECT_GE(lo, 0.0);
    EXPECT_LT(hi, 1.0);
    double mean = 0, sq = 0;
    for (double x : v) mean += x;
    mean /= v.size();
    for (double x : v) sq += (x - mean) * (x - mean);
    double var = sq / v.size();
    EXPECT_NEAR(mean, 0.5, 0.01);         // standard error 0.0009
    EXPECT_NEAR(var, 1.0 / 12.0, 0.004);  // standard error 0.0002
    EXPECT_LT(lo, 0.01);
    EXPECT_GT(hi, 0.99);
  }
}

TEST_P(TensorCore, RandnIsStandardNormal) {
  for (DType dtype : float_dtypes()) {
    SCOPED_TRACE(st::dtype_name(dtype));
    st::manual_seed(7);
    std::vector<double> v = to_f64(st::randn({100000}, options(dtype)));
    double mean = 0, sq = 0;
    for (double x : v) mean += x;
    mean /= v.size();
    for (double x : v) sq += (x - mean) * (x - mean);
    double sd = std::sqrt(sq / v.size());
    EXPECT_NEAR(mean, 0.0, 0.02);  // standard error 0.003
    EXPECT_NEAR(sd, 1.0, 0.02);    // standard error 0.0022
    int64_t beyond2 = std::count_if(v.begin(), v.end(), [](double x) { return std::fabs(x) > 2; });
    EXPECT_NEAR(beyond2 / 100000.0, 0.0455, 0.005);  // a normal tail, not a uniform one
  }
}

TEST_P(TensorCore, SeedsReproduce) {
  for (DType dtype : float_dtypes()) {
    SCOPED_TRACE(st::dtype_name(dtype));
    st::manual_seed(11);
    std::vector<double> a = to_f64(st::rand({1000}, options(dtype)));
    std::vector<double> b = to_f64(st::rand({1000}, options(dtype)));
    st::manual_seed(11);
    std::vector<double> c = to_f64(st::rand({1000}, options(dtype)));
    st::manual_seed(12);
    std::vector<double> d = to_f64(st::rand({1000}, options(dtype)));
    EXPECT_EQ(a, c);
    EXPECT_NE(a, b) << "successive draws continue the stream";
    EXPECT_NE(a, d);
    st::manual_seed(11);
    std::vector<double> n1 = to_f64(st::randn({333}, options(dtype)));
    st::manual_seed(11);
    std::vector<double> n2 = to_f64(st::randn({333}, options(dtype)));
    EXPECT_EQ(n1, n2);
  }
  Tensor like = st::rand_like(st::zeros({2, 3}, options(DType::Float64)));
  EXPECT_EQ(like.shape(), (Shape{2, 3}));
  EXPECT_EQ(like.dtype(), DType::Float64);
  EXPECT_EQ(like.device(), device());
  EXPECT_EQ(st::randn_like(like).shape(), (Shape{2, 3}));
}

TEST_P(TensorCore, SameSeedSameNumbersOnEveryDevice) {
  // Every backend draws the same Philox stream for a seed (backend.h).
  if (device() == st::kCPU) GTEST_SKIP() << "compares another device with the cpu";
  st::manual_seed(99);
  std::vector<double> cpu = to_f64(st::rand({4096}));
  st::manual_seed(99);
  std::vector<double> here = to_f64(st::rand({4096}, options(DType::Float32)));
  ASSERT_EQ(cpu.size(), here.size());
  for (size_t i = 0; i < cpu.size(); ++i) ASSERT_NEAR(cpu[i], here[i], 1e-6) << "element " << i;
}

TEST_P(TensorCore, DtypeConversions) {
  auto convert = [&](std::vector<double> values, DType to) {
    NDArray a(Shape{static_cast<int64_t>(values.size())}, values);
    return to_f64(make_tensor(a, DType::Float32, device()).to(to));
  };
  const double e8 = std::ldexp(1.0, -8), e11 = std::ldexp(1.0, -11), e24 = std::ldexp(1.0, -24);
  EXPECT_EQ(
      convert({1 + e8, 1 + 3 * e8, 1 + e8 + std::ldexp(1.0, -16), -(1 + e8), 3.0}, DType::BFloat16),
      (std::vector<double>{1.0, 1 + 4 * e8, 1 + 2 * e8, -1.0, 3.0}));
  EXPECT_EQ(convert({1 + e11, 1 + 3 * e11, 65504, e24, std::ldexp(1.0, -26), -2.5}, DType::Float16),
            (std::vector<double>{1.0, 1 + 4 * e11, 65504, e24, 0.0, -2.5}));
  std::vector<double> inf = convert({65520, -1e6}, DType::Float16);
  EXPECT_EQ(inf[0], INFINITY);
  EXPECT_EQ(inf[1], -INFINITY);
  EXPECT_EQ(convert({2.75, -2.75, 0.5, -0.5, 100}, DType::Int32),
            (std::vector<double>{2, -2, 0, 0, 100}));
  EXPECT_EQ(convert({2.75, -2.75, 1e9}, DType::Int64), (std::vector<double>{2, -2, 1e9}));
  EXPECT_EQ(convert({0.0, -0.5, 2.0, NAN}, DType::Bool), (std::vector<double>{0, 1, 1, 1}));
  // float64 -> float32 rounds to nearest even.
  NDArray d(Shape{3},
            {1 + std::ldexp(1.0, -30), 1 + std::ldexp(1.0, -24) + std::ldexp(1.0, -40), 0.1});
  std::vector<double> f = to_f64(make_tensor(d, DType::Float64, device()).to(DType::Float32));
  EXPECT_EQ(f, (std::vector<double>{1.0, 1 + std::ldexp(1.0, -23), static_cast<double>(0.1f)}));
  // int64 -> float32: 2^24 + 1 is a tie between 2^24 and 2^24 + 2.
  std::vector<int64_t> big = {(int64_t{1} << 24) + 1, (int64_t{1} << 24) + 3};
  Tensor i = st::from_buffer<int64_t>(big.data(), {2}, {DType::Int64}).to(device());
  EXPECT_EQ(to_f64(i.to(DType::Float32)), (std::vector<double>{16777216.0, 16777220.0}));
  // bool -> float and int.
  Tensor b = make_tensor(NDArray(Shape{2}, {1, 0}), DType::Bool, device());
  EXPECT_EQ(to_f64(b.to(DType::Float16)), (std::vector<double>{1, 0}));
  EXPECT_EQ(to_f64(b.to(DType::Int32)), (std::vector<double>{1, 0}));
}

TEST_P(TensorCore, RoundTripsAreLossless) {
  std::mt19937 rng(3);
  NDArray a = uniform_random({257}, rng, -1000, 1000);
  // f32 values survive f32 -> f64 -> f32 exactly.
  Tensor f32 = make_tensor(a, DType::Float32, device());
  std::vector<double> once = to_f64(f32);
  EXPECT_EQ(to_f64(f32.to(DType::Float64).to(DType::Float32)), once);
  // Every f16 and bf16 value survives a trip through f32 and f64.
  for (DType small : {DType::Float16, DType::BFloat16}) {
    Tensor s = f32.to(small);
    std::vector<double> v = to_f64(s);
    EXPECT_EQ(to_f64(s.to(DType::Float32).to(DType::Float64).to(small)), v);
  }
  Tensor i = make_tensor(int_random({100}, rng, -100000, 100000), DType::Int64, device());
  EXPECT_EQ(to_f64(i.to(DType::Int32).to(DType::Float64).to(DType::Int64)), to_f64(i));
  // to() to the same dtype and device keeps the values.
  EXPECT_EQ(to_f64(f32.to(DType::Float32)), once);
  EXPECT_EQ(to_f64(f32.to(device(), DType::Float32)), once);
}

TEST_P(TensorCore, ItemGivesTheRightScalarKind) {
  Scalar f = make_tensor(scalar_array(1.5), DType::Float32, device()).item();
  EXPECT_EQ(f.kind(), Scalar::Kind::Float);
  EXPECT_EQ(f.to_double(), 1.5);
  Scalar i = make_tensor(NDArray({1}, -4.0), DType::Int64, device()).item();
  EXPECT_EQ(i.kind(), Scalar::Kind::Int);
  EXPECT_EQ(i.to_int(), -4);
  Scalar b = make_tensor(NDArray({1, 1}, 1.0), DType::Bool, device()).item();
  EXPECT_EQ(b.kind(), Scalar::Kind::Bool);
  EXPECT_TRUE(b.to<bool>());
  EXPECT_EQ(make_tensor(scalar_array(0.5), DType::BFloat16, device()).item<float>(), 0.5f);
  EXPECT_EQ(make_tensor(scalar_array(-3), DType::Int32, device()).item<int>(), -3);
}

TEST_P(TensorCore, DataPointerIsTyped) {
  Tensor x = st::ones({3}, options(DType::Float32));
  EXPECT_NE(x.data<float>(), nullptr);
  EXPECT_TRUE(throws<st::DTypeError>([&] { (void)x.data<double>(); }, {"[data]"}));
}

INSTANTIATE_TEST_SUITE_P(Core, TensorCore, ::testing::ValuesIn(st::available_devices()),
                         DeviceName());

// ---------------------------------------------------------------------------------------------
// Printing, as PyTorch prints

TEST(PrintTest, LikePyTorch) {
  EXPECT_EQ(st::tensor<float>({1, 2, 3}).str(), "tensor([1., 2., 3.])");
  EXPECT_EQ(st::tensor<int64_t>({1, 2, 3}).str(), "tensor([1, 2, 3])");
  EXPECT_EQ(st::tensor<float>({1.5f, 2.25f}).str(), "tensor([1.5000, 2.2500])");
  EXPECT_EQ(st::scalar_tensor(2.5, {}).str(), "tensor(2.5000)");
  EXPECT_EQ(st::tensor<float>({1, 2, 3, 4}).view({2, 2}).str(),
            "tensor([[1., 2.],\n        [3., 4.]])");
  // PyTorch writes the module before the dtype ("torch.float64"); either module name will do.
  auto has_dtype_suffix = [](const std::string& s, const std::string& head,
                             const std::string& dtype) {
    return s.rfind(head + ", dtype=", 0) == 0 && s.size() > dtype.size() + 1 &&
           s.compare(s.size() - dtype.size() - 2, dtype.size() + 2, "." + dtype + ")") == 0;
  };
  std::string f64 = st::tensor<double>({1, 2}).str();
  EXPECT_TRUE(has_dtype_suffix(f64, "tensor([1., 2.]", "float64")) << f64;
  std::string i32 = st::tensor<int32_t>({1, 2}).str();
  EXPECT_TRUE(has_dtype_suffix(i32, "tensor([1, 2]", "int32")) << i32;
  EXPECT_EQ(st::tensor<bool>({true, false}).str(), "tensor([ True, False])");
  Tensor g = st::tensor<float>({1, 2});
  g.set_requires_grad(true);
  EXPECT_EQ(g.str(), "tensor([1., 2.], requires_grad=True)");
  std::ostringstream out;
  out << st::tensor<float>({1, 2, 3});
  EXPECT_EQ(out.str(), "tensor([1., 2., 3.])");
}

TEST(PrintTest, NonContiguousAndOtherDevices) {
  Tensor t = st::tensor<float>({1, 2, 3, 4}).view({2, 2}).t();
  EXPECT_EQ(t.str(), "tensor([[1., 3.],\n        [2., 4.]])");
  for (const Device& d : st::available_devices()) {
    if (d.is_cpu()) continue;
    std::string s = st::tensor<float>({1, 2}).to(d).str();
    EXPECT_NE(s.find("device='" + d.str() + "'"), std::string::npos) << s;
  }
}

}  // namespace
}  // namespace st_test
