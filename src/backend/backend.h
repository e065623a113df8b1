#pragma once
// The interface every backend implements: memory, copies and kernels. Kernels trust their inputs:
// the ops front-end has already checked shapes, dtypes and devices, allocated the outputs and
// broadcast the operands. A kernel a backend lacks throws NotImplementedError naming op and
// backend.
//
// Conventions for every kernel below:
// - all tensors are on this backend's device; outputs are contiguous unless said otherwise, and an
//   elementwise output may be the very tensor of an input (in-place ops); inputs may have any
//   strides (0 for broadcast dims) and any storage offset;
// - elementwise operands have the output's shape and, unless said otherwise, its dtype;
// - f16 and bf16 are computed in f32.

#include <cstdint>
#include <string_view>
#include <vector>

#include "spiraltorch/memory.h"
#include "spiraltorch/ops.h"
#include "spiraltorch/tensor.h"

namespace st::backend {

enum class UnaryOp : uint8_t {
  Neg,
  Exp,
  Log,
  Sqrt,
  Rsqrt,
  Abs,
  Tanh,
  Sigmoid,
  Relu,
  GeluErf,
  GeluTanh,
  Clamp,      // min(max(x, alpha), beta); the front-end passes +-inf for an absent bound
  PowScalar,  // x ** alpha
  Affine,     // x * alpha + beta
};

enum class BinaryOp : uint8_t {
  Add,
  Sub,
  Mul,
  Div,
  Pow,
  Maximum,
  Minimum,
  Eq,
  Ne,
  Lt,
  Le,
  Gt,
  Ge,  // output dtype bool; operands share one dtype
  // Fused derivatives, a = incoming gradient, b = the forward input x (or output y where named):
  TanhBackward,      // a * (1 - y^2), b = y
  SigmoidBackward,   // a * y * (1 - y), b = y
  ReluBackward,      // a * (x > 0)
  GeluErfBackward,   // a * d/dx gelu_erf(x)
  GeluTanhBackward,  // a * d/dx gelu_tanh(x)
};

enum class ReduceOp : uint8_t { Sum, Mean, Max, Min };
enum class ArgReduceOp : uint8_t { Max, Min };

class Backend {
 public:
  virtual ~Backend() = default;
  virtual DeviceType device_type() const = 0;
  virtual std::string_view name() const = 0;  // "cpu", "cuda", "vulkan"
  virtual int device_count() const { return 1; }

  // Memory. allocate(0) may return null. Out of memory throws OutOfMemoryError.
  virtual void* allocate(size_t nbytes, int device_index) = 0;
  virtual void deallocate(void* ptr, size_t nbytes, int device_index) = 0;
  // Host <-> device transfers of contiguous bytes; `dst`/`src` tensors are contiguous.
  virtual void copy_from_host(const Tensor& dst, const void* src) = 0;
  virtual void copy_to_host(void* dst, const Tensor& src) = 0;
  virtual void synchronize(int /*device_index*/) {}
  // The statistics of a GPU backend's caching allocator, and the release of its cached blocks.
  virtual MemoryStats memory_stats(int device_index);
  virtual void empty_cache() {}
  // Events on a GPU device's stream (st::cuda::Event), as opaque handles. event_record marks the
  // work queued so far on the device's stream; event_wait makes a device's stream wait for the
  // marked work (of any device) without the host waiting; event_elapsed_ms is the time between
  // two completed events.
  virtual void* event_create(int device_index);
  virtual void event_destroy(void* event);
  virtual void event_record(void* event, int device_index);
  virtual void event_synchronize(void* event);
  virtual bool event_query(void* event);
  virtual double event_elapsed_ms(void* start, void* end);
  virtual void event_wait(void* event, int device_index);
  // The native handle of the device's stream (a cudaStream_t), for libraries that queue work
  // beside ours (NCCL); null on backends without streams.
  virtual void* native_stream(int /*device_index*/) { return nullptr; }
  // Graphs of a device's stream (st::cuda::Graph). Between graph_capture_begin and
  // graph_capture_end the work ops queue on the device is recorded, not run, and memory comes from
  // a pool private to the graph (CachingAllocator); graph_capture_end returns the graph, or with
  // `keep` false discards it (a capture that failed). While capturing, copies from the host are
  // staged so that every replay copies the same bytes, random kernels read their seed and counter
  // offset from the graph, and waits for the device throw. graph_replay runs the graph with the
  // Philox seed and an offset added to the counters it captured; graph_destroy waits for it.
  virtual void graph_capture_begin(int device_index);
  virtual void* graph_capture_end(int device_index, bool keep);
  virtual void graph_replay(void* graph, uint64_t seed, uint64_t offset_shift);
  virtual void graph_destroy(void* graph);
  // While capturing: a tensor in memory that no captured work has used or will reuse, for values
  // the host writes before each replay (a write before the launch would otherwise land in memory
  // the graph's earlier kernels may still write). It lives as long as the caller keeps it.
  virtual Tensor graph_input(const Shape& shape, DType dtype, int device_index);

  // dst = src converted to dst's dtype; same shape, any strides on both (dst may be a view).
  virtual void copy(const Tensor& dst, const Tensor& src);
  // Every element of dst (any strides) set to value.
  virtual void fill(const Tensor& dst, const Scalar& value);
  // dst[i] = start + i * step, dst contiguous 1-D.
  virtual void arange(const Tensor& dst, double start, double step);
  // Philox4x32-10 streams (philox.h): element i of dst (contiguous) uses counter offset + i / 4 and
  // output lane i % 4 under key `seed`, so every backend draws the same numbers for the same seed
  // and offset. A lane x becomes u = philox_unit(x, b) = (x >> (32 - b)) * 2^-b, b being the
  // dtype's significand bits (24 for f32 and f64, 11 for f16, 8 for bf16, so that u never rounds to
  // 1); uniform gives low + (high - low) u. normal pairs lanes (0, 1) and (2, 3) of one counter by
  // Box-Muller with b = 24: r = sqrt(-2 ln(1 - u_even)); the even lane takes r cos(2 pi u_odd), the
  // odd lane r sin(2 pi u_odd); then mean + stddev * that.
  virtual void uniform(const Tensor& dst, double low, double high, uint64_t seed, uint64_t offset);
  virtual void normal(const Tensor& dst, double mean, double stddev, uint64_t seed,
                      uint64_t offset);

  // out = op(in), same dtype; alpha and beta are op parameters (see UnaryOp).
  virtual void unary(UnaryOp op, const Tensor& out, const Tensor& in, double alpha, double beta);
  // out = op(a, b); comparisons write bool. a and b have out's dtype (comparisons: one dtype),
  // except where has_mixed_binary says otherwise.
  virtual void binary(BinaryOp op, const Tensor& out, const Tensor& a, const Tensor& b);
  // Whether binary computes op into an f32 out from operands of dtypes a and b, one f32 and the
  // other f16/bf16, reading the narrow one as it is (the values of casting it first): an f32 stream
  // plus a GEMM's bf16 output under autocast, without an f32 copy of the latter. The default says
  // no, and the front-end casts first.
  virtual bool has_mixed_binary(BinaryOp op, DType a, DType b);
  // out = cond ? a : b; cond is bool.
  virtual void where(const Tensor& out, const Tensor& cond, const Tensor& a, const Tensor& b);

  // out has in's shape with size 1 in each of `dims` (sorted, unique, non-empty); its dtype may
  // differ from in's (sums of integers accumulate in int64). Float sums accumulate in f32 or wider.
  virtual void reduce(ReduceOp op, const Tensor& out, const Tensor& in,
                      const std::vector<int64_t>& dims);
  // values (in's dtype) and indices (int64) have in's shape with size 1 at `dim`; the first extreme
  // index wins, and NaN counts as the extreme.
  virtual void arg_reduce(ArgReduceOp op, const Tensor& values, const Tensor& indices,
                          const Tensor& in, int64_t dim);

  // out[b] = alpha * a[b] @ b[b] + beta * out[b] for 3-D a [B, M, K], b [B, K, N], out [B, M, N]
  // (out contiguous, may hold data when beta != 0). Each matrix of a and b has unit stride in one
  // of its two dims (row- or column-major); batch strides are arbitrary, including 0.
  virtual void matmul(const Tensor& out, const Tensor& a, const Tensor& b, double alpha,
                      double beta);
  // The GEMM of linear with its epilogue: pre = a @ b + bias, out = act(pre). a [1, M, K] and b
  // [1, K, N] (weight^T) follow matmul's layout rules; out [1, M, N] contiguous; bias undefined or
  // a contiguous [N] vector viewed as [1, M, N] with strides (0, 0, 1); pre_activation [1, M, N]
  // contiguous, undefined when act is None (out then holds a @ b + bias), else written for the
  // backward. GeluTanh is gelu's tanh approximation. The default composes matmul and unary.
  virtual void linear(const Tensor& out, const Tensor& pre_activation, const Tensor& a,
                      const Tensor& b, const Tensor& bias, LinearActivation act);

  // Row-wise over the last dim of contiguous 2-D [rows, cols] tensors: out = softmax(scale * in),
  // or log_softmax. When causal_rows > 0 (never with log), rows come in groups of causal_rows
  // queries and row r sees only columns c <= r % causal_rows: the causal mask of attention, aligned
  // top-left as PyTorch's; masked entries come out 0.
  virtual void softmax(const Tensor& out, const Tensor& in, bool log, double scale,
                       int64_t causal_rows);
  // grad_in = scale * y * (grad_out - sum(grad_out * y)), or for log:
  // scale * (grad_out - exp(y) * sum(grad_out)).
  virtual void softmax_backward(const Tensor& grad_in, const Tensor& grad_out, const Tensor& out,
                                bool log, double scale);
  // Fused attention (flash attention): out = softmax(scale * q k^T) v without the [L, S] scores in
  // memory. q [B, H, L, E], k and v [B, H, S, E], one float dtype, each with unit stride along E
  // (other strides arbitrary); out [B, H, L, E] with unit stride along E and strides that are
  // multiples of 8 (the front-end lays it out as q is); logsumexp [B, H, L] f32 (f64 for f64)
  // contiguous: each row's log-sum-exp of the scaled scores, saved for the backward. causal masks
  // key j > query i (top-left aligned). Called only where has_fused_attention(q, k).
  virtual void attention_forward(const Tensor& out, const Tensor& logsumexp, const Tensor& q,
                                 const Tensor& k, const Tensor& v, double scale, bool causal);
  // Whether attention_forward and attention_backward have kernels for these operands (dtype, E,
  // lengths); asked before anything is allocated, so that other operands and backends go straight
  // to the composite of matmul and softmax. The default says no.
  virtual bool has_fused_attention(const Tensor& q, const Tensor& k);
  // The gradients of attention_forward, given grad_out [B, H, L, E] (unit stride along E) and the
  // forward's out and logsumexp: grad_q, grad_k, grad_v with q's, k's and v's shapes, laid out as
  // out is, written.
  virtual void attention_backward(const Tensor& grad_q, const Tensor& grad_k, const Tensor& grad_v,
                                  const Tensor& grad_out, const Tensor& q, const Tensor& k,
                                  const Tensor& v, const Tensor& out, const Tensor& logsumexp,
                                  double scale, bool causal);
  // x, out [rows, cols] contiguous; weight/bias [cols] contiguous or undefined, in x's dtype;
  // mean/rstd [rows] in the statistics dtype: f64 for f64 input, f32 otherwise. out has x's dtype,
  // or f16/bf16 for f32 x (autocast): computed in f32 all the same, rounded once when stored.
  virtual void layer_norm(const Tensor& out, const Tensor& mean, const Tensor& rstd,
                          const Tensor& x, const Tensor& weight, const Tensor& bias, double eps);
  // Same shapes as the forward; grad_out [rows, cols] contiguous, in the forward output's dtype;
  // grad_x and the parameters' gradients in x's. grad_weight/grad_bias undefined when not wanted;
  // otherwise written (not accumulated).
  virtual void layer_norm_backward(const Tensor& grad_x, const Tensor& grad_weight,
                                   const Tensor& grad_bias, const Tensor& grad_out, const Tensor& x,
                                   const Tensor& mean, const Tensor& rstd, const Tensor& weight);
  // out [N, D] = weight[indices[n]]; indices int32/int64 [N] contiguous, weight [V, D] contiguous.
  // An index outside [0, V) throws IndexError, at the latest when the host next waits for the
  // device (copy_to_host or synchronize), so that an asynchronous backend need not stop its queue.
  virtual void embedding(const Tensor& out, const Tensor& weight, const Tensor& indices);
  // grad_weight [V, D] (zeroed by the caller) += scatter of grad_out [N, D] rows by indices; all
  // contiguous.
  virtual void embedding_backward(const Tensor& grad_weight, const Tensor& grad_out,
                                  const Tensor& indices);
  // logits [N, C] contiguous, target int [N]; loss [N] = logsumexp(row) - row[target] (0 where
  // target == ignore_index), in the logits' dtype or, for f16/bf16 logits, in f32 (autocast);
  // lse [N] in the statistics dtype (as layer_norm's) saved for backward. A target outside [0, C)
  // that is not ignore_index throws IndexError, as embedding's.
  virtual void cross_entropy(const Tensor& loss, const Tensor& lse, const Tensor& logits,
                             const Tensor& target, int64_t ignore_index);
  // grad_logits [N, C] = (softmax(row) - onehot(target)) * grad_loss[n]; 0 rows where ignored.
  // grad_logits has the logits' dtype, grad_loss the loss's (see cross_entropy).
  virtual void cross_entropy_backward(const Tensor& grad_logits, const Tensor& grad_loss,
                                      const Tensor& logits, const Tensor& lse, const Tensor& target,
                                      int64_t ignore_index);
  // in, out, mask contiguous, one float dtype. Element i draws u_i as `uniform` over [0, 1) does
  // (same seed, offset and mapping), keeps mask_i = u_i >= p ? 1 / (1 - p) : 0 and writes
  // out_i = in_i * mask_i; the mask is the backward's multiplier. 0 < p < 1.
  virtual void dropout(const Tensor& out, const Tensor& mask, const Tensor& in, double p,
                       uint64_t seed, uint64_t offset);

  // Fused multi-tensor optimizer updates (ops.h states the maths, as PyTorch's). Each list holds
  // one tensor per parameter; params[i], grads[i] and every state tensor i are contiguous with
  // params[i]'s shape and float dtype; the update is computed in f32 (f64 for f64) and written in
  // place. Lists may mix dtypes. momentum_buffers is empty when momentum is 0.
  virtual void sgd_update(const std::vector<Tensor>& params, const std::vector<Tensor>& grads,
                          const std::vector<Tensor>& momentum_buffers, const SgdUpdate& update);
  virtual void adam_update(const std::vector<Tensor>& params, const std::vector<Tensor>& grads,
                           const std::vector<Tensor>& exp_avgs,
                           const std::vector<Tensor>& exp_avg_sqs, const AdamUpdate& update);
  // out (0-d, f32 or f64) = sum of the squares of every element of `tensors` (contiguous, float,
  // dtypes may differ), accumulated in out's dtype or wider: the global norm of gradient clipping.
  virtual void sum_of_squares(const Tensor& out, const std::vector<Tensor>& tensors);

 protected:
  [[noreturn]] void not_implemented(std::string_view op) const;
};

// The backend serving a device type; throws DeviceError when this build or machine lacks it.
Backend& backend_for(DeviceType type);
inline Backend& backend_for(const Device& device) { return backend_for(device.type); }
bool backend_available(DeviceType type);
// Called by each backend's registration; see registry.cpp.
void register_backend(Backend* backend);

}  // namespace st::backend
