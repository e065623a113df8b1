"""Automatic mixed precision: ``st.autocast``, as ``torch.autocast``.

Inside ``with st.autocast("cuda"):`` ops on CUDA tensors choose their compute dtype: matmul, linear
and scaled_dot_product_attention run in bfloat16 (or the given float16) with f32 accumulation,
their f32 inputs cast first; softmax, log_softmax, layer_norm, cross_entropy, sum and mean run in
float32 (layer_norm then writes its output in the scope's dtype, for the GEMMs that read it, unlike
torch.autocast's float32 output); every other op follows its inputs. The casts are recorded by autograd, so f32 parameters
get f32 gradients, and ``backward()`` runs each op in the dtype its forward used. The state is per
thread and per device type; scopes nest, and ``enabled=False`` turns autocast off inside one.
"""

import functools

from . import _C

__all__ = ["autocast", "is_autocast_enabled", "get_autocast_dtype"]

is_autocast_enabled = _C.is_autocast_enabled
get_autocast_dtype = _C.get_autocast_dtype


class autocast:
    """A context manager and decorator: ``with st.autocast("cuda", dtype=st.bfloat16):``."""

    def __init__(self, device_type, dtype=None, enabled=True):
        self.device_type = str(device_type).split(":")[0]
        self.dtype = dtype if dtype is not None else _C.dtype.bfloat16
        self.enabled = bool(enabled)
        # Fails early on a bad device type or dtype (float16 and bfloat16 only).
        if self.enabled and self.dtype not in (_C.dtype.bfloat16, _C.dtype.float16):
            raise _C.DTypeError(
                f"[autocast] expected the dtype bfloat16 or float16, got {self.dtype}"
            )
        _C.is_autocast_enabled(self.device_type)

    def __enter__(self):
        self._previous = (
            _C.is_autocast_enabled(self.device_type),
            _C.get_autocast_dtype(self.device_type),
        )
        # A disabled scope keeps the enclosing dtype, as torch.autocast does.
        dtype = self.dtype if self.enabled else self._previous[1]
        _C._set_autocast_state(self.device_type, self.enabled, dtype)
        return self

    def __exit__(self, *exc):
        _C._set_autocast_state(self.device_type, *self._previous)
        return False

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with autocast(self.device_type, self.dtype, self.enabled):
                return fn(*args, **kwargs)

        return wrapper
