"""SpiralTorch: eager tensors with reverse-mode autograd, in the style of PyTorch.

    import spiraltorch as st
    x = st.randn(4, 3, requires_grad=True)
    (x @ x.T).relu().sum().backward()
    x.grad
"""

from . import _C
from ._C import (  # noqa: F401
    DTypeError,
    DeviceError,
    GradFn,
    OutOfMemoryError,
    SerializationError,
    ShapeError,
    SpiralTorchError,
    Tensor,
    __version__,
    abs,
    add,
    amax,
    amin,
    arange,
    argmax,
    argmin,
    backends,
    broadcast_shapes,
    cat,
    chunk,
    clamp,
    clip,
    concat,
    device,
    div,
    dtype,
    empty,
    empty_like,
    eq,
    exp,
    from_dlpack,
    from_numpy,
    full,
    full_like,
    ge,
    gelu,
    get_rng_state,
    gt,
    is_grad_enabled,
    le,
    log,
    log_softmax,
    lt,
    manual_seed,
    matmul,
    max,
    maximum,
    mean,
    min,
    minimum,
    mul,
    ne,
    neg,
    ones,
    ones_like,
    pow,
    rand,
    rand_like,
    randn,
    randn_like,
    relu,
    rsqrt,
    set_rng_state,
    sigmoid,
    softmax,
    split,
    sqrt,
    stack,
    sub,
    sum,
    sum_to,
    tanh,
    tensor,
    where,
    zeros,
    zeros_like,
)
from ._size import Size
from .autograd import backward, enable_grad, no_grad, set_grad_enabled  # noqa: F401
from .amp import autocast, get_autocast_dtype, is_autocast_enabled  # noqa: F401

float32 = dtype.float32
float64 = dtype.float64
float16 = dtype.float16
bfloat16 = dtype.bfloat16
int32 = dtype.int32
int64 = dtype.int64
bool = dtype.bool  # noqa: A001 (as torch.bool)
float = float32  # noqa: A001
double = float64
half = float16
int = int32  # noqa: A001
long = int64

from . import cuda, distributed, nn, optim  # noqa: E402,F401
from .serialization import load, save  # noqa: E402,F401



def is_tensor(obj):
    """Whether `obj` is a SpiralTorch tensor."""
    return isinstance(obj, Tensor)
