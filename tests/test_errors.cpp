// Errors: each kind raised where error.h says, with a message that starts with the op in brackets
// and names what was wrong. Runs on every available device.

#include "reference.h"

#if defined(__SANITIZE_ADDRESS__)
// Under AddressSanitizer an impossible allocation aborts the process by default; let it fail as
// malloc does, so that the OutOfMemory test sees the library's own error.
extern "C" const char* __asan_default_options() { return "allocator_may_return_null=1"; }
#endif

namespace st_test {
namespace {

class Errors : public ::testing::TestWithParam<Device> {
 protected:
  Device device() const { return GetParam(); }
  Tensor f32(const Shape& shape) const {
    return st::zeros(shape, {.dtype = DType::Float32, .device = device()});
  }
  Tensor ints(const NDArray& values, DType dtype = DType::Int64) const {
    return make_tensor(values, dtype, device());
  }
};

TEST_P(Errors, BroadcastShapes) {
  EXPECT_TRUE(throws<st::ShapeError>(
      [&] {
        st::add(f32({2, 3}), f32({4}));
      },
      {"[add]", "[2, 3]", "[4]"}));
  EXPECT_TRUE(throws<st::ShapeError>(
      [&] {
        (void)(f32({2, 3}) + f32({4}));
      },
      {"[add]", "[2, 3]", "[4]"}));
  EXPECT_TRUE(throws<st::ShapeError>(
      [&] {
        st::mul(f32({3, 2}), f32({3}));
      },
      {"mul", "[3, 2]", "[3]"}));
  EXPECT_TRUE(throws<st::ShapeError>([&] { st::sub(f32({5}), f32({4})); }, {"sub", "[5]", "[4]"}));
  EXPECT_TRUE(throws<st::ShapeError>(
      [&] {
        st::maximum(f32({2, 2}), f32({3, 1}));
      },
      {"[2, 2]", "[3, 1]"}));
  EXPECT_TRUE(throws<st::ShapeError>([&] { st::lt(f32({2}), f32({3})); }, {"[2]", "[3]"}));
  EXPECT_TRUE(throws<st::ShapeError>(
      [&] { st::where(make_tensor(NDArray({2}), DType::Bool, device()), f32({3}), f32({1})); },
      {"where"}));
  EXPECT_TRUE(throws<st::ShapeError>(
      [&] {
        st::broadcast_shapes({2, 3}, {4}, "myop");
      },
      {"[myop]", "[2, 3]", "[4]"}));
}

TEST_P(Errors, MatmulShapes) {
  EXPECT_TRUE(throws<st::ShapeError>(
      [&] {
        st::matmul(f32({3, 4}), f32({5, 6}));
      },
      {"matmul", "[3, 4]", "[5, 6]"}));
  EXPECT_TRUE(
      throws<st::ShapeError>([&] { st::matmul(f32({3}), f32({4})); }, {"matmul", "[3]", "[4]"}));
  EXPECT_TRUE(throws<st::ShapeError>(
      [&] {
        st::matmul(f32({2, 3, 4}), f32({3, 4, 5}));
      },
      {"matmul"}));
  EXPECT_TRUE(throws_named([&] { st::matmul(f32({}), f32({3})); }, {"matmul"}));
}

TEST_P(Errors, WrongDtypes) {
  Tensor weight = f32({10, 4});
  EXPECT_TRUE(throws<st::DTypeError>([&] { st::embedding(weight, f32({3})); }, {"embedding"}));
  EXPECT_TRUE(throws<st::DTypeError>(
      [&] {
        st::cross_entropy(f32({2, 5}), f32({2}));
      },
      {"cross_entropy"}));
  EXPECT_TRUE(throws<st::DTypeError>([&] { st::where(f32({3}), f32({3}), f32({3})); }, {"where"}));
  // Both operands of matmul must share a dtype, as in PyTorch.
  EXPECT_TRUE(throws<st::DTypeError>(
      [&] {
        st::matmul(f32({2, 2}), st::zeros({2, 2}, {.dtype = DType::Float64, .device = device()}));
      },
      {"matmul"}));
  // bool matmul: if rejected, it must be as a DTypeError.
  Tensor b = st::zeros({2, 2}, {.dtype = DType::Bool, .device = device()});
  try {
    st::matmul(b, b);
  } catch (const st::DTypeError&) {
  } catch (const std::exception& e) {
    ADD_FAILURE() << "bool matmul rejected with another kind: " << e.what();
  }
}

TEST_P(Errors, DimsOutOfRange) {
  Tensor x = f32({2, 3});
  const auto idx = [](auto&& fn) { return throws<st::IndexError>(fn); };
  EXPECT_TRUE(idx([&] { st::sum(x, {2}); }));
  EXPECT_TRUE(idx([&] { st::sum(x, {-3}); }));
  EXPECT_TRUE(idx([&] { st::mean(x, {0, 5}); }));
  EXPECT_TRUE(idx([&] { st::max(x, 2); }));
  EXPECT_TRUE(idx([&] { st::argmax(x, -3); }));
  EXPECT_TRUE(idx([&] { st::softmax(x, 2); }));
  EXPECT_TRUE(idx([&] { st::log_softmax(x, -3); }));
  EXPECT_TRUE(idx([&] { x.transpose(0, 2); }));
  EXPECT_TRUE(idx([&] { x.permute({0, 2}); }));
  EXPECT_TRUE(idx([&] { x.unsqueeze(3); }));
  EXPECT_TRUE(idx([&] { x.unsqueeze(-4); }));
  EXPECT_TRUE(idx([&] { x.squeeze(2); }));
  EXPECT_TRUE(idx([&] { x.select(2, 0); }));
  EXPECT_TRUE(idx([&] { x.select(0, 2); }));  // index out of range
  EXPECT_TRUE(idx([&] { x.select(1, -4); }));
  EXPECT_TRUE(idx([&] { x.narrow(2, 0, 1); }));
  EXPECT_TRUE(idx([&] { x.slice(3, 0, 1); }));
  EXPECT_TRUE(idx([&] { x.flatten(0, 2); }));
  EXPECT_TRUE(idx([&] { (void)x.size(2); }));
  EXPECT_TRUE(idx([&] { (void)x.stride(-3); }));
  EXPECT_TRUE(idx([&] { st::cat({x, x}, 2); }));
  EXPECT_TRUE(idx([&] { st::stack({x, x}, 3); }));
  EXPECT_TRUE(idx([&] { st::split(x, 1, 2); }));
  EXPECT_TRUE(idx([&] { st::sum(f32({}), {1}); }));
  EXPECT_TRUE(throws<st::IndexError>([&] { st::wrap_dim(3, 3, "myop"); }, {"[myop]"}));
  EXPECT_TRUE(throws<st::IndexError>([&] { st::sum(x, {2}); }, {"sum"}));
  EXPECT_TRUE(throws<st::IndexError>([&] { st::softmax(x, 2); }, {"softmax"}));
  EXPECT_TRUE(throws_named([&] { x.narrow(1, 2, 2); }, {"narrow"}));  // start + length past the end
  EXPECT_TRUE(throws_named([&] { x.permute({0, 0}); }, {"permute"}));  // a repeated dim
  EXPECT_TRUE(throws_named([&] { st::sum(x, {1, -1}); }, {"sum"}));    // the same dim twice
  EXPECT_TRUE(throws<st::IndexError>([&] { f32({0, 3}).select(0, 0); }, {"select"}));
}

TEST_P(Errors, ViewsAndShapes) {
  Tensor x = f32({2, 3});
  EXPECT_TRUE(throws<st::ShapeError>([&] { x.view({4, 2}); }, {"view"}));
  EXPECT_TRUE(throws<st::ShapeError>([&] { x.view({5, -1}); }, {"view"}));
  EXPECT_TRUE(
      throws<st::ShapeError>([&] { x.t().view({6}); }, {"view"}));  // strides do not allow it
  EXPECT_TRUE(throws_named([&] { x.view({-1, -1}); }, {"view"}));
  // -1 could be anything when the other sizes multiply to 0 (PyTorch refuses it too); with [3, -1]
  // the answer is 0, so that one is allowed.
  EXPECT_TRUE(throws<st::ShapeError>([&] { f32({0, 3}).view({0, -1}); }, {"view"}));
  EXPECT_EQ(f32({0, 3}).view({3, -1}).shape(), (Shape{3, 0}));
  EXPECT_TRUE(throws<st::ShapeError>([&] { x.reshape({4}); }, {"reshape"}));
  EXPECT_TRUE(throws<st::ShapeError>([&] { x.expand({2, 4}); }, {"expand"}));
  EXPECT_TRUE(throws<st::ShapeError>([&] { x.expand({3}); }, {"expand"}));
  EXPECT_TRUE(throws<st::ShapeError>([&] { st::cat({x, f32({2, 4})}, 0); }, {"cat"}));
  EXPECT_TRUE(throws<st::ShapeError>([&] { st::cat({x, f32({3})}, 0); }, {"cat"}));
  EXPECT_TRUE(throws_named([&] { st::cat({}, 0); }, {"cat"}));
  EXPECT_TRUE(throws<st::ShapeError>([&] { st::stack({x, f32({3, 2})}); }, {"stack"}));
  EXPECT_TRUE(throws_named(
      [&] {
        st::split(x, Shape{1, 2}, 0);
      },
      {"split"}));  // sizes sum to 3, not 2
  EXPECT_TRUE(throws_named([&] { st::chunk(x, 0); }, {"chunk"}));
  EXPECT_TRUE(throws_named([&] { x.slice(1, 0, 3, 0); }, {"slice"}));  // step 0
  EXPECT_TRUE(
      throws_named([&] { x.slice(1, 0, 3, -1); }, {"slice"}));  // negative steps, as in PyTorch
  EXPECT_TRUE(throws<st::ShapeError>([&] { st::layer_norm(x, {4}); }, {"layer_norm"}));
  EXPECT_TRUE(throws<st::ShapeError>([&] { st::layer_norm(x, {3}, f32({4})); }, {"layer_norm"}));
  EXPECT_TRUE(
      throws<st::ShapeError>([&] { st::embedding(f32({10}), ints(NDArray({2}))); }, {"embedding"}));
  EXPECT_TRUE(throws<st::ShapeError>(
      [&] {
        st::cross_entropy(f32({2, 5}), ints(NDArray({3})));
      },
      {"cross_entropy"}));
  // In place, the broadcast result must keep self's shape.
  EXPECT_TRUE(throws<st::ShapeError>([&] { f32({3}).add_(f32({2, 3})); }, {"[3]", "[2, 3]"}));
  EXPECT_TRUE(throws<st::ShapeError>([&] { f32({3}).copy_(f32({4})); }, {"copy"}));
}

TEST_P(Errors, InvalidSizesAndValues) {
  st::TensorOptions opts{.dtype = DType::Float32, .device = device()};
  EXPECT_TRUE(throws_named([&] { st::zeros({-1}, opts); }, {"zeros"}));
  EXPECT_TRUE(throws_named([&] { st::ones({2, -3}, opts); }, {"ones"}));
  EXPECT_TRUE(throws_named([&] { st::full({-2}, 1.0, opts); }, {"full"}));
  EXPECT_TRUE(throws_named([&] { st::empty({-5}, opts); }, {"empty"}));
  EXPECT_TRUE(throws_named([&] { st::rand({-1}, opts); }, {"rand"}));
  EXPECT_TRUE(throws<st::ShapeError>([&] {
    st::zeros({int64_t{1} << 40, int64_t{1} << 40}, opts);
  }));
  EXPECT_TRUE(throws<st::ValueError>([&] { st::dropout(f32({4}), 1.5); }, {"dropout"}));
  EXPECT_TRUE(throws<st::ValueError>([&] { st::dropout(f32({4}), -0.1); }, {"dropout"}));
  EXPECT_TRUE(throws_named([&] { st::arange(0, 10, 0); }, {"arange"}));
  EXPECT_TRUE(throws_named([&] { st::arange(0, 10, -1); }, {"arange"}));
  EXPECT_TRUE(throws_named([&] { st::clamp(f32({2}), std::nullopt, std::nullopt); }, {"clamp"}));
  EXPECT_TRUE(throws_named([&] { st::max(f32({0})); }, {"max"}));
  EXPECT_TRUE(throws_named([&] { st::argmax(f32({0, 3})); }, {"argmax"}));
}

// An asynchronous backend may report a bad index when the host next waits for it, so each case
// reads its result back; the error still names the op, the index and the range.
TEST_P(Errors, IndicesOutOfRange) {
  Tensor weight = f32({10, 4});
  const auto read = [](const Tensor& t) { (void)t.to(st::kCPU); };
  EXPECT_TRUE(throws<st::IndexError>(
      [&] {
        read(st::embedding(weight, ints(NDArray({3}, {1, 10, 2}))));
      },
      {"[embedding]", "10"}));
  EXPECT_TRUE(throws<st::IndexError>(
      [&] {
        read(st::embedding(weight, ints(NDArray({2}, {-1, 0}))));
      },
      {"[embedding]", "-1"}));
  EXPECT_TRUE(throws<st::IndexError>(
      [&] {
        read(st::embedding(weight, ints(NDArray({1}, std::vector<double>{11}), DType::Int32)));
      },
      {"[embedding]", "11"}));
  Tensor logits = f32({3, 5});
  EXPECT_TRUE(throws<st::IndexError>(
      [&] {
        read(st::cross_entropy(logits, ints(NDArray({3}, {0, 5, 1}))));
      },
      {"[cross_entropy]", "5"}));
  EXPECT_TRUE(throws<st::IndexError>(
      [&] {
        read(st::cross_entropy(logits, ints(NDArray({3}, {0, -1, 1}))));
      },
      {"[cross_entropy]", "-1"}));
  // -1 is fine when it is the ignore_index.
  EXPECT_NO_THROW(read(st::cross_entropy(logits, ints(NDArray({3}, {0, -1, 1})), -1)));
  // Reported once: the next good call runs clean, and its rows are right.
  const Tensor rows = st::embedding(weight + 1, ints(NDArray({2}, {3, 9})));
  EXPECT_NO_THROW(read(rows));
  EXPECT_EQ(st::sum(rows).item().to<double>(), 8.0);
}

TEST_P(Errors, Item) {
  EXPECT_TRUE(throws_named([&] { (void)f32({2}).item(); }, {"item"}));
  EXPECT_TRUE(throws_named([&] { (void)f32({0}).item(); }, {"item"}));
  EXPECT_NO_THROW((void)f32({1, 1, 1}).item());
}

TEST_P(Errors, UndefinedTensor) {
  Tensor undefined;
  EXPECT_TRUE(throws_named([&] { (void)undefined.shape(); }, {"tensor"}));
  EXPECT_TRUE(throws_named([&] { st::add(undefined, f32({1})); }, {}));
}

TEST_P(Errors, InPlaceCannotChangeDtype) {
  // As in PyTorch: an int tensor cannot hold the float result of int + 1.5.
  Tensor i = st::zeros({3}, {.dtype = DType::Int64, .device = device()});
  EXPECT_TRUE(throws_named([&] { i.add_(1.5); }, {}));
  EXPECT_TRUE(throws_named([&] { i.div_(2); }, {}));
}

TEST_P(Errors, OutOfMemory) {
  // 2^50 bytes: beyond any machine's memory and the 47-bit user address space.
  EXPECT_TRUE(throws<st::OutOfMemoryError>(
      [&] { st::empty({int64_t{1} << 48}, {.dtype = DType::Float32, .device = device()}); }));
  // The allocator recovers: a normal allocation still works.
  EXPECT_EQ(f32({4}).numel(), 4);
}

TEST_P(Errors, MixedDevices) {
  std::vector<Device> devices = st::available_devices();
  if (devices.size() < 2) GTEST_SKIP() << "needs two devices";
  Device other = device() == devices[0] ? devices[1] : devices[0];
  Tensor a = f32({3});
  Tensor b = st::zeros({3}, {.dtype = DType::Float32, .device = other});
  EXPECT_TRUE(throws<st::DeviceError>([&] { st::add(a, b); }, {"add"}));
  EXPECT_TRUE(throws<st::DeviceError>(
      [&] {
        st::matmul(f32({2, 3}), st::zeros({3, 2}, {.device = other}));
      },
      {"matmul"}));
  EXPECT_TRUE(throws<st::DeviceError>([&] { a.add_(b); }));
  // copy_ converts devices on purpose.
  EXPECT_NO_THROW(a.copy_(b));
}

INSTANTIATE_TEST_SUITE_P(Errors, Errors, ::testing::ValuesIn(st::available_devices()),
                         DeviceName());

TEST(DeviceErrors, UnknownDeviceStrings) {
  for (const char* spec : {"tpu:0", "", "gpu", "cuda:", "cuda:x", "cpu:-1", "cuda:1:2"}) {
    SCOPED_TRACE(spec);
    EXPECT_TRUE(throws<st::DeviceError>([&] { Device d(spec); }));
  }
  EXPECT_TRUE(throws<st::DeviceError>([&] { Device d(std::string_view("tpu:0")); }, {"tpu:0"}));
}

TEST(DeviceErrors, BackendNotBuilt) {
  std::vector<Device> available = st::available_devices();
  std::optional<Device> missing;
  for (const char* spec : {"vulkan:0", "cuda:0"}) {
    Device d(spec);
    bool present = std::any_of(available.begin(), available.end(),
                               [&](const Device& a) { return a.type == d.type; });
    if (!present) {
      missing = d;
      break;
    }
  }
  if (!missing) GTEST_SKIP() << "every backend is available";
  SCOPED_TRACE(missing->str());
  EXPECT_TRUE(throws<st::DeviceError>([&] { st::zeros({2}, {.device = *missing}); }));
  EXPECT_TRUE(throws<st::DeviceError>([&] { st::tensor<float>({1, 2}).to(*missing); }));
}

}  // namespace
}  // namespace st_test
