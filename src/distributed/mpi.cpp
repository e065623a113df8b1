// The MPI process group: CPU tensors, each collective one nonblocking MPI call whose request a Work
// polls against the group's timeout (OpenMPI progresses such calls while they are tested). f16 and
// bf16 reductions run on an f32 copy: MPI has no half types, and an f32 sum loses fewer digits.

// Only MPI's C API: its deprecated C++ bindings do not compile cleanly with our warnings.
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>

#include <cstdlib>
#include <utility>

#include "distributed/process_group.h"
#include "spiraltorch/autograd.h"
#include "spiraltorch/ops.h"

namespace st::distributed::detail {

namespace {

void check_mpi(int code, const char* call, const char* op) {
  if (code == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  MPI_Error_string(code, text, &length);
  throw DistributedError(
      st::detail::concat("[", op, "] ", call, " failed: ", std::string(text, length)));
}

// MPI is initialized once per process: a group destroyed and made again reuses it, and it is
// finalized at exit (MPI allows no second MPI_Init).
void ensure_mpi() {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (initialized) return;
  int provided = 0;
  check_mpi(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_SERIALIZED, &provided), "MPI_Init_thread",
            "init_process_group");
  std::atexit([] {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) MPI_Finalize();
  });
}

MPI_Datatype mpi_type(DType dtype) {
  switch (dtype) {
    case DType::Float32: return MPI_FLOAT;
    case DType::Float64: return MPI_DOUBLE;
    case DType::Int32: return MPI_INT32_T;
    case DType::Int64: return MPI_INT64_T;
    case DType::Float16:
    case DType::BFloat16: return MPI_UINT16_T;  // moved as bits, reduced through f32
    case DType::Bool: return MPI_UINT8_T;
  }
  return MPI_BYTE;
}

MPI_Op mpi_op(ReduceOp op) { return op == ReduceOp::Max ? MPI_MAX : MPI_SUM; }

bool is_half(DType dtype) { return dtype == DType::Float16 || dtype == DType::BFloat16; }

int count_of(const Tensor& t) {
  ST_CHECK(t.numel() <= INT32_MAX, ValueError, "[distributed] a tensor of ", t.numel(),
           " elements is beyond MPI's int count; split it");
  return static_cast<int>(t.numel());
}

class MpiWork final : public Work {
 public:
  // `finish` runs once the request has completed (copies back from a staging tensor, divides for
  // Avg); `keep` holds every buffer the request uses until then.
  MpiWork(const char* op, MPI_Request request, std::function<void()> finish,
          std::vector<Tensor> keep, std::chrono::milliseconds timeout, int rank, int world)
      : op_(op),
        request_(request),
        finish_(std::move(finish)),
        keep_(std::move(keep)),
        timeout_(timeout),
        rank_(rank),
        world_(world) {}

  ~MpiWork() override {
    // A handle dropped unfinished waits, unless it timed out already: then MPI may still write
    // into its buffers, which are left allocated rather than handed to someone else.
    if (!done_ && !timed_out_) {
      try {
        wait();
      } catch (const Error&) {
      }
    }
    if (!done_)
      for (Tensor& t : keep_) new Tensor(std::move(t));
  }

  bool is_completed() override {
    if (done_) return true;
    int flag = 0;
    check_mpi(MPI_Test(&request_, &flag, MPI_STATUS_IGNORE), "MPI_Test", op_);
    if (!flag) return false;
    done_ = true;
    if (finish_) finish_();
    keep_.clear();
    return true;
  }

  void wait() override {
    try {
      poll_until([this] { return is_completed(); }, timeout_, op_, rank_, world_);
    } catch (const TimeoutError&) {
      timed_out_ = true;
      throw;
    }
  }

 private:
  const char* op_;
  MPI_Request request_;
  std::function<void()> finish_;
  std::vector<Tensor> keep_;
  std::chrono::milliseconds timeout_;
  int rank_, world_;
  bool done_ = false;
  bool timed_out_ = false;
};

class MpiGroup final : public ProcessGroup {
 public:
  explicit MpiGroup(const InitOptions& options) {
    ensure_mpi();
    check_mpi(MPI_Comm_dup(MPI_COMM_WORLD, &comm_), "MPI_Comm_dup", "init_process_group");
    MPI_Comm_rank(comm_, &rank);
    MPI_Comm_size(comm_, &world_size);
    MPI_Comm node;
    MPI_Comm_split_type(comm_, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, &node);
    MPI_Comm_rank(node, &local_rank);
    MPI_Comm_free(&node);
    device = Device(DeviceType::CPU);
    timeout = options.timeout;
    check_signatures = options.check_signatures;
  }
  ~MpiGroup() override {
    // A group still alive at exit may outlive MPI, which the exit handler finalized first.
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) MPI_Comm_free(&comm_);
  }

  std::string backend() const override { return "mpi"; }

  void all_max(std::vector<int64_t>& values, const char* op) override {
    MPI_Request request;
    check_mpi(MPI_Iallreduce(MPI_IN_PLACE, values.data(), static_cast<int>(values.size()),
                             MPI_INT64_T, MPI_MAX, comm_, &request),
              "MPI_Iallreduce", op);
    MpiWork(op, request, nullptr, {}, timeout, rank, world_size).wait();
  }

  WorkHandle all_reduce(const Tensor& tensor, ReduceOp op) override {
    // Halves are reduced in an f32 copy, Avg as a sum divided afterwards.
    Tensor buffer = is_half(tensor.dtype()) ? tensor.to(DType::Float32) : tensor;
    MPI_Request request;
    check_mpi(MPI_Iallreduce(MPI_IN_PLACE, buffer.data_ptr(), count_of(buffer),
                             mpi_type(buffer.dtype()), mpi_op(op), comm_, &request),
              "MPI_Iallreduce", "all_reduce");
    const int world = world_size;
    auto finish = [target = Tensor(tensor), buffer, op, world]() mutable {
      NoGradGuard no_grad;
      if (op == ReduceOp::Avg) buffer.div_(Scalar(static_cast<double>(world)));
      if (!buffer.is_same(target)) target.copy_(buffer);
    };
    return start("all_reduce", request, finish, {tensor, buffer});
  }

  WorkHandle broadcast(const Tensor& tensor, int src) override {
    MPI_Request request;
    check_mpi(MPI_Ibcast(tensor.data_ptr(), count_of(tensor), mpi_type(tensor.dtype()), src, comm_,
                         &request),
              "MPI_Ibcast", "broadcast");
    return start("broadcast", request, nullptr, {tensor});
  }

  WorkHandle all_gather(const Tensor& output, const Tensor& input) override {
    MPI_Request request;
    const MPI_Datatype type = mpi_type(input.dtype());
    check_mpi(MPI_Iallgather(input.data_ptr(), count_of(input), type, output.data_ptr(),
                             count_of(input), type, comm_, &request),
              "MPI_Iallgather", "all_gather");
    return start("all_gather", request, nullptr, {output, input});
  }

  WorkHandle reduce_scatter(const Tensor& output, const Tensor& input, ReduceOp op) override {
    const bool half = is_half(input.dtype());
    Tensor in = half ? input.to(DType::Float32) : input;
    Tensor out = half ? empty(output.shape(), {DType::Float32, output.device()}) : output;
    MPI_Request request;
    check_mpi(MPI_Ireduce_scatter_block(in.data_ptr(), out.data_ptr(), count_of(out),
                                        mpi_type(in.dtype()), mpi_op(op), comm_, &request),
              "MPI_Ireduce_scatter_block", "reduce_scatter");
    const int world = world_size;
    auto finish = [target = Tensor(output), out, op, world]() mutable {
      NoGradGuard no_grad;
      if (op == ReduceOp::Avg) out.div_(Scalar(static_cast<double>(world)));
      if (!out.is_same(target)) target.copy_(out);
    };
    return start("reduce_scatter", request, finish, {output, input, in, out});
  }

  void barrier() override {
    MPI_Request request;
    check_mpi(MPI_Ibarrier(comm_, &request), "MPI_Ibarrier", "barrier");
    MpiWork("barrier", request, nullptr, {}, timeout, rank, world_size).wait();
  }

  [[noreturn]] void abort(int exit_code) override {
    MPI_Abort(MPI_COMM_WORLD, exit_code);
    std::_Exit(exit_code);
  }

 private:
  WorkHandle start(const char* op, MPI_Request request, std::function<void()> finish,
                   std::vector<Tensor> keep) {
    return std::make_shared<MpiWork>(op, request, std::move(finish), std::move(keep), timeout, rank,
                                     world_size);
  }

  MPI_Comm comm_ = MPI_COMM_NULL;
};

std::unique_ptr<ProcessGroup> make_group(const InitOptions& options) {
  return std::make_unique<MpiGroup>(options);
}

void world(int& rank, int& world_size, int& local_rank) {
  ensure_mpi();
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &world_size);
  MPI_Comm node;
  MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, &node);
  MPI_Comm_rank(node, &local_rank);
  MPI_Comm_free(&node);
}

void broadcast_bytes(void* data, size_t bytes, int root, std::chrono::milliseconds timeout) {
  MPI_Request request;
  check_mpi(MPI_Ibcast(data, static_cast<int>(bytes), MPI_BYTE, root, MPI_COMM_WORLD, &request),
            "MPI_Ibcast", "init_process_group");
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  MpiWork("init_process_group", request, nullptr, {}, timeout, rank, size).wait();
}

}  // namespace

}  // namespace st::distributed::detail

extern "C" __attribute__((visibility("default"))) const st::distributed::detail::MpiModule*
st_distributed_mpi_module() {
  using namespace st::distributed::detail;
  static const MpiModule module{make_group, world, broadcast_bytes};
  return &module;
}
