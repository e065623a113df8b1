"""CUDA tensors from Python; skipped where this build or machine has no CUDA backend."""

import numpy as np
import pytest

import spiraltorch as st
from conftest import to_numpy

pytestmark = pytest.mark.skipif("cuda" not in st.backends(), reason="no usable CUDA backend")


def test_ops_and_autograd_on_cuda_match_numpy():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((5, 7)), rng.standard_normal((7, 3))
    x = st.tensor(a, device="cuda", requires_grad=True)
    y = st.tensor(b).to("cuda")
    assert x.device == st.device("cuda:0") and x.is_cuda and repr(x).endswith("requires_grad=True)")
    out = (x @ y).softmax(-1)
    e = np.exp(a @ b - (a @ b).max(-1, keepdims=True))
    np.testing.assert_allclose(to_numpy(out), e / e.sum(-1, keepdims=True), rtol=1e-10)
    (x * x).sum().backward()
    assert x.grad.device == x.device
    np.testing.assert_allclose(to_numpy(x.grad), 2 * a, rtol=1e-12)
    assert x.detach().cpu().numpy().shape == (5, 7)
    with pytest.raises(st.SpiralTorchError, match="cpu"):
        x.detach().numpy()


def test_dlpack_cuda_with_torch_both_ways():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("PyTorch has no CUDA")
    t = st.arange(6, dtype=st.float32, device="cuda")
    assert t.__dlpack_device__() == (2, 0)
    u = torch.from_dlpack(t)
    assert u.is_cuda and u.data_ptr() == t.data_ptr()
    u.mul_(2)
    torch.cuda.synchronize()
    assert t.tolist() == [0, 2, 4, 6, 8, 10]
    w = torch.ones(4, device="cuda")
    torch.cuda.synchronize()  # the fill runs on PyTorch's stream
    s = st.from_dlpack(w)
    assert s.device == st.device("cuda:0") and s.data_ptr() == w.data_ptr()
    s.add_(1)
    st.cuda.synchronize()
    assert w.tolist() == [2, 2, 2, 2]
    assert st.cuda.is_available() and st.cuda.device_count() >= 1
    assert st.cuda.memory_stats()["allocated_bytes"] > 0


def test_events_time_queued_work_and_gemm_backend_is_selectable():
    start, end = st.cuda.Event(), st.cuda.Event()
    a = st.randn(1024, 1024, device="cuda")
    start.record()
    for _ in range(20):
        a = a @ a.T / 1024
    end.record()
    end.synchronize()
    assert end.query() and start.device == 0
    assert start.elapsed_time(end) > 0
    assert st.cuda.gemm_backend() == "cublaslt"
    for name in ("tiled", "tensorcore", "cublaslt"):
        st.cuda.set_gemm_backend(name)
        assert st.cuda.gemm_backend() == name
    with pytest.raises(ValueError, match="set_gemm_backend"):
        st.cuda.set_gemm_backend("cublas")
