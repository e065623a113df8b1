"""Gradients from Python against central finite differences in float64, and the autograd API."""

import numpy as np
import pytest

import spiraltorch as st
from conftest import gradcheck, to_numpy

rng = np.random.default_rng(0)


def r(*shape):
    return rng.standard_normal(shape)


@pytest.mark.parametrize(
    "name,op,inputs",
    [
        ("add_broadcast", lambda a, b: a + b, (r(3, 4), r(4))),
        ("mul_broadcast", lambda a, b: a * b, (r(2, 1, 3), r(4, 1))),
        ("div", lambda a, b: a / (b * b + 1), (r(3), r(3))),
        ("pow_scalar", lambda a: (a * a + 0.5) ** 1.5, (r(5),)),
        ("exp_tanh_sigmoid", lambda a: a.exp().tanh() + a.sigmoid(), (r(2, 3),)),
        ("gelu", lambda a: st.gelu(a), (r(6),)),
        ("gelu_tanh", lambda a: st.gelu(a, approximate="tanh"), (r(6),)),
        ("log_sqrt", lambda a: (a * a + 1).log() + (a * a + 1).sqrt(), (r(4),)),
        ("matmul", lambda a, b: a @ b, (r(2, 3, 4), r(4, 5))),
        ("sum_mean_dims", lambda a: a.sum(1, keepdim=True) * a.mean((0, 2), keepdim=True), (r(2, 3, 4),)),
        ("amax", lambda a: st.amax(a, 1), (r(3, 5),)),
        ("softmax", lambda a: a.softmax(-1), (r(3, 5),)),
        ("log_softmax", lambda a: st.log_softmax(a, 0), (r(3, 5),)),
        (
            "layer_norm",
            lambda a, w, b: st.nn.functional.layer_norm(a, (4,), w, b),
            (r(3, 4), r(4), r(4)),
        ),
        ("cross_entropy", lambda a: st.nn.functional.cross_entropy(a, st.tensor([1, 0, 3])), (r(3, 4),)),
        ("where_clamp", lambda a, b: st.where(a > 0, a, b).clamp(-0.5, 0.5), (r(6), r(6))),
        ("views", lambda a: a.T[1:, ::2].reshape(-1).unsqueeze(0).expand(2, -1), (r(4, 5),)),
        ("index_int_tensor", lambda a: a[st.tensor([2, 0, 2])], (r(3, 4),)),
        ("index_mask", lambda a: a[st.tensor([[True, False], [False, True]])], (r(2, 2),)),
        ("cat_stack", lambda a, b: st.stack([st.cat([a, b]), st.cat([b, a])]), (r(2, 3), r(2, 3))),
        (
            "attention",
            lambda q, k, v: st.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True),
            (r(1, 3, 4), r(1, 3, 4), r(1, 3, 2)),
        ),
    ],
)
def test_gradients_match_finite_differences(name, op, inputs):
    gradcheck(op, *inputs)


def test_grad_fn_leaf_and_grad_accumulation():
    x = st.tensor([1.0, 2.0], requires_grad=True)
    assert x.is_leaf and x.grad_fn is None and x.grad is None
    y = x * x
    assert not y.is_leaf and y.grad_fn.name() == "MulBackward"
    assert "MulBackward" in repr(y.grad_fn)
    y.sum().backward()
    y2 = (3 * x).sum()
    y2.backward()
    assert x.grad.tolist() == [2 + 3, 4 + 3]  # gradients accumulate
    x.grad = None
    assert x.grad is None


def test_backward_with_gradient_and_retain_graph():
    x = st.tensor([1.0, -1.0, 2.0], requires_grad=True)
    y = x * 2
    y.backward(st.tensor([1.0, 10.0, 100.0]), retain_graph=True)
    y.backward(st.ones(3))
    assert x.grad.tolist() == [4.0, 22.0, 202.0]
    with pytest.raises(st.SpiralTorchError):
        (x * 2).backward()  # non-scalar without gradient


def test_no_grad_context_and_decorator():
    x = st.ones(2, requires_grad=True)
    with st.no_grad():
        assert not st.is_grad_enabled()
        y = x * 2
        with st.enable_grad():
            assert (x * 2).requires_grad
    assert st.is_grad_enabled()
    assert not y.requires_grad and y.grad_fn is None

    @st.no_grad()
    def f(t):
        assert not st.is_grad_enabled()
        return t * 3

    assert not f(x).requires_grad and f.__name__ == "f"
    assert st.is_grad_enabled()
    with st.set_grad_enabled(False):
        assert not (x * 2).requires_grad
    assert st.is_grad_enabled()


def test_no_grad_restores_after_exception():
    with pytest.raises(RuntimeError):
        with st.no_grad():
            raise RuntimeError("boom")
    assert st.is_grad_enabled()


def test_requires_grad_detach_and_in_place_rules():
    x = st.zeros(3)
    assert x.requires_grad_() is x and x.requires_grad
    d = x.detach()
    assert not d.requires_grad and d.is_leaf
    d += 1  # same storage
    assert x.tolist() == [1.0, 1.0, 1.0]
    y = (x * x).sum()
    x_saved = x * 1
    z = x_saved * x_saved
    with st.no_grad():
        x_saved.add_(1)  # changes a tensor saved for the product's backward
    with pytest.raises(st.SpiralTorchError):
        z.sum().backward()
    y.backward()
    assert to_numpy(x.grad).tolist() == [2.0, 2.0, 2.0]


def test_multi_root_backward_and_optimizer_style_update():
    w = st.tensor([1.0, 2.0], requires_grad=True)
    a, b = (w * w).sum(), (w * 3).sum()
    st.autograd.backward([a, b])
    assert w.grad.tolist() == [5.0, 7.0]
    with st.no_grad():
        w -= 0.1 * w.grad
    assert np.allclose(w.tolist(), [0.5, 1.3])
