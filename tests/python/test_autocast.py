"""st.autocast: the dtype of each op inside a scope, nesting, enabled=False and the decorator form,
gradients of f32 leaves against NumPy float64, and an MLP training step against f32."""

import numpy as np
import pytest

import spiraltorch as st
from conftest import to_numpy

F = st.nn.functional

DEVICES = ["cpu"] + (["cuda"] if "cuda" in st.backends() else [])


def rand(rng, *shape, device="cpu", requires_grad=False):
    return st.tensor(rng.uniform(-1, 1, shape), dtype=st.float32, device=device,
                     requires_grad=requires_grad)


@pytest.mark.parametrize("device", DEVICES)
def test_ops_compute_in_their_listed_dtype(device):
    rng = np.random.default_rng(0)
    a, w, b = rand(rng, 4, 8, device=device), rand(rng, 6, 8, device=device), rand(rng, 6, device=device)
    q = rand(rng, 2, 3, 5, 8, device=device)
    half = rand(rng, 4, 6, device=device).to(st.bfloat16)
    target = st.tensor([0, 5, 2, 3], device=device)
    with st.autocast(device):
        assert st.is_autocast_enabled(device)
        assert (a @ w.T).dtype == st.bfloat16
        assert st.matmul(a, w.T).dtype == st.bfloat16
        assert F.linear(a, w, b).dtype == st.bfloat16
        assert F.scaled_dot_product_attention(q, q, q, is_causal=True).dtype == st.bfloat16
        assert F.softmax(half, -1).dtype == st.float32
        assert F.log_softmax(half, -1).dtype == st.float32
        assert F.layer_norm(half, (6,)).dtype == st.bfloat16  # computed in f32, written in bf16
        assert F.cross_entropy(half, target).dtype == st.float32
        assert half.sum().dtype == st.float32 and half.mean(1).dtype == st.float32
        assert half.relu().dtype == st.bfloat16
        assert (half + a[:, :6]).dtype == st.float32
        assert (a.double() @ w.T.double()).dtype == st.float64
    assert not st.is_autocast_enabled(device)
    assert (a @ w.T).dtype == st.float32


def test_nesting_disabled_scope_decorator_and_device_types():
    a = st.ones(3, 3)
    with st.autocast("cpu"):
        with st.autocast("cpu", dtype=st.float16):
            assert (a @ a).dtype == st.float16
            with st.autocast("cpu", enabled=False):
                assert (a @ a).dtype == st.float32
            assert st.get_autocast_dtype("cpu") == st.float16
        assert (a @ a).dtype == st.bfloat16
    assert (a @ a).dtype == st.float32

    @st.autocast("cpu", dtype=st.float16)
    def product(x):
        return x @ x

    assert product(a).dtype == st.float16
    with st.autocast("cuda"):  # another device type's scope leaves CPU ops alone
        assert (a @ a).dtype == st.float32
    with pytest.raises(st.DTypeError, match=r"\[autocast\]"):
        st.autocast("cpu", dtype=st.float32)


@pytest.mark.parametrize("device", DEVICES)
def test_gradients_of_float32_leaves_match_numpy(device):
    rng = np.random.default_rng(1)
    xn, wn, bn, cn = rng.uniform(-1, 1, (5, 8)), rng.uniform(-1, 1, (4, 8)), rng.uniform(-1, 1, 4), rng.uniform(-1, 1, 5)
    x, w, b = (st.tensor(v, dtype=st.float32, device=device, requires_grad=True) for v in (xn, wn, bn))
    c = st.tensor(cn, dtype=st.float32, device=device)
    with st.autocast(device):
        p = F.softmax(F.linear(x, w, b), -1)
        loss = (p[:, 0] * c).sum()
    loss.backward()
    assert x.grad.dtype == w.grad.dtype == b.grad.dtype == st.float32

    z = xn @ wn.T + bn
    e = np.exp(z - z.max(1, keepdims=True))
    pn = e / e.sum(1, keepdims=True)
    onehot = np.zeros(4)
    onehot[0] = 1
    dz = cn[:, None] * pn[:, :1] * (onehot[None, :] - pn)
    # bf16 operands: 2^-9 relative per element.
    np.testing.assert_allclose(to_numpy(b.grad), dz.sum(0), rtol=3e-2, atol=6e-3)
    np.testing.assert_allclose(to_numpy(w.grad), dz.T @ xn, rtol=3e-2, atol=6e-3)
    np.testing.assert_allclose(to_numpy(x.grad), dz @ wn, rtol=3e-2, atol=6e-3)


@pytest.mark.parametrize("device", DEVICES)
def test_mlp_training_step_matches_float32(device):
    rng = np.random.default_rng(2)
    x = rand(rng, 32, 20, device=device)
    y = st.tensor(np.arange(32) % 10, device=device)
    st.manual_seed(0)
    ref = st.nn.Sequential(st.nn.Linear(20, 64), st.nn.GELU(), st.nn.Linear(64, 10)).to(device)
    mixed = st.nn.Sequential(st.nn.Linear(20, 64), st.nn.GELU(), st.nn.Linear(64, 10)).to(device)
    mixed.load_state_dict(ref.state_dict())
    loss_ref = F.cross_entropy(ref(x), y)
    with st.autocast(device):
        loss_mixed = F.cross_entropy(mixed(x), y)
    assert loss_mixed.dtype == st.float32
    loss_ref.backward()
    loss_mixed.backward()
    assert abs(loss_mixed.item() - loss_ref.item()) < 2e-2 * abs(loss_ref.item())
    for (name, p), q in zip(mixed.named_parameters(), ref.parameters()):
        assert p.grad.dtype == st.float32, name
        g, gr = to_numpy(p.grad), to_numpy(q.grad)
        assert np.abs(g - gr).max() <= 5e-2 * np.abs(gr).max(), name
