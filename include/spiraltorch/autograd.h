#pragma once
// Reverse-mode differentiation: the graph is built as ops run and walked back by
// Tensor::backward().

#include <functional>
#include <string>
#include <vector>

#include "spiraltorch/tensor.h"

namespace st {

// While alive on this thread, ops record no graph (as torch.no_grad()).
class NoGradGuard {
 public:
  NoGradGuard();
  ~NoGradGuard();
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool previous_;
};

bool is_grad_enabled();
void set_grad_enabled(bool enabled);

// Backpropagates from several roots at once; each gradient may be undefined for a scalar root.
void backward(const std::vector<Tensor>& roots, const std::vector<Tensor>& gradients = {},
              bool retain_graph = false);

// Queues `callback` to run on this thread when the backward pass now running has finished all its
// nodes (as torch's queue_callback): a hook uses it to act once per backward. Throws outside
// backward.
void queue_backward_callback(std::function<void()> callback);

// The name of the node that made `t` ("MulBackward"); empty for a leaf.
std::string grad_fn_name(const Tensor& t);

}  // namespace st
