"""CUDA tensors from Python; skipped where this build or machine has no CUDA backend."""

import os
import subprocess
import sys

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


def _train(graphed, steps=8):
    """A small classifier trained with AdamW and a schedule, eager or through capture_step."""
    st.manual_seed(3)
    w_true = st.randn(16, 4)
    batches = []
    for _ in range(steps):
        x = st.randn(32, 16)
        batches.append((x.to("cuda"), (x @ w_true).argmax(1).to("cuda")))
    model = st.nn.Sequential(st.nn.Linear(16, 64), st.nn.GELU(), st.nn.Dropout(0.25),
                             st.nn.Linear(64, 4)).to("cuda")
    opt = st.optim.AdamW(model.parameters(), lr=1e-2)
    schedule = st.optim.WarmupCosineLR(opt, warmup=3, total=steps)

    def step(x, y):
        opt.zero_grad()
        loss = st.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return {"loss": loss}

    run = st.cuda.capture_step(step, warmup=2) if graphed else step
    losses = []
    for x, y in batches:
        losses.append(run(x, y)["loss"])
        schedule.step()
    return [loss.item() for loss in losses], [to_numpy(p) for p in model.parameters()], run


def test_capture_step_trains_as_eager_steps():
    eager_losses, eager_params, _ = _train(graphed=False)
    losses, params, run = _train(graphed=True)
    assert run.graph is not None and run.graph.captured
    assert eager_losses[-1] < eager_losses[0]
    # Each call's loss is a copy: the earlier ones kept their values through later replays.
    np.testing.assert_allclose(losses, eager_losses, rtol=1e-5)
    for got, want in zip(params, eager_params):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)


def test_capture_step_refuses_other_shapes():
    w = st.ones(8, device="cuda", requires_grad=True)
    opt = st.optim.SGD([w], lr=0.1)

    def step(x):
        opt.zero_grad()
        (w * x).sum().backward()
        opt.step()
        return w.detach()

    run = st.cuda.capture_step(step, warmup=1)
    run(st.ones(8, device="cuda"))
    assert run(st.ones(8, device="cuda")).tolist() == pytest.approx([0.8] * 8)  # captured, replayed
    assert run(st.full((8,), 2.0)).tolist() == pytest.approx([0.6] * 8)  # a CPU tensor is copied in
    with pytest.raises(ValueError, match="tensor\\[4\\]"):
        run(st.ones(4, device="cuda"))
    with pytest.raises(ValueError, match="warmup"):
        st.cuda.capture_step(step, warmup=0)


def test_graph_block_discards_a_failed_capture():
    x = st.ones(4, device="cuda")
    g = st.cuda.CUDAGraph()
    with pytest.raises(KeyError):
        with st.cuda.graph(g):
            assert st.cuda.is_capturing()
            y = x * 2
            raise KeyError("the captured code failed")
    assert not g.captured and not st.cuda.is_capturing()
    with st.cuda.graph(g):
        y = x * 3
    x.copy_(st.full((4,), 2.0))
    g.replay()
    assert y.tolist() == [6.0] * 4


def test_capture_in_a_process_that_imported_numpy_first(tmp_path):
    # A capture in a process that imported NumPy first once crashed it: temporaries freed inside
    # the capture, a kept result replayed, and a capture still open when the interpreter exits
    # must all end cleanly.
    script = tmp_path / "capture.py"
    script.write_text(
        "import numpy\n"
        "import spiraltorch as st\n"
        "x = st.ones(4, device='cuda')\n"
        "g = st.cuda.CUDAGraph()\n"
        "g.capture_begin()\n"
        "(x * 2).sum()\n"
        "s = (x * 3).sum()\n"
        "g.capture_end()\n"
        "x.copy_(st.full((4,), 2.0))\n"
        "g.replay()\n"
        "print(s.item())\n"
        "g2 = st.cuda.CUDAGraph()\n"
        "g2.capture_begin()\n"
        "(x * 2).sum()\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["24.0"]
