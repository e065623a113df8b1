// Optimizers over the fused updates of ops.h, and gradient clipping. Per-parameter state is made on
// a parameter's first step (zeros, the parameter's dtype and device), as PyTorch makes it.

#include <algorithm>

#include "spiraltorch/autograd.h"
#include "spiraltorch/cuda.h"
#include "spiraltorch/optim.h"

namespace st::optim {

Optimizer::Optimizer(std::vector<Tensor> params, double lr, const char* name)
    : params_(std::move(params)),
      lr_(lr),
      name_(name),
      state_(params_.size()),
      steps_(params_.size(), 0) {
  ST_CHECK(lr >= 0, ValueError, "[", name, "] learning rate must be non-negative, got ", lr);
  for (size_t i = 0; i < params_.size(); ++i) {
    const Tensor& p = params_[i];
    ST_CHECK(p.defined() && p.is_leaf() && p.requires_grad(), ValueError, "[", name, "] parameter ",
             i, " must be a leaf tensor that requires grad");
    for (size_t j = 0; j < i; ++j)
      ST_CHECK(!params_[j].is_same(p), ValueError, "[", name, "] parameter ", i,
               " appears twice (also at ", j, ")");
  }
}

void Optimizer::zero_grad(bool set_to_none) {
  for (const Tensor& p : params_) {
    if (set_to_none)
      p.set_grad({});
    else
      p.zero_grad();
  }
}

Tensor& Optimizer::state(size_t i, size_t k) {
  std::vector<Tensor>& s = state_[i];
  const Device device = params_[i].device();
  ST_CHECK(!s.empty() || device.type != DeviceType::CUDA || !st::cuda::is_capturing(device.index),
           ValueError, "[", name_, "] parameter ", i,
           " has no optimizer state yet and a CUDA graph is capturing: the state is made on the "
           "first step, which a graph would repeat at every replay; run one step before capturing");
  if (s.empty())
    for (size_t n = 0; n < state_names().size(); ++n) s.push_back(zeros_like(params_[i].detach()));
  return s[k];
}

std::vector<Optimizer::Group> Optimizer::groups_for_step() {
  std::vector<Group> groups;
  for (size_t i = 0; i < params_.size(); ++i) {
    const Tensor grad = params_[i].grad();
    if (!grad.defined()) continue;
    const int64_t step = ++steps_[i];
    const Device device = params_[i].device();
    auto it = std::find_if(groups.begin(), groups.end(), [&](const Group& g) {
      return g.step == step && g.params.front().device() == device;
    });
    if (it == groups.end()) it = groups.insert(groups.end(), Group{{}, {}, {}, step});
    it->index.push_back(i);
    it->params.push_back(params_[i].detach());
    it->grads.push_back(grad);
  }
  return groups;
}

Tensor Optimizer::captured_schedule(const Group& group) {
  const Device device = group.params.front().device();
  if (device.type != DeviceType::CUDA) return {};
  st::cuda::Graph* graph = st::cuda::capturing_graph(device.index);
  if (!graph) return {};
  for (size_t i : group.index) --steps_[i];
  Tensor schedule = graph->replay_input({2}, DType::Float64);
  graph->before_replay(
      [this, alive = std::weak_ptr<int>(lifetime_), index = group.index, schedule]() mutable {
        ST_CHECK(!alive.expired(), ValueError,
                 "[Graph.replay] the optimizer whose step the graph "
                 "captured no longer exists");
        int64_t step = 0;
        for (size_t i : index) step = ++steps_[i];
        const double values[2] = {lr_, static_cast<double>(step)};
        NoGradGuard no_grad;
        schedule.copy_(from_buffer(values, {2}));
      });
  return schedule;
}

std::map<std::string, Tensor> Optimizer::state_dict() const {
  std::map<std::string, Tensor> out;
  const std::vector<std::string> names = state_names();
  for (size_t i = 0; i < params_.size(); ++i) {
    if (steps_[i] == 0) continue;
    const std::string prefix = std::to_string(i) + ".";
    out.emplace(prefix + "step", scalar_tensor(steps_[i], {DType::Int64}));
    for (size_t k = 0; k < state_[i].size(); ++k) out.emplace(prefix + names[k], state_[i][k]);
  }
  return out;
}

void Optimizer::load_state_dict(const std::map<std::string, Tensor>& saved) {
  const std::vector<std::string> names = state_names();
  std::vector<int64_t> steps(params_.size(), 0);
  size_t used = 0;
  for (size_t i = 0; i < params_.size(); ++i) {
    const std::string prefix = std::to_string(i) + ".";
    const auto step = saved.find(prefix + "step");
    if (step == saved.end()) continue;
    ST_CHECK(step->second.numel() == 1, ValueError, "[", name_, ".load_state_dict] '", step->first,
             "' must hold one value, got shape ", step->second.shape());
    steps[i] = step->second.item<int64_t>();
    ++used;
    for (const std::string& n : names) {
      const auto it = saved.find(prefix + n);
      ST_CHECK(it != saved.end(), ValueError, "[", name_, ".load_state_dict] missing '", prefix + n,
               "'");
      ST_CHECK(it->second.shape() == params_[i].shape(), ShapeError, "[", name_,
               ".load_state_dict] '", it->first, "' has shape ", it->second.shape(),
               " but parameter ", i, " has shape ", params_[i].shape());
      ++used;
    }
  }
  ST_CHECK(used == saved.size(), ValueError, "[", name_, ".load_state_dict] ", saved.size() - used,
           " entries name no state of this optimizer's ", params_.size(), " parameters");
  NoGradGuard no_grad;
  for (size_t i = 0; i < params_.size(); ++i) {
    steps_[i] = steps[i];
    state_[i].clear();
    if (steps[i] == 0) continue;
    const std::string prefix = std::to_string(i) + ".";
    for (size_t k = 0; k < names.size(); ++k) state(i, k).copy_(saved.at(prefix + names[k]));
  }
}

SGD::SGD(std::vector<Tensor> params, const SGDOptions& options)
    : Optimizer(std::move(params), options.lr, "SGD"), options_(options) {
  ST_CHECK(options.momentum >= 0 && options.weight_decay >= 0, ValueError,
           "[SGD] momentum and weight_decay must be non-negative, got ", options.momentum, " and ",
           options.weight_decay);
  ST_CHECK(!options.nesterov || (options.momentum > 0 && options.dampening == 0), ValueError,
           "[SGD] Nesterov momentum needs momentum > 0 and dampening 0");
}

std::vector<std::string> SGD::state_names() const {
  if (options_.momentum == 0) return {};
  return {"momentum_buffer"};
}

void SGD::step() {
  SgdUpdate update{
      lr_, options_.momentum, options_.dampening, options_.weight_decay, options_.nesterov, false,
      {}};
  for (Group& g : groups_for_step()) {
    std::vector<Tensor> buffers;
    if (options_.momentum != 0)
      for (size_t i : g.index) buffers.push_back(state(i, 0));
    update.first_step = g.step == 1;
    update.schedule = captured_schedule(g);
    sgd_update_(g.params, g.grads, buffers, update);
  }
}

Adam::Adam(std::vector<Tensor> params, const AdamOptions& options)
    : Adam(std::move(params), options, false, "Adam") {}

Adam::Adam(std::vector<Tensor> params, const AdamOptions& options, bool decoupled, const char* name)
    : Optimizer(std::move(params), options.lr, name), options_(options), decoupled_(decoupled) {
  ST_CHECK(options.beta1 >= 0 && options.beta1 < 1 && options.beta2 >= 0 && options.beta2 < 1,
           ValueError, "[", name, "] betas must be in [0, 1), got (", options.beta1, ", ",
           options.beta2, ")");
  ST_CHECK(options.eps >= 0 && options.weight_decay >= 0, ValueError, "[", name,
           "] eps and weight_decay must be non-negative, got ", options.eps, " and ",
           options.weight_decay);
}

std::vector<std::string> Adam::state_names() const { return {"exp_avg", "exp_avg_sq"}; }

void Adam::step() {
  for (Group& g : groups_for_step()) {
    std::vector<Tensor> exp_avgs, exp_avg_sqs;
    for (size_t i : g.index) {
      exp_avgs.push_back(state(i, 0));
      exp_avg_sqs.push_back(state(i, 1));
    }
    adam_update_(g.params, g.grads, exp_avgs, exp_avg_sqs,
                 {lr_, options_.beta1, options_.beta2, options_.eps, options_.weight_decay,
                  decoupled_, g.step, captured_schedule(g)});
  }
}

AdamW::AdamW(std::vector<Tensor> params, AdamOptions options)
    : Adam(std::move(params), options, true, "AdamW") {}

Tensor clip_grad_norm_(const std::vector<Tensor>& params, double max_norm) {
  ST_CHECK(max_norm > 0, ValueError, "[clip_grad_norm_] max_norm must be positive, got ", max_norm);
  std::vector<Tensor> grads;
  for (const Tensor& p : params)
    if (p.defined() && p.grad().defined()) grads.push_back(p.grad());
  if (grads.empty()) return scalar_tensor(0.0, {DType::Float32});
  NoGradGuard no_grad;
  const Tensor norm = global_norm(grads);
  // min(1, max_norm / (norm + 1e-6)) on the device, so that no value is read back.
  const Tensor coef = clamp(div(full({}, max_norm, {norm.dtype(), norm.device()}), add(norm, 1e-6)),
                            std::nullopt, 1.0);
  for (Tensor& g : grads) g.mul_(coef.to(g.dtype()));
  return norm;
}

}  // namespace st::optim
