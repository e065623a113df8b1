#pragma once
// The autograd graph: each op that needs gradients records a Node whose edges point at the nodes of
// its inputs. Leaves that require grad end in an AccumulateGrad node.

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "spiraltorch/tensor.h"

namespace st::autograd {

class Node;

struct Edge {
  std::shared_ptr<Node> node;  // null: this input needs no gradient
  uint32_t input_nr = 0;       // which input slot of `node` the gradient flows into
};

// What a gradient must look like to flow into an input: its shape (broadcast gradients are summed
// back to it), dtype and device.
struct TensorMeta {
  Shape shape;
  DType dtype;
  Device device;
};

using Grads = std::vector<Tensor>;
// Maps the gradients of a node's outputs to those of its inputs. `needs[i]` tells whether input i
// wants one; a rule may leave the others undefined.
using BackwardFn = std::function<Grads(const Grads& grads, const std::vector<bool>& needs)>;

class Node {
 public:
  explicit Node(std::string name) : name_(std::move(name)) {}
  virtual ~Node();
  const std::string& name() const { return name_; }

  // Gradients for each input, given one per output (missing ones are materialized as zeros).
  virtual Grads apply(const Grads& grad_outputs) = 0;
  // Frees what the node saved for backward; a later apply() fails clearly.
  virtual void release() {}

  std::vector<Edge> next_edges;     // one per input
  std::vector<TensorMeta> outputs;  // one per output
  // Non-leaf outputs whose .grad was asked for (retain_grad), by output number.
  std::vector<std::pair<uint32_t, std::weak_ptr<TensorImpl>>> retained;

 private:
  std::string name_;
};

// A node whose rule is a closure: what every op records.
class FunctionNode final : public Node {
 public:
  FunctionNode(std::string name, BackwardFn fn, std::vector<TensorMeta> inputs,
               std::vector<Tensor> saved);
  Grads apply(const Grads& grad_outputs) override;
  void release() override;

 private:
  // Throws when a tensor saved for backward was modified in place since.
  void check_saved_versions() const;

  BackwardFn fn_;
  std::vector<TensorMeta> inputs_;
  std::vector<std::pair<std::shared_ptr<Storage>, uint64_t>> saved_versions_;
  bool released_ = false;
};

// Adds incoming gradients into a leaf's .grad.
class AccumulateGrad final : public Node {
 public:
  explicit AccumulateGrad(std::shared_ptr<TensorImpl> leaf)
      : Node("AccumulateGrad"), leaf_(std::move(leaf)) {}
  Grads apply(const Grads& grad_outputs) override;
  const std::shared_ptr<TensorImpl>& leaf() const { return leaf_; }

 private:
  std::shared_ptr<TensorImpl> leaf_;
};

// True when grad mode is on and any defined input requires grad.
bool needs_grad(std::initializer_list<Tensor> inputs);
bool needs_grad(const std::vector<Tensor>& inputs);

// Makes `outputs` the outputs of a new node `name` whose gradient rule is `fn`. `saved` must list
// every tensor fn captured: an in-place change to any of them is caught at backward time, and they
// are freed after a backward without retain_graph. Call only when needs_grad(inputs).
void record(std::string name, const std::vector<Tensor>& inputs, const std::vector<Tensor>& outputs,
            BackwardFn fn, const std::vector<Tensor>& saved = {});

// The edge a gradient for `t` flows along: its grad_fn, its leaf accumulator, or none.
Edge gradient_edge(const Tensor& t);

}  // namespace st::autograd
