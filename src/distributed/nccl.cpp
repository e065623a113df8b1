// The NCCL process group: CUDA tensors, one communicator per process on device cuda:LOCAL_RANK,
// created non-blocking so that every wait can give up at the group's timeout (ncclCommAbort then
// ends it). Collectives run on a communication stream of their own: it waits for the work queued
// on the device's stream so far (an event), so the rest of backward goes on beside them.

#include <cuda_runtime.h>
#include <nccl.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include "distributed/process_group.h"
#include "spiraltorch/cuda.h"
#include "spiraltorch/ops.h"

namespace st::distributed::detail {

namespace {

void check_cuda(cudaError_t status, const char* call, const char* op) {
  ST_CHECK(status == cudaSuccess, distributed::DistributedError, "[", op, "] ", call,
           " failed: ", cudaGetErrorString(status));
}

ncclDataType_t nccl_type(DType dtype) {
  switch (dtype) {
    case DType::Float32: return ncclFloat32;
    case DType::Float64: return ncclFloat64;
    case DType::Float16: return ncclFloat16;
    case DType::BFloat16: return ncclBfloat16;
    case DType::Int32: return ncclInt32;
    case DType::Int64: return ncclInt64;
    case DType::Bool: return ncclUint8;
  }
  return ncclUint8;
}

ncclRedOp_t nccl_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::Sum: return ncclSum;
    case ReduceOp::Avg: return ncclAvg;
    case ReduceOp::Max: return ncclMax;
  }
  return ncclSum;
}

int env_int(const char* name, int fallback) {
  const char* value = std::getenv(name);
  if (value == nullptr || *value == '\0') return fallback;
  char* end = nullptr;
  const long parsed = std::strtol(value, &end, 10);
  ST_CHECK(*end == '\0' && parsed >= 0, ValueError, "[init_process_group] ", name,
           " must be a non-negative integer, got '", value, "'");
  return static_cast<int>(parsed);
}

class NcclGroup;

class NcclWork final : public Work {
 public:
  NcclWork(NcclGroup& group, const char* op, cudaEvent_t done, std::vector<Tensor> keep)
      : group_(group), op_(op), done_event_(done), keep_(std::move(keep)) {}
  ~NcclWork() override;
  bool is_completed() override;
  void wait() override;

 private:
  NcclGroup& group_;
  const char* op_;
  cudaEvent_t done_event_;
  std::vector<Tensor> keep_;  // the buffers NCCL uses, alive until it is done with them
  bool done_ = false;
  bool timed_out_ = false;
};

class NcclGroup final : public ProcessGroup {
 public:
  explicit NcclGroup(const InitOptions& options) {
    timeout = options.timeout;
    check_signatures = options.check_signatures;
    if (launched_by_mpi()) {
      mpi_world(rank, world_size, local_rank);
    } else {
      rank = env_int("RANK", 0);
      world_size = env_int("WORLD_SIZE", 1);
      local_rank = env_int("LOCAL_RANK", rank);
      ST_CHECK(world_size >= 1 && rank < world_size, ValueError, "[init_process_group] RANK ", rank,
               " is not below WORLD_SIZE ", world_size);
    }
    const int devices = st::cuda::device_count();
    ST_CHECK(local_rank < devices, DeviceError, "[init_process_group] nccl: local rank ",
             local_rank, " needs device cuda:", local_rank, " but this machine has ", devices,
             " CUDA device(s); start at most one rank per GPU");
    device = Device(DeviceType::CUDA, local_rank);
    compute_stream_ = static_cast<cudaStream_t>(st::cuda::current_stream(local_rank));
    check_cuda(cudaStreamCreateWithFlags(&comm_stream_, cudaStreamNonBlocking), "cudaStreamCreate",
               "init_process_group");

    ncclUniqueId id;
    if (rank == 0) check_nccl(ncclGetUniqueId(&id), "ncclGetUniqueId", "init_process_group");
    std::string store = options.store_file;
    if (store.empty() && std::getenv("ST_STORE_FILE") != nullptr)
      store = std::getenv("ST_STORE_FILE");
    if (launched_by_mpi()) {
      mpi_broadcast_bytes(&id, sizeof(id), 0, timeout);
    } else if (!store.empty()) {
      share_through_file(id, store);
    } else {
      ST_CHECK(world_size == 1, ValueError,
               "[init_process_group] nccl with WORLD_SIZE=", world_size,
               " outside mpirun needs a store file for the NCCL id: set ST_STORE_FILE (or "
               "InitOptions::store_file) to a fresh path that every rank sees");
    }
    ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
    config.blocking = 0;
    check_nccl(ncclCommInitRankConfig(&comm_, world_size, id, rank, &config),
               "ncclCommInitRankConfig", "init_process_group");
    if (!store.empty() && !launched_by_mpi()) {
      barrier();  // every rank has read the id: the file may go
      if (rank == 0) std::filesystem::remove(store);
    }
  }

  ~NcclGroup() override {
    if (comm_ != nullptr) {
      cudaStreamSynchronize(comm_stream_);
      ncclCommFinalize(comm_);
      ncclResult_t state = ncclInProgress;
      while (state == ncclInProgress && ncclCommGetAsyncError(comm_, &state) == ncclSuccess) {
      }
      ncclCommDestroy(comm_);
    }
    if (comm_stream_ != nullptr) cudaStreamDestroy(comm_stream_);
  }

  std::string backend() const override { return "nccl"; }

  // A call on a non-blocking communicator may return ncclInProgress: it is then polled to its end.
  void check_nccl(ncclResult_t result, const char* call, const char* op) {
    if (result == ncclInProgress && comm_ != nullptr) {
      poll_until(
          [&] {
            ncclCommGetAsyncError(comm_, &result);
            return result != ncclInProgress;
          },
          timeout, op, rank, world_size);
    }
    ST_CHECK(result == ncclSuccess, distributed::DistributedError, "[", op, "] ", call,
             " failed: ", ncclGetErrorString(result),
             comm_ != nullptr ? std::string(" (") + ncclGetLastError(comm_) + ")" : std::string());
  }

  // Throws when the communicator has failed since (an error of another rank, a lost peer).
  void check_async(const char* op) {
    ncclResult_t state = ncclSuccess;
    ncclCommGetAsyncError(comm_, &state);
    ST_CHECK(state == ncclSuccess || state == ncclInProgress, distributed::DistributedError, "[",
             op, "] the NCCL communicator failed: ", ncclGetErrorString(state), " (",
             ncclGetLastError(comm_), ")");
  }

  void all_max(std::vector<int64_t>& values, const char* op) override {
    Tensor t = from_buffer(values.data(), {static_cast<int64_t>(values.size())}).to(device);
    run(op, {t}, [&] {
      return ncclAllReduce(t.data_ptr(), t.data_ptr(), t.numel(), ncclInt64, ncclMax, comm_,
                           comm_stream_);
    })->wait();
    values = t.to_vector<int64_t>();
  }

  WorkHandle all_reduce(const Tensor& tensor, ReduceOp op) override {
    return run("all_reduce", {tensor}, [&] {
      return ncclAllReduce(tensor.data_ptr(), tensor.data_ptr(), tensor.numel(),
                           nccl_type(tensor.dtype()), nccl_op(op), comm_, comm_stream_);
    });
  }

  WorkHandle broadcast(const Tensor& tensor, int src) override {
    return run("broadcast", {tensor}, [&] {
      return ncclBroadcast(tensor.data_ptr(), tensor.data_ptr(), tensor.numel(),
                           nccl_type(tensor.dtype()), src, comm_, comm_stream_);
    });
  }

  WorkHandle all_gather(const Tensor& output, const Tensor& input) override {
    return run("all_gather", {output, input}, [&] {
      return ncclAllGather(input.data_ptr(), output.data_ptr(), input.numel(),
                           nccl_type(input.dtype()), comm_, comm_stream_);
    });
  }

  WorkHandle reduce_scatter(const Tensor& output, const Tensor& input, ReduceOp op) override {
    return run("reduce_scatter", {output, input}, [&] {
      return ncclReduceScatter(input.data_ptr(), output.data_ptr(), output.numel(),
                               nccl_type(input.dtype()), nccl_op(op), comm_, comm_stream_);
    });
  }

  void barrier() override {
    Tensor one = ones({1}, {DType::Float32, device});
    run("barrier", {one}, [&] {
      return ncclAllReduce(one.data_ptr(), one.data_ptr(), 1, ncclFloat32, ncclSum, comm_,
                           comm_stream_);
    })->wait();
  }

  [[noreturn]] void abort(int exit_code) override {
    if (comm_ != nullptr) ncclCommAbort(comm_);
    std::_Exit(exit_code);
  }

  cudaStream_t compute_stream() const { return compute_stream_; }
  ncclComm_t comm() const { return comm_; }

 private:
  // Orders the collective after the work queued so far on the device's stream, queues it on the
  // communication stream and marks its end with an event.
  template <typename Call>
  WorkHandle run(const char* op, std::vector<Tensor> keep, Call call) {
    check_async(op);
    check_cuda(cudaSetDevice(local_rank), "cudaSetDevice", op);
    cudaEvent_t ready = nullptr, done = nullptr;
    check_cuda(cudaEventCreateWithFlags(&ready, cudaEventDisableTiming), "cudaEventCreate", op);
    check_cuda(cudaEventRecord(ready, compute_stream_), "cudaEventRecord", op);
    check_cuda(cudaStreamWaitEvent(comm_stream_, ready, 0), "cudaStreamWaitEvent", op);
    cudaEventDestroy(ready);  // released once the wait is satisfied
    check_nccl(call(), op, op);
    check_cuda(cudaEventCreateWithFlags(&done, cudaEventDisableTiming), "cudaEventCreate", op);
    check_cuda(cudaEventRecord(done, comm_stream_), "cudaEventRecord", op);
    return std::make_shared<NcclWork>(*this, op, done, std::move(keep));
  }

  void share_through_file(ncclUniqueId& id, const std::string& path) {
    namespace fs = std::filesystem;
    if (rank == 0) {
      // Written aside and renamed: a reader sees the whole id or nothing.
      const std::string partial = path + ".partial";
      {
        std::ofstream out(partial, std::ios::binary | std::ios::trunc);
        out.write(reinterpret_cast<const char*>(&id), sizeof(id));
        ST_CHECK(out.good(), distributed::DistributedError,
                 "[init_process_group] cannot write the store file ", partial);
      }
      fs::rename(partial, path);
    }
    poll_until(
        [&] {
          std::error_code error;
          return fs::exists(path, error) && fs::file_size(path, error) == sizeof(id);
        },
        timeout, "init_process_group", rank, world_size);
    std::ifstream in(path, std::ios::binary);
    in.read(reinterpret_cast<char*>(&id), sizeof(id));
    ST_CHECK(in.good(), distributed::DistributedError,
             "[init_process_group] cannot read the store file ", path);
  }

  ncclComm_t comm_ = nullptr;
  cudaStream_t compute_stream_ = nullptr;
  cudaStream_t comm_stream_ = nullptr;
};

NcclWork::~NcclWork() {
  if (!done_ && !timed_out_) {
    try {
      wait();
    } catch (const Error&) {
    }
  }
  if (!done_)  // NCCL may still use these buffers: they stay allocated
    for (Tensor& t : keep_) new Tensor(std::move(t));
  cudaEventDestroy(done_event_);
}

bool NcclWork::is_completed() {
  if (done_) return true;
  const cudaError_t status = cudaEventQuery(done_event_);
  if (status == cudaErrorNotReady) {
    cudaGetLastError();
    group_.check_async(op_);
    return false;
  }
  check_cuda(status, "cudaEventQuery", op_);
  done_ = true;
  keep_.clear();
  return true;
}

void NcclWork::wait() {
  try {
    poll_until([this] { return is_completed(); }, group_.timeout, op_, group_.rank,
               group_.world_size);
  } catch (const distributed::TimeoutError&) {
    timed_out_ = true;
    throw;
  }
}

std::unique_ptr<ProcessGroup> make_group(const InitOptions& options) {
  return std::make_unique<NcclGroup>(options);
}

}  // namespace

}  // namespace st::distributed::detail

extern "C" __attribute__((visibility("default"))) const st::distributed::detail::NcclModule*
st_distributed_nccl_module() {
  static const st::distributed::detail::NcclModule module{st::distributed::detail::make_group};
  return &module;
}
