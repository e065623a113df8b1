// Safetensors checkpoints (include/spiraltorch/serialize.h). Writing follows what the reference
// implementation (huggingface/safetensors) writes, byte for byte; reading accepts what it accepts
// and rejects the rest with a SerializationError that names the input and the problem.

#include "spiraltorch/serialize.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cerrno>
#include <cstdint>
#include <filesystem>
#include <iterator>
#include <limits>
#include <set>
#include <system_error>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "spiraltorch/ops.h"

namespace st {
namespace {

static_assert(std::endian::native == std::endian::little,
              "tensor bytes are written as they lie in memory, and the format is little-endian");

using Json = nlohmann::json;
// Keeps keys in insertion order: the reference writes "__metadata__" first, then tensors in file
// order, and each entry as dtype, shape, data_offsets.
using OrderedJson = nlohmann::ordered_json;

constexpr std::string_view kMetadataKey = "__metadata__";
// The reference refuses larger headers; so do we, before allocating for one.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;

// Our dtypes with their names in the format, indexed by DType. `rank` is the dtype's place in the
// reference's dtype enum, which is ordered by alignment: a file lists tensors by rank descending,
// then by name.
struct FormatDType {
  DType dtype;
  std::string_view name;
  int rank;
};
constexpr FormatDType kFormatDTypes[] = {
    {DType::Float32, "F32", 4},   {DType::Float64, "F64", 5}, {DType::Float16, "F16", 1},
    {DType::BFloat16, "BF16", 2}, {DType::Int32, "I32", 3},   {DType::Int64, "I64", 6},
    {DType::Bool, "BOOL", 0},
};
constexpr bool indexed_by_dtype() {
  for (size_t i = 0; i < std::size(kFormatDTypes); ++i) {
    if (static_cast<size_t>(kFormatDTypes[i].dtype) != i) return false;
  }
  return true;
}
static_assert(indexed_by_dtype(), "kFormatDTypes must list the dtypes in DType's order");
const FormatDType& format_dtype(DType dtype) { return kFormatDTypes[static_cast<size_t>(dtype)]; }

// The format's other dtypes: valid in a file, but SpiralTorch has no storage type for them.
constexpr std::string_view kUnsupportedDTypes[] = {
    "U8",      "I8",      "I16",     "U16", "U32",     "U64",    "C64",
    "F8_E5M2", "F8_E4M3", "F8_E8M0", "F4",  "F6_E2M3", "F6_E3M2"};

std::string os_error(int err) { return std::generic_category().message(err); }

// Owns a file descriptor.
struct FileHandle {
  int fd = -1;
  FileHandle() = default;
  explicit FileHandle(int fd) : fd(fd) {}
  FileHandle(const FileHandle&) = delete;
  FileHandle& operator=(const FileHandle&) = delete;
  ~FileHandle() { close(); }
  // Returns close()'s result: on some file systems a failed write is only reported here.
  int close() {
    const int result = fd >= 0 ? ::close(fd) : 0;
    fd = -1;
    return result;
  }
};

// ---------------------------------------------------------------------------------------------
// Writing.

// One tensor's place in the file.
struct Slot {
  const std::string* name;
  const Tensor* tensor;
  uint64_t begin;
  uint64_t end;
};

// The file before its data: tensors in file order with their byte ranges, and the padded header.
struct Plan {
  std::vector<Slot> slots;
  std::string header;
};

Plan plan_file(const std::map<std::string, Tensor>& tensors,
               const std::map<std::string, std::string>& metadata, const char* op) {
  Plan plan;
  for (const auto& [name, tensor] : tensors) {
    ST_CHECK(name != kMetadataKey, SerializationError, "[", op, "] \"", kMetadataKey,
             "\" is the metadata map's key in the format; it cannot name a tensor");
    ST_CHECK(tensor.defined(), SerializationError, "[", op, "] tensor \"", name, "\" is undefined");
    plan.slots.push_back({&name, &tensor, 0, 0});
  }
  // The map is already in name order (std::string compares bytes, as the reference does).
  std::stable_sort(plan.slots.begin(), plan.slots.end(), [](const Slot& a, const Slot& b) {
    return format_dtype(a.tensor->dtype()).rank > format_dtype(b.tensor->dtype()).rank;
  });
  uint64_t offset = 0;
  for (Slot& slot : plan.slots) {
    slot.begin = offset;
    offset += slot.tensor->nbytes();
    slot.end = offset;
  }

  OrderedJson header = OrderedJson::object();
  if (!metadata.empty()) {
    OrderedJson entries = OrderedJson::object();
    for (const auto& [key, value] : metadata) entries[key] = value;
    header[std::string(kMetadataKey)] = std::move(entries);
  }
  for (const Slot& slot : plan.slots) {
    OrderedJson shape = OrderedJson::array();
    for (int64_t size : slot.tensor->shape()) shape.push_back(static_cast<uint64_t>(size));
    OrderedJson entry = OrderedJson::object();
    entry["dtype"] = std::string(format_dtype(slot.tensor->dtype()).name);
    entry["shape"] = std::move(shape);
    entry["data_offsets"] = OrderedJson::array({slot.begin, slot.end});
    header[*slot.name] = std::move(entry);
  }
  try {
    // Compact, with non-ASCII characters kept as UTF-8: what the reference's serde_json writes.
    plan.header = header.dump();
  } catch (const OrderedJson::exception& e) {
    throw SerializationError(
        detail::concat("[", op, "] tensor names and metadata must be valid UTF-8: ", e.what()));
  }
  // Spaces (JSON whitespace) so that the data area, after the 8-byte length, is 8-byte aligned.
  plan.header.append((8 - plan.header.size() % 8) % 8, ' ');
  return plan;
}

// Calls write(data, size) with the file's bytes in order. Each tensor is brought to the host and
// made contiguous on its turn, so at most one tensor's copy is held at a time.
template <typename Write>
void emit(const Plan& plan, Write&& write) {
  unsigned char length[8];
  const uint64_t header_size = plan.header.size();
  for (int i = 0; i < 8; ++i) length[i] = static_cast<unsigned char>(header_size >> (8 * i));
  write(length, sizeof length);
  write(plan.header.data(), plan.header.size());
  for (const Slot& slot : plan.slots) {
    if (slot.begin == slot.end) continue;
    const Tensor host = slot.tensor->detach().to(kCPU).contiguous();
    write(host.data_ptr(), host.nbytes());
  }
}

// A new file beside `target` that is removed unless commit() renames it over `target`.
class TempFile {
 public:
  explicit TempFile(const std::string& target) : target_(target) {
    static std::atomic<uint64_t> counter{0};
    // O_EXCL with a name no other writer of this process or another one uses; 0666 lets the umask
    // give the file the permissions a plain create would.
    path_ = detail::concat(target, ".tmp.", ::getpid(), ".", counter++);
    file_.fd = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (file_.fd < 0) {
      const int err = errno;
      fail("cannot create '" + path_ + "'", err);
    }
  }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  ~TempFile() {
    if (committed_) return;
    file_.close();
    ::unlink(path_.c_str());
  }

  void write(const void* data, size_t size) {
    const char* bytes = static_cast<const char*>(data);
    while (size > 0) {
      const ssize_t written = ::write(file_.fd, bytes, std::min<size_t>(size, size_t{1} << 30));
      if (written < 0) {
        const int err = errno;
        if (err == EINTR) continue;
        fail("cannot write '" + path_ + "'", err);
      }
      bytes += written;
      size -= static_cast<size_t>(written);
    }
  }

  // Puts the data on disk, then renames the file over the target, then puts the rename on disk.
  void commit() {
    if (::fsync(file_.fd) != 0) {
      const int err = errno;
      fail("cannot flush '" + path_ + "'", err);
    }
    if (file_.close() != 0) {
      const int err = errno;
      fail("cannot close '" + path_ + "'", err);
    }
    if (::rename(path_.c_str(), target_.c_str()) != 0) {
      const int err = errno;
      fail("cannot rename '" + path_ + "' to '" + target_ + "'", err);
    }
    committed_ = true;
    std::string directory = std::filesystem::path(target_).parent_path().string();
    if (directory.empty()) directory = ".";
    FileHandle dir(::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (dir.fd < 0 || ::fsync(dir.fd) != 0) {
      const int err = errno;
      fail("wrote '" + target_ + "' but cannot flush its directory '" + directory + "'", err);
    }
  }

 private:
  // Throws with the OS's reason; `err` is errno, read by the caller before anything can change it.
  [[noreturn]] static void fail(const std::string& what, int err) {
    throw SerializationError(detail::concat("[save_safetensors] ", what, ": ", os_error(err)));
  }

  std::string target_;
  std::string path_;
  FileHandle file_;
  bool committed_ = false;
};

// ---------------------------------------------------------------------------------------------
// Reading.

// Where bytes come from, for messages: every one starts with this prefix.
struct Source {
  std::string prefix;  // "[load_safetensors] 'path': " or "[from_safetensors_bytes] input: "
  template <typename... Args>
  [[noreturn]] void fail(const Args&... args) const {
    throw SerializationError(detail::concat(prefix, args...));
  }
};

struct Entry {
  std::string name;
  DType dtype;
  Shape shape;
  uint64_t begin;
  uint64_t end;
};

struct Header {
  std::vector<Entry> entries;
  std::map<std::string, std::string> metadata;
};

// A JSON value for a message, cut short: headers come from untrusted files.
std::string brief(const Json& value) {
  std::string text = value.dump(-1, ' ', false, Json::error_handler_t::replace);
  if (text.size() > 60) text = text.substr(0, 57) + "...";
  return text;
}

// Checks the 8-byte length of a `total`-byte input and returns it.
uint64_t header_length(const unsigned char (&prefix)[8], uint64_t total, const Source& src) {
  uint64_t length = 0;
  for (int i = 0; i < 8; ++i) length |= static_cast<uint64_t>(prefix[i]) << (8 * i);
  if (length > kMaxHeaderBytes) {
    src.fail("header length ", length, " is above the format's limit of ", kMaxHeaderBytes,
             " bytes");
  }
  if (length > total - 8) {
    src.fail("header length ", length, " runs past the end: only ", total - 8,
             " bytes follow the length");
  }
  return length;
}

void check_has_length(uint64_t total, const Source& src) {
  if (total < 8) {
    src.fail("holds ", total, " bytes, fewer than the 8-byte header length that starts the format");
  }
}

Json parse_json(std::string_view text, const Source& src) {
  // A plain parse keeps the last of duplicate keys; the callback sees every key of each object.
  std::vector<std::set<std::string>> keys_seen;
  const Json::parser_callback_t on_event = [&](int, Json::parse_event_t event, Json& parsed) {
    switch (event) {
      case Json::parse_event_t::object_start: keys_seen.emplace_back(); break;
      case Json::parse_event_t::object_end: keys_seen.pop_back(); break;
      case Json::parse_event_t::key: {
        const auto& key = parsed.get_ref<const std::string&>();
        if (!keys_seen.back().insert(key).second)
          src.fail("header has the key \"", key, "\" twice");
        break;
      }
      default: break;
    }
    return true;
  };
  // No JSON text holds a raw NUL, but nlohmann's parser takes one for the end of its input.
  if (const size_t nul = text.find('\0'); nul != std::string_view::npos) {
    src.fail("header is not valid JSON: a NUL byte at offset ", nul);
  }
  try {
    return Json::parse(text.begin(), text.end(), on_event);
  } catch (const Json::exception& e) {
    // parse_error for bad syntax, out_of_range for a number too large for a double.
    src.fail("header is not valid JSON: ", e.what());
  }
}

DType parse_dtype(const Json& value, const std::string& tensor, const Source& src) {
  if (!value.is_string()) {
    src.fail("tensor \"", tensor, "\": \"dtype\" is ", brief(value), ", expected a string");
  }
  const auto& name = value.get_ref<const std::string&>();
  for (const FormatDType& f : kFormatDTypes) {
    if (f.name == name) return f.dtype;
  }
  if (std::find(std::begin(kUnsupportedDTypes), std::end(kUnsupportedDTypes), name) !=
      std::end(kUnsupportedDTypes)) {
    src.fail("tensor \"", tensor, "\": unsupported dtype ", name,
             " (SpiralTorch reads F64, F32, F16, BF16, I64, I32 and BOOL)");
  }
  src.fail("tensor \"", tensor, "\": unknown dtype \"", name, "\"");
}

Shape parse_shape(const Json& value, const std::string& tensor, const Source& src) {
  if (!value.is_array()) {
    src.fail("tensor \"", tensor, "\": \"shape\" is ", brief(value), ", expected an array");
  }
  Shape shape;
  for (const Json& size : value) {
    if (size.is_number_integer() && !size.is_number_unsigned()) {
      src.fail("tensor \"", tensor, "\": \"shape\" ", brief(value), " has a negative size");
    }
    if (!size.is_number_unsigned()) {
      src.fail("tensor \"", tensor, "\": \"shape\" ", brief(value), " has ", brief(size),
               ", expected non-negative integers");
    }
    const uint64_t n = size.get<uint64_t>();
    if (n > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      src.fail("tensor \"", tensor, "\": \"shape\" has the size ", n, ", above 2^63 - 1");
    }
    shape.push_back(static_cast<int64_t>(n));
  }
  return shape;
}

Entry parse_entry(const std::string& name, const Json& value, uint64_t data_size,
                  const Source& src) {
  if (!value.is_object()) {
    src.fail("tensor \"", name, "\" is ", brief(value),
             ", expected an object with \"dtype\", \"shape\" and \"data_offsets\"");
  }
  for (const char* field : {"dtype", "shape", "data_offsets"}) {
    if (!value.contains(field)) src.fail("tensor \"", name, "\" has no \"", field, "\"");
  }
  Entry entry{name, parse_dtype(value.at("dtype"), name, src),
              parse_shape(value.at("shape"), name, src), 0, 0};

  const Json& offsets = value.at("data_offsets");
  if (!offsets.is_array() || offsets.size() != 2 || !offsets[0].is_number_unsigned() ||
      !offsets[1].is_number_unsigned()) {
    src.fail("tensor \"", name, "\": \"data_offsets\" is ", brief(offsets),
             ", expected [begin, end] with non-negative integers");
  }
  entry.begin = offsets[0].get<uint64_t>();
  entry.end = offsets[1].get<uint64_t>();
  if (entry.begin > entry.end) {
    src.fail("tensor \"", name, "\": data_offsets [", entry.begin, ", ", entry.end,
             "] begin after they end");
  }
  if (entry.end > data_size) {
    src.fail("tensor \"", name, "\": data_offsets [", entry.begin, ", ", entry.end,
             "] run past the end of the data area (", data_size, " bytes)");
  }
  uint64_t nbytes = dtype_size(entry.dtype);
  for (int64_t size : entry.shape) {
    if (__builtin_mul_overflow(nbytes, static_cast<uint64_t>(size), &nbytes)) {
      src.fail("tensor \"", name, "\": shape ", entry.shape, " has more bytes than 2^64");
    }
  }
  if (nbytes != entry.end - entry.begin) {
    src.fail("tensor \"", name, "\": shape ", entry.shape, " of ", format_dtype(entry.dtype).name,
             " needs ", nbytes, " bytes, but data_offsets [", entry.begin, ", ", entry.end,
             "] hold ", entry.end - entry.begin);
  }
  return entry;
}

// The reference accepts only data areas that the tensors tile exactly: in offset order each one
// starts where the previous one ended, and the last ends where the input does.
void check_tiling(const std::vector<Entry>& entries, uint64_t data_size, const Source& src) {
  std::vector<const Entry*> order;
  for (const Entry& e : entries) order.push_back(&e);
  std::sort(order.begin(), order.end(), [](const Entry* a, const Entry* b) {
    return std::pair(a->begin, a->end) < std::pair(b->begin, b->end);
  });
  uint64_t covered = 0;
  const Entry* previous = nullptr;
  for (const Entry* e : order) {
    if (e->begin < covered) {
      src.fail("tensors \"", previous->name, "\" [", previous->begin, ", ", previous->end,
               ") and \"", e->name, "\" [", e->begin, ", ", e->end, ") overlap");
    }
    if (e->begin > covered) {
      src.fail("bytes [", covered, ", ", e->begin, ") of the data area belong to no tensor");
    }
    covered = e->end;
    previous = e;
  }
  if (covered != data_size) {
    src.fail("bytes [", covered, ", ", data_size, ") at the end of the data area belong to no ",
             "tensor");
  }
}

std::map<std::string, std::string> parse_metadata(const Json& value, const Source& src) {
  std::map<std::string, std::string> metadata;
  if (value.is_null()) return metadata;  // the reference reads null as no metadata
  if (!value.is_object()) {
    src.fail("\"", kMetadataKey, "\" is ", brief(value), ", expected an object of strings");
  }
  for (const auto& [key, item] : value.items()) {
    if (!item.is_string()) {
      src.fail("\"", kMetadataKey, "\" value of \"", key, "\" is ", brief(item),
               ", expected a string");
    }
    metadata.emplace(key, item.get<std::string>());
  }
  return metadata;
}

Header parse_header(std::string_view text, uint64_t data_size, const Source& src) {
  const Json root = parse_json(text, src);
  if (!root.is_object()) src.fail("header is a JSON ", root.type_name(), ", expected an object");
  Header header;
  for (const auto& [key, value] : root.items()) {
    if (key == kMetadataKey) {
      header.metadata = parse_metadata(value, src);
    } else {
      header.entries.push_back(parse_entry(key, value, data_size, src));
    }
  }
  check_tiling(header.entries, data_size, src);
  return header;
}

// Makes the tensors of a validated header; read(dst, begin, size) copies `size` bytes from offset
// `begin` of the data area.
template <typename Read>
SafetensorsFile make_tensors(Header&& header, Device device, const Source& src, Read&& read) {
  SafetensorsFile file;
  file.metadata = std::move(header.metadata);
  for (Entry& e : header.entries) {
    Tensor host = empty(e.shape, {.dtype = e.dtype});
    if (e.end > e.begin) read(host.data_ptr(), e.begin, e.end - e.begin);
    if (e.dtype == DType::Bool) {
      // Any byte but 0 and 1 would be an invalid C++ bool.
      const auto* bytes = static_cast<const unsigned char*>(host.data_ptr());
      for (int64_t i = 0; i < host.numel(); ++i) {
        if (bytes[i] > 1) {
          src.fail("tensor \"", e.name, "\" is BOOL but element ", i, " is the byte ",
                   static_cast<int>(bytes[i]), ", expected 0 or 1");
        }
      }
    }
    file.tensors.emplace(std::move(e.name), host.to(device));
  }
  return file;
}

class InputFile {
 public:
  InputFile(const std::string& path, const Source& src) : src_(src) {
    file_.fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (file_.fd < 0) src.fail("cannot open: ", os_error(errno));
    struct stat info;
    if (::fstat(file_.fd, &info) != 0) src.fail("cannot stat: ", os_error(errno));
    if (!S_ISREG(info.st_mode)) src.fail("not a regular file");
    size_ = static_cast<uint64_t>(info.st_size);
  }

  uint64_t size() const { return size_; }

  void read_at(uint64_t offset, void* dst, uint64_t size) const {
    char* out = static_cast<char*>(dst);
    while (size > 0) {
      const ssize_t got = ::pread(file_.fd, out, std::min<uint64_t>(size, uint64_t{1} << 30),
                                  static_cast<off_t>(offset));
      if (got < 0) {
        if (errno == EINTR) continue;
        src_.fail("cannot read: ", os_error(errno));
      }
      if (got == 0) src_.fail("the file ended early: it shrank while being read");
      out += got;
      offset += static_cast<uint64_t>(got);
      size -= static_cast<uint64_t>(got);
    }
  }

 private:
  const Source& src_;
  FileHandle file_;
  uint64_t size_ = 0;
};

}  // namespace

std::string to_safetensors_bytes(const std::map<std::string, Tensor>& tensors,
                                 const std::map<std::string, std::string>& metadata) {
  const Plan plan = plan_file(tensors, metadata, "to_safetensors_bytes");
  std::string bytes;
  emit(plan,
       [&](const void* data, size_t size) { bytes.append(static_cast<const char*>(data), size); });
  return bytes;
}

void save_safetensors(const std::string& path, const std::map<std::string, Tensor>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  // Errors in names, metadata or tensors surface before anything touches the disk.
  const Plan plan = plan_file(tensors, metadata, "save_safetensors");
  TempFile file(path);
  emit(plan, [&](const void* data, size_t size) { file.write(data, size); });
  file.commit();
}

SafetensorsFile from_safetensors_bytes(std::string_view bytes, Device device) {
  const Source src{"[from_safetensors_bytes] input: "};
  check_has_length(bytes.size(), src);
  unsigned char prefix[8];
  std::copy_n(bytes.begin(), 8, prefix);
  const uint64_t length = header_length(prefix, bytes.size(), src);
  Header header = parse_header(bytes.substr(8, length), bytes.size() - 8 - length, src);
  const std::string_view data = bytes.substr(8 + length);
  return make_tensors(std::move(header), device, src,
                      [&](void* dst, uint64_t begin, uint64_t size) {
                        std::copy_n(data.data() + begin, size, static_cast<char*>(dst));
                      });
}

SafetensorsFile load_safetensors(const std::string& path, Device device) {
  const Source src{detail::concat("[load_safetensors] '", path, "': ")};
  const InputFile file(path, src);
  check_has_length(file.size(), src);
  unsigned char prefix[8];
  file.read_at(0, prefix, 8);
  const uint64_t length = header_length(prefix, file.size(), src);
  std::string text(length, '\0');
  file.read_at(8, text.data(), length);
  Header header = parse_header(text, file.size() - 8 - length, src);
  return make_tensors(std::move(header), device, src,
                      [&](void* dst, uint64_t begin, uint64_t size) {
                        file.read_at(8 + length + begin, dst, size);
                      });
}

}  // namespace st
