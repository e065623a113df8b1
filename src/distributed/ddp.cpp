// Data parallelism on top of the collectives: the start-up check and broadcast of parameters, the
// gradient reducer driven by autograd's post-accumulate-grad hooks, DistributedDataParallel and
// the sampler.

#include <numeric>
#include <random>

#include "distributed/process_group.h"
#include "spiraltorch/autograd.h"

namespace st::distributed {

namespace {

int64_t signature_of(const std::string& name, const Tensor& t) {
  uint64_t h = std::hash<std::string>{}(name);
  for (int64_t s : t.shape()) h = (h ^ static_cast<uint64_t>(s)) * 1099511628211ull;
  h = (h ^ static_cast<uint64_t>(t.dtype())) * 1099511628211ull;
  return static_cast<int64_t>(h >> 1);
}

// Whether `value` is the same on every rank.
bool agree(detail::ProcessGroup& g, int64_t value, const char* op) {
  std::vector<int64_t> extremes = {value, -value};
  g.all_max(extremes, op);
  return extremes[0] == -extremes[1];
}

}  // namespace

void broadcast_parameters(const std::vector<Tensor>& params,
                          const std::vector<std::string>& names) {
  const char* op = "broadcast_parameters";
  detail::ProcessGroup& g = detail::current_group(op);
  ST_CHECK(names.size() == params.size(), ValueError, "[", op, "] ", params.size(), " tensors but ",
           names.size(), " names");
  ST_CHECK(agree(g, static_cast<int64_t>(params.size()), op), distributed::DistributedError, "[",
           op, "] the ranks' models differ: rank ", g.rank, " has ", params.size(),
           " tensors, another rank a different number");
  for (size_t i = 0; i < params.size(); ++i) {
    ST_CHECK(params[i].device() == g.device, DeviceError, "[", op, "] ", names[i], " is on ",
             params[i].device(), "; the '", g.backend(), "' group of rank ", g.rank,
             " takes tensors on ", g.device);
    ST_CHECK(agree(g, signature_of(names[i], params[i]), op), distributed::DistributedError, "[",
             op, "] the ranks' models differ at ", names[i], " (rank ", g.rank, " has ",
             params[i].shape(), " ", params[i].dtype(), "): a different name, shape or dtype");
  }
  NoGradGuard no_grad;
  std::vector<std::pair<Tensor, Tensor>> staged;  // (parameter, contiguous buffer)
  std::vector<WorkHandle> works;
  for (const Tensor& p : params) {
    const Tensor buffer = p.is_contiguous() ? p.detach() : p.contiguous();
    works.push_back(g.broadcast(buffer, 0));
    staged.emplace_back(p, buffer);
  }
  for (WorkHandle& w : works) w->wait();
  for (auto& [p, buffer] : staged)
    if (!buffer.is_same(p) && buffer.data_ptr() != p.data_ptr()) p.detach().copy_(buffer);
}

GradientReducer::GradientReducer(std::vector<Tensor> params, size_t bucket_bytes) {
  detail::ProcessGroup& g = detail::current_group("DistributedDataParallel");
  for (Tensor& p : params)
    if (p.requires_grad()) params_.push_back(std::move(p));
  bucket_of_.resize(params_.size());
  seen_.assign(params_.size(), false);
  // Reverse order: backward reaches the last layers first, so their buckets fill first.
  size_t bytes = 0;
  for (size_t k = params_.size(); k-- > 0;) {
    const Tensor& p = params_[k];
    ST_CHECK(p.is_leaf(), ValueError, "[DistributedDataParallel] parameter ", k, " is not a leaf");
    ST_CHECK(p.device() == g.device, DeviceError, "[DistributedDataParallel] parameter ", k,
             " is on ", p.device(), "; the '", g.backend(), "' group takes tensors on ", g.device);
    const bool fits = !buckets_.empty() && bytes + p.nbytes() <= bucket_bytes &&
                      params_[buckets_.back().params.front()].dtype() == p.dtype();
    if (!fits) {
      buckets_.emplace_back();
      bytes = 0;
    }
    Bucket& b = buckets_.back();
    b.offsets.push_back(b.params.empty() ? 0 : b.offsets.back() + params_[b.params.back()].numel());
    b.params.push_back(k);
    bytes += p.nbytes();
    bucket_of_[k] = buckets_.size() - 1;
  }
  for (Bucket& b : buckets_) {
    const Tensor& last = params_[b.params.back()];
    b.flat = zeros({b.offsets.back() + last.numel()}, {last.dtype(), last.device()});
  }
  for (size_t k = 0; k < params_.size(); ++k)
    hook_ids_.push_back(params_[k].register_post_accumulate_grad_hook(
        [this, k](const Tensor&) { on_gradient(k); }));
}

GradientReducer::~GradientReducer() {
  for (size_t k = 0; k < params_.size(); ++k)
    params_[k].remove_post_accumulate_grad_hook(hook_ids_[k]);
}

void GradientReducer::on_gradient(size_t param) {
  if (!sync_) return;
  if (backward_token_.expired()) {
    // The first gradient of a backward. The token lives as long as the queued callback: when a
    // backward failed before running it, the callback is gone and this one starts afresh.
    start_backward();
    auto token = std::make_shared<char>();
    backward_token_ = token;
    queue_backward_callback([this, token] { finish(); });
  }
  if (seen_[param]) return;
  seen_[param] = true;
  ++buckets_[bucket_of_[param]].ready;
  launch_ready_buckets();
  // Testing the requests in flight lets MPI move their data while backward goes on.
  for (size_t b = 0; b < next_launch_; ++b) buckets_[b].work->is_completed();
}

void GradientReducer::launch_ready_buckets() {
  while (next_launch_ < buckets_.size() &&
         buckets_[next_launch_].ready == buckets_[next_launch_].params.size())
    launch(buckets_[next_launch_++]);
}

void GradientReducer::launch(Bucket& bucket) {
  NoGradGuard no_grad;
  for (size_t i = 0; i < bucket.params.size(); ++i) {
    const Tensor& p = params_[bucket.params[i]];
    Tensor slot = bucket.flat.narrow(0, bucket.offsets[i], p.numel());
    const Tensor grad = p.grad();
    if (grad.defined())
      slot.copy_(grad.reshape({-1}));
    else
      slot.zero_();
  }
  // The ranks' models were checked alike at the start, so the buckets need no signature.
  bucket.work =
      detail::current_group("DistributedDataParallel").all_reduce(bucket.flat, ReduceOp::Avg);
}

void GradientReducer::start_backward() {
  for (Bucket& b : buckets_) {
    b.work.reset();  // of a backward that failed: waits for it, as every rank started it
    b.ready = 0;
  }
  seen_.assign(params_.size(), false);
  next_launch_ = 0;
}

void GradientReducer::finish() {
  // Buckets holding a parameter that got no gradient this time start now, in order.
  while (next_launch_ < buckets_.size()) launch(buckets_[next_launch_++]);
  NoGradGuard no_grad;
  for (Bucket& b : buckets_) {
    b.work->wait();
    b.work.reset();
    for (size_t i = 0; i < b.params.size(); ++i) {
      const Tensor& p = params_[b.params[i]];
      const Tensor mean = b.flat.narrow(0, b.offsets[i], p.numel()).view(p.shape());
      if (p.grad().defined())
        p.grad().copy_(mean);
      else
        p.set_grad(mean.clone());
    }
  }
}

DistributedDataParallel::DistributedDataParallel(std::shared_ptr<nn::Module> module,
                                                 const DDPOptions& options)
    : module_(std::move(module)) {
  ST_CHECK(module_ != nullptr, ValueError, "[DistributedDataParallel] module is null");
  register_module("module", module_);
  nn::NamedTensors named = module_->named_parameters();
  if (options.broadcast_buffers)
    for (auto& entry : module_->named_buffers()) named.push_back(entry);
  std::vector<Tensor> tensors;
  std::vector<std::string> names;
  for (auto& [name, t] : named) {
    names.push_back(name);
    tensors.push_back(t);
  }
  broadcast_parameters(tensors, names);
  reducer_ = std::make_unique<GradientReducer>(module_->parameters(), options.bucket_cap_bytes);
}

DistributedDataParallel::NoSyncGuard::NoSyncGuard(GradientReducer& reducer)
    : reducer_(reducer), previous_(reducer.sync()) {
  reducer_.set_sync(false);
}

DistributedDataParallel::NoSyncGuard::~NoSyncGuard() { reducer_.set_sync(previous_); }

DistributedSampler::DistributedSampler(int64_t size, int world_size, int rank, bool shuffle,
                                       uint64_t seed, bool drop_last)
    : size_(size), world_size_(world_size), rank_(rank), shuffle_(shuffle), seed_(seed) {
  ST_CHECK(size >= 0, ValueError, "[DistributedSampler] size must be non-negative, got ", size);
  ST_CHECK(world_size > 0 && rank >= 0 && rank < world_size, ValueError,
           "[DistributedSampler] rank ", rank, " is not in a world of ", world_size, " ranks");
  num_samples_ = drop_last ? size / world_size : (size + world_size - 1) / world_size;
}

DistributedSampler::DistributedSampler(int64_t size, bool shuffle, uint64_t seed, bool drop_last)
    : DistributedSampler(size, get_world_size(), get_rank(), shuffle, seed, drop_last) {}

std::vector<int64_t> DistributedSampler::indices() const {
  std::vector<int64_t> all(static_cast<size_t>(size_));
  std::iota(all.begin(), all.end(), 0);
  if (shuffle_) {
    // Fisher-Yates with an explicit draw: std::shuffle's result may differ between standard
    // libraries, and every rank must see the same permutation.
    std::mt19937_64 rng(seed_ + static_cast<uint64_t>(epoch_));
    for (size_t i = all.size(); i > 1; --i) std::swap(all[i - 1], all[rng() % i]);
  }
  const int64_t total = num_samples_ * world_size_;
  for (int64_t i = size_; i < total; ++i) all.push_back(all[static_cast<size_t>(i % size_)]);
  std::vector<int64_t> mine;
  mine.reserve(static_cast<size_t>(num_samples_));
  for (int64_t i = rank_; i < total; i += world_size_) mine.push_back(all[static_cast<size_t>(i)]);
  return mine;
}

}  // namespace st::distributed
