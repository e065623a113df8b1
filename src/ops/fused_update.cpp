// Fused optimizer updates and the global norm: list checks here, one backend kernel per list.
// They run outside autograd (they write parameters in place, as an optimizer step does) and bump
// the version of everything they write.

#include "ops/op_utils.h"

namespace st {

namespace {

// Checks one list of tensors against the parameters: same count, and each tensor contiguous with
// its parameter's shape, dtype and device.
void check_list(const char* op, const char* what, const std::vector<Tensor>& params,
                const std::vector<Tensor>& list) {
  ST_CHECK(list.size() == params.size(), ValueError, "[", op, "] expected one ", what,
           " per parameter (", params.size(), "), got ", list.size());
  for (size_t i = 0; i < list.size(); ++i) {
    const Tensor& p = params[i];
    const Tensor& t = list[i];
    ST_CHECK(t.defined(), ValueError, "[", op, "] ", what, " ", i, " is undefined");
    ST_CHECK(t.shape() == p.shape() && t.dtype() == p.dtype() && t.device() == p.device(),
             ValueError, "[", op, "] ", what, " ", i, " (", t.shape(), ", ", t.dtype(), ", ",
             t.device(), ") must match its parameter (", p.shape(), ", ", p.dtype(), ", ",
             p.device(), ")");
    ST_CHECK(t.is_contiguous(), ValueError, "[", op, "] ", what, " ", i, " of shape ", t.shape(),
             " must be contiguous");
  }
}

void check_params(const char* op, const std::vector<Tensor>& params) {
  for (size_t i = 0; i < params.size(); ++i) {
    const Tensor& p = params[i];
    ST_CHECK(p.defined(), ValueError, "[", op, "] parameter ", i, " is undefined");
    ops::check_floating(op, p, "parameter");
    ST_CHECK(p.device() == params[0].device(), DeviceError, "[", op, "] parameter ", i, " is on ",
             p.device(), " but parameter 0 on ", params[0].device(),
             "; update each device's parameters in a call of their own");
    ST_CHECK(p.is_contiguous(), ValueError, "[", op, "] parameter ", i, " of shape ", p.shape(),
             " must be contiguous to be updated in place");
  }
}

// Gradients as the kernel wants them: contiguous (a copy only where one is not).
std::vector<Tensor> contiguous_grads(const char* op, const std::vector<Tensor>& params,
                                     const std::vector<Tensor>& grads) {
  std::vector<Tensor> out;
  out.reserve(grads.size());
  for (const Tensor& g : grads) out.push_back(g.defined() ? g.detach().contiguous() : g);
  check_list(op, "gradient", params, out);
  return out;
}

// Checks an update's schedule tensor. The CUDA kernels read it on the device; for the other
// backends its values are read here into lr and step.
template <typename Update>
Update resolve_schedule(const char* op, const std::vector<Tensor>& params, Update u) {
  const Tensor& s = u.schedule;
  if (!s.defined()) return u;
  ST_CHECK(s.dtype() == DType::Float64 && s.numel() == 2 && s.is_contiguous(), ValueError, "[", op,
           "] schedule must be a contiguous float64 tensor of 2 values {lr, step}, got ", s.shape(),
           " ", s.dtype());
  ST_CHECK(params.empty() || s.device() == params[0].device(), DeviceError, "[", op,
           "] schedule is on ", s.device(), " but the parameters are on ", params[0].device());
  if (s.device().type == DeviceType::CUDA) return u;
  const std::vector<double> values = s.to_vector<double>();
  u.lr = values[0];
  if constexpr (requires { u.step; }) u.step = static_cast<int64_t>(values[1]);
  u.schedule = {};
  return u;
}

void bump(const std::vector<Tensor>& tensors) {
  for (const Tensor& t : tensors) t.storage()->bump_version();
}

}  // namespace

void sgd_update_(const std::vector<Tensor>& params, const std::vector<Tensor>& grads,
                 const std::vector<Tensor>& momentum_buffers, const SgdUpdate& given) {
  constexpr const char* op = "sgd_update_";
  check_params(op, params);
  const SgdUpdate update = resolve_schedule(op, params, given);
  const std::vector<Tensor> g = contiguous_grads(op, params, grads);
  const bool momentum = update.momentum != 0;
  if (momentum) check_list(op, "momentum buffer", params, momentum_buffers);
  ST_CHECK(!update.nesterov || (momentum && update.dampening == 0), ValueError, "[", op,
           "] Nesterov momentum needs momentum > 0 and dampening 0, got momentum ", update.momentum,
           " and dampening ", update.dampening);
  if (params.empty()) return;
  const std::vector<Tensor> none;
  ops::backend_of(params[0]).sgd_update(params, g, momentum ? momentum_buffers : none, update);
  bump(params);
  if (momentum) bump(momentum_buffers);
}

void adam_update_(const std::vector<Tensor>& params, const std::vector<Tensor>& grads,
                  const std::vector<Tensor>& exp_avgs, const std::vector<Tensor>& exp_avg_sqs,
                  const AdamUpdate& given) {
  constexpr const char* op = "adam_update_";
  check_params(op, params);
  const AdamUpdate update = resolve_schedule(op, params, given);
  const std::vector<Tensor> g = contiguous_grads(op, params, grads);
  check_list(op, "exp_avg", params, exp_avgs);
  check_list(op, "exp_avg_sq", params, exp_avg_sqs);
  ST_CHECK(update.step >= 1, ValueError, "[", op, "] step counts from 1, got ", update.step);
  ST_CHECK(update.beta1 >= 0 && update.beta1 < 1 && update.beta2 >= 0 && update.beta2 < 1,
           ValueError, "[", op, "] betas must be in [0, 1), got (", update.beta1, ", ",
           update.beta2, ")");
  if (params.empty()) return;
  ops::backend_of(params[0]).adam_update(params, g, exp_avgs, exp_avg_sqs, update);
  bump(params);
  bump(exp_avgs);
  bump(exp_avg_sqs);
}

Tensor global_norm(const std::vector<Tensor>& tensors) {
  constexpr const char* op = "global_norm";
  ST_CHECK(!tensors.empty(), ValueError, "[", op, "] expected at least one tensor");
  std::vector<Tensor> inputs;
  DType dtype = DType::Float32;
  for (const Tensor& t : tensors) {
    ST_CHECK(t.defined(), ValueError, "[", op, "] got an undefined tensor");
    ops::check_floating(op, t);
    ST_CHECK(t.device() == tensors[0].device(), DeviceError, "[", op, "] tensors on ", t.device(),
             " and ", tensors[0].device(), "; expected one device");
    if (t.dtype() == DType::Float64) dtype = DType::Float64;
    inputs.push_back(t.detach().contiguous());
  }
  Tensor squares = ops::new_tensor({}, dtype, tensors[0].device());
  ops::backend_of(squares).sum_of_squares(squares, inputs);
  NoGradGuard no_grad;
  return sqrt(squares);
}

}  // namespace st
