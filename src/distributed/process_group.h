#pragma once
// The transport behind st::distributed: one ProcessGroup per process, MPI's or NCCL's. The
// front-end (distributed.cpp) validates tensors and exchanges signatures; a group only moves data.

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "spiraltorch/distributed.h"

namespace st::distributed::detail {

class ProcessGroup {
 public:
  virtual ~ProcessGroup() = default;
  virtual std::string backend() const = 0;
  // values[i] becomes the maximum of values[i] over the ranks; blocking, within the timeout.
  virtual void all_max(std::vector<int64_t>& values, const char* op) = 0;
  virtual WorkHandle all_reduce(const Tensor& tensor, ReduceOp op) = 0;
  virtual WorkHandle broadcast(const Tensor& tensor, int src) = 0;
  virtual WorkHandle all_gather(const Tensor& output, const Tensor& input) = 0;
  virtual WorkHandle reduce_scatter(const Tensor& output, const Tensor& input, ReduceOp op) = 0;
  virtual void barrier() = 0;
  [[noreturn]] virtual void abort(int exit_code) = 0;

  int rank = 0;
  int world_size = 1;
  int local_rank = 0;
  Device device;
  std::chrono::milliseconds timeout{std::chrono::minutes(5)};
  bool check_signatures = true;
};

// The group of this process; DistributedError naming `op` when there is none.
ProcessGroup& current_group(const char* op);

std::unique_ptr<ProcessGroup> make_mpi_group(const InitOptions& options);
std::unique_ptr<ProcessGroup> make_nccl_group(const InitOptions& options);

// MPI as the launcher of NCCL ranks: whether mpirun started this process, MPI_Init (once) with
// the world's rank, size and this machine's local rank, and a broadcast of raw bytes.
bool launched_by_mpi();
void mpi_world(int& rank, int& world_size, int& local_rank);
void mpi_broadcast_bytes(void* data, size_t bytes, int root, std::chrono::milliseconds timeout);

// The MPI transport is a module of its own (libspiraltorch_mpi.so, beside the library), loaded on
// first use: the library loads on machines without MPI, and the module uses the system's MPI, the
// one mpirun belongs to (a wheel must not carry a copy: Open MPI's plugins load the system's).
struct MpiModule {
  std::unique_ptr<ProcessGroup> (*make_group)(const InitOptions& options);
  void (*world)(int& rank, int& world_size, int& local_rank);
  void (*broadcast_bytes)(void* data, size_t bytes, int root, std::chrono::milliseconds timeout);
};

// NCCL's transport is a module as well (libspiraltorch_nccl.so), loaded by init_process_group:
// the library and the Python package load where no libnccl.so.2 is installed.
struct NcclModule {
  std::unique_ptr<ProcessGroup> (*make_group)(const InitOptions& options);
};

// Polls `done` until it returns true; TimeoutError naming `op` once `timeout` has passed.
void poll_until(const std::function<bool()>& done, std::chrono::milliseconds timeout,
                const char* op, int rank, int world_size);

}  // namespace st::distributed::detail

// Each module's one exported symbol.
extern "C" const st::distributed::detail::MpiModule* st_distributed_mpi_module();
extern "C" const st::distributed::detail::NcclModule* st_distributed_nccl_module();
