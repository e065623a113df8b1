// Learning-rate schedules in closed form: the lr after t steps depends on t alone.

#include <algorithm>
#include <cmath>
#include <numbers>

#include "spiraltorch/optim.h"

namespace st::optim {

LRScheduler::LRScheduler(Optimizer& optimizer) : optimizer_(optimizer), base_lr_(optimizer.lr()) {}

void LRScheduler::step() { set_step(steps_ + 1); }

void LRScheduler::set_step(int64_t steps) {
  ST_CHECK(steps >= 0, ValueError, "[LRScheduler] step count must be non-negative, got ", steps);
  steps_ = steps;
  optimizer_.set_lr(lr_at(steps_));
}

LinearLR::LinearLR(Optimizer& optimizer, double start_factor, double end_factor,
                   int64_t total_iters)
    : LRScheduler(optimizer), start_(start_factor), end_(end_factor), total_(total_iters) {
  ST_CHECK(start_factor > 0 && start_factor <= 1 && end_factor >= 0 && end_factor <= 1 &&
               total_iters >= 0,
           ValueError, "[LinearLR] expected 0 < start_factor <= 1, 0 <= end_factor <= 1 and ",
           "total_iters >= 0, got ", start_factor, ", ", end_factor, ", ", total_iters);
  set_step(0);
}

double LinearLR::lr_at(int64_t t) const {
  const double progress =
      total_ == 0 ? 1 : static_cast<double>(std::min(t, total_)) / static_cast<double>(total_);
  return base_lr_ * (start_ + (end_ - start_) * progress);
}

CosineAnnealingLR::CosineAnnealingLR(Optimizer& optimizer, int64_t t_max, double eta_min)
    : LRScheduler(optimizer), t_max_(t_max), eta_min_(eta_min) {
  ST_CHECK(t_max > 0, ValueError, "[CosineAnnealingLR] T_max must be positive, got ", t_max);
  set_step(0);
}

double CosineAnnealingLR::lr_at(int64_t t) const {
  const double phase = std::numbers::pi * static_cast<double>(t) / static_cast<double>(t_max_);
  return eta_min_ + (base_lr_ - eta_min_) * (1 + std::cos(phase)) / 2;
}

WarmupCosineLR::WarmupCosineLR(Optimizer& optimizer, int64_t warmup, int64_t total, double min_lr)
    : LRScheduler(optimizer), warmup_(warmup), total_(total), min_lr_(min_lr) {
  ST_CHECK(warmup >= 0 && total > warmup, ValueError,
           "[WarmupCosineLR] expected 0 <= warmup < total, got warmup ", warmup, " and total ",
           total);
  set_step(0);
}

double WarmupCosineLR::lr_at(int64_t t) const {
  if (t < warmup_) return base_lr_ * static_cast<double>(t + 1) / static_cast<double>(warmup_);
  const double progress =
      std::min(1.0, static_cast<double>(t - warmup_) / static_cast<double>(total_ - warmup_));
  return min_lr_ + (base_lr_ - min_lr_) * (1 + std::cos(std::numbers::pi * progress)) / 2;
}

}  // namespace st::optim
