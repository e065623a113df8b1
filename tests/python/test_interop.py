"""Zero-copy exchange with NumPy (from_numpy, numpy(), __array__), DLPack and the buffer protocol:
memory is shared, so a write on one side is seen on the other. PyTorch is tested when installed."""

import gc
import sys

import numpy as np
import pytest

import spiraltorch as st

DTYPES = [
    (np.float32, st.float32),
    (np.float64, st.float64),
    (np.float16, st.float16),
    (np.int32, st.int32),
    (np.int64, st.int64),
    (np.bool_, st.bool),
]


@pytest.mark.parametrize("np_dtype,st_dtype", DTYPES)
def test_from_numpy_shares_memory_both_ways(np_dtype, st_dtype):
    a = np.zeros((3, 4), dtype=np_dtype)
    t = st.from_numpy(a)
    assert t.dtype == st_dtype and t.shape == (3, 4)
    a[1, 2] = 1
    assert t[1, 2].item() == 1
    t[0, 0] = 1
    assert a[0, 0] == 1
    assert t.data_ptr() == a.ctypes.data


def test_from_numpy_keeps_the_array_alive():
    a = np.arange(6, dtype=np.float64)
    before = sys.getrefcount(a)
    t = st.from_numpy(a)
    assert sys.getrefcount(a) > before
    del a
    gc.collect()
    assert t.tolist() == [0, 1, 2, 3, 4, 5]  # the array's memory is still owned
    view = t[1:]
    del t
    gc.collect()
    assert view.sum().item() == 15


def test_from_numpy_strided_and_negative_strides():
    base = np.arange(24, dtype=np.float64).reshape(4, 6)
    for a in (base.T, base[::2, 1::2], base[::-1, ::-2]):
        t = st.from_numpy(a)
        assert t.tolist() == a.tolist()
    rev = st.from_numpy(base[::-1])
    rev[0, 0] = -1.0
    assert base[3, 0] == -1.0


def test_numpy_view_and_array_protocol():
    t = st.arange(6, dtype=st.float32).reshape(2, 3)
    a = t.numpy()
    a[0, 1] = 10
    assert t[0, 1].item() == 10
    t.add_(1)
    assert a[1, 2] == 6
    assert np.asarray(t).ctypes.data == t.data_ptr()
    assert np.array(t, dtype=np.float64).dtype == np.float64
    tt = t.T  # a strided view exports its strides
    assert np.shares_memory(tt.numpy(), a) and tt.numpy().tolist() == a.T.tolist()
    with pytest.raises(st.SpiralTorchError, match="requires grad"):
        st.ones(2, requires_grad=True).numpy()
    with pytest.raises(TypeError, match="bfloat16"):
        st.ones(2, dtype=st.bfloat16).numpy()


def test_dlpack_with_numpy_both_ways():
    t = st.arange(6, dtype=st.float64).reshape(2, 3)
    assert t.__dlpack_device__() == (1, 0)
    a = np.from_dlpack(t)
    a[1, 1] = -5
    assert t[1, 1].item() == -5
    back = st.from_dlpack(a)
    back[0, 0] = 42
    assert t[0, 0].item() == 42 and a[0, 0] == 42
    n = np.ones(3, dtype=np.int32)
    s = st.from_dlpack(n)
    n[2] = 9
    assert s.tolist() == [1, 1, 9] and s.dtype == st.int32


def test_dlpack_capsule():
    t = st.ones(3)
    capsule = t.__dlpack__()
    assert type(capsule).__name__ == "PyCapsule"
    u = st.from_dlpack(capsule)
    u[0] = 7
    assert t[0].item() == 7


def test_buffer_protocol():
    t = st.arange(4, dtype=st.int32)
    m = memoryview(t)
    assert m.format == "i" and m.shape == (4,) and m.tolist() == [0, 1, 2, 3]
    m[2] = 20
    assert t[2].item() == 20
    a = np.frombuffer(st.ones(2, dtype=st.float64), dtype=np.float64)
    assert a.tolist() == [1.0, 1.0]
    assert memoryview(st.zeros(2, 3).T).strides == (4, 12)
    with pytest.raises(BufferError):
        memoryview(st.ones(2, dtype=st.bfloat16))


def test_tensor_copies_its_data():
    a = np.ones(3)
    t = st.tensor(a)
    a[0] = 5
    assert t.tolist() == [1, 1, 1] and t.dtype == st.float64
    assert st.tensor(a, dtype=st.float32).dtype == st.float32
    assert st.tensor(np.float32(2.5)).item() == 2.5


def _torch():
    try:
        import torch  # noqa: F401
    except ImportError:
        pytest.skip("PyTorch is not installed")
    return torch


def test_dlpack_with_torch_both_ways():
    torch = _torch()
    x = torch.arange(6, dtype=torch.float32).reshape(2, 3)
    t = st.from_dlpack(x)
    x[0, 0] = 100
    assert t[0, 0].item() == 100
    y = torch.from_dlpack(t)
    y[1, 2] = -1
    assert t[1, 2].item() == -1 and x[1, 2].item() == -1
    b = st.ones(2, dtype=st.bfloat16)
    assert torch.from_dlpack(b).dtype == torch.bfloat16


def test_dlpack_with_torch_cuda():
    torch = _torch()
    if not torch.cuda.is_available() or "cuda" not in st.backends():
        pytest.skip("needs CUDA in both PyTorch and SpiralTorch")
    x = torch.arange(4, dtype=torch.float32, device="cuda")
    t = st.from_dlpack(x)
    assert t.device == st.device("cuda:0")
    x.add_(1)
    torch.cuda.synchronize()
    assert t.tolist() == [1, 2, 3, 4]
    y = torch.from_dlpack(t)
    assert y.data_ptr() == x.data_ptr()


def test_dlpack_with_cupy_both_ways():
    cupy = pytest.importorskip("cupy")
    if "cuda" not in st.backends() or not cupy.cuda.is_available():
        pytest.skip("needs CUDA in both CuPy and SpiralTorch")
    a = cupy.arange(4, dtype=cupy.float32)
    cupy.cuda.Device().synchronize()
    t = st.from_dlpack(a)
    assert t.device == st.device("cuda:0") and t.data_ptr() == a.data.ptr
    b = cupy.from_dlpack(t)
    assert b.data.ptr == t.data_ptr()
    t.add_(1)
    st.cuda.synchronize()
    assert b.tolist() == [1, 2, 3, 4] and a.tolist() == [1, 2, 3, 4]


def test_dlpack_with_jax():
    import os

    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    jax = pytest.importorskip("jax")
    cpu = jax.devices("cpu")[0]
    x = jax.device_put(jax.numpy.arange(8, dtype=jax.numpy.float32), cpu)
    t = st.from_dlpack(x)  # JAX arrays are immutable: check the memory is the same, not writes
    assert t.tolist() == list(range(8)) and t.data_ptr() == x.unsafe_buffer_pointer()
    y = jax.numpy.from_dlpack(st.arange(4, dtype=st.float32) * 2)
    assert y.tolist() == [0, 2, 4, 6]
