#pragma once
// Checkpoints in the safetensors format (https://github.com/huggingface/safetensors), readable by
// other frameworks: an 8-byte little-endian header length N, N bytes of JSON naming each tensor's
// dtype ("F32", "F64", "F16", "BF16", "I32", "I64", "BOOL"), shape and [begin, end) byte range in
// the data area, plus an optional "__metadata__" map of strings; then the raw little-endian data.
// Files are laid out as the reference implementation writes them (tensors by dtype alignment
// descending, then by name; the header padded with spaces to 8 bytes), so the same tensors give
// the same bytes. Malformed content and I/O failures throw SerializationError.

#include <map>
#include <string>
#include <string_view>

#include "spiraltorch/device.h"
#include "spiraltorch/tensor.h"

namespace st {

// A safetensors file's content: tensors by name, and the "__metadata__" string map.
struct SafetensorsFile {
  std::map<std::string, Tensor> tensors;
  std::map<std::string, std::string> metadata;
};

// Writes `tensors` (any device, any strides: copied to host contiguous little-endian) in the
// safetensors format, atomically: to a temporary file in the same directory, flushed (fsync) and
// renamed over `path`, so a crash never leaves a half-written file at `path` (and the temporary is
// removed on failure). An empty `metadata` writes no "__metadata__" entry.
void save_safetensors(const std::string& path, const std::map<std::string, Tensor>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

// Serializes to bytes in memory (what save_safetensors writes) and parses bytes; for tests and
// bindings.
std::string to_safetensors_bytes(const std::map<std::string, Tensor>& tensors,
                                 const std::map<std::string, std::string>& metadata = {});
SafetensorsFile from_safetensors_bytes(std::string_view bytes, Device device = kCPU);

// Reads and validates a file; tensors are created on `device`.
SafetensorsFile load_safetensors(const std::string& path, Device device = kCPU);

}  // namespace st
