// Checkpoints never lose data: a writer process killed with SIGKILL at random points of a save
// (while it creates the temporary, writes the header, the tensor bytes, fsyncs or renames) leaves
// the file at the path either as it was or as the new complete version, always loadable.

#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <spiraltorch/spiraltorch.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <random>
#include <string>
#include <thread>

extern char** environ;

namespace {

constexpr int64_t kElements = 1 << 21;  // 8 MiB of float32, plus 8 MiB of f64 and 4 MiB of int64

// The version the file holds, after checking that every tensor is whole and holds it.
int64_t check_checkpoint(const std::string& path) {
  st::SafetensorsFile file = st::load_safetensors(path);
  const int64_t version = std::stoll(file.metadata.at("version"));
  EXPECT_EQ(file.tensors.size(), 3u);
  for (const auto& [name, tensor] : file.tensors) {
    SCOPED_TRACE(name);
    const st::Tensor expected = st::full_like(tensor, static_cast<double>(version));
    EXPECT_EQ(st::sum(st::eq(tensor, expected)).item<int64_t>(), tensor.numel())
        << "a tensor is not all " << version;
    EXPECT_EQ(tensor.numel(), name == "f32"   ? kElements
                              : name == "f64" ? kElements / 2
                                              : kElements / 4);
  }
  return version;
}

void save_version(const std::string& path, int64_t v) {
  st::save_safetensors(
      path,
      {{"f32", st::full({kElements}, double(v), {.dtype = st::DType::Float32})},
       {"f64", st::full({kElements / 2}, double(v), {.dtype = st::DType::Float64})},
       {"i64", st::full({kElements / 4}, v, {.dtype = st::DType::Int64})}},
      {{"version", std::to_string(v)}});
}

pid_t spawn_writer(const std::string& path, int64_t first_version) {
  const std::string first = std::to_string(first_version);
  const std::string numel = std::to_string(kElements);
  char* argv[] = {const_cast<char*>(ST_CHECKPOINT_WRITER), const_cast<char*>(path.c_str()),
                  const_cast<char*>(first.c_str()), const_cast<char*>(numel.c_str()), nullptr};
  pid_t pid = 0;
  EXPECT_EQ(::posix_spawn(&pid, ST_CHECKPOINT_WRITER, nullptr, nullptr, argv, environ), 0);
  return pid;
}

ino_t inode_of(const std::string& path) {
  struct stat info {};
  return ::stat(path.c_str(), &info) == 0 ? info.st_ino : 0;
}

TEST(CheckpointKill, KilledWriterLeavesTheOldOrTheNewFileIntact) {
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("st_kill_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "model.safetensors").string();
  save_version(path, 0);
  ASSERT_EQ(check_checkpoint(path), 0);

  // How long a writer takes here to start and replace the file once (each save renames a new
  // inode over the path), so that the kills spread over its start and its first saves.
  const ino_t before = inode_of(path);
  const auto start = std::chrono::steady_clock::now();
  pid_t calibration = spawn_writer(path, 1);
  while (inode_of(path) == before &&
         std::chrono::steady_clock::now() - start < std::chrono::seconds(60)) {
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  const int64_t first_save_us = std::chrono::duration_cast<std::chrono::microseconds>(
                                    std::chrono::steady_clock::now() - start)
                                    .count();
  ::kill(calibration, SIGKILL);
  ::waitpid(calibration, nullptr, 0);
  ASSERT_NE(inode_of(path), before) << "the writer saved nothing in 60 s";
  int64_t last = check_checkpoint(path);

  std::mt19937 rng(1234);
  std::uniform_int_distribution<int64_t> delay(0, 2 * first_save_us);
  int unchanged = 0, replaced = 0;
  constexpr int kRounds = 40;
  for (int round = 1; round <= kRounds; ++round) {
    const pid_t pid = spawn_writer(path, int64_t{round} * 1000000);
    ASSERT_GT(pid, 0);
    std::this_thread::sleep_for(std::chrono::microseconds(delay(rng)));
    ASSERT_EQ(::kill(pid, SIGKILL), 0);
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFSIGNALED(status)) << "the writer exited on its own with status " << status;

    SCOPED_TRACE("round " + std::to_string(round));
    int64_t version = -1;
    ASSERT_NO_THROW(version = check_checkpoint(path));
    // The old file, or a newer complete version from this round's writer.
    EXPECT_TRUE(version == last || version >= round * int64_t{1000000}) << version;
    (version == last ? unchanged : replaced) += 1;
    last = version;
  }
  // Some kills came before the first complete save, some after.
  EXPECT_GT(unchanged, 0);
  EXPECT_GT(replaced, 0);
  std::printf("%d kills left the previous file, %d found a newer complete one\n", unchanged,
              replaced);
  std::filesystem::remove_all(dir);
}

}  // namespace
