"""Neural-network building blocks, as torch.nn.

``Module`` is subclassed in Python: parameters (``Parameter``) and submodules assigned to attributes
are registered. The layers (``Linear``, ``LayerNorm``, ``Embedding``, ``Dropout``, ``ReLU``,
``GELU``, ``CausalSelfAttention``) are SpiralTorch's C++ modules; they have Module's methods and
can be held by Python modules and containers (``Sequential``, ``ModuleList``)."""

from .. import _C
from . import functional  # noqa: F401
from . import parallel  # noqa: F401,E402
from .module import Module, ModuleList, Parameter, Sequential  # noqa: F401

Linear = _C.nn.Linear
LayerNorm = _C.nn.LayerNorm
Embedding = _C.nn.Embedding
Dropout = _C.nn.Dropout
ReLU = _C.nn.ReLU
GELU = _C.nn.GELU
CausalSelfAttention = _C.nn.CausalSelfAttention
init = _C.nn.init


class utils:  # noqa: N801 (a namespace, as torch.nn.utils)
    from ..optim import clip_grad_norm_  # noqa: F401

    clip_grad_norm_ = staticmethod(clip_grad_norm_)


__all__ = [
    "CausalSelfAttention",
    "Dropout",
    "Embedding",
    "GELU",
    "LayerNorm",
    "Linear",
    "Module",
    "ModuleList",
    "Parameter",
    "ReLU",
    "Sequential",
    "functional",
    "init",
]
