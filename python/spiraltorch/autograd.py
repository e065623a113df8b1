"""Grad mode switches (``no_grad``, ``enable_grad``, ``set_grad_enabled``) and ``backward``."""

import functools

from . import _C

__all__ = ["no_grad", "enable_grad", "set_grad_enabled", "is_grad_enabled", "backward"]

is_grad_enabled = _C.is_grad_enabled


class _GradMode:
    """A context manager and decorator that sets grad mode and restores it on exit."""

    _enabled = True

    def __enter__(self):
        self._previous = _C.is_grad_enabled()
        _C._set_grad_enabled(self._enabled)
        return self

    def __exit__(self, *exc):
        _C._set_grad_enabled(self._previous)
        return False

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with self.__class__():
                return fn(*args, **kwargs)

        return wrapper


class no_grad(_GradMode):
    """Ops record no autograd graph inside ``with st.no_grad():`` or a function decorated with
    ``@st.no_grad()`` (grad mode is per thread)."""

    _enabled = False


class enable_grad(_GradMode):
    """Turns graph recording back on inside a ``no_grad`` region."""

    _enabled = True


class set_grad_enabled(_GradMode):
    """``set_grad_enabled(False)`` is ``no_grad()``; usable as a call, a context or a decorator."""

    def __init__(self, mode: bool):
        self._enabled = bool(mode)
        self._previous = _C.is_grad_enabled()
        _C._set_grad_enabled(self._enabled)

    def __enter__(self):
        return self

    def __call__(self, fn):
        _C._set_grad_enabled(self._previous)
        mode = self._enabled

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with set_grad_enabled(mode):
                return fn(*args, **kwargs)

        return wrapper


def backward(tensors, grad_tensors=None, retain_graph=False):
    """Backpropagates from several roots at once (each scalar root may have no gradient)."""
    if isinstance(tensors, _C.Tensor):
        tensors = [tensors]
    if grad_tensors is None:
        grad_tensors = [None] * len(tensors)
    elif isinstance(grad_tensors, _C.Tensor):
        grad_tensors = [grad_tensors]
    _C._backward(list(tensors), list(grad_tensors), retain_graph)
