#pragma once
// Optimizers, gradient clipping and learning-rate schedules, as torch.optim. Each optimizer's step
// is one fused multi-tensor kernel per device (ops.h: sgd_update_, adam_update_); parameters
// without a gradient are skipped, as PyTorch skips them. A step can be captured in a CUDA graph
// (cuda.h) once the optimizer's state exists: each replay then counts a step and reads lr afresh.

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "spiraltorch/ops.h"

namespace st::optim {

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  virtual void step() = 0;
  // Clears (set_to_none, PyTorch's default) or zeroes every parameter's gradient.
  void zero_grad(bool set_to_none = true);

  double lr() const { return lr_; }
  void set_lr(double lr) { lr_ = lr; }
  const std::vector<Tensor>& params() const { return params_; }

  // The optimizer's state as tensors by name ("<i>.<state>" for parameter i, "<i>.step" as a 0-d
  // int64), for checkpoints; loading checks names, shapes and dtypes and copies the values in.
  std::map<std::string, Tensor> state_dict() const;
  void load_state_dict(const std::map<std::string, Tensor>& state);

 protected:
  Optimizer(std::vector<Tensor> params, double lr, const char* name);
  // Names of the per-parameter state tensors of this optimizer, e.g. {"exp_avg", "exp_avg_sq"}.
  virtual std::vector<std::string> state_names() const = 0;
  // Parameter i's state tensor k (state_names order), made zero on first use.
  Tensor& state(size_t i, size_t k);
  // Groups of parameters that have gradients, one per (device, step count) so that each group is
  // one fused update; each parameter's step count is advanced.
  struct Group {
    std::vector<size_t> index;
    std::vector<Tensor> params, grads;
    int64_t step = 0;
  };
  std::vector<Group> groups_for_step();
  // While a CUDA graph captures the step: the group's {lr, step} as a device tensor for the update
  // to read (SgdUpdate::schedule), refreshed from the host before every replay, which counts the
  // step instead of the capture. Undefined otherwise.
  Tensor captured_schedule(const Group& group);

  std::vector<Tensor> params_;
  double lr_;
  const char* name_;

 private:
  std::vector<std::vector<Tensor>> state_;  // [parameter][state_names index]
  std::vector<int64_t> steps_;
  // Held by the graphs' replay hooks, weakly: a replay after the optimizer is gone is an error.
  std::shared_ptr<int> lifetime_ = std::make_shared<int>();
};

struct SGDOptions {
  double lr = 1e-3;
  double momentum = 0;
  double dampening = 0;
  double weight_decay = 0;
  bool nesterov = false;
};

class SGD : public Optimizer {
 public:
  SGD(std::vector<Tensor> params, const SGDOptions& options = {});
  void step() override;

 private:
  std::vector<std::string> state_names() const override;
  SGDOptions options_;
};

struct AdamOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0;  // AdamW's default is 1e-2
};

class Adam : public Optimizer {
 public:
  Adam(std::vector<Tensor> params, const AdamOptions& options = {});
  void step() override;

 protected:
  Adam(std::vector<Tensor> params, const AdamOptions& options, bool decoupled, const char* name);

 private:
  std::vector<std::string> state_names() const override;
  AdamOptions options_;
  bool decoupled_;
};

// Adam with decoupled weight decay (the parameters shrink by lr * weight_decay each step).
class AdamW : public Adam {
 public:
  AdamW(std::vector<Tensor> params, AdamOptions options = {.weight_decay = 1e-2});
};

// Scales all gradients so that their global 2-norm is at most max_norm (by
// max_norm / (norm + 1e-6) when above it), as torch.nn.utils.clip_grad_norm_; returns the norm
// before clipping as a 0-d tensor (no host wait). Parameters without a gradient are skipped.
Tensor clip_grad_norm_(const std::vector<Tensor>& params, double max_norm);

// Learning-rate schedules: step() after each optimizer step sets the optimizer's lr for the next
// one, in closed form from the step count, so a schedule resumes from set_step() alone.
class LRScheduler {
 public:
  virtual ~LRScheduler() = default;
  // Sets lr for step `steps() + 1`.
  void step();
  int64_t steps() const { return steps_; }
  void set_step(int64_t steps);
  // The learning rate after `t` scheduler steps.
  virtual double lr_at(int64_t t) const = 0;

 protected:
  explicit LRScheduler(Optimizer& optimizer);
  Optimizer& optimizer_;
  double base_lr_;

 private:
  int64_t steps_ = 0;
};

// lr = base * factor, the factor going linearly from start_factor to end_factor over total_iters
// steps and staying there (torch.optim.lr_scheduler.LinearLR): a warmup from a small start.
class LinearLR : public LRScheduler {
 public:
  LinearLR(Optimizer& optimizer, double start_factor = 1.0 / 3, double end_factor = 1,
           int64_t total_iters = 5);
  double lr_at(int64_t t) const override;

 private:
  double start_, end_;
  int64_t total_;
};

// eta_min + (base - eta_min) (1 + cos(pi t / t_max)) / 2 (torch.optim.lr_scheduler's
// CosineAnnealingLR, closed form).
class CosineAnnealingLR : public LRScheduler {
 public:
  CosineAnnealingLR(Optimizer& optimizer, int64_t t_max, double eta_min = 0);
  double lr_at(int64_t t) const override;

 private:
  int64_t t_max_;
  double eta_min_;
};

// Linear warmup from 0 over `warmup` steps, then cosine decay to min_lr at `total` steps: the
// usual schedule of transformer training.
class WarmupCosineLR : public LRScheduler {
 public:
  WarmupCosineLR(Optimizer& optimizer, int64_t warmup, int64_t total, double min_lr = 0);
  double lr_at(int64_t t) const override;

 private:
  int64_t warmup_, total_;
  double min_lr_;
};

}  // namespace st::optim
