#pragma once
// The CUDA backend. Private to src/backend/cuda/. Work for a device goes on that device's one
// stream, in order, so the host waits only where it reads values (copy_to_host, synchronize,
// events); index checks report through DeviceFault. Kernels by family: copy.cu (copy, fill, arange,
// where), unary.cu and binary.cu (through map.cuh), random.cu, reduce.cu (reduce, arg_reduce,
// sum_of_squares), softmax.cu (softmax and cross_entropy), attention.cu (flash attention), norm.cu,
// embedding.cu, optim.cu, and the GEMMs: matmul.cpp (the choice of path, cuBLASLt and its linear
// epilogues), gemm_tiled.cu, gemm_tensorcore.cu. Memory, streams, events, copies and graph capture:
// runtime.cpp.

#include <cuda_runtime.h>

#include "backend/backend.h"

namespace st::backend::cuda {

// Throws DeviceError "[cuda] <what>: <CUDA's error text>" unless status is cudaSuccess.
void check(cudaError_t status, const char* what);
// After a kernel launch: the launch's own error, if any, as DeviceError naming the kernel.
void check_launch(const char* kernel);

// The stream of a device, made on first use; with the device made current on this thread.
cudaStream_t stream_for(int device);
// The stream of the device a tensor lives on, with that device made current.
inline cudaStream_t stream_of(const Tensor& t) { return stream_for(t.device().index); }
// Number of multiprocessors of a device, for sizing grids.
int multiprocessors(int device);

// A scratch tensor on a device for a kernel's partial results, freed through the caching
// allocator (so stream order keeps it alive long enough).
Tensor scratch(const Shape& shape, DType dtype, Device device);

// An operand fault that a kernel found (an index out of range). Kernels write it into host-visible
// memory and the host raises it as IndexError at the next point where it waits for the device's
// whole stream (a copy to the host, synchronize), so a check never stalls the queue. The first
// fault wins until it is raised.
enum class FaultKind : int32_t { None = 0, EmbeddingIndex, CrossEntropyTarget };
struct DeviceFault {
  unsigned long long set;
  int64_t value, limit;
  FaultKind kind;
};
// The device's fault record, as a pointer kernels can write.
DeviceFault* device_fault(int device);

// Copies n bytes of host memory to device memory in the device's stream order. While a graph is
// being captured the bytes are first copied to device memory the graph keeps, and every replay
// copies them again; `src` may go once this returns, either way.
void copy_host_to_device(void* dst, const void* src, size_t n, int device, const char* what);
// While a graph is being captured on the device: the pair {seed, counter offset shift} that random
// kernels read at run time in place of their launch's seed and in addition to its offset (each
// replay sets it); null otherwise.
const uint64_t* graph_random_slot(int device);

class CudaBackend final : public Backend {
 public:
  DeviceType device_type() const override { return DeviceType::CUDA; }
  std::string_view name() const override { return "cuda"; }
  int device_count() const override;

  void* allocate(size_t nbytes, int device_index) override;
  void deallocate(void* ptr, size_t nbytes, int device_index) override;
  void copy_from_host(const Tensor& dst, const void* src) override;
  void copy_to_host(void* dst, const Tensor& src) override;
  void synchronize(int device_index) override;
  MemoryStats memory_stats(int device_index) override;
  void empty_cache() override;
  void* event_create(int device_index) override;
  void event_destroy(void* event) override;
  void event_record(void* event, int device_index) override;
  void event_synchronize(void* event) override;
  bool event_query(void* event) override;
  double event_elapsed_ms(void* start, void* end) override;
  void event_wait(void* event, int device_index) override;
  void* native_stream(int device_index) override { return stream_for(device_index); }
  void graph_capture_begin(int device_index) override;
  void* graph_capture_end(int device_index, bool keep) override;
  void graph_replay(void* graph, uint64_t seed, uint64_t offset_shift) override;
  void graph_destroy(void* graph) override;
  Tensor graph_input(const Shape& shape, DType dtype, int device_index) override;

  void copy(const Tensor& dst, const Tensor& src) override;
  void fill(const Tensor& dst, const Scalar& value) override;
  void arange(const Tensor& dst, double start, double step) override;
  void uniform(const Tensor& dst, double low, double high, uint64_t seed, uint64_t offset) override;
  void normal(const Tensor& dst, double mean, double stddev, uint64_t seed,
              uint64_t offset) override;

  void unary(UnaryOp op, const Tensor& out, const Tensor& in, double alpha, double beta) override;
  void binary(BinaryOp op, const Tensor& out, const Tensor& a, const Tensor& b) override;
  // add, sub and mul of f32 and f16/bf16.
  bool has_mixed_binary(BinaryOp op, DType a, DType b) override;
  void where(const Tensor& out, const Tensor& cond, const Tensor& a, const Tensor& b) override;

  void reduce(ReduceOp op, const Tensor& out, const Tensor& in,
              const std::vector<int64_t>& dims) override;
  void arg_reduce(ArgReduceOp op, const Tensor& values, const Tensor& indices, const Tensor& in,
                  int64_t dim) override;

  void matmul(const Tensor& out, const Tensor& a, const Tensor& b, double alpha,
              double beta) override;
  // cuBLASLt's bias and GELU-with-aux epilogues where they apply (cuBLASLt's GELU is the tanh
  // form; the erf form takes the bias epilogue, then our gelu kernel); else Backend::linear.
  void linear(const Tensor& out, const Tensor& pre_activation, const Tensor& a, const Tensor& b,
              const Tensor& bias, LinearActivation act) override;

  void softmax(const Tensor& out, const Tensor& in, bool log, double scale,
               int64_t causal_rows) override;
  void softmax_backward(const Tensor& grad_in, const Tensor& grad_out, const Tensor& out, bool log,
                        double scale) override;
  // Flash attention (attention.cu): f16/bf16 on tensor cores, f64 on plain kernels; not f32, nor
  // head dims other than 32, 64 and 128.
  bool has_fused_attention(const Tensor& q, const Tensor& k) override;
  void attention_forward(const Tensor& out, const Tensor& logsumexp, const Tensor& q,
                         const Tensor& k, const Tensor& v, double scale, bool causal) override;
  void attention_backward(const Tensor& grad_q, const Tensor& grad_k, const Tensor& grad_v,
                          const Tensor& grad_out, const Tensor& q, const Tensor& k, const Tensor& v,
                          const Tensor& out, const Tensor& logsumexp, double scale,
                          bool causal) override;
  void layer_norm(const Tensor& out, const Tensor& mean, const Tensor& rstd, const Tensor& x,
                  const Tensor& weight, const Tensor& bias, double eps) override;
  void layer_norm_backward(const Tensor& grad_x, const Tensor& grad_weight, const Tensor& grad_bias,
                           const Tensor& grad_out, const Tensor& x, const Tensor& mean,
                           const Tensor& rstd, const Tensor& weight) override;
  void embedding(const Tensor& out, const Tensor& weight, const Tensor& indices) override;
  void embedding_backward(const Tensor& grad_weight, const Tensor& grad_out,
                          const Tensor& indices) override;
  void cross_entropy(const Tensor& loss, const Tensor& lse, const Tensor& logits,
                     const Tensor& target, int64_t ignore_index) override;
  void cross_entropy_backward(const Tensor& grad_logits, const Tensor& grad_loss,
                              const Tensor& logits, const Tensor& lse, const Tensor& target,
                              int64_t ignore_index) override;
  void dropout(const Tensor& out, const Tensor& mask, const Tensor& in, double p, uint64_t seed,
               uint64_t offset) override;

  void sgd_update(const std::vector<Tensor>& params, const std::vector<Tensor>& grads,
                  const std::vector<Tensor>& momentum_buffers, const SgdUpdate& update) override;
  void adam_update(const std::vector<Tensor>& params, const std::vector<Tensor>& grads,
                   const std::vector<Tensor>& exp_avgs, const std::vector<Tensor>& exp_avg_sqs,
                   const AdamUpdate& update) override;
  void sum_of_squares(const Tensor& out, const std::vector<Tensor>& tensors) override;

  // The GEMM paths behind matmul, each usable on its own (tests and benchmarks call them through
  // st::cuda::set_gemm_backend). Same contract as matmul.
  void gemm_cublaslt(const Tensor& out, const Tensor& a, const Tensor& b, double alpha,
                     double beta);
  // What cuBLASLt applies after the product: a bias [N] (contiguous), and optionally the tanh
  // GELU, its input then written to aux ([M, N] contiguous, N a multiple of 8).
  struct Epilogue {
    const Tensor* bias = nullptr;
    const Tensor* gelu_aux = nullptr;
  };
  // gemm_cublaslt with an epilogue; returns false, doing nothing, when cuBLASLt has no algorithm
  // for it.
  bool gemm_cublaslt_epilogue(const Tensor& out, const Tensor& a, const Tensor& b, double alpha,
                              double beta, const Epilogue& epilogue);
  void gemm_tiled(const Tensor& out, const Tensor& a, const Tensor& b, double alpha, double beta);
  // Returns false when the operands do not suit the kernel (dtype, alignment); nothing is done
  // then.
  bool gemm_tensorcore(const Tensor& out, const Tensor& a, const Tensor& b, double alpha,
                       double beta);
};

}  // namespace st::backend::cuda
