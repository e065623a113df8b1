"""``st.cuda``: the CUDA backend's devices, memory, events and settings, and CUDA graphs.

A CUDA graph records the work a block of code queues on a device once and replays it with one
launch, which removes the host's per-op cost (a few microseconds an op) from every later step:

* ``st.cuda.capture_step(fn)`` makes a training step replayable with no change to ``fn``: it
  runs ``fn`` eagerly for a few warm-up calls, then captures it on copies of its tensor arguments
  and replays it from then on (the arguments are copied in at each call).
* ``st.cuda.CUDAGraph`` with ``with st.cuda.graph(g):`` is the plain form, as ``torch.cuda.graph``:
  the caller keeps the input tensors and refills them in place before ``g.replay()``.

What a graph replays is fixed at capture: the ops, their shapes and the memory they use. Random
ops draw new numbers at each replay and the optimizers read their learning rate and step count
from the host before each one, so LR schedules and dropout behave as without a graph. The host
cannot read values inside the captured code (``loss.item()`` raises DeviceError there).
"""

from . import _C
from ._C import Tensor

_native = _C.cuda

is_available = _native.is_available
device_count = _native.device_count
synchronize = _native.synchronize
memory_stats = _native.memory_stats
empty_cache = _native.empty_cache
Event = _native.Event
CUDAGraph = _native.CUDAGraph
is_capturing = _native.is_capturing
set_gemm_backend = _native.set_gemm_backend
gemm_backend = _native.gemm_backend
set_allow_tf32 = _native.set_allow_tf32
allow_tf32 = _native.allow_tf32

__all__ = [
    "is_available", "device_count", "synchronize", "memory_stats", "empty_cache", "Event",
    "CUDAGraph", "is_capturing", "graph", "capture_step", "CapturedStep", "set_gemm_backend",
    "gemm_backend", "set_allow_tf32", "allow_tf32",
]


class graph:
    """Captures the work queued inside the block into ``cuda_graph`` (as ``torch.cuda.graph``).

    ``with st.cuda.graph(g): out = model(static_x)`` records; ``static_x.copy_(x); g.replay()``
    then runs it again on new input, and ``out`` holds the new result. If the block raises, the
    capture is discarded and ``g`` stays empty.
    """

    def __init__(self, cuda_graph, device=0):
        self.cuda_graph = cuda_graph
        self.device = _device_index(device)

    def __enter__(self):
        self.cuda_graph.capture_begin(self.device)
        return self.cuda_graph

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.cuda_graph.capture_end()
        else:
            self.cuda_graph.capture_abort()
        return False


def capture_step(fn, *, warmup=2, device=None):
    """Wraps ``fn`` so that its calls replay one CUDA graph of it (see :class:`CapturedStep`)."""
    return CapturedStep(fn, warmup=warmup, device=device)


class CapturedStep:
    """A callable that runs ``fn(*args)`` as a replayed CUDA graph.

    The first ``warmup`` calls run ``fn`` eagerly (they make the optimizer's state, the GEMM plans
    and the cached memory that a capture must find in place). The next call captures ``fn`` on
    copies of its tensor arguments, placed on the graph's device, and replays it; each later call
    copies its tensor arguments into those copies and replays. Other arguments are fixed at capture,
    and a call whose tensors differ in shape or dtype, or whose other arguments differ, raises
    ValueError: make one CapturedStep per shape.

    ``fn`` returns a tensor, None, or a tuple, list or dict of them; each call returns fresh copies
    of the tensors (detached), so results of earlier calls keep their values. A training step
    calls ``optimizer.zero_grad()`` inside ``fn``, as it would without a graph.
    """

    def __init__(self, fn, *, warmup=2, device=None):
        if warmup < 1:
            raise ValueError(f"[capture_step] warmup must be at least 1 (the optimizer's state is "
                             f"made by an eager step), got {warmup}")
        self.fn = fn
        self.warmup = int(warmup)
        self.device = None if device is None else _device_index(device)
        self.calls = 0
        self.graph = None
        self._inputs = None  # the graph's copies of the tensor arguments, in argument order
        self._signature = None
        self._outputs = None

    def __call__(self, *args, **kwargs):
        kwargs = dict(sorted(kwargs.items()))  # one order for the copies, whatever the call's
        self.calls += 1
        if self.calls <= self.warmup:
            return self.fn(*args, **kwargs)
        signature = _signature(args, kwargs)
        if self.graph is None:
            self._capture(args, kwargs, signature)
        elif signature != self._signature:
            raise ValueError(f"[capture_step] this call's arguments {signature} differ from "
                             f"those the graph was captured with {self._signature}; make another "
                             f"capture_step for them")
        else:
            for static, given in zip(self._inputs, _tensors(args, kwargs)):
                static.copy_(given)
        self.graph.replay()
        return _map_tensors(self._outputs, lambda t: t.clone())

    def _capture(self, args, kwargs, signature):
        tensors = _tensors(args, kwargs)
        device = self.device
        if device is None:
            device = next((t.device.index for t in tensors if t.device.type == "cuda"), 0)
        inputs = [t.detach().to(f"cuda:{device}").clone() for t in tensors]
        swap = iter(inputs)
        static_args = _map_tensors(args, lambda t: next(swap))
        static_kwargs = _map_tensors(kwargs, lambda t: next(swap))
        g = CUDAGraph()
        with graph(g, device):
            outputs = self.fn(*static_args, **static_kwargs)
        self.graph, self._inputs, self._signature = g, inputs, signature
        self._outputs = _map_tensors(outputs, lambda t: t.detach())


def _device_index(device):
    if isinstance(device, int):
        return device
    text = str(device)
    if text == "cuda":
        return 0
    if not text.startswith("cuda:"):
        raise ValueError(f"[cuda graph] expected a CUDA device, got '{text}'")
    return int(text.split(":", 1)[1])


def _map_tensors(value, fn):
    """`value` with each tensor t in it (nested in tuples, lists and dicts) replaced by fn(t)."""
    if isinstance(value, Tensor):
        return fn(value)
    if isinstance(value, (tuple, list)):
        return type(value)(_map_tensors(v, fn) for v in value)
    if isinstance(value, dict):
        return {k: _map_tensors(v, fn) for k, v in value.items()}
    return value


def _tensors(args, kwargs):
    found = []
    _map_tensors((args, kwargs), found.append)
    return found


def _signature(args, kwargs):
    """What a replay must share with the capture: tensors' shapes and dtypes, other values."""
    def key(value):
        if isinstance(value, Tensor):
            return f"tensor{list(value.shape)} {value.dtype}"
        if isinstance(value, (tuple, list)):
            return type(value)(key(v) for v in value)
        if isinstance(value, dict):
            return {k: key(v) for k, v in value.items()}
        return value
    return (key(args), key(kwargs))
