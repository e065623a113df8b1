// st::distributed's front-end: the process group of this process, the checks of every collective
// (tensor layout and device here, agreement across ranks through a signature exchange) and the
// dispatch to the MPI or NCCL group.

#include <dlfcn.h>

#include <cstdlib>
#include <filesystem>
#include <string_view>
#include <thread>

#include "distributed/process_group.h"

namespace st::distributed {

namespace {
std::unique_ptr<detail::ProcessGroup>& group_slot() {
  static std::unique_ptr<detail::ProcessGroup> group;
  return group;
}
}  // namespace

namespace detail {

namespace {

// Loads a transport module (libspiraltorch_<name>.so) from the folder this library was loaded
// from, once, and returns its table; NotImplementedError naming `op` when it cannot. RTLD_GLOBAL:
// Open MPI's own plugins look for libmpi's symbols globally.
template <typename Module>
const Module& transport_module(const char* name, const char* op, const char* built_when) {
  static const auto loaded = [name]() -> std::pair<const Module*, std::string> {
    Dl_info info{};
    std::filesystem::path dir;
    if (dladdr(reinterpret_cast<void*>(&launched_by_mpi), &info) != 0 && info.dli_fname != nullptr)
      dir = std::filesystem::path(info.dli_fname).parent_path();
    const std::string path = (dir / ("libspiraltorch_" + std::string(name) + ".so")).string();
    void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_GLOBAL);
    if (handle == nullptr) return {nullptr, dlerror()};
    const std::string symbol = "st_distributed_" + std::string(name) + "_module";
    using Entry = const Module* (*)();
    const auto entry = reinterpret_cast<Entry>(dlsym(handle, symbol.c_str()));
    if (entry == nullptr) return {nullptr, path + " lacks " + symbol};
    return {entry(), {}};
  }();
  ST_CHECK(loaded.first != nullptr, NotImplementedError, "[", op, "] the ", name,
           " transport could not be loaded (", loaded.second, "); it is built when ", built_when);
  return *loaded.first;
}

const MpiModule& mpi_module(const char* op) {
  return transport_module<MpiModule>("mpi", op, "MPI is found (Debian: libopenmpi-dev)");
}

}  // namespace

std::unique_ptr<ProcessGroup> make_mpi_group(const InitOptions& options) {
  return mpi_module("init_process_group").make_group(options);
}
void mpi_world(int& rank, int& world_size, int& local_rank) {
  mpi_module("init_process_group").world(rank, world_size, local_rank);
}
void mpi_broadcast_bytes(void* data, size_t bytes, int root, std::chrono::milliseconds timeout) {
  mpi_module("init_process_group").broadcast_bytes(data, bytes, root, timeout);
}
std::unique_ptr<ProcessGroup> make_nccl_group(const InitOptions& options) {
  return transport_module<NcclModule>("nccl", "init_process_group",
                                      "the CUDA backend is on and nccl.h / libnccl are found (the "
                                      "CUDA toolkit or the nvidia-nccl-cu* wheel)")
      .make_group(options);
}

ProcessGroup& current_group(const char* op) {
  auto& g = group_slot();
  ST_CHECK(g != nullptr, distributed::DistributedError, "[", op,
           "] no process group: call init_process_group(\"mpi\" or \"nccl\") first");
  return *g;
}

bool launched_by_mpi() {
  // Open MPI's, MPICH/Hydra's and PMIx launchers each set one of these.
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"})
    if (std::getenv(name) != nullptr) return true;
  return false;
}

void poll_until(const std::function<bool()>& done, std::chrono::milliseconds timeout,
                const char* op, int rank, int world_size) {
  using Clock = std::chrono::steady_clock;
  const Clock::time_point start = Clock::now();
  for (int spins = 0; !done(); ++spins) {
    const auto waited = Clock::now() - start;
    ST_CHECK(waited < timeout, distributed::TimeoutError, "[", op, "] rank ", rank, " of ",
             world_size, " waited ", timeout.count(),
             " ms for the other ranks (the group's timeout); a rank may have failed, or not "
             "called ",
             op, ". The group may not be used further: abort() it");
    // Spin briefly (loopback collectives take microseconds), then let the other ranks' processes
    // have the cores.
    if (spins > 1000) std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
}

}  // namespace detail

namespace {

detail::ProcessGroup& group(const char* op) { return detail::current_group(op); }

enum class Collective : int64_t { AllReduce, Broadcast, AllGather, ReduceScatter };

const char* collective_name(int64_t kind) {
  switch (static_cast<Collective>(kind)) {
    case Collective::AllReduce: return "all_reduce";
    case Collective::Broadcast: return "broadcast";
    case Collective::AllGather: return "all_gather";
    case Collective::ReduceScatter: return "reduce_scatter";
  }
  return "?";
}

// Shapes differ as a whole: a hash of the sizes stands for them in the signature.
int64_t shape_hash(const Shape& shape) {
  uint64_t h = 1469598103934665603ull;
  for (int64_t s : shape) h = (h ^ static_cast<uint64_t>(s)) * 1099511628211ull;
  return static_cast<int64_t>(h >> 1);
}

// Every rank learns the maximum of each field and of its negation (so the minimum too); a field
// whose extremes differ tells all ranks alike that they disagree.
void check_signature(detail::ProcessGroup& g, Collective kind, const char* op, const Tensor& t,
                     int64_t root, ReduceOp reduce) {
  if (!g.check_signatures || g.world_size == 1) return;
  const std::vector<int64_t> mine = {static_cast<int64_t>(kind),
                                     static_cast<int64_t>(t.dtype()),
                                     t.numel(),
                                     shape_hash(t.shape()),
                                     root,
                                     static_cast<int64_t>(reduce)};
  std::vector<int64_t> extremes;
  for (int64_t v : mine) extremes.push_back(v);
  for (int64_t v : mine) extremes.push_back(-v);
  g.all_max(extremes, op);
  const size_t n = mine.size();
  auto differs = [&](size_t i) { return extremes[i] != -extremes[n + i]; };
  const std::string me = st::detail::concat("rank ", g.rank, " of ", g.world_size);
  ST_CHECK(!differs(0), distributed::DistributedError, "[", op,
           "] the ranks called different collectives (", me, " called ", op, ", another ",
           collective_name(extremes[0] == mine[0] ? -extremes[n] : extremes[0]), ")");
  ST_CHECK(!differs(1), distributed::DistributedError, "[", op,
           "] the ranks passed tensors of different dtypes (", me, " passed ", t.dtype(), ")");
  ST_CHECK(!differs(2) && !differs(3), ShapeError, "[", op,
           "] the ranks passed tensors of different shapes (", me, " passed ", t.shape(), " of ",
           t.numel(), " elements; the ranks' element counts range from ", -extremes[n + 2], " to ",
           extremes[2], ")");
  ST_CHECK(!differs(4), distributed::DistributedError, "[", op,
           "] the ranks named different source ranks (", me, " named ", root, ")");
  ST_CHECK(!differs(5), distributed::DistributedError, "[", op,
           "] the ranks asked for different reduce ops");
}

void check_tensor(const detail::ProcessGroup& g, const char* op, const char* what,
                  const Tensor& t) {
  ST_CHECK(t.defined(), ValueError, "[", op, "] ", what, " is an undefined tensor");
  ST_CHECK(t.device() == g.device, DeviceError, "[", op, "] ", what, " is on ", t.device(),
           "; the '", g.backend(), "' process group of rank ", g.rank, " takes tensors on ",
           g.device);
  ST_CHECK(t.is_contiguous(), ValueError, "[", op, "] ", what, " of shape ", t.shape(),
           " must be contiguous (its strides are ", t.strides(), "); pass .contiguous()");
}

void check_reduce(const char* op, const Tensor& t, ReduceOp reduce) {
  ST_CHECK(t.dtype() != DType::Bool, DTypeError, "[", op, "] cannot reduce a bool tensor");
  ST_CHECK(reduce != ReduceOp::Avg || is_floating(t.dtype()), DTypeError, "[", op,
           "] Avg needs a floating tensor, got ", t.dtype());
}

// [world * n, ...] for a block [n, ...], or [world, *block.shape].
void check_blocks(const char* op, const Tensor& whole, const char* whole_name, const Tensor& block,
                  const char* block_name, int world) {
  ST_CHECK(whole.dtype() == block.dtype(), DTypeError, "[", op, "] ", whole_name, " is ",
           whole.dtype(), " but ", block_name, " is ", block.dtype());
  Shape stacked = block.shape();
  stacked.insert(stacked.begin(), world);
  Shape concatenated = block.shape();
  if (!concatenated.empty()) concatenated[0] *= world;
  std::string expected = st::detail::concat(stacked);
  if (!block.shape().empty()) expected += st::detail::concat(" or ", concatenated);
  ST_CHECK(whole.shape() == stacked || (!block.shape().empty() && whole.shape() == concatenated),
           ShapeError, "[", op, "] ", whole_name, " has shape ", whole.shape(), "; for a ",
           block_name, " of shape ", block.shape(), " and ", world, " ranks expected ", expected);
}

WorkHandle finish(WorkHandle work, bool async_op) {
  if (!async_op) work->wait();
  return work;
}

}  // namespace

void init_process_group(const std::string& backend, const InitOptions& options) {
  ST_CHECK(group_slot() == nullptr, distributed::DistributedError,
           "[init_process_group] this process is already in a process group; call "
           "destroy_process_group first");
  ST_CHECK(options.timeout.count() > 0, ValueError,
           "[init_process_group] timeout must be positive, got ", options.timeout.count(), " ms");
  if (backend == "mpi")
    group_slot() = detail::make_mpi_group(options);
  else if (backend == "nccl")
    group_slot() = detail::make_nccl_group(options);
  else
    throw ValueError(st::detail::concat("[init_process_group] unknown backend '", backend,
                                        "'; expected 'mpi' or 'nccl'"));
}

bool is_initialized() { return group_slot() != nullptr; }

void destroy_process_group() { group_slot().reset(); }

void abort(int exit_code) {
  if (group_slot()) group_slot()->abort(exit_code);
  std::_Exit(exit_code);
}

int get_rank() { return group("get_rank").rank; }
int get_world_size() { return group("get_world_size").world_size; }
int get_local_rank() { return group("get_local_rank").local_rank; }
std::string get_backend() { return group("get_backend").backend(); }
Device device() { return group("device").device; }

void set_timeout(std::chrono::milliseconds timeout) {
  ST_CHECK(timeout.count() > 0, ValueError, "[set_timeout] timeout must be positive, got ",
           timeout.count(), " ms");
  group("set_timeout").timeout = timeout;
}
std::chrono::milliseconds timeout() { return group("timeout").timeout; }

WorkHandle all_reduce(const Tensor& tensor, ReduceOp op, bool async_op) {
  detail::ProcessGroup& g = group("all_reduce");
  check_tensor(g, "all_reduce", "tensor", tensor);
  check_reduce("all_reduce", tensor, op);
  check_signature(g, Collective::AllReduce, "all_reduce", tensor, 0, op);
  return finish(g.all_reduce(tensor, op), async_op);
}

WorkHandle broadcast(const Tensor& tensor, int src, bool async_op) {
  detail::ProcessGroup& g = group("broadcast");
  check_tensor(g, "broadcast", "tensor", tensor);
  ST_CHECK(src >= 0 && src < g.world_size, IndexError, "[broadcast] source rank ", src,
           " is not in a group of ", g.world_size, " ranks");
  check_signature(g, Collective::Broadcast, "broadcast", tensor, src, ReduceOp::Sum);
  return finish(g.broadcast(tensor, src), async_op);
}

WorkHandle all_gather(const Tensor& output, const Tensor& input, bool async_op) {
  detail::ProcessGroup& g = group("all_gather");
  check_tensor(g, "all_gather", "output", output);
  check_tensor(g, "all_gather", "input", input);
  check_blocks("all_gather", output, "output", input, "input", g.world_size);
  check_signature(g, Collective::AllGather, "all_gather", input, 0, ReduceOp::Sum);
  return finish(g.all_gather(output, input), async_op);
}

WorkHandle reduce_scatter(const Tensor& output, const Tensor& input, ReduceOp op, bool async_op) {
  detail::ProcessGroup& g = group("reduce_scatter");
  check_tensor(g, "reduce_scatter", "output", output);
  check_tensor(g, "reduce_scatter", "input", input);
  check_reduce("reduce_scatter", input, op);
  check_blocks("reduce_scatter", input, "input", output, "output", g.world_size);
  check_signature(g, Collective::ReduceScatter, "reduce_scatter", output, 0, op);
  return finish(g.reduce_scatter(output, input, op), async_op);
}

void barrier() { group("barrier").barrier(); }

}  // namespace st::distributed
