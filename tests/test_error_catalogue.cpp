// The error catalogue: one case per kind of bad input a user can give, each with the error type it
// must raise and the words its message must hold (the op in brackets and the offending shapes,
// dtypes or devices), on every available device. After each error the library must still work.
// test_errors.cpp checks the error kinds op by op; this file is the user's-eye list the README's
// reliability section describes (and tests/python/test_error_catalogue.py its Python twin).

#include <spiraltorch/serialize.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>

#include "reference.h"

namespace st_test {
namespace {

class Catalogue : public ::testing::TestWithParam<Device> {
 protected:
  Device device() const { return GetParam(); }
  std::string dev() const { return device().str(); }
  Tensor zeros(const Shape& shape, DType dtype = DType::Float32) const {
    return st::zeros(shape, {.dtype = dtype, .device = device()});
  }
  Tensor values(const NDArray& a, DType dtype = DType::Float32) const {
    return make_tensor(a, dtype, device());
  }
  Tensor leaf(const NDArray& a) const { return values(a).set_requires_grad(); }
  // The library still computes after an error: 1 + 2 on this device.
  void expect_usable() const {
    Tensor three = st::add(values(NDArray({1}, std::vector<double>{1})),
                           values(NDArray({1}, std::vector<double>{2})));
    EXPECT_EQ(three.to(st::kCPU).item<float>(), 3.0f);
  }
};

TEST_P(Catalogue, ShapesThatDoNotBroadcast) {
  EXPECT_TRUE(throws<st::ShapeError>(
      [&] {
        st::add(zeros({2, 3}), zeros({4}));
      },
      {"[add]", "[2, 3]", "[4]"}));
  EXPECT_TRUE(
      throws<st::ShapeError>([&] { st::where(zeros({2}, DType::Bool), zeros({3}), zeros({1})); },
                             {"[where]", "[2]", "[3]"}));
  EXPECT_TRUE(throws<st::ShapeError>(
      [&] {
        zeros({3}).mul_(zeros({2, 3}));
      },
      {"mul", "[3]", "[2, 3]"}));
  expect_usable();
}

TEST_P(Catalogue, MismatchedShapes) {
  EXPECT_TRUE(throws<st::ShapeError>(
      [&] {
        st::matmul(zeros({3, 4}), zeros({5, 6}));
      },
      {"[matmul]", "[3, 4]", "[5, 6]"}));
  EXPECT_TRUE(throws<st::ShapeError>(
      [&] {
        st::matmul(zeros({2, 3, 4}), zeros({3, 4, 5}));
      },
      {"[matmul]", "[2, 3, 4]", "[3, 4, 5]"}));
  EXPECT_TRUE(throws<st::ShapeError>(
      [&] {
        st::linear(zeros({2, 3}), zeros({4, 5}));
      },
      {"[linear]", "[2, 3]", "[4, 5]"}));
  EXPECT_TRUE(throws<st::ShapeError>(
      [&] {
        st::cat({zeros({2, 3}), zeros({2, 4})}, 0);
      },
      {"[cat]", "[2, 3]", "[2, 4]"}));
  EXPECT_TRUE(throws<st::ShapeError>(
      [&] {
        st::stack({zeros({2, 3}), zeros({3, 2})});
      },
      {"[stack]", "[2, 3]", "[3, 2]"}));
  EXPECT_TRUE(throws<st::ShapeError>(
      [&] {
        zeros({2, 3}).view({4, 2});
      },
      {"[view]", "[2, 3]", "[4, 2]"}));
  EXPECT_TRUE(throws<st::ShapeError>(
      [&] {
        zeros({2, 3}).reshape({4});
      },
      {"[reshape]", "[2, 3]", "[4]"}));
  EXPECT_TRUE(throws<st::ShapeError>(
      [&] {
        zeros({2, 3}).expand({2, 4});
      },
      {"[expand]", "[2, 3]", "[2, 4]"}));
  EXPECT_TRUE(throws<st::ShapeError>(
      [&] {
        st::layer_norm(zeros({2, 3}), {4});
      },
      {"[layer_norm]", "[2, 3]", "[4]"}));
  EXPECT_TRUE(throws<st::ShapeError>(
      [&] {
        st::cross_entropy(zeros({2, 5}), zeros({3}, DType::Int64));
      },
      {"[cross_entropy]", "[2, 5]", "[3]"}));
  EXPECT_TRUE(
      throws<st::ShapeError>([&] { zeros({3}).copy_(zeros({4})); }, {"[copy_]", "[3]", "[4]"}));
  expect_usable();
}

TEST_P(Catalogue, WrongDtypes) {
  EXPECT_TRUE(throws<st::DTypeError>(
      [&] {
        st::embedding(zeros({10, 4}), zeros({3}));
      },
      {"[embedding]", "float32"}));
  EXPECT_TRUE(throws<st::DTypeError>(
      [&] {
        st::cross_entropy(zeros({2, 5}), zeros({2}));
      },
      {"[cross_entropy]", "float32"}));
  EXPECT_TRUE(throws<st::DTypeError>([&] { st::where(zeros({3}), zeros({3}), zeros({3})); },
                                     {"[where]", "float32"}));
  EXPECT_TRUE(throws<st::DTypeError>(
      [&] {
        st::matmul(zeros({2, 2}), zeros({2, 2}, DType::Float64));
      },
      {"[matmul]", "float32", "float64"}));
  // (softmax and the elementwise math functions promote integers to float32, as PyTorch's do.)
  EXPECT_TRUE(throws<st::DTypeError>(
      [&] {
        st::layer_norm(zeros({2, 3}, DType::Int64), {3});
      },
      {"[layer_norm]", "int64"}));
  EXPECT_TRUE(
      throws<st::DTypeError>([&] { zeros({3}, DType::Int64).add_(1.5); }, {"add", "int64"}));
  expect_usable();
}

TEST_P(Catalogue, MixedDevices) {
  std::vector<Device> devices = st::available_devices();
  if (devices.size() < 2) GTEST_SKIP() << "needs two devices";
  const Device other = device() == devices[0] ? devices[1] : devices[0];
  Tensor there = st::zeros({3}, {.device = other});
  EXPECT_TRUE(
      throws<st::DeviceError>([&] { st::add(zeros({3}), there); }, {"[add]", dev(), other.str()}));
  EXPECT_TRUE(throws<st::DeviceError>(
      [&] {
        st::matmul(zeros({2, 3}), st::zeros({3, 2}, {.device = other}));
      },
      {"[matmul]", dev(), other.str()}));
  EXPECT_TRUE(
      throws<st::DeviceError>([&] { zeros({3}).add_(there); }, {"add", dev(), other.str()}));
  expect_usable();
}

TEST_P(Catalogue, IndicesOutOfRange) {
  // Read back: CUDA reports a bad index when the host next waits for the device.
  EXPECT_TRUE(throws<st::IndexError>(
      [&] {
        (void)st::embedding(zeros({10, 4}), values(NDArray({2}, {3, 10}), DType::Int64))
            .to(st::kCPU);
      },
      {"[embedding]", "10"}));
  EXPECT_TRUE(throws<st::IndexError>(
      [&] {
        (void)st::cross_entropy(zeros({3, 5}), values(NDArray({3}, {0, 5, 1}), DType::Int64))
            .to(st::kCPU);
      },
      {"[cross_entropy]", "5"}));
  EXPECT_TRUE(throws<st::IndexError>([&] { zeros({2, 3}).select(1, 3); }, {"[select]", "3"}));
  EXPECT_TRUE(throws<st::IndexError>([&] { st::sum(zeros({2, 3}), {2}); }, {"[sum]", "2"}));
  EXPECT_TRUE(throws<st::IndexError>(
      [&] {
        zeros({2, 3}).transpose(0, -3);
      },
      {"[transpose]", "-3"}));
  EXPECT_TRUE(throws<st::IndexError>([&] { zeros({2, 3}).narrow(1, 2, 2); }, {"[narrow]", "2"}));
  expect_usable();
}

TEST_P(Catalogue, IndicesOfTheWrongType) {
  // Float and bool index tensors where integer indices are expected.
  EXPECT_TRUE(throws<st::DTypeError>(
      [&] {
        st::embedding(zeros({10, 4}), values(NDArray({2}, {1, 2})));
      },
      {"[embedding]", "float32"}));
  EXPECT_TRUE(throws<st::DTypeError>(
      [&] {
        st::cross_entropy(zeros({2, 5}), values(NDArray({2}, {1, 0}), DType::Bool));
      },
      {"[cross_entropy]", "bool"}));
  expect_usable();
}

TEST_P(Catalogue, NegativeAndOverflowingSizes) {
  const st::TensorOptions opts{.dtype = DType::Float32, .device = device()};
  EXPECT_TRUE(throws<st::ShapeError>([&] { st::zeros({2, -3}, opts); }, {"[zeros]", "[2, -3]"}));
  EXPECT_TRUE(throws<st::ShapeError>([&] { st::empty({-1}, opts); }, {"[empty]", "[-1]"}));
  EXPECT_TRUE(throws_named([&] { zeros({6}).view({-2, 3}); }, {"[view]", "-2"}));
  // 2^40 * 2^40 elements overflow int64 before any byte is asked for.
  const int64_t big = int64_t{1} << 40;
  EXPECT_TRUE(throws<st::ShapeError>(
      [&] {
        st::zeros({big, big}, opts);
      },
      {"[zeros]", "overflows"}));
  // No elements, but the other sizes multiply past int64: contiguous strides would overflow.
  EXPECT_TRUE(throws<st::ShapeError>(
      [&] {
        st::zeros({2, int64_t{1} << 62, 0}, opts);
      },
      {"[zeros]", "overflows", "zero sizes"}));
  EXPECT_EQ(st::zeros({int64_t{1} << 62, 0}, opts).numel(), 0);
  // 2^62 float32 elements fit int64 but their bytes do not fit size_t.
  EXPECT_TRUE(
      throws<st::ShapeError>([&] { st::empty({int64_t{1} << 62}, opts); }, {"[empty]", "float32"}));
  EXPECT_TRUE(throws<st::ShapeError>(
      [&] {
        zeros({1}).expand({big, big});
      },
      {"[expand]", "overflows"}));
  expect_usable();
}

TEST_P(Catalogue, HugeAllocationIsACleanOutOfMemoryError) {
  // 2^50 bytes: more than any machine's memory and the 47-bit user address space.
  const Shape huge{int64_t{1} << 48};
  for (int attempt = 0; attempt < 3; ++attempt) {
    EXPECT_TRUE(throws<st::OutOfMemoryError>(
        [&] { st::empty(huge, {.dtype = DType::Float32, .device = device()}); },
        {"[empty]", "[281474976710656]", "float32", dev()}));
  }
  expect_usable();
}

TEST_P(Catalogue, BackwardTwiceWithoutRetainGraph) {
  Tensor x = leaf(NDArray({3}, {1, 2, 3}));
  Tensor y = st::sum(st::mul(x, x));
  y.backward();
  EXPECT_TRUE(throws_named([&] { y.backward(); }, {"[backward]", "retain_graph"}));
  // With retain_graph the second pass works and accumulates.
  Tensor z = st::sum(st::mul(x, x));
  x.grad().zero_();
  st::backward({z}, {}, /*retain_graph=*/true);
  st::backward({z}, {}, false);
  EXPECT_TRUE(all_close(x.grad(), NDArray({3}, {4, 8, 12}), {1e-6, 1e-6}));
}

TEST_P(Catalogue, BackwardOnANonScalarNeedsAGradient) {
  Tensor y = st::mul(leaf(NDArray({2, 2}, {1, 2, 3, 4})), 2.0);
  EXPECT_TRUE(throws_named([&] { y.backward(); }, {"[backward]", "[2, 2]"}));
  EXPECT_TRUE(
      throws<st::ShapeError>([&] { y.backward(zeros({3})); }, {"[backward]", "[3]", "[2, 2]"}));
  EXPECT_TRUE(throws_named([&] { zeros({1}).backward(); }, {"[backward]", "requires_grad"}));
}

TEST_P(Catalogue, InPlaceChangeOfATensorSavedForBackward) {
  Tensor x = leaf(NDArray({3}, {1, 2, 3}));
  Tensor h = st::mul(x, 2.0);
  Tensor y = st::sum(st::exp(h));  // exp saves its output
  Tensor e = st::exp(h);
  Tensor loss = st::sum(st::mul(e, e));  // mul saves e
  {
    st::NoGradGuard no_grad;
    e.add_(1.0);
  }
  EXPECT_TRUE(throws_named([&] { loss.backward(); }, {"[backward]", "modified in place"}));
  EXPECT_NO_THROW(y.backward());
}

TEST_P(Catalogue, InPlaceOnALeafThatRequiresGrad) {
  Tensor w = leaf(NDArray({3}, {1, 2, 3}));
  EXPECT_TRUE(throws_named([&] { w.add_(1.0); }, {"add", "leaf", "requires grad"}));
  EXPECT_TRUE(throws_named([&] { w.mul_(w); }, {"mul", "leaf"}));
  {
    st::NoGradGuard no_grad;  // what an optimizer does
    EXPECT_NO_THROW(w.sub_(1.0));
  }
  EXPECT_TRUE(all_close(w, NDArray({3}, {0, 1, 2}), {0, 0}));
}

// Softmax, log_softmax and cross_entropy promise finite results for finite logits of any size and
// for rows that hold -inf beside at least one finite logit (masked attention); a row of only -inf
// gives NaN, as in PyTorch.
TEST_P(Catalogue, NonFiniteInputsWhereResultsAreFinite) {
  const double inf = std::numeric_limits<double>::infinity();
  for (DType dtype : {DType::Float32, DType::Float64}) {
    SCOPED_TRACE(st::dtype_name(dtype));
    Tensor logits = values(NDArray({3, 3}, {-inf, 0, 1, 1e30, -1e30, 0, -inf, -inf, 2}), dtype);
    Tensor sm = st::softmax(logits, 1);
    EXPECT_TRUE(all_close(sm,
                          NDArray({3, 3}, {0, 1 / (1 + std::exp(1.0)),
                                           std::exp(1.0) / (1 + std::exp(1.0)), 1, 0, 0, 0, 0, 1}),
                          {1e-6, 1e-6}));
    Tensor lsm = st::log_softmax(logits, 1);
    NDArray lsm_host = from_tensor(lsm);
    EXPECT_EQ(lsm_host.data[0], -inf);
    EXPECT_NEAR(lsm_host.data[2], -std::log1p(std::exp(-1.0)), 1e-6);
    EXPECT_EQ(lsm_host.data[3], 0.0);
    EXPECT_EQ(lsm_host.data[8], 0.0);
    Tensor target = values(NDArray({3}, {2, 0, 2}), DType::Int64);
    const double ce = st::cross_entropy(logits, target).to(st::kCPU).item<double>();
    EXPECT_NEAR(ce, std::log1p(std::exp(-1.0)) / 3, 1e-6);
    Tensor all_masked = values(NDArray({1, 2}, {-inf, -inf}), dtype);
    EXPECT_TRUE(std::isnan(from_tensor(st::softmax(all_masked, 1)).data[0]));
    // layer_norm of a constant row: zero variance, eps keeps it finite.
    Tensor ln = st::layer_norm(values(NDArray({1, 4}, {7, 7, 7, 7}), dtype), {4});
    EXPECT_TRUE(all_close(ln, NDArray({1, 4}, {0, 0, 0, 0}), {0, 1e-6}));
  }
}

// Checkpoints: what a damaged or foreign file can hold is refused with a SerializationError that
// names the reader and the problem, before any tensor is built.
class CatalogueFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("st_catalogue_" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string write(const std::string& name, const std::string& bytes) {
    const std::string path = (dir_ / name).string();
    std::ofstream(path, std::ios::binary) << bytes;
    return path;
  }
  static std::string valid() {
    return st::to_safetensors_bytes(
        {{"w", st::arange(0, 12, 1, st::TensorOptions{.dtype = DType::Float32}).view({3, 4})}});
  }
  static std::string with_header(const std::string& json, size_t data_bytes) {
    std::string out(8, '\0');
    uint64_t n = json.size();
    for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
    return out + json + std::string(data_bytes, '\0');
  }
  std::filesystem::path dir_;
};

TEST_F(CatalogueFiles, Truncated) {
  const std::string bytes = valid();
  for (size_t keep : {size_t{0}, size_t{5}, size_t{8}, size_t{20}, bytes.size() - 1}) {
    SCOPED_TRACE(keep);
    const std::string path = write("truncated.safetensors", bytes.substr(0, keep));
    EXPECT_TRUE(throws<st::SerializationError>([&] { st::load_safetensors(path); },
                                               {"[load_safetensors]", path}));
  }
}

TEST_F(CatalogueFiles, Corrupted) {
  std::string bytes = valid();
  bytes[10] = '\x01';  // inside the JSON header
  EXPECT_TRUE(throws<st::SerializationError>(
      [&] { st::load_safetensors(write("corrupt.safetensors", bytes)); }, {"[load_safetensors]"}));
  EXPECT_TRUE(throws<st::SerializationError>(
      [&] { st::from_safetensors_bytes(std::string(64, '\xff')); }, {"[from_safetensors_bytes]"}));
}

TEST_F(CatalogueFiles, LyingHeaders) {
  // A header length past the end of the file.
  std::string bytes = valid();
  bytes[0] = '\xff';
  bytes[1] = '\xff';
  EXPECT_TRUE(throws<st::SerializationError>([&] { st::from_safetensors_bytes(bytes); },
                                             {"[from_safetensors_bytes]"}));
  // A shape whose bytes the data area does not hold, and one that overflows.
  EXPECT_TRUE(throws<st::SerializationError>(
      [&] {
        st::from_safetensors_bytes(with_header(
            R"({"w":{"dtype":"F32","shape":[1000000,1000000],"data_offsets":[0,16]}})", 16));
      },
      {"[from_safetensors_bytes]", "w"}));
  EXPECT_TRUE(throws<st::SerializationError>(
      [&] {
        st::from_safetensors_bytes(with_header(
            R"({"w":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,16]}})",
            16));
      },
      {"[from_safetensors_bytes]", "w"}));
  // A number too large for a double (found by fuzz_safetensors: it escaped as a JSON library
  // exception).
  EXPECT_TRUE(throws<st::SerializationError>(
      [&] { st::from_safetensors_bytes(with_header(R"({"w":1e999999})", 0)); },
      {"[from_safetensors_bytes]", "not valid JSON"}));
  // Offsets past the data, and an unknown dtype.
  EXPECT_TRUE(throws<st::SerializationError>(
      [&] {
        st::from_safetensors_bytes(
            with_header(R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", 8));
      },
      {"[from_safetensors_bytes]", "w"}));
  EXPECT_TRUE(throws<st::SerializationError>(
      [&] {
        st::from_safetensors_bytes(
            with_header(R"({"w":{"dtype":"Q4","shape":[4],"data_offsets":[0,16]}})", 16));
      },
      {"[from_safetensors_bytes]", "Q4"}));
}

INSTANTIATE_TEST_SUITE_P(Devices, Catalogue, ::testing::ValuesIn(st::available_devices()),
                         DeviceName());

}  // namespace
}  // namespace st_test
