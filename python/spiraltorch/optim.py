"""Optimizers over Python parameter lists, as torch.optim's, each step one fused C++ update per
group of parameters (st::sgd_update_ / st::adam_update_ in ops.h); parameters without a gradient
are skipped, as PyTorch skips them. Learning-rate schedules set `lr` from the step count."""

import math

from . import _C

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "lr_scheduler", "clip_grad_norm_"]


class Optimizer:
    """Base class: holds `params` (a list of tensors that require grad) and per-parameter state."""

    def __init__(self, params, defaults):
        self.params = list(params)
        if not self.params:
            raise ValueError("optimizer got an empty parameter list")
        self.defaults = dict(defaults)
        self.state = [dict() for _ in self.params]

    @property
    def lr(self):
        return self.defaults["lr"]

    @lr.setter
    def lr(self, value):
        self.defaults["lr"] = value

    @property
    def param_groups(self):
        # One group, as a list of one dict, for code that sets group["lr"] as in PyTorch.
        return [_GroupView(self)]

    def zero_grad(self, set_to_none=True):
        """Clears (PyTorch's default) or zeroes every parameter's gradient."""
        for p in self.params:
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                g = p.grad
                with _NoGrad():
                    g.zero_()

    def _with_grads(self):
        """Indices of parameters that have a gradient, grouped by (device, dtype) so that each
        group is one fused kernel call."""
        groups = {}
        for i, p in enumerate(self.params):
            if p.grad is not None:
                groups.setdefault((str(p.device), repr(p.dtype)), []).append(i)
        return list(groups.values())

    def state_dict(self):
        """Per-parameter state tensors by name ('<i>.<name>'), plus the hyperparameters."""
        out = {}
        for i, s in enumerate(self.state):
            for k, v in s.items():
                out[f"{i}.{k}"] = v if isinstance(v, _C.Tensor) else _C.tensor(v)
        return {"state": out, "defaults": dict(self.defaults)}

    def load_state_dict(self, state):
        self.defaults.update(state["defaults"])
        self.state = [dict() for _ in self.params]
        for key, value in state["state"].items():
            i, name = key.split(".", 1)
            s = self.state[int(i)]
            s[name] = value.item() if name == "step" else value.clone()


class _GroupView(dict):
    def __init__(self, optimizer):
        super().__init__(optimizer.defaults, params=optimizer.params)
        self._optimizer = optimizer

    def __setitem__(self, key, value):
        super().__setitem__(key, value)
        if key in self._optimizer.defaults:
            self._optimizer.defaults[key] = value


class _NoGrad:
    def __enter__(self):
        self._previous = _C.is_grad_enabled()
        _C._set_grad_enabled(False)

    def __exit__(self, *exc):
        _C._set_grad_enabled(self._previous)


class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum, dampening, Nesterov momentum and
    (L2) weight decay, as torch.optim.SGD."""

    def __init__(self, params, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0,
                 nesterov=False):
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum needs momentum > 0 and dampening = 0")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov))

    def step(self):
        d = self.defaults
        for group in self._with_grads():
            # Parameters whose momentum buffer starts now take the first-step rule, in their own
            # call.
            fresh = [i for i in group if "momentum_buffer" not in self.state[i]]
            for indices, first in ((fresh, True), ([i for i in group if i not in fresh], False)):
                if not indices:
                    continue
                params = [self.params[i] for i in indices]
                buffers = []
                if d["momentum"] != 0:
                    for i in indices:
                        s = self.state[i]
                        s.setdefault("momentum_buffer", _C.zeros_like(self.params[i]))
                        buffers.append(s["momentum_buffer"])
                _C._sgd_update_(params, [p.grad for p in params], buffers, lr=d["lr"],
                                momentum=d["momentum"], dampening=d["dampening"],
                                weight_decay=d["weight_decay"], nesterov=d["nesterov"],
                                first_step=first and d["momentum"] != 0)


class Adam(Optimizer):
    """Adam, as torch.optim.Adam (L2 weight decay added to the gradient)."""

    _decoupled = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps,
                                      weight_decay=weight_decay))

    def step(self):
        d = self.defaults
        beta1, beta2 = d["betas"]
        for group in self._with_grads():
            # Parameters that joined later have fewer steps; each step count is one fused call.
            by_step = {}
            for i in group:
                s = self.state[i]
                if "step" not in s:
                    s["step"] = 0
                    s["exp_avg"] = _C.zeros_like(self.params[i])
                    s["exp_avg_sq"] = _C.zeros_like(self.params[i])
                s["step"] += 1
                by_step.setdefault(s["step"], []).append(i)
            for step, indices in by_step.items():
                params = [self.params[i] for i in indices]
                _C._adam_update_(params, [p.grad for p in params],
                                 [self.state[i]["exp_avg"] for i in indices],
                                 [self.state[i]["exp_avg_sq"] for i in indices],
                                 lr=d["lr"], beta1=beta1, beta2=beta2, eps=d["eps"],
                                 weight_decay=d["weight_decay"],
                                 decoupled_weight_decay=self._decoupled, step=step)


class AdamW(Adam):
    """Adam with decoupled weight decay (parameters shrink by lr * weight_decay each step), as
    torch.optim.AdamW."""

    _decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2):
        super().__init__(params, lr, betas, eps, weight_decay)


def clip_grad_norm_(parameters, max_norm):
    """Scales all gradients so that their global 2-norm is at most max_norm; returns the norm
    before clipping as a 0-d tensor, as torch.nn.utils.clip_grad_norm_."""
    if isinstance(parameters, _C.Tensor):
        parameters = [parameters]
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return _C.tensor(0.0)
    norm = _C._global_norm(grads)
    scale = (max_norm / (norm + 1e-6)).clamp(max=1.0)
    with _NoGrad():
        for g in grads:
            g.mul_(scale.to(g.dtype))
    return norm


class _LRScheduler:
    """Sets the optimizer's lr after each step() from the step count, in closed form."""

    def __init__(self, optimizer):
        self.optimizer = optimizer
        self.base_lr = optimizer.lr
        self.last_epoch = 0
        optimizer.lr = self.lr_at(0)

    def step(self):
        self.last_epoch += 1
        self.optimizer.lr = self.lr_at(self.last_epoch)

    def get_last_lr(self):
        return [self.optimizer.lr]


class LinearLR(_LRScheduler):
    """lr = base * factor, the factor going linearly from start_factor to end_factor over
    total_iters steps, then staying there."""

    def __init__(self, optimizer, start_factor=1.0 / 3, end_factor=1.0, total_iters=5):
        self.start_factor, self.end_factor, self.total_iters = start_factor, end_factor, total_iters
        super().__init__(optimizer)

    def lr_at(self, t):
        frac = min(t, self.total_iters) / self.total_iters
        return self.base_lr * (self.start_factor + (self.end_factor - self.start_factor) * frac)


class CosineAnnealingLR(_LRScheduler):
    """eta_min + (base - eta_min) * (1 + cos(pi * t / T_max)) / 2."""

    def __init__(self, optimizer, T_max, eta_min=0.0):
        self.T_max, self.eta_min = T_max, eta_min
        super().__init__(optimizer)

    def lr_at(self, t):
        return self.eta_min + (self.base_lr - self.eta_min) * (1 + math.cos(math.pi * t / self.T_max)) / 2


class lr_scheduler:  # noqa: N801 (a namespace, as torch.optim.lr_scheduler)
    LinearLR = LinearLR
    CosineAnnealingLR = CosineAnnealingLR
