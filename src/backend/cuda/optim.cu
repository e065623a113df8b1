// Fused multi-tensor SGD and Adam/AdamW updates: all parameters of one dtype are updated by one
// launch, each block taking a chunk of one tensor from a table of jobs copied to the device. Each
// element's parameter, gradient and state are read once and written once. Maths as ops.h states.

#include <algorithm>
#include <cmath>
#include <vector>

#include "backend/cuda/common.cuh"

namespace st::backend::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kChunk = 64 * 1024;

struct Job {
  void* param;
  const void* grad;
  void* state0;  // momentum buffer, or Adam's exp_avg
  void* state1;  // Adam's exp_avg_sq
  int64_t begin, end;
};

// `schedule`, when given, holds {lr, step} on the device (SgdUpdate::schedule).
template <typename T>
__global__ void sgd_kernel(const Job* jobs, double lr, const double* schedule, double wd,
                           double momentum, double keep, bool nesterov, bool first_step) {
  using C = calc_t<T>;
  if (schedule) lr = schedule[0];
  const Job job = jobs[blockIdx.x];
  T* p = static_cast<T*>(job.param);
  const T* g = static_cast<const T*>(job.grad);
  T* buf = static_cast<T*>(job.state0);
  for (int64_t i = job.begin + threadIdx.x; i < job.end; i += blockDim.x) {
    const C x = load(p[i]);
    C d = load(g[i]) + C(wd) * x;
    if (buf) {
      const C b = first_step ? d : C(momentum) * load(buf[i]) + C(keep) * d;
      buf[i] = store<T>(b);
      d = nesterov ? d + C(momentum) * b : b;
    }
    p[i] = store<T>(x - C(lr) * d);
  }
}

struct AdamScalars {
  double lr, step, beta1, beta2, eps, weight_decay;
  bool decoupled;
  const double* schedule;  // {lr, step} on the device (AdamUpdate::schedule), or null
};

template <typename T>
__global__ void adam_kernel(const Job* jobs, AdamScalars s, bool vec) {
  using C = calc_t<T>;
  constexpr int V = Vec16<T>::kCount;
  const Job job = jobs[blockIdx.x];
  T* p = static_cast<T*>(job.param);
  const T* g = static_cast<const T*>(job.grad);
  T* m = static_cast<T*>(job.state0);
  T* v = static_cast<T*>(job.state1);
  const double lr = s.schedule ? s.schedule[0] : s.lr, t = s.schedule ? s.schedule[1] : s.step;
  const C step_size = C(lr / (1 - ::pow(s.beta1, t))),
          inv_sqrt_bias2 = C(::rsqrt(1 - ::pow(s.beta2, t))), b1 = C(s.beta1), b2 = C(s.beta2),
          eps = C(s.eps), coupled_wd = C(s.decoupled ? 0.0 : s.weight_decay),
          shrink = C(s.decoupled ? 1 - lr * s.weight_decay : 1.0);
  // One element: parameter, moments, all in and out through references.
  const auto update = [&](T& pi, T gi, T& mi, T& vi) {
    const C p0 = load(pi);
    const C d = load(gi) + coupled_wd * p0;
    const C m1 = b1 * load(mi) + (C(1) - b1) * d;
    const C v1 = b2 * load(vi) + (C(1) - b2) * d * d;
    mi = store<T>(m1);
    vi = store<T>(v1);
    pi = store<T>(p0 * shrink - step_size * m1 / (::sqrt(v1) * inv_sqrt_bias2 + eps));
  };
  int64_t i = job.begin;
  if (vec) {
    // 16-byte packs of the four arrays: four loads in flight a thread where one element at a
    // time left the update at 0.65 of the copy bandwidth.
    const int64_t packs = (job.end - job.begin) / V;
    for (int64_t k = threadIdx.x; k < packs; k += blockDim.x) {
      const int64_t at = job.begin + k * V;
      Vec16<T> pp = *reinterpret_cast<const Vec16<T>*>(p + at);
      const Vec16<T> gp = *reinterpret_cast<const Vec16<T>*>(g + at);
      Vec16<T> mp = *reinterpret_cast<const Vec16<T>*>(m + at);
      Vec16<T> vp = *reinterpret_cast<const Vec16<T>*>(v + at);
#pragma unroll
      for (int e = 0; e < V; ++e) update(pp.v[e], gp.v[e], mp.v[e], vp.v[e]);
      *reinterpret_cast<Vec16<T>*>(p + at) = pp;
      *reinterpret_cast<Vec16<T>*>(m + at) = mp;
      *reinterpret_cast<Vec16<T>*>(v + at) = vp;
    }
    i += packs * V;
  }
  for (i += threadIdx.x; i < job.end; i += blockDim.x) update(p[i], g[i], m[i], v[i]);
}

// The jobs of the tensors of one dtype, copied to a device buffer; empty when there are none.
Tensor upload_jobs(const std::vector<Job>& jobs, Device device) {
  const Tensor table =
      scratch({static_cast<int64_t>(jobs.size() * sizeof(Job))}, DType::Bool, device);
  copy_host_to_device(table.data_ptr(), jobs.data(), jobs.size() * sizeof(Job), device.index,
                      "cudaMemcpyAsync of the update table");
  return table;
}

template <typename Update>
const double* schedule_of(const Update& u) {
  return u.schedule.defined() ? static_cast<const double*>(u.schedule.data_ptr()) : nullptr;
}

// Calls launch(tag, jobs) once per float dtype present in params.
template <typename Launch>
void for_each_dtype(const char* op, const std::vector<Tensor>& params,
                    const std::vector<Tensor>& grads, const std::vector<Tensor>& state0,
                    const std::vector<Tensor>& state1, Launch&& launch) {
  for (const Tensor& p : params) {
    if (!is_floating(p.dtype()))
      throw NotImplementedError(
          detail::concat("[", op, "] not implemented for ", p.dtype(), " on the cuda backend"));
  }
  for (DType dtype : {DType::Float32, DType::Float64, DType::Float16, DType::BFloat16}) {
    std::vector<Job> jobs;
    for (size_t t = 0; t < params.size(); ++t) {
      if (params[t].dtype() != dtype) continue;
      for (int64_t b = 0; b < params[t].numel(); b += kChunk) {
        jobs.push_back({params[t].data_ptr(), grads[t].data_ptr(),
                        state0.empty() ? nullptr : state0[t].data_ptr(),
                        state1.empty() ? nullptr : state1[t].data_ptr(), b,
                        std::min(params[t].numel(), b + kChunk)});
      }
    }
    if (jobs.empty()) continue;
    dispatch_float(dtype, op, [&](auto tag) { launch(tag, jobs); });
  }
}

}  // namespace

void CudaBackend::sgd_update(const std::vector<Tensor>& params, const std::vector<Tensor>& grads,
                             const std::vector<Tensor>& momentum_buffers, const SgdUpdate& u) {
  if (params.empty()) return;
  const Device device = params[0].device();
  const cudaStream_t stream = stream_for(device.index);
  for_each_dtype("sgd_update", params, grads, momentum_buffers, {},
                 [&](auto tag, const auto& jobs) {
                   using T = decltype(tag);
                   const Tensor table = upload_jobs(jobs, device);
                   sgd_kernel<T><<<static_cast<unsigned>(jobs.size()), kThreads, 0, stream>>>(
                       static_cast<const Job*>(table.data_ptr()), u.lr, schedule_of(u),
                       u.weight_decay, u.momentum, 1 - u.dampening, u.nesterov, u.first_step);
                   check_launch("sgd_update");
                 });
}

void CudaBackend::adam_update(const std::vector<Tensor>& params, const std::vector<Tensor>& grads,
                              const std::vector<Tensor>& exp_avgs,
                              const std::vector<Tensor>& exp_avg_sqs, const AdamUpdate& u) {
  if (params.empty()) return;
  const Device device = params[0].device();
  const cudaStream_t stream = stream_for(device.index);
  const AdamScalars s{u.lr,           static_cast<double>(u.step), u.beta1,       u.beta2, u.eps,
                      u.weight_decay, u.decoupled_weight_decay,    schedule_of(u)};
  for_each_dtype("adam_update", params, grads, exp_avgs, exp_avg_sqs,
                 [&](auto tag, const auto& jobs) {
                   using T = decltype(tag);
                   const Tensor table = upload_jobs(jobs, device);
                   const bool vec = std::all_of(jobs.begin(), jobs.end(), [](const Job& j) {
                     return aligned16(j.param) && aligned16(j.grad) && aligned16(j.state0) &&
                            aligned16(j.state1);
                   });
                   adam_kernel<T><<<static_cast<unsigned>(jobs.size()), kThreads, 0, stream>>>(
                       static_cast<const Job*>(table.data_ptr()), s, vec);
                   check_launch("adam_update");
                 });
}

}  // namespace st::backend::cuda
