// Module: the registry of parameters, buffers and submodules, and what is built on it (state
// dicts, modes, device and dtype moves, printing).

#include <sstream>

#include "spiraltorch/autograd.h"
#include "spiraltorch/nn.h"

namespace st::nn {

Tensor Module::forward(const Tensor&) {
  throw NotImplementedError(
      detail::concat("[", name(), "] has no one-tensor forward; call its own forward overload"));
}

void Module::register_parameter(std::string name, Tensor& member) {
  if (member.defined() && !member.requires_grad()) member.set_requires_grad(true);
  parameters_.emplace_back(std::move(name), &member);
}

void Module::register_buffer(std::string name, Tensor& member) {
  buffers_.emplace_back(std::move(name), &member);
}

void Module::collect(const std::string& prefix, bool parameters, NamedTensors& out) const {
  for (const auto& [name, member] : parameters ? parameters_ : buffers_)
    if (member->defined()) out.emplace_back(prefix + name, *member);
  for (const auto& [name, child] : children_) child->collect(prefix + name + ".", parameters, out);
}

NamedTensors Module::named_parameters() const {
  NamedTensors out;
  collect("", true, out);
  return out;
}

std::vector<Tensor> Module::parameters() const {
  std::vector<Tensor> out;
  for (auto& [name, t] : named_parameters()) out.push_back(t);
  return out;
}

NamedTensors Module::named_buffers() const {
  NamedTensors out;
  collect("", false, out);
  return out;
}

std::vector<std::pair<std::string, std::shared_ptr<Module>>> Module::named_children() const {
  return children_;
}

StateDict Module::state_dict() const {
  StateDict out;
  for (auto& [name, t] : named_parameters()) out.emplace(name, t.detach());
  for (auto& [name, t] : named_buffers()) out.emplace(name, t.detach());
  return out;
}

void Module::load_state_dict(const StateDict& state, bool strict) {
  const StateDict own = state_dict();  // shares storage with the module's tensors
  std::vector<std::string> missing, unexpected;
  for (const auto& [name, t] : own) {
    const auto it = state.find(name);
    if (it == state.end()) {
      missing.push_back(name);
      continue;
    }
    ST_CHECK(it->second.defined(), ValueError, "[load_state_dict] entry '", name,
             "' is an undefined tensor");
    ST_CHECK(it->second.shape() == t.shape(), ShapeError, "[load_state_dict] '", name,
             "' has shape ", it->second.shape(), " in the state dict but ", t.shape(), " in the ",
             this->name(), " module");
  }
  for (const auto& [name, t] : state)
    if (own.count(name) == 0) unexpected.push_back(name);
  if (strict && (!missing.empty() || !unexpected.empty())) {
    std::ostringstream msg;
    msg << "[load_state_dict] the state dict does not match the " << this->name() << " module:";
    const auto list = [&](const char* what, const std::vector<std::string>& names) {
      if (names.empty()) return;
      msg << " " << what << " [";
      for (size_t i = 0; i < names.size(); ++i) msg << (i ? ", " : "") << names[i];
      msg << "]";
    };
    list("missing keys", missing);
    list("unexpected keys", unexpected);
    throw ValueError(msg.str());
  }
  NoGradGuard no_grad;
  for (const auto& [name, t] : own) {
    const auto it = state.find(name);
    if (it != state.end()) Tensor(t).copy_(it->second);
  }
}

void Module::train(bool on) {
  training_ = on;
  for (auto& [name, child] : children_) child->train(on);
}

void Module::zero_grad(bool set_to_none) {
  for (Tensor& p : parameters()) {
    if (set_to_none)
      p.set_grad({});
    else
      p.zero_grad();
  }
}

void Module::convert(std::optional<Device> device, std::optional<DType> dtype) {
  NoGradGuard no_grad;
  const auto move = [&](Tensor& t, bool parameter) {
    if (!t.defined()) return;
    const DType target = dtype && is_floating(t.dtype()) ? *dtype : t.dtype();
    const Device where = device.value_or(t.device());
    if (t.device() == where && t.dtype() == target) return;
    t = t.to(where, target).detach();
    if (parameter) t.set_requires_grad(true);
  };
  for (auto& [name, member] : parameters_) move(*member, true);
  for (auto& [name, member] : buffers_) move(*member, false);
  for (auto& [name, child] : children_) child->convert(device, dtype);
}

void Module::to(Device device) { convert(device, std::nullopt); }

void Module::to(DType dtype) { convert(std::nullopt, dtype); }

void Module::print(std::string& out, int indent) const {
  out += name();
  out += "(";
  out += extra_repr();
  if (!children_.empty()) {
    out += "\n";
    for (const auto& [name, child] : children_) {
      out += std::string(static_cast<size_t>(indent + 2), ' ') + "(" + name + "): ";
      child->print(out, indent + 2);
      out += "\n";
    }
    out += std::string(static_cast<size_t>(indent), ' ');
  }
  out += ")";
}

std::string Module::str() const {
  std::string out;
  print(out, 0);
  return out;
}

}  // namespace st::nn
