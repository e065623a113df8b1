#pragma once
// Data-parallel training over several processes, as torch.distributed: a process group of
// `world_size` ranks, collectives over it (CPU tensors through MPI, CUDA tensors through NCCL),
// DistributedDataParallel and a sampler that gives each rank its share of a data set.
//
// Errors that cross ranks are detected before data moves: each collective first exchanges a small
// signature (collective, dtype, element count, shape, root, reduce op) and every rank throws the
// same DistributedError when they differ. A collective that does not complete within the group's
// timeout throws TimeoutError instead of hanging; a group that timed out should be abort()ed.
// Collectives and waits are issued from one thread at a time (MPI runs MPI_THREAD_SERIALIZED).

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "spiraltorch/nn.h"

namespace st::distributed {

// A collective that failed, or tensors that differ across ranks.
class DistributedError : public Error {
  using Error::Error;
};
// A collective that did not complete within the process group's timeout.
class TimeoutError : public DistributedError {
  using DistributedError::DistributedError;
};

enum class ReduceOp { Sum, Avg, Max };

struct InitOptions {
  // Longest wait of any collective (and of the NCCL bootstrap) before TimeoutError.
  std::chrono::milliseconds timeout{std::chrono::minutes(5)};
  // NCCL without MPI: the file through which rank 0 hands the NCCL unique id to the others (a path
  // all ranks see); empty takes ST_STORE_FILE from the environment. Unused when MPI launched the
  // ranks (the id then goes over MPI).
  std::string store_file;
  // Exchange the signature of every collective first (see above). Costs one small collective each.
  bool check_signatures = true;
};

// Joins the process group. backend "mpi": CPU tensors, rank and world size from MPI (mpirun).
// backend "nccl": CUDA tensors; rank and world size from MPI when launched by mpirun, else from
// RANK, WORLD_SIZE and LOCAL_RANK (as torchrun sets them), and the device is cuda:LOCAL_RANK.
void init_process_group(const std::string& backend, const InitOptions& options = {});
bool is_initialized();
// Leaves the group (collectives in flight are waited for); init_process_group may follow again.
void destroy_process_group();
// Ends this process's part at once (MPI_Abort / ncclCommAbort): for a group that timed out.
[[noreturn]] void abort(int exit_code = 1);

int get_rank();
int get_world_size();
int get_local_rank();       // the rank among the processes of this machine
std::string get_backend();  // "mpi" or "nccl"
// The device this rank's tensors live on: cpu for "mpi", cuda:LOCAL_RANK for "nccl".
Device device();
void set_timeout(std::chrono::milliseconds timeout);
std::chrono::milliseconds timeout();

// A collective in flight. Dropping the handle of an unfinished collective waits for it.
class Work {
 public:
  virtual ~Work() = default;
  // Whether the collective has completed (its results may be read); never blocks.
  virtual bool is_completed() = 0;
  // Blocks the host until it completes (TimeoutError after the group's timeout), so that ops
  // queued afterwards see the results, on CUDA too (NCCL runs on a stream of its own).
  virtual void wait() = 0;
};
using WorkHandle = std::shared_ptr<Work>;

// Every collective works in place on contiguous tensors of the group's device and returns a
// handle; with async_op = false it has completed on return. Integer tensors take Sum and Max only.
WorkHandle all_reduce(const Tensor& tensor, ReduceOp op = ReduceOp::Sum, bool async_op = false);
// Rank `src`'s values into `tensor` on every rank.
WorkHandle broadcast(const Tensor& tensor, int src = 0, bool async_op = false);
// output = the ranks' inputs in rank order: output is [world_size * n, ...] for an input
// [n, ...], or [world_size, *input.shape].
WorkHandle all_gather(const Tensor& output, const Tensor& input, bool async_op = false);
// Reduces input over the ranks and gives rank r the r-th block of the result: input is
// [world_size * n, ...] for an output [n, ...], or [world_size, *output.shape].
WorkHandle reduce_scatter(const Tensor& output, const Tensor& input, ReduceOp op = ReduceOp::Sum,
                          bool async_op = false);
void barrier();

// Sums gradients over the ranks as backward produces them: the parameters are cut into buckets of
// about bucket_bytes (in reverse order, the order backward usually reaches them, one dtype and
// device per bucket), and a bucket's average is started (asynchronously) as soon as the last of
// its gradients is accumulated. At the end of backward the remaining buckets are started, all are
// waited for and the averages copied back into .grad. A parameter without a gradient in a backward
// counts as a zero gradient, so every rank reduces the same buckets in the same order.
class GradientReducer {
 public:
  GradientReducer(std::vector<Tensor> params, size_t bucket_bytes);
  ~GradientReducer();
  GradientReducer(const GradientReducer&) = delete;
  GradientReducer& operator=(const GradientReducer&) = delete;

  // When off (no_sync), backward only accumulates local gradients.
  void set_sync(bool sync) { sync_ = sync; }
  bool sync() const { return sync_; }
  size_t bucket_count() const { return buckets_.size(); }

 private:
  struct Bucket {
    std::vector<size_t> params;
    std::vector<int64_t> offsets;  // of each parameter's values in `flat`
    Tensor flat;
    size_t ready = 0;
    WorkHandle work;
  };
  void on_gradient(size_t param);
  void start_backward();
  void launch_ready_buckets();
  void launch(Bucket& bucket);
  void finish();

  std::vector<Tensor> params_;
  std::vector<uint64_t> hook_ids_;
  std::vector<Bucket> buckets_;
  std::vector<size_t> bucket_of_;       // by parameter
  std::vector<bool> seen_;              // by parameter, in the running backward
  size_t next_launch_ = 0;              // buckets start in index order on every rank
  std::weak_ptr<char> backward_token_;  // alive while this backward's callback is queued
  bool sync_ = true;
};

struct DDPOptions {
  size_t bucket_cap_bytes = 25 * 1024 * 1024;
  // Broadcast rank 0's buffers (not only its parameters) at the start.
  bool broadcast_buffers = true;
};

// Wraps a module for data-parallel training: at construction every rank checks that the modules
// agree in parameter names, shapes and dtypes and takes rank 0's parameters and buffers; each
// backward then averages the gradients over the ranks (GradientReducer). Parameters are named
// "module.<name>", as PyTorch names them.
class DistributedDataParallel : public nn::Module {
 public:
  explicit DistributedDataParallel(std::shared_ptr<nn::Module> module,
                                   const DDPOptions& options = {});
  std::string_view name() const override { return "DistributedDataParallel"; }
  Tensor forward(const Tensor& input) override { return module_->forward(input); }
  nn::Module& module() const { return *module_; }
  GradientReducer& reducer() { return *reducer_; }

  // While the guard lives, backward accumulates gradients locally without reducing them; the
  // first backward after it reduces the accumulated sum (gradient accumulation).
  class NoSyncGuard {
   public:
    explicit NoSyncGuard(GradientReducer& reducer);
    ~NoSyncGuard();
    NoSyncGuard(const NoSyncGuard&) = delete;
    NoSyncGuard& operator=(const NoSyncGuard&) = delete;

   private:
    GradientReducer& reducer_;
    bool previous_;
  };
  [[nodiscard]] NoSyncGuard no_sync() { return NoSyncGuard(*reducer_); }

 private:
  std::shared_ptr<nn::Module> module_;
  std::unique_ptr<GradientReducer> reducer_;
};

// Checks that `params` agree in number, shapes and dtypes on every rank (DistributedError naming
// the first that differs), then copies rank 0's values into them.
void broadcast_parameters(const std::vector<Tensor>& params, const std::vector<std::string>& names);

// The indices of a data set of `size` items that rank `rank` of `world_size` takes, as
// torch.utils.data.DistributedSampler: a permutation (seeded by seed + epoch, the same on every
// rank) or 0..size-1, padded by wrapping around to a multiple of world_size (or cut to one, with
// drop_last), then every world_size-th index from `rank`.
class DistributedSampler {
 public:
  DistributedSampler(int64_t size, int world_size, int rank, bool shuffle = true, uint64_t seed = 0,
                     bool drop_last = false);
  // Sampler of the current process group's rank and world size.
  explicit DistributedSampler(int64_t size, bool shuffle = true, uint64_t seed = 0,
                              bool drop_last = false);
  void set_epoch(int64_t epoch) { epoch_ = epoch; }
  std::vector<int64_t> indices() const;
  int64_t num_samples() const { return num_samples_; }

 private:
  int64_t size_;
  int world_size_, rank_;
  bool shuffle_;
  uint64_t seed_;
  int64_t epoch_ = 0;
  int64_t num_samples_;
};

}  // namespace st::distributed
