"""st.nn (Module subclassing, the C++ layers), st.optim against NumPy reference updates, a small
training loop whose loss falls, and st.save / st.load."""

import numpy as np
import pytest

import spiraltorch as st
from conftest import to_numpy

nn = st.nn
F = st.nn.functional


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(2, 16)
        self.act = nn.ReLU()
        self.fc2 = nn.Linear(16, 3)
        self.scale = nn.Parameter(st.ones(3))
        self.register_buffer("calls", st.zeros(1))
        self.note = "not a tensor"

    def forward(self, x):
        self.calls.add_(1)
        return self.fc2(self.act(self.fc1(x))) * self.scale


def test_module_registers_parameters_and_submodules():
    m = MLP()
    names = [n for n, _ in m.named_parameters()]
    assert names == ["scale", "fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]
    assert len(list(m.parameters())) == 5
    assert [n for n, _ in m.named_children()] == ["fc1", "act", "fc2"]
    assert list(m.state_dict()) == names + ["calls"]
    assert m.note == "not a tensor" and isinstance(m.scale, nn.Parameter)
    assert m.scale.requires_grad and m.fc1.weight.shape == (16, 2)
    assert isinstance(m.fc1, nn.Module) and issubclass(nn.Linear, nn.Module)
    assert not isinstance(st.ones(1), nn.Module)
    y = m(st.randn(5, 2))
    assert y.shape == (5, 3) and m.calls.item() == 1
    del m.scale
    assert "scale" not in dict(m.named_parameters())
    assert "fc1" in repr(m) and "Linear(in_features=2, out_features=16" in repr(m)


def test_train_eval_and_dropout():
    m = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5))
    assert m.training and m[1].training
    m.eval()
    assert not m.training and not m[1].training
    x = st.ones(2, 4)
    assert m(x).tolist() == m(x).tolist()  # no dropout in eval mode
    m.train()
    assert m[1].training


def test_state_dict_round_trip_and_strictness():
    a, b = MLP(), MLP()
    b.load_state_dict(a.state_dict())
    x = st.randn(4, 2)
    assert a(x).tolist() == b(x).tolist()
    with pytest.raises(KeyError):
        b.load_state_dict({"fc1.weight": a.fc1.weight})
    with pytest.raises(ValueError):
        b.load_state_dict(dict(a.state_dict(), scale=st.ones(4)))
    # The state dict shares storage with the module.
    a.state_dict()["fc2.bias"].fill_(3.0)
    assert a.fc2.bias.tolist() == [3.0, 3.0, 3.0]


def test_linear_layer_norm_embedding_match_numpy():
    lin = nn.Linear(3, 2, dtype=st.float64)
    x = np.random.default_rng(0).standard_normal((4, 3))
    ref = x @ to_numpy(lin.weight).T + to_numpy(lin.bias)
    np.testing.assert_allclose(to_numpy(lin(st.tensor(x))), ref, rtol=1e-12)
    ln = nn.LayerNorm(3, dtype=st.float64)
    mu, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    np.testing.assert_allclose(to_numpy(ln(st.tensor(x))), (x - mu) / np.sqrt(var + 1e-5), rtol=1e-9)
    emb = nn.Embedding(10, 4)
    idx = st.tensor([[1, 9], [0, 1]])
    np.testing.assert_array_equal(to_numpy(emb(idx)), to_numpy(emb.weight)[[[1, 9], [0, 1]]])
    attn = nn.CausalSelfAttention(8, 2)
    assert attn(st.randn(2, 5, 8)).shape == (2, 5, 8)
    assert [n for n, _ in attn.named_parameters()] == ["qkv.weight", "qkv.bias", "proj.weight", "proj.bias"]
    assert nn.GELU("tanh")(st.zeros(2)).tolist() == [0.0, 0.0]


def _numpy_adam(p, g, m, v, t, lr, b1, b2, eps, wd, decoupled):
    if decoupled:
        p = p * (1 - lr * wd)
    else:
        g = g + wd * p
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g * g
    p = p - lr / (1 - b1**t) * m / (np.sqrt(v) / np.sqrt(1 - b2**t) + eps)
    return p, m, v


@pytest.mark.parametrize("cls,decoupled", [(st.optim.Adam, False), (st.optim.AdamW, True)])
def test_adam_matches_reference(cls, decoupled):
    rng = np.random.default_rng(1)
    p0 = rng.standard_normal(5)
    p = st.tensor(p0, requires_grad=True)
    opt = cls([p], lr=0.1, weight_decay=0.05)
    ref, m, v = p0.copy(), np.zeros(5), np.zeros(5)
    for t in range(1, 4):
        g = rng.standard_normal(5)
        p.grad = st.tensor(g)
        opt.step()
        ref, m, v = _numpy_adam(ref, g, m, v, t, 0.1, 0.9, 0.999, 1e-8, 0.05, decoupled)
        np.testing.assert_allclose(to_numpy(p.detach()), ref, rtol=1e-12, atol=1e-14)


def test_sgd_momentum_matches_reference():
    p = st.tensor([1.0, -2.0], dtype=st.float64, requires_grad=True)
    opt = st.optim.SGD([p], lr=0.5, momentum=0.9, weight_decay=0.1)
    ref, buf = np.array([1.0, -2.0]), None
    for g in ([0.5, 1.0], [-1.0, 2.0], [0.25, 0.25]):
        p.grad = st.tensor(g, dtype=st.float64)
        opt.step()
        d = np.array(g) + 0.1 * ref
        buf = d if buf is None else 0.9 * buf + d
        ref = ref - 0.5 * buf
        np.testing.assert_allclose(p.tolist(), ref, rtol=1e-12)
    opt.zero_grad()
    assert p.grad is None


def test_clip_grad_norm():
    a = st.tensor([3.0], requires_grad=True)
    b = st.tensor([4.0], requires_grad=True)
    a.grad, b.grad = st.tensor([3.0]), st.tensor([4.0])
    norm = nn.utils.clip_grad_norm_([a, b], 1.0)
    assert abs(norm.item() - 5.0) < 1e-6
    assert abs(a.grad.item() - 0.6) < 1e-5 and abs(b.grad.item() - 0.8) < 1e-5


def test_training_loop_loss_falls():
    st.manual_seed(0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((128, 2)).astype(np.float32)
    y = (x[:, 0] * x[:, 1] > 0).astype(np.int64) + (x[:, 0] > 1).astype(np.int64)
    model = MLP()
    opt = st.optim.AdamW(model.parameters(), lr=0.05)
    X, Y = st.from_numpy(x), st.from_numpy(y)
    losses = []
    for _ in range(60):
        loss = F.cross_entropy(model(X), Y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    accuracy = (model(X).argmax(1) == Y).float().mean().item()
    assert accuracy > 0.8


def test_save_load_round_trip(tmp_path):
    m = MLP()
    path = tmp_path / "model.safetensors"
    st.save(m, path, metadata={"step": "3"})
    loaded, meta = st.load(path, with_metadata=True)
    assert meta == {"step": "3"} and set(loaded) == set(m.state_dict())
    for k, v in m.state_dict().items():
        assert loaded[k].tolist() == v.tolist() and loaded[k].dtype == v.dtype
    fresh = MLP()
    fresh.load_state_dict(st.load(str(path)))
    x = st.randn(3, 2)
    assert fresh(x).tolist() == m(x).tolist()
    raw = path.read_bytes()
    header = int.from_bytes(raw[:8], "little")
    assert b'"fc1.weight"' in raw[8 : 8 + header]
    with pytest.raises(st.SpiralTorchError):
        st.load(tmp_path / "missing.safetensors")


def test_functional_linear_matches_numpy():
    rng = np.random.default_rng(4)
    x, w, b = rng.standard_normal((2, 3, 4)), rng.standard_normal((5, 4)), rng.standard_normal(5)
    out = F.linear(st.tensor(x), st.tensor(w), st.tensor(b))
    np.testing.assert_allclose(to_numpy(out), x @ w.T + b, rtol=1e-12)
    np.testing.assert_allclose(to_numpy(F.linear(st.tensor(x), st.tensor(w))), x @ w.T, rtol=1e-12)


def test_python_subclass_of_a_cpp_layer():
    class Doubled(nn.Linear):
        def forward(self, x):
            return super().forward(x) * 2

    m = Doubled(3, 2)
    x = st.randn(4, 3)
    assert m(x).tolist() == (F.linear(x, m.weight, m.bias) * 2).tolist()
    assert [n for n, _ in m.named_parameters()] == ["weight", "bias"]


def test_optimizer_state_dict_param_groups_and_schedules():
    p = st.tensor([1.0, 2.0], requires_grad=True)
    opt = st.optim.AdamW([p], lr=0.1)
    p.grad = st.tensor([0.5, -0.5])
    opt.step()
    state = opt.state_dict()
    assert set(state) == {"0.step", "0.exp_avg", "0.exp_avg_sq"} and state["0.step"].item() == 1
    q = st.tensor(p.tolist(), requires_grad=True)
    resumed = st.optim.AdamW([q], lr=0.1)
    resumed.load_state_dict(state)
    for o, t in ((opt, p), (resumed, q)):
        t.grad = st.tensor([0.25, 0.25])
        o.step()
    assert p.tolist() == q.tolist()
    opt.param_groups[0]["lr"] = 0.5
    assert opt.lr == 0.5
    schedule = st.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=10, eta_min=0.1)
    for _ in range(5):
        schedule.step()
    assert abs(opt.lr - 0.3) < 1e-12 and schedule.get_last_lr() == [opt.lr]
    with pytest.raises(ValueError):
        st.optim.SGD([st.ones(2)])  # does not require grad
