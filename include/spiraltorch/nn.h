#pragma once
// Neural-network modules, as torch.nn: a Module owns named parameters, buffers and submodules,
// gives them out by dotted name ("blocks.0.attn.qkv.weight"), saves and loads them as a state dict,
// and switches between training and evaluation mode. Layers initialize their parameters as
// PyTorch's do, from SpiralTorch's seeded random streams.

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "spiraltorch/ops.h"

namespace st::nn {

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;
using StateDict = std::map<std::string, Tensor>;

class Module {
 public:
  virtual ~Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  // The module's type, as printed ("Linear").
  virtual std::string_view name() const = 0;
  // The one-tensor forward of layers that have one; the base throws NotImplementedError.
  virtual Tensor forward(const Tensor& input);
  Tensor operator()(const Tensor& input) { return forward(input); }

  // Parameters and buffers of this module and its descendants, in registration order, by dotted
  // name. The tensors are the module's own (they share storage), not copies.
  NamedTensors named_parameters() const;
  std::vector<Tensor> parameters() const;
  NamedTensors named_buffers() const;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> named_children() const;

  // Parameters and buffers by name, detached from the graph but sharing storage.
  StateDict state_dict() const;
  // Copies each entry into the tensor of the same name (converting dtype and device). With
  // `strict`, a missing or unexpected name is an error (ValueError listing them); a shape mismatch
  // always is (ShapeError).
  void load_state_dict(const StateDict& state, bool strict = true);

  // Training mode (the default) or evaluation mode, for this module and its descendants.
  void train(bool on = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }

  // Clears (set_to_none) or zeroes the gradients of all parameters.
  void zero_grad(bool set_to_none = true);
  // Moves every parameter and buffer to `device` and/or `dtype` (floating ones only for dtype),
  // keeping parameters leaves that require grad.
  void to(Device device);
  void to(DType dtype);
  // The module tree with each module's settings, as PyTorch prints a module.
  std::string str() const;

 protected:
  Module() = default;
  // Registers a tensor member of this module: the module keeps a pointer to the member, so `to()`
  // and `load_state_dict()` update what the layer computes with. Parameters require grad.
  void register_parameter(std::string name, Tensor& member);
  void register_buffer(std::string name, Tensor& member);
  template <typename M>
  std::shared_ptr<M> register_module(std::string name, std::shared_ptr<M> module) {
    children_.emplace_back(std::move(name), module);
    return module;
  }
  // Settings shown by str(), e.g. "in_features=4, out_features=2, bias=true".
  virtual std::string extra_repr() const { return {}; }

 private:
  void collect(const std::string& prefix, bool parameters, NamedTensors& out) const;
  void convert(std::optional<Device> device, std::optional<DType> dtype);
  void print(std::string& out, int indent) const;

  std::vector<std::pair<std::string, Tensor*>> parameters_;
  std::vector<std::pair<std::string, Tensor*>> buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
  bool training_ = true;
};

// y = x W^T + b; weight [out, in], bias [out]. Weight and bias start uniform in +-1/sqrt(in), as
// PyTorch's kaiming_uniform_(a = sqrt(5)) and bias rule give.
class Linear : public Module {
 public:
  Linear(int64_t in_features, int64_t out_features, bool bias = true,
         const TensorOptions& options = {});
  std::string_view name() const override { return "Linear"; }
  Tensor forward(const Tensor& input) override;

  Tensor weight;
  Tensor bias;  // undefined without bias

 private:
  std::string extra_repr() const override;
  int64_t in_features_, out_features_;
};

// Over the trailing dims `normalized_shape`; weight ones and bias zeros.
class LayerNorm : public Module {
 public:
  explicit LayerNorm(Shape normalized_shape, double eps = 1e-5, bool elementwise_affine = true,
                     const TensorOptions& options = {});
  std::string_view name() const override { return "LayerNorm"; }
  Tensor forward(const Tensor& input) override;

  Tensor weight;
  Tensor bias;

 private:
  std::string extra_repr() const override;
  Shape normalized_shape_;
  double eps_;
};

// A lookup table [num_embeddings, embedding_dim], normal(0, 1) at the start; takes int indices.
class Embedding : public Module {
 public:
  Embedding(int64_t num_embeddings, int64_t embedding_dim, const TensorOptions& options = {});
  std::string_view name() const override { return "Embedding"; }
  Tensor forward(const Tensor& indices) override;

  Tensor weight;

 private:
  std::string extra_repr() const override;
};

// Zeroes each element with probability p in training mode and scales the rest by 1 / (1 - p);
// the identity in evaluation mode.
class Dropout : public Module {
 public:
  explicit Dropout(double p = 0.5);
  std::string_view name() const override { return "Dropout"; }
  Tensor forward(const Tensor& input) override;

 private:
  std::string extra_repr() const override;
  double p_;
};

class ReLU : public Module {
 public:
  std::string_view name() const override { return "ReLU"; }
  Tensor forward(const Tensor& input) override { return relu(input); }
};

class GELU : public Module {
 public:
  explicit GELU(GeluApproximate approximate = GeluApproximate::None) : approximate_(approximate) {}
  std::string_view name() const override { return "GELU"; }
  Tensor forward(const Tensor& input) override { return gelu(input, approximate_); }

 private:
  std::string extra_repr() const override;
  GeluApproximate approximate_;
};

// Runs its modules in order; they are named "0", "1", ...
class Sequential : public Module {
 public:
  Sequential() = default;
  explicit Sequential(std::vector<std::shared_ptr<Module>> modules);
  std::string_view name() const override { return "Sequential"; }
  Tensor forward(const Tensor& input) override;
  void push_back(std::shared_ptr<Module> module);
  size_t size() const { return modules_.size(); }
  Module& operator[](size_t i) const { return *modules_.at(i); }

 private:
  std::vector<std::shared_ptr<Module>> modules_;
};

// Multi-head causal self-attention over x [B, T, d_model]: one Linear makes queries, keys and
// values (qkv, [3 d_model, d_model]), heads of d_model / num_heads attend to the positions up to
// their own (fused scaled, masked softmax), and a Linear (proj) mixes the heads; dropout on the
// output in training mode. Parameters start as their Linear layers'.
class CausalSelfAttention : public Module {
 public:
  CausalSelfAttention(int64_t d_model, int64_t num_heads, double dropout = 0, bool bias = true,
                      const TensorOptions& options = {});
  std::string_view name() const override { return "CausalSelfAttention"; }
  Tensor forward(const Tensor& x) override;

  std::shared_ptr<Linear> qkv;
  std::shared_ptr<Linear> proj;

 private:
  std::string extra_repr() const override;
  int64_t d_model_, num_heads_;
  std::shared_ptr<Dropout> dropout_;
};

// Parameter initialization as torch.nn.init, in place and outside autograd.
namespace init {
void uniform_(const Tensor& t, double low = 0, double high = 1);
void normal_(const Tensor& t, double mean = 0, double std = 1);
void zeros_(const Tensor& t);
void ones_(const Tensor& t);
// For a [fan_out, fan_in, ...] weight: uniform in +-gain * sqrt(3 / fan_in), gain =
// sqrt(2 / (1 + a^2)) (leaky ReLU's).
void kaiming_uniform_(const Tensor& t, double a = 0);
// Uniform in +-gain * sqrt(6 / (fan_in + fan_out)).
void xavier_uniform_(const Tensor& t, double gain = 1);
}  // namespace init

}  // namespace st::nn
