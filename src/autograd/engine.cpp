// Graph recording and the backward pass: dependency counting from the roots, then nodes run in
// topological order on the calling thread, gradients summed per input slot.

#include <atomic>
#include <unordered_map>
#include <utility>

#include "autograd/node.h"
#include "ops/autocast.h"
#include "spiraltorch/autograd.h"
#include "spiraltorch/ops.h"

namespace st {

namespace {
thread_local bool grad_enabled = true;
// Callbacks queued during the backward pass running on this thread; null outside backward.
thread_local std::vector<std::function<void()>>* backward_callbacks = nullptr;
}  // namespace

bool is_grad_enabled() { return grad_enabled; }
void set_grad_enabled(bool enabled) { grad_enabled = enabled; }
NoGradGuard::NoGradGuard() : previous_(grad_enabled) { grad_enabled = false; }
NoGradGuard::~NoGradGuard() { grad_enabled = previous_; }
std::string grad_fn_name(const Tensor& t) {
  const AutogradMeta* meta = t.autograd_meta_if_any();
  return meta != nullptr && meta->grad_fn ? meta->grad_fn->name() : std::string();
}

namespace autograd {

namespace {
TensorMeta meta_of(const Tensor& t) { return {t.shape(), t.dtype(), t.device()}; }

// Sums a broadcast gradient back to the input's shape and casts it to the input's dtype.
Tensor conform(Tensor grad, const TensorMeta& meta, const std::string& node) {
  if (!grad.defined()) return grad;
  if (grad.shape() != meta.shape) grad = sum_to(grad, meta.shape);
  if (grad.dtype() != meta.dtype) grad = grad.to(meta.dtype);
  ST_CHECK(grad.device() == meta.device, DeviceError, "[backward] ", node,
           " produced a gradient on ", grad.device(), " for an input on ", meta.device);
  return grad;
}
}  // namespace

Node::~Node() {
  // Freeing a long chain through nested destructors would overflow the stack (a 100k-step graph is
  // ordinary), so the nodes only this one owns are unlinked and freed from a loop instead.
  std::vector<std::shared_ptr<Node>> orphans;
  const auto collect = [&orphans](std::vector<Edge>& edges) {
    for (Edge& edge : edges)
      if (edge.node && edge.node.use_count() == 1) orphans.push_back(std::move(edge.node));
  };
  collect(next_edges);
  while (!orphans.empty()) {
    std::shared_ptr<Node> node = std::move(orphans.back());
    orphans.pop_back();
    collect(node->next_edges);
  }  // each node dies here with no solely owned edges left, so its own destructor recurses no
     // further
}

FunctionNode::FunctionNode(std::string name, BackwardFn fn, std::vector<TensorMeta> inputs,
                           std::vector<Tensor> saved)
    : Node(std::move(name)), fn_(std::move(fn)), inputs_(std::move(inputs)) {
  for (const Tensor& t : saved)
    if (t.defined()) saved_versions_.emplace_back(t.storage(), t.storage()->version());
}

void FunctionNode::check_saved_versions() const {
  for (const auto& [storage, version] : saved_versions_)
    ST_CHECK(storage->version() == version, Error, "[backward] a tensor saved by ", name(),
             " was modified in place after it was saved (version ", storage->version(),
             ", saved at ", version, "); clone it before changing it, or change a copy");
}

Grads FunctionNode::apply(const Grads& grad_outputs) {
  ST_CHECK(
      !released_, Error, "[backward] trying to backward through ", name(),
      " a second time, after its saved tensors were freed; pass retain_graph=true to the first "
      "backward");
  check_saved_versions();
  std::vector<bool> needs(next_edges.size());
  for (size_t i = 0; i < needs.size(); ++i) needs[i] = next_edges[i].node != nullptr;
  Grads grads = fn_(grad_outputs, needs);
  ST_ASSERT(grads.size() == inputs_.size());
  for (size_t i = 0; i < grads.size(); ++i)
    grads[i] = needs[i] ? conform(grads[i], inputs_[i], name()) : Tensor();
  return grads;
}

void FunctionNode::release() {
  // A rule that saved nothing stays usable, so such graphs can run backward again, as in PyTorch.
  if (saved_versions_.empty()) return;
  fn_ = nullptr;  // drops the captured tensors
  saved_versions_.clear();
  released_ = true;
}

namespace {
// A copy, so that a hook may remove itself.
void run_post_accumulate_grad_hooks(const Tensor& leaf) {
  const AutogradMeta* meta = leaf.autograd_meta_if_any();
  if (meta == nullptr || meta->post_accumulate_grad_hooks.empty()) return;
  const auto hooks = meta->post_accumulate_grad_hooks;
  for (const auto& [id, hook] : hooks) hook(leaf);
}
}  // namespace

Grads AccumulateGrad::apply(const Grads& grad_outputs) {
  const Tensor& incoming = grad_outputs[0];
  Tensor leaf(leaf_);
  AutogradMeta& meta = leaf.autograd_meta();
  if (!meta.grad) {
    // Keep the gradient itself when nothing else can see it; a view or shared tensor is copied so
    // that later in-place accumulation cannot write through it.
    const bool exclusive = incoming.impl_ptr().use_count() == 1 &&
                           incoming.storage().use_count() == 1 && incoming.is_contiguous() &&
                           incoming.offset() == 0;
    meta.grad = exclusive ? incoming.detach().impl_ptr() : incoming.clone().impl_ptr();
  } else {
    Tensor(meta.grad).add_(incoming);
  }
  run_post_accumulate_grad_hooks(leaf);
  return {};
}

namespace {
template <typename Tensors>
bool any_requires_grad(const Tensors& inputs) {
  if (!grad_enabled) return false;
  for (const Tensor& t : inputs)
    if (t.defined() && t.requires_grad()) return true;
  return false;
}
}  // namespace

bool needs_grad(std::initializer_list<Tensor> inputs) { return any_requires_grad(inputs); }
bool needs_grad(const std::vector<Tensor>& inputs) { return any_requires_grad(inputs); }

Edge gradient_edge(const Tensor& t) {
  if (!t.defined() || !t.requires_grad()) return {};
  AutogradMeta& meta = t.autograd_meta();
  if (meta.grad_fn) return {meta.grad_fn, meta.output_nr};
  std::shared_ptr<Node> accumulator = meta.grad_accumulator.lock();
  if (!accumulator) {
    accumulator = std::make_shared<AccumulateGrad>(t.impl_ptr());
    meta.grad_accumulator = accumulator;
  }
  return {accumulator, 0};
}

void record(std::string name, const std::vector<Tensor>& inputs, const std::vector<Tensor>& outputs,
            BackwardFn fn, const std::vector<Tensor>& saved) {
  std::vector<TensorMeta> input_meta;
  input_meta.reserve(inputs.size());
  for (const Tensor& t : inputs) input_meta.push_back(t.defined() ? meta_of(t) : TensorMeta{});
  auto node =
      std::make_shared<FunctionNode>(std::move(name), std::move(fn), std::move(input_meta), saved);
  node->next_edges.reserve(inputs.size());
  for (const Tensor& t : inputs) node->next_edges.push_back(gradient_edge(t));
  for (size_t i = 0; i < outputs.size(); ++i) {
    node->outputs.push_back(meta_of(outputs[i]));
    AutogradMeta& meta = outputs[i].autograd_meta();
    meta.grad_fn = node;
    meta.output_nr = static_cast<uint32_t>(i);
  }
}

namespace {

// Runs the graph behind `roots`; each root's gradient enters its grad_fn (or leaf accumulator).
void run_backward(const std::vector<Tensor>& roots, const std::vector<Tensor>& root_grads,
                  bool retain_graph) {
  NoGradGuard no_grad;  // gradients are plain tensors: no graph of the backward pass
  std::vector<std::function<void()>> callbacks;
  std::vector<std::function<void()>>* const outer_callbacks =
      std::exchange(backward_callbacks, &callbacks);
  struct RestoreCallbacks {
    std::vector<std::function<void()>>* outer;
    ~RestoreCallbacks() { backward_callbacks = outer; }
  } restore{outer_callbacks};
  // Each backward op works in the dtype its forward op used, also under an autocast scope.
  ops::AutocastSuspend no_autocast;

  // Incoming-edge counts of every node reachable from the roots.
  std::unordered_map<Node*, int> dependencies;
  std::vector<Node*> stack;
  std::vector<Edge> root_edges;
  for (const Tensor& root : roots) {
    Edge edge = gradient_edge(root);
    root_edges.push_back(edge);
    if (edge.node && dependencies.emplace(edge.node.get(), 0).second)
      stack.push_back(edge.node.get());
  }
  while (!stack.empty()) {
    Node* node = stack.back();
    stack.pop_back();
    for (const Edge& next : node->next_edges) {
      if (!next.node) continue;
      auto [it, inserted] = dependencies.emplace(next.node.get(), 0);
      ++it->second;
      if (inserted) stack.push_back(next.node.get());
    }
  }

  // Gradients waiting for each node, one slot per output.
  std::unordered_map<Node*, Grads> pending;
  auto deliver = [&pending](Node* node, uint32_t slot, Tensor grad) {
    Grads& buffer = pending[node];
    if (buffer.empty()) buffer.resize(std::max<size_t>(node->outputs.size(), 1));
    buffer[slot] = buffer[slot].defined() ? add(buffer[slot], grad) : std::move(grad);
  };

  std::vector<std::shared_ptr<Node>> ready;
  for (size_t i = 0; i < roots.size(); ++i) {
    const Edge& edge = root_edges[i];
    if (!edge.node) continue;
    deliver(edge.node.get(), edge.input_nr, root_grads[i]);
    if (dependencies[edge.node.get()] == 0) {
      bool queued = false;
      for (auto& r : ready) queued = queued || r == edge.node;
      if (!queued) ready.push_back(edge.node);
    }
  }

  while (!ready.empty()) {
    std::shared_ptr<Node> node = std::move(ready.back());
    ready.pop_back();
    const auto delivered = pending.find(node.get());
    // A leaf whose gradient a rule already accumulated in place (see gemm_gradient) got nothing.
    if (delivered == pending.end()) {
      if (auto* accumulator = dynamic_cast<AccumulateGrad*>(node.get())) {
        run_post_accumulate_grad_hooks(Tensor(accumulator->leaf()));
        continue;
      }
    }
    Grads grads = delivered == pending.end() ? Grads() : std::move(delivered->second);
    if (delivered != pending.end()) pending.erase(delivered);
    if (grads.empty()) grads.resize(std::max<size_t>(node->outputs.size(), 1));
    for (size_t i = 0; i < node->outputs.size(); ++i) {
      if (grads[i].defined()) continue;
      const TensorMeta& meta = node->outputs[i];
      grads[i] = zeros(meta.shape, {meta.dtype, meta.device});
    }
    for (auto& [slot, weak] : node->retained) {
      if (auto impl = weak.lock()) {
        Tensor t(impl);
        t.set_grad(t.grad().defined() ? add(t.grad(), grads[slot]) : grads[slot].clone());
      }
    }

    Grads input_grads = node->apply(grads);
    if (!retain_graph) node->release();

    for (size_t i = 0; i < node->next_edges.size(); ++i) {
      const Edge& next = node->next_edges[i];
      if (!next.node) continue;
      if (input_grads[i].defined())
        deliver(next.node.get(), next.input_nr, std::move(input_grads[i]));
      if (--dependencies[next.node.get()] == 0) ready.push_back(next.node);
    }
  }
  // By index: a callback may queue another.
  for (size_t i = 0; i < callbacks.size(); ++i) callbacks[i]();
}

}  // namespace
}  // namespace autograd

void backward(const std::vector<Tensor>& roots, const std::vector<Tensor>& gradients,
              bool retain_graph) {
  ST_CHECK(gradients.empty() || gradients.size() == roots.size(), ValueError, "[backward] got ",
           gradients.size(), " gradients for ", roots.size(), " roots");
  std::vector<Tensor> grads;
  for (size_t i = 0; i < roots.size(); ++i) {
    const Tensor& root = roots[i];
    ST_CHECK(root.requires_grad(), Error,
             "[backward] the tensor does not require grad and has no grad_fn; set requires_grad on "
             "a leaf it was computed from");
    Tensor grad = gradients.empty() ? Tensor() : gradients[i];
    if (!grad.defined()) {
      ST_CHECK(root.numel() == 1, Error,
               "[backward] a gradient can be implied only for a tensor of one "
               "element; got shape ",
               root.shape(), ", so pass a gradient of that shape");
      grad = ones_like(root);
    } else {
      ST_CHECK(grad.shape() == root.shape(), ShapeError, "[backward] gradient of shape ",
               grad.shape(), " for a tensor of shape ", root.shape());
      ST_CHECK(grad.device() == root.device(), DeviceError, "[backward] gradient on ",
               grad.device(), " for a tensor on ", root.device());
      grad = grad.detach();
      if (grad.dtype() != root.dtype()) grad = grad.to(root.dtype());
    }
    grads.push_back(std::move(grad));
  }
  autograd::run_backward(roots, grads, retain_graph);
}

void queue_backward_callback(std::function<void()> callback) {
  ST_CHECK(backward_callbacks != nullptr, Error,
           "[queue_backward_callback] no backward pass is running on this thread");
  backward_callbacks->push_back(std::move(callback));
}

uint64_t Tensor::register_post_accumulate_grad_hook(std::function<void(const Tensor&)> hook) const {
  ST_CHECK(requires_grad() && is_leaf(), Error,
           "[register_post_accumulate_grad_hook] expected a leaf that requires grad");
  static std::atomic<uint64_t> next_id{1};
  const uint64_t id = next_id++;
  autograd_meta().post_accumulate_grad_hooks.emplace_back(id, std::move(hook));
  return id;
}

void Tensor::remove_post_accumulate_grad_hook(uint64_t id) const {
  AutogradMeta* meta = autograd_meta_if_any();
  if (meta == nullptr) return;
  std::erase_if(meta->post_accumulate_grad_hooks,
                [id](const auto& entry) { return entry.first == id; });
}

void Tensor::retain_grad() const {
  ST_CHECK(requires_grad(), Error, "[retain_grad] the tensor does not require grad");
  AutogradMeta& meta = autograd_meta();
  if (is_leaf() || meta.retains_grad) return;  // leaves keep their .grad anyway
  meta.retains_grad = true;
  meta.grad_fn->retained.emplace_back(meta.output_nr, impl_ptr());
}

void Tensor::backward(const Tensor& gradient, bool retain_graph) const {
  st::backward({*this}, {gradient}, retain_graph);
}

}  // namespace st
