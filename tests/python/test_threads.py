"""Ops on separate tensors from several Python threads at once give NumPy's results. Large ops run
with the GIL released (tests/python/test_package.py checks matmul; here elementwise, reductions,
softmax and cross_entropy too), so the threads' kernels really overlap."""

import threading
import time

import numpy as np
import pytest

import spiraltorch as st

THREADS = 4
N = 1 << 16  # above the bindings' GIL-release threshold


def _work(seed, results, errors):
    try:
        rng = np.random.default_rng(seed)
        a = rng.standard_normal((256, N // 256))
        b = rng.standard_normal((N // 256, 64))
        target = rng.integers(0, 64, 256)
        for _ in range(5):
            x = st.tensor(a, requires_grad=True)
            h = st.tanh(x * 0.5 + 1.0) - st.exp(-(x * x))
            y = st.softmax(h @ st.tensor(b), 1)
            loss = st.nn.functional.cross_entropy(st.log(y), st.tensor(target))
            loss.backward()
            results.append((h.detach().numpy(), y.detach().numpy(), loss.item(), x.grad.numpy(),
                            h.sum().item(), h.detach().mean(0).numpy()))
    except Exception as e:  # reported by the main thread
        errors.append(e)


def _reference(seed):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((256, N // 256))
    b = rng.standard_normal((N // 256, 64))
    target = rng.integers(0, 64, 256)
    h = np.tanh(a * 0.5 + 1.0) - np.exp(-(a * a))
    z = h @ b
    y = np.exp(z - z.max(1, keepdims=True))
    y /= y.sum(1, keepdims=True)
    loss = -np.log(y[np.arange(256), target]).mean()
    return h, y, loss


def test_ops_from_several_threads_match_numpy():
    results = [[] for _ in range(THREADS)]
    errors = []
    threads = [threading.Thread(target=_work, args=(t, results[t], errors)) for t in range(THREADS)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors, errors
    for t in range(THREADS):
        h_ref, y_ref, loss_ref = _reference(t)
        assert len(results[t]) == 5
        first_grad = results[t][0][3]
        for h, y, loss, grad, h_sum, h_mean in results[t]:
            np.testing.assert_allclose(h, h_ref, rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(y, y_ref, rtol=1e-4, atol=1e-6)
            assert abs(loss - loss_ref) < 1e-4 * max(1.0, abs(loss_ref))
            np.testing.assert_allclose(h_sum, h_ref.sum(), rtol=1e-4)
            np.testing.assert_allclose(h_mean, h_ref.mean(0), rtol=1e-4, atol=1e-6)
            # Every repetition in a thread gives the same gradient.
            np.testing.assert_allclose(grad, first_grad, rtol=1e-6, atol=1e-7)


def ticks_while(run):
    """How often a Python thread ticking every half millisecond got to run during run()."""
    ticks = []
    done = threading.Event()

    def counter():
        while not done.is_set():
            ticks.append(time.perf_counter())
            time.sleep(0.0005)

    thread = threading.Thread(target=counter)
    thread.start()
    try:
        time.sleep(0.01)
        start = time.perf_counter()
        run()
        end = time.perf_counter()
    finally:
        done.set()
        thread.join()
    return sum(start < t < end for t in ticks)


@pytest.mark.parametrize(
    "op",
    [lambda a: st.exp(a), lambda a: a * a, lambda a: st.softmax(a.view(4096, -1), 1),
     lambda a: st.tanh(a).sum()],
    ids=["exp", "mul", "softmax", "tanh+sum"],
)
def test_large_ops_release_the_gil(op):
    a = st.randn(1 << 24)
    calls = 3

    def run():
        for _ in range(calls):
            op(a)

    # Holding the GIL, the counter ticks about twice per call (between calls); released, it ticks
    # every half millisecond throughout (over a hundred times here).
    assert ticks_while(run) > 5 * calls


def test_matmul_releases_the_gil():
    a = st.randn(1024, 1024)

    def run():
        for _ in range(4):
            a @ a

    # Holding the GIL, the counter could run at most between products; released, it ticks
    # throughout.
    assert ticks_while(run) > 8


def test_checkpoints_from_several_threads(tmp_path):
    errors = []

    def save_and_load(t):
        try:
            path = tmp_path / f"t{t}.safetensors"
            for i in range(5):
                w = st.full((1000,), float(t * 100 + i))
                st.save({"w": w}, path)
                assert st.load(path)["w"].tolist() == w.tolist()
        except Exception as e:
            errors.append(e)

    threads = [threading.Thread(target=save_and_load, args=(t,)) for t in range(THREADS)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors, errors
