"""Optimizers, gradient clipping and learning-rate schedules with torch.optim's signatures. They
are the C++ ones (include/spiraltorch/optim.h): each step is one fused multi-tensor update per
device, parameters without a gradient are skipped, and schedules set `lr` in closed form from the
step count."""

from . import _C

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "lr_scheduler", "clip_grad_norm_"]

Optimizer = _C._Optimizer


class _ParamGroup(dict):
    """The one parameter group, as PyTorch code reads and sets it (`param_groups[0]["lr"] = x`)."""

    def __init__(self, optimizer):
        super().__init__(lr=optimizer.lr, params=list(optimizer.params))
        self._optimizer = optimizer

    def __setitem__(self, key, value):
        if key != "lr":
            raise KeyError(f"only 'lr' can be changed through param_groups, not {key!r}")
        super().__setitem__(key, value)
        self._optimizer.lr = value


def _param_groups(self):
    return [_ParamGroup(self)]


class SGD(_C._SGD):
    """Stochastic gradient descent with optional momentum, dampening, Nesterov momentum and (L2)
    weight decay, as torch.optim.SGD."""

    def __init__(self, params, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0,
                 nesterov=False):
        super().__init__(list(params), lr, momentum, dampening, weight_decay, nesterov)


class Adam(_C._Adam):
    """Adam, as torch.optim.Adam (L2 weight decay added to the gradient)."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(list(params), lr, betas[0], betas[1], eps, weight_decay)


class AdamW(_C._AdamW):
    """Adam with decoupled weight decay (parameters shrink by lr * weight_decay each step), as
    torch.optim.AdamW."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2):
        super().__init__(list(params), lr, betas[0], betas[1], eps, weight_decay)


for _cls in (SGD, Adam, AdamW):
    _cls.param_groups = property(_param_groups)


def clip_grad_norm_(parameters, max_norm):
    """Scales all gradients so that their global 2-norm is at most max_norm; returns the norm
    before clipping as a 0-d tensor, as torch.nn.utils.clip_grad_norm_."""
    if isinstance(parameters, _C.Tensor):
        parameters = [parameters]
    return _C._clip_grad_norm_(list(parameters), max_norm)


def _last_lr(self):
    return [self.optimizer.lr]


class LinearLR(_C._LinearLR):
    """lr = base * factor, the factor going linearly from start_factor to end_factor over
    total_iters steps, then staying there (a warmup from a small start)."""

    def __init__(self, optimizer, start_factor=1.0 / 3, end_factor=1.0, total_iters=5):
        super().__init__(optimizer, start_factor, end_factor, total_iters)
        self.optimizer = optimizer


class CosineAnnealingLR(_C._CosineAnnealingLR):
    """eta_min + (base - eta_min) * (1 + cos(pi * t / T_max)) / 2."""

    def __init__(self, optimizer, T_max, eta_min=0.0):  # noqa: N803 (PyTorch's name)
        super().__init__(optimizer, T_max, eta_min)
        self.optimizer = optimizer


class WarmupCosineLR(_C._WarmupCosineLR):
    """Linear warmup from 0 over `warmup` steps, then cosine decay to min_lr at `total` steps."""

    def __init__(self, optimizer, warmup, total, min_lr=0.0):
        super().__init__(optimizer, warmup, total, min_lr)
        self.optimizer = optimizer


for _cls in (LinearLR, CosineAnnealingLR, WarmupCosineLR):
    _cls.get_last_lr = _last_lr


class lr_scheduler:  # noqa: N801 (a namespace, as torch.optim.lr_scheduler)
    LinearLR = LinearLR
    CosineAnnealingLR = CosineAnnealingLR
    WarmupCosineLR = WarmupCosineLR
