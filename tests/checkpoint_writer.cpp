// Saves checkpoints over one path without end, for test_checkpoint_kill to kill at random points:
// version v holds tensors filled with v and the metadata "version": "v", for v = first, first + 1,
// and so on.
//   checkpoint_writer <path> <first version> <elements per tensor>

#include <spiraltorch/spiraltorch.h>

#include <cstdlib>
#include <string>

int main(int argc, char** argv) {
  if (argc != 4) return 2;
  const std::string path = argv[1];
  const int64_t numel = std::atoll(argv[3]);
  for (int64_t v = std::atoll(argv[2]);; ++v) {
    const double value = static_cast<double>(v);
    st::save_safetensors(path,
                         {{"f32", st::full({numel}, value, {.dtype = st::DType::Float32})},
                          {"f64", st::full({numel / 2}, value, {.dtype = st::DType::Float64})},
                          {"i64", st::full({numel / 4}, v, {.dtype = st::DType::Int64})}},
                         {{"version", std::to_string(v)}});
  }
}
