// The safetensors reader on arbitrary bytes: it must return tensors or throw st::Error, never
// crash, hang, read out of bounds or allocate more than the input describes. What it accepts must
// survive a round trip: written back and read again, the same names, metadata, dtypes, shapes and
// bytes.

#include <spiraltorch/spiraltorch.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string_view>

namespace {

void require(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "fuzz_safetensors: %s\n", what);
    std::abort();
  }
}

bool same_bytes(const st::Tensor& a, const st::Tensor& b) {
  if (a.dtype() != b.dtype() || a.shape() != b.shape()) return false;
  const st::Tensor ca = a.contiguous(), cb = b.contiguous();
  return a.nbytes() == 0 || std::memcmp(ca.data_ptr(), cb.data_ptr(), a.nbytes()) == 0;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  st::SafetensorsFile file;
  try {
    file = st::from_safetensors_bytes(bytes);
  } catch (const st::SerializationError&) {
    return 0;  // rejected, as malformed input must be; any other exception escapes and aborts
  }
  const std::string written = st::to_safetensors_bytes(file.tensors, file.metadata);
  const st::SafetensorsFile again = st::from_safetensors_bytes(written);
  require(again.metadata == file.metadata, "metadata changed in a round trip");
  require(again.tensors.size() == file.tensors.size(), "tensor count changed in a round trip");
  for (const auto& [name, tensor] : file.tensors) {
    auto it = again.tensors.find(name);
    require(it != again.tensors.end(), "a tensor name was lost in a round trip");
    require(same_bytes(tensor, it->second), "a tensor changed in a round trip");
  }
  // Our writer's layout is canonical: writing what it read gives the same bytes.
  require(st::to_safetensors_bytes(again.tensors, again.metadata) == written,
          "writing is not deterministic");
  return 0;
}
