"""st.save and st.load: checkpoints in the safetensors format, readable by other frameworks."""

import os

from . import _C

__all__ = ["save", "load"]


def save(obj, path, metadata=None):
    """Saves a dict of tensors (or a module's or optimizer's state dict, or a module) to `path` in
    the safetensors format, atomically. `metadata` is an optional dict of strings."""
    if hasattr(obj, "state_dict") and not isinstance(obj, dict):
        obj = obj.state_dict()
    if isinstance(obj, dict) and set(obj) == {"state", "defaults"}:
        # An optimizer's state: its tensors, with the hyperparameters as metadata.
        metadata = dict(metadata or {}, **{f"defaults.{k}": repr(v) for k, v in obj["defaults"].items()})
        obj = obj["state"]
    if not isinstance(obj, dict) or not all(isinstance(v, _C.Tensor) for v in obj.values()):
        raise TypeError("st.save expects a dict of name -> tensor (or an object with state_dict())")
    _C._save_safetensors(os.fspath(path), {str(k): v.detach() for k, v in obj.items()},
                         {str(k): str(v) for k, v in (metadata or {}).items()})


def load(path, map_location=None, with_metadata=False):
    """Loads a safetensors file as a dict of name -> tensor on `map_location` (default CPU);
    with_metadata=True returns (tensors, metadata)."""
    tensors, metadata = _C._load_safetensors(os.fspath(path), map_location)
    return (tensors, metadata) if with_metadata else tensors
