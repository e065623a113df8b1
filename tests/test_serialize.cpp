// Safetensors checkpoints: the bytes written for a known example (spelled out here from the
// format's specification), round trips of every dtype and layout on every device, rejection of each
// kind of malformed input, and atomic replacement of the file on disk.

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>

#include <spiraltorch/serialize.h>

#include "reference.h"

namespace st_test {
namespace {

namespace fs = std::filesystem;
using TensorMap = std::map<std::string, Tensor>;

// The 8-byte little-endian length that starts a file.
std::string le64(uint64_t n) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return out;
}

// A file with this header text, as given (no padding added), and data area.
std::string file_bytes(const std::string& header, const std::string& data = "") {
  return le64(header.size()) + header + data;
}

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_file(const fs::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// Each test gets a fresh directory, removed afterwards.
class SafetensorsFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "spiraltorch-serialize-XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr) << std::strerror(errno);
    dir_ = pattern;
  }
  void TearDown() override {
    fs::permissions(dir_, fs::perms::owner_all, fs::perm_options::add);
    fs::remove_all(dir_);
  }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  // The names in the directory, sorted: shows any temporary left behind.
  std::vector<std::string> listing() const {
    std::vector<std::string> names;
    for (const auto& entry : fs::directory_iterator(dir_)) {
      names.push_back(entry.path().filename().string());
    }
    std::sort(names.begin(), names.end());
    return names;
  }

  // Both the in-memory parser and the file loader reject `bytes` with a SerializationError whose
  // message holds every fragment; the loader's also names the file.
  void expect_rejected(const std::string& bytes, std::vector<std::string> fragments) {
    EXPECT_TRUE(
        throws<st::SerializationError>([&] { st::from_safetensors_bytes(bytes); }, fragments));
    const std::string file = path("malformed.safetensors");
    write_file(file, bytes);
    fragments.push_back(file);
    EXPECT_TRUE(throws<st::SerializationError>([&] { st::load_safetensors(file); }, fragments));
  }

  fs::path dir_;
};

// ---------------------------------------------------------------------------------------------
// The bytes of a known example.

// Tensors of four dtypes (an i64 scalar, f32, an empty f32, bf16, bool) and one metadata entry.
TensorMap example_tensors() {
  const std::vector<int64_t> step = {7};
  const std::vector<float> bias = {0.5f, -1.0f, 2.0f};
  const std::vector<st::BFloat16> w = {st::BFloat16(1.0f), st::BFloat16(-2.0f)};
  const bool mask[] = {true, false, false, true};
  return {{"w", st::from_buffer(w.data(), {2})},
          {"step", st::from_buffer(step.data(), {})},
          {"bias", st::from_buffer(bias.data(), {3})},
          {"mask", st::from_buffer(mask, {2, 2})},
          {"empty", st::zeros({0, 3})}};
}
const std::map<std::string, std::string> kExampleMetadata = {{"note", "say \"hi\"\n"}};

// Written from the specification: the metadata first; tensors by dtype alignment descending (I64,
// F32, BF16, BOOL), ties by name; compact JSON; spaces to an 8-byte boundary (330 + 6 = 336).
const std::string kExampleHeader =
    R"({"__metadata__":{"note":"say \"hi\"\n"},)"
    R"("step":{"dtype":"I64","shape":[],"data_offsets":[0,8]},)"
    R"("bias":{"dtype":"F32","shape":[3],"data_offsets":[8,20]},)"
    R"("empty":{"dtype":"F32","shape":[0,3],"data_offsets":[20,20]},)"
    R"("w":{"dtype":"BF16","shape":[2],"data_offsets":[20,24]},)"
    R"("mask":{"dtype":"BOOL","shape":[2,2],"data_offsets":[24,28]}})"
    "      ";
// Little-endian: 7; 0.5f = 0x3f000000, -1.0f = 0xbf800000, 2.0f = 0x40000000; bf16 1.0 = 0x3f80,
// -2.0 = 0xc000; bools as bytes.
const std::string kExampleData = std::string(
    "\x07\x00\x00\x00\x00\x00\x00\x00"
    "\x00\x00\x00\x3f\x00\x00\x80\xbf\x00\x00\x00\x40"
    "\x80\x3f\x00\xc0"
    "\x01\x00\x00\x01",
    28);

TEST_F(SafetensorsFiles, WritesTheExampleByteForByte) {
  ASSERT_EQ(kExampleHeader.size(), 336u);
  const std::string expected =
      std::string("\x50\x01\0\0\0\0\0\0", 8) + kExampleHeader + kExampleData;
  ASSERT_EQ(le64(kExampleHeader.size()), expected.substr(0, 8));

  EXPECT_EQ(st::to_safetensors_bytes(example_tensors(), kExampleMetadata), expected);
  const std::string file = path("example.safetensors");
  st::save_safetensors(file, example_tensors(), kExampleMetadata);
  EXPECT_EQ(read_file(file), expected);
}

TEST_F(SafetensorsFiles, WritesNoMetadataEntryWhenThereIsNone) {
  EXPECT_EQ(st::to_safetensors_bytes({}), le64(8) + "{}      ");
  const std::vector<int32_t> values = {1, -1};
  const std::string header = R"({"a":{"dtype":"I32","shape":[1],"data_offsets":[0,4]},)"
                             R"("b":{"dtype":"I32","shape":[1],"data_offsets":[4,8]}})";
  ASSERT_EQ(header.size(), 107u);  // 5 spaces pad it to 112
  EXPECT_EQ(st::to_safetensors_bytes({{"b", st::from_buffer(values.data() + 1, {1})},
                                      {"a", st::from_buffer(values.data(), {1})}}),
            le64(112) + header + "     " + std::string("\x01\0\0\0\xff\xff\xff\xff", 8));
}

TEST_F(SafetensorsFiles, ReadsTheExample) {
  const st::SafetensorsFile loaded =
      st::from_safetensors_bytes(le64(kExampleHeader.size()) + kExampleHeader + kExampleData);
  EXPECT_EQ(loaded.metadata, kExampleMetadata);
  ASSERT_EQ(loaded.tensors.size(), 5u);
  const Tensor& step = loaded.tensors.at("step");
  EXPECT_EQ(step.dtype(), DType::Int64);
  EXPECT_EQ(step.shape(), Shape{});
  EXPECT_EQ(step.item<int64_t>(), 7);
  EXPECT_EQ(loaded.tensors.at("bias").to_vector<double>(), (std::vector<double>{0.5, -1, 2}));
  EXPECT_EQ(loaded.tensors.at("empty").shape(), (Shape{0, 3}));
  EXPECT_EQ(loaded.tensors.at("w").dtype(), DType::BFloat16);
  EXPECT_EQ(loaded.tensors.at("w").to_vector<double>(), (std::vector<double>{1, -2}));
  EXPECT_EQ(loaded.tensors.at("mask").shape(), (Shape{2, 2}));
  EXPECT_EQ(loaded.tensors.at("mask").to_vector<double>(), (std::vector<double>{1, 0, 0, 1}));
}

// Files from other writers may list tensors in any order, spread the JSON out, skip the padding
// and write a null metadata map.
TEST_F(SafetensorsFiles, ReadsOtherWritersLayouts) {
  const std::string header =
      "{\n  \"b\": {\"shape\": [1], \"data_offsets\": [2, 4], \"dtype\": \"F16\"},\n"
      "  \"__metadata__\": null,\n"
      "  \"a\": {\"dtype\": \"I32\", \"data_offsets\": [4, 8], \"shape\": [], \"extra\": 1},\n"
      "  \"c\": {\"dtype\": \"BOOL\", \"shape\": [2], \"data_offsets\": [0, 2]}\n}";
  const st::SafetensorsFile loaded =
      st::from_safetensors_bytes(file_bytes(header, std::string("\x01\x00\x00\x3c\x05\0\0\0", 8)));
  EXPECT_TRUE(loaded.metadata.empty());
  EXPECT_EQ(loaded.tensors.at("a").item<int64_t>(), 5);
  EXPECT_EQ(loaded.tensors.at("b").to_vector<double>(), std::vector<double>{1.0});
  EXPECT_EQ(loaded.tensors.at("c").to_vector<double>(), (std::vector<double>{1, 0}));
}

// ---------------------------------------------------------------------------------------------
// Round trips on every device.

class SafetensorsDevice : public ::testing::TestWithParam<Device> {
 protected:
  Device device() const { return GetParam(); }
};

std::vector<DType> all_dtypes() {
  return {DType::Float32, DType::Float64, DType::Float16, DType::BFloat16,
          DType::Int32,   DType::Int64,   DType::Bool};
}

// Every dtype in every layout, as a 0-d tensor and as an empty one: the loaded tensors are
// contiguous, on the device asked for, and hold the same values.
TEST_P(SafetensorsDevice, RoundTripsEveryDtypeLayoutAndShape) {
  const NDArray values(Shape{2, 3}, {0, 1, -2, 0, 8, -16});
  TensorMap tensors;
  for (DType dtype : all_dtypes()) {
    const std::string name(st::dtype_name(dtype));
    for (Layout layout : {Layout::Contiguous, Layout::Transposed, Layout::Strided}) {
      tensors[name + "." + layout_name(layout)] = make_tensor(values, dtype, device(), layout);
    }
    tensors[name + ".scalar"] = make_tensor(scalar_array(-3), dtype, device());
    tensors[name + ".empty"] = st::zeros({0, 4}, {.dtype = dtype, .device = device()});
  }
  const std::map<std::string, std::string> metadata = {{"epoch", "12"}, {"", "empty key"}};
  const std::string bytes = st::to_safetensors_bytes(tensors, metadata);
  const std::string file =
      (fs::temp_directory_path() / ("spiraltorch-roundtrip-" + std::to_string(::getpid()) + ".st"))
          .string();
  st::save_safetensors(file, tensors, metadata);
  EXPECT_EQ(read_file(file), bytes);

  for (const st::SafetensorsFile& loaded :
       {st::from_safetensors_bytes(bytes, device()), st::load_safetensors(file, device())}) {
    EXPECT_EQ(loaded.metadata, metadata);
    ASSERT_EQ(loaded.tensors.size(), tensors.size());
    for (const auto& [name, original] : tensors) {
      SCOPED_TRACE(name);
      const Tensor& t = loaded.tensors.at(name);
      EXPECT_EQ(t.device(), device());
      EXPECT_EQ(t.dtype(), original.dtype());
      EXPECT_EQ(t.shape(), original.shape());
      EXPECT_TRUE(t.is_contiguous());
      EXPECT_EQ(to_f64(t), to_f64(original));
    }
  }
  fs::remove(file);
}

// A view is written as its values in row-major order, the same bytes as its contiguous copy.
TEST_P(SafetensorsDevice, WritesViewsAsTheirValues) {
  const NDArray values(Shape{3, 4}, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12});
  for (Layout layout : {Layout::Transposed, Layout::Strided}) {
    const Tensor view = make_tensor(values, DType::Float32, device(), layout);
    ASSERT_FALSE(view.is_contiguous());
    std::vector<float> row_major(values.data.begin(), values.data.end());
    EXPECT_EQ(st::to_safetensors_bytes({{"x", view}}),
              st::to_safetensors_bytes({{"x", st::from_buffer(row_major.data(), {3, 4})}}));
  }
  // A tensor in a graph is written as its values; its history is not touched.
  Tensor leaf = make_tensor(values, DType::Float32, device()).set_requires_grad();
  const Tensor y = st::mul(leaf, leaf);
  const st::SafetensorsFile loaded =
      st::from_safetensors_bytes(st::to_safetensors_bytes({{"y", y}}));
  EXPECT_FALSE(loaded.tensors.at("y").requires_grad());
  std::vector<double> squares;
  for (double v : values.data) squares.push_back(v * v);
  EXPECT_EQ(to_f64(loaded.tensors.at("y")), squares);
}

INSTANTIATE_TEST_SUITE_P(Devices, SafetensorsDevice, ::testing::ValuesIn(st::available_devices()),
                         DeviceName());

// ---------------------------------------------------------------------------------------------
// Malformed input.

const std::string kF32Pair = R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})";

TEST_F(SafetensorsFiles, RejectsBadLengths) {
  expect_rejected("", {"holds 0 bytes", "8-byte header length"});
  expect_rejected(std::string("\x02\0\0\0", 4), {"holds 4 bytes", "8-byte header length"});
  expect_rejected(le64(100) + "{}", {"header length 100 runs past the end", "only 2 bytes"});
  expect_rejected(le64(uint64_t{1} << 40) + "{}", {"header length 1099511627776", "limit"});
  expect_rejected(le64(~uint64_t{0}) + "{}", {"header length 18446744073709551615", "limit"});
}

TEST_F(SafetensorsFiles, RejectsHeadersThatAreNotAJsonObject) {
  expect_rejected(file_bytes(R"({"a":)"), {"not valid JSON"});
  expect_rejected(file_bytes("{} x"), {"not valid JSON"});
  expect_rejected(file_bytes(std::string("{\"\xff\":1}")), {"not valid JSON"});
  expect_rejected(file_bytes(std::string("{}\0\0\0\0\0\0", 8)),
                  {"not valid JSON", "NUL byte at offset 2"});
  expect_rejected(file_bytes("[1,2]"), {"header is a JSON array, expected an object"});
  expect_rejected(file_bytes(R"("a")"), {"header is a JSON string, expected an object"});
}

TEST_F(SafetensorsFiles, RejectsEntriesWithMissingOrMistypedFields) {
  expect_rejected(file_bytes(R"({"a":3})"), {"tensor \"a\" is 3", "expected an object"});
  expect_rejected(file_bytes(R"({"a":{"shape":[1],"data_offsets":[0,4]}})", "abcd"),
                  {"tensor \"a\" has no \"dtype\""});
  expect_rejected(file_bytes(R"({"a":{"dtype":"F32","data_offsets":[0,4]}})", "abcd"),
                  {"tensor \"a\" has no \"shape\""});
  expect_rejected(file_bytes(R"({"a":{"dtype":"F32","shape":[1]}})", "abcd"),
                  {"tensor \"a\" has no \"data_offsets\""});
  expect_rejected(file_bytes(R"({"a":{"dtype":5,"shape":[1],"data_offsets":[0,4]}})", "abcd"),
                  {"tensor \"a\"", "\"dtype\" is 5, expected a string"});
  expect_rejected(file_bytes(R"({"a":{"dtype":"F32","shape":"1","data_offsets":[0,4]}})", "abcd"),
                  {"tensor \"a\"", "\"shape\" is \"1\", expected an array"});
  for (const char* offsets : {"[0]", "[0,4,4]", "4", R"([0,"4"])", "[0,4.0]", "[-1,4]"}) {
    expect_rejected(file_bytes(std::string(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":)") +
                                   offsets + "}}",
                               "abcd"),
                    {"tensor \"a\"", "\"data_offsets\" is", "expected [begin, end]"});
  }
}

TEST_F(SafetensorsFiles, RejectsUnknownAndUnsupportedDtypes) {
  expect_rejected(file_bytes(R"({"a":{"dtype":"Q7","shape":[1],"data_offsets":[0,1]}})", "x"),
                  {"tensor \"a\"", "unknown dtype \"Q7\""});
  expect_rejected(file_bytes(R"({"a":{"dtype":"f32","shape":[1],"data_offsets":[0,4]}})", "abcd"),
                  {"tensor \"a\"", "unknown dtype \"f32\""});
  for (const char* dtype : {"U8", "I8", "U16", "F8_E4M3"}) {
    expect_rejected(file_bytes(std::string(R"({"bytes":{"dtype":")") + dtype +
                                   R"(","shape":[1],"data_offsets":[0,1]}})",
                               "x"),
                    {"tensor \"bytes\"", std::string("unsupported dtype ") + dtype});
  }
}

TEST_F(SafetensorsFiles, RejectsBadShapes) {
  expect_rejected(file_bytes(R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", "abcd"),
                  {"tensor \"a\"", "negative size"});
  expect_rejected(file_bytes(R"({"a":{"dtype":"F32","shape":[2.5],"data_offsets":[0,4]}})", "abcd"),
                  {"tensor \"a\"", "has 2.5, expected non-negative integers"});
  expect_rejected(
      file_bytes(R"({"a":{"dtype":"F32","shape":[1,null],"data_offsets":[0,4]}})", "abcd"),
      {"tensor \"a\"", "has null"});
  expect_rejected(
      file_bytes(R"({"a":{"dtype":"F32","shape":[18446744073709551615],"data_offsets":[0,4]}})",
                 "abcd"),
      {"tensor \"a\"", "above 2^63 - 1"});
  expect_rejected(
      file_bytes(R"({"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]}})",
                 "abcd"),
      {"tensor \"a\"", "more bytes than 2^64"});
}

TEST_F(SafetensorsFiles, RejectsOffsetsOutsideTheDataOrDisagreeingWithTheShape) {
  expect_rejected(file_bytes(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}})", "abcd"),
                  {"tensor \"a\"", "[4, 0] begin after they end"});
  expect_rejected(file_bytes(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", "abc"),
                  {"tensor \"a\"", "[0, 4] run past the end of the data area (3 bytes)"});
  expect_rejected(file_bytes(R"({"a":{"dtype":"F32","shape":[2,3],"data_offsets":[0,20]}})",
                             std::string(20, 'x')),
                  {"tensor \"a\"", "shape [2, 3] of F32 needs 24 bytes", "[0, 20] hold 20"});
  expect_rejected(file_bytes(R"({"a":{"dtype":"BF16","shape":[],"data_offsets":[0,4]}})", "abcd"),
                  {"tensor \"a\"", "shape [] of BF16 needs 2 bytes"});
}

// The tensors must tile the data area: no overlap, no gap, nothing after the last one.
TEST_F(SafetensorsFiles, RejectsDataAreasTheTensorsDoNotTile) {
  expect_rejected(file_bytes(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                             R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                             std::string(12, 'x')),
                  {"tensors \"a\" [0, 8) and \"b\" [4, 12) overlap"});
  expect_rejected(file_bytes(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                             R"("b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})",
                             "abcd"),
                  {"overlap"});
  expect_rejected(file_bytes(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                             R"("b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
                             std::string(12, 'x')),
                  {"bytes [4, 8) of the data area belong to no tensor"});
  expect_rejected(file_bytes(kF32Pair, "abcdefgh"),
                  {"bytes [4, 8) at the end of the data area belong to no tensor"});
  expect_rejected(file_bytes("{}", "x"),
                  {"bytes [0, 1) at the end of the data area belong to no tensor"});
}

TEST_F(SafetensorsFiles, RejectsDuplicateKeys) {
  expect_rejected(file_bytes(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                             R"("a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                             "abcdefgh"),
                  {"header has the key \"a\" twice"});
  expect_rejected(
      file_bytes(R"({"a":{"dtype":"F32","dtype":"I32","shape":[1],"data_offsets":[0,4]}})", "abcd"),
      {"header has the key \"dtype\" twice"});
  expect_rejected(file_bytes(R"({"__metadata__":{"k":"1","k":"2"}})"),
                  {"header has the key \"k\" twice"});
}

TEST_F(SafetensorsFiles, RejectsMetadataThatIsNotStrings) {
  expect_rejected(file_bytes(R"({"__metadata__":{"epoch":3}})"),
                  {"\"__metadata__\" value of \"epoch\" is 3, expected a string"});
  expect_rejected(file_bytes(R"({"__metadata__":["a"]})"),
                  {"\"__metadata__\" is [\"a\"], expected an object of strings"});
}

TEST_F(SafetensorsFiles, RejectsBoolBytesOtherThanZeroAndOne) {
  expect_rejected(file_bytes(R"({"m":{"dtype":"BOOL","shape":[3],"data_offsets":[0,3]}})",
                             std::string("\x01\x00\x02", 3)),
                  {"tensor \"m\" is BOOL but element 2 is the byte 2, expected 0 or 1"});
}

TEST_F(SafetensorsFiles, ReportsFilesThatCannotBeRead) {
  const std::string missing = path("missing.safetensors");
  EXPECT_TRUE(throws<st::SerializationError>(
      [&] { st::load_safetensors(missing); },
      {"[load_safetensors]", missing, "cannot open", "No such file or directory"}));
  EXPECT_TRUE(throws<st::SerializationError>([&] { st::load_safetensors(dir_.string()); },
                                             {"[load_safetensors]", "not a regular file"}));
}

TEST_F(SafetensorsFiles, RefusesToWriteWhatTheFormatCannotHold) {
  const Tensor x = st::zeros({1});
  EXPECT_TRUE(throws<st::SerializationError>(
      [&] {
        st::to_safetensors_bytes({{"__metadata__", x}});
      },
      {"[to_safetensors_bytes]", "\"__metadata__\"", "cannot name a tensor"}));
  EXPECT_TRUE(throws<st::SerializationError>(
      [&] {
        st::to_safetensors_bytes({{"u", Tensor()}});
      },
      {"tensor \"u\" is undefined"}));
  EXPECT_TRUE(throws<st::SerializationError>(
      [&] {
        st::to_safetensors_bytes({{std::string("bad\xff"), x}});
      },
      {"valid UTF-8"}));
  EXPECT_TRUE(throws<st::SerializationError>(
      [&] {
        st::to_safetensors_bytes({{"x", x}}, {{"k", std::string("\xc3")}});
      },
      {"valid UTF-8"}));
}

// ---------------------------------------------------------------------------------------------
// Atomic replacement.

TEST_F(SafetensorsFiles, ReplacesAnExistingFileAndLeavesNothingElse) {
  const std::string file = path("model.safetensors");
  st::save_safetensors(file, {{"old", st::ones({3})}});
  st::save_safetensors(file, {{"new", st::full({2}, 5.0)}}, {{"step", "2"}});
  EXPECT_EQ(listing(), std::vector<std::string>{"model.safetensors"});
  const st::SafetensorsFile loaded = st::load_safetensors(file);
  EXPECT_EQ(loaded.tensors.count("old"), 0u);
  EXPECT_EQ(loaded.tensors.at("new").to_vector<double>(), (std::vector<double>{5, 5}));
  EXPECT_EQ(loaded.metadata.at("step"), "2");
}

// A write that fails midway (the file size limit stops it after 4 KiB of a 256 KiB tensor) leaves
// the old checkpoint as it was and no temporary behind.
TEST_F(SafetensorsFiles, WriteFailingMidwayKeepsTheOldFile) {
  const std::string file = path("model.safetensors");
  st::save_safetensors(file, {{"old", st::ones({3})}});
  const std::string before = read_file(file);

  rlimit old_limit{};
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &old_limit), 0);
  if (old_limit.rlim_cur != RLIM_INFINITY && old_limit.rlim_cur < 4096) {
    GTEST_SKIP() << "the file size limit is already below 4 KiB";
  }
  rlimit small = old_limit;
  small.rlim_cur = 4096;
  // Past the limit write() fails with EFBIG, once SIGXFSZ no longer ends the process.
  const auto old_handler = std::signal(SIGXFSZ, SIG_IGN);
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &small), 0);
  const auto result = throws<st::SerializationError>(
      [&] {
        st::save_safetensors(file, {{"new", st::zeros({1 << 16})}});
      },
      {"[save_safetensors]", "cannot write", file, "File too large"});
  ::setrlimit(RLIMIT_FSIZE, &old_limit);
  std::signal(SIGXFSZ, old_handler);

  EXPECT_TRUE(result);
  EXPECT_EQ(read_file(file), before);
  EXPECT_EQ(listing(), std::vector<std::string>{"model.safetensors"});
}

TEST_F(SafetensorsFiles, FailedRenameLeavesNoTemporary) {
  // A directory in the way: the data is written, then the rename is refused.
  const std::string target = path("checkpoint");
  fs::create_directory(target);
  write_file(fs::path(target) / "keep", "x");
  EXPECT_TRUE(throws<st::SerializationError>(
      [&] {
        st::save_safetensors(target, {{"x", st::ones({2})}});
      },
      {"[save_safetensors]", "cannot rename", target}));
  EXPECT_EQ(listing(), std::vector<std::string>{"checkpoint"});
  EXPECT_EQ(read_file(fs::path(target) / "keep"), "x");
}

TEST_F(SafetensorsFiles, UnwritableDirectoryKeepsTheOldFile) {
  const std::string file = path("model.safetensors");
  st::save_safetensors(file, {{"old", st::ones({3})}});
  const std::string before = read_file(file);
  fs::permissions(dir_, fs::perms::owner_read | fs::perms::owner_exec);
  if (::access(dir_.c_str(), W_OK) == 0) {
    GTEST_SKIP() << "permissions do not bind this user (root)";
  }
  EXPECT_TRUE(throws<st::SerializationError>(
      [&] {
        st::save_safetensors(file, {{"new", st::zeros({4})}});
      },
      {"[save_safetensors]", "cannot create", file, "Permission denied"}));
  EXPECT_EQ(read_file(file), before);
  EXPECT_EQ(listing(), std::vector<std::string>{"model.safetensors"});
}

}  // namespace
}  // namespace st_test
