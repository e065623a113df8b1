"""Ops against NumPy in float64, on random shapes and on strided (non-contiguous) views."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as hs
from hypothesis.extra import numpy as hnp

import spiraltorch as st
from conftest import to_numpy

shapes = hnp.array_shapes(min_dims=0, max_dims=4, min_side=1, max_side=5)
finite = hs.floats(-3, 3, allow_nan=False, width=64)


def arrays(shape=shapes):
    return hnp.arrays(np.float64, shape, elements=finite)


@hs.composite
def strided(draw):
    """A float64 array and a view of it that is not contiguous (transposed and/or stepped)."""
    a = draw(arrays(hnp.array_shapes(min_dims=2, max_dims=4, min_side=1, max_side=6)))
    return a, draw(hs.sampled_from(["T", "step", "T_step"]))


def make_view(a, how):
    t = st.tensor(a)
    if how == "T":
        return t.T, a.T
    if how == "step":
        return t[..., ::2], a[..., ::2]
    return t.T[::2], a.T[::2]


def erf_gelu(x):
    return 0.5 * x * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))


UNARY = {
    "exp": (st.exp, np.exp),
    "tanh": (st.tanh, np.tanh),
    "sigmoid": (st.sigmoid, lambda x: 1 / (1 + np.exp(-x))),
    "relu": (st.relu, lambda x: np.maximum(x, 0)),
    "abs": (st.abs, np.abs),
    "neg": (st.neg, np.negative),
    "gelu": (st.gelu, erf_gelu),
    "log": (lambda t: st.log(t.abs() + 0.5), lambda x: np.log(np.abs(x) + 0.5)),
    "sqrt": (lambda t: st.sqrt(t.abs()), lambda x: np.sqrt(np.abs(x))),
    "rsqrt": (lambda t: st.rsqrt(t.abs() + 0.5), lambda x: 1 / np.sqrt(np.abs(x) + 0.5)),
}


@pytest.mark.parametrize("name", sorted(UNARY))
@given(a=arrays())
def test_unary(name, a):
    ours, ref = UNARY[name]
    np.testing.assert_allclose(to_numpy(ours(st.tensor(a))), ref(a), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", ["exp", "relu", "tanh", "abs"])
@given(case=strided())
def test_unary_strided(name, case):
    ours, ref = UNARY[name]
    view, a = make_view(*case)
    assert not view.is_contiguous() or view.numel() <= 1 or min(view.shape) == 1
    np.testing.assert_allclose(to_numpy(ours(view)), ref(a), rtol=1e-12)


BINARY = {
    "add": (lambda a, b: a + b, np.add),
    "sub": (lambda a, b: a - b, np.subtract),
    "mul": (lambda a, b: a * b, np.multiply),
    "div": (lambda a, b: a / (b.abs() + 0.5), lambda a, b: a / (np.abs(b) + 0.5)),
    "maximum": (st.maximum, np.maximum),
    "minimum": (st.minimum, np.minimum),
    "pow": (lambda a, b: (a.abs() + 0.5) ** b, lambda a, b: (np.abs(a) + 0.5) ** b),
}


@pytest.mark.parametrize("name", sorted(BINARY))
@given(shapes=hnp.mutually_broadcastable_shapes(num_shapes=2, max_dims=4, max_side=4), data=hs.data())
def test_binary_broadcast(name, shapes, data):
    a = data.draw(arrays(shapes.input_shapes[0]))
    b = data.draw(arrays(shapes.input_shapes[1]))
    ours, ref = BINARY[name]
    out = ours(st.tensor(a), st.tensor(b))
    assert tuple(out.shape) == shapes.result_shape
    np.testing.assert_allclose(to_numpy(out), ref(a, b), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("op", ["__lt__", "__le__", "__gt__", "__ge__", "__eq__", "__ne__"])
@given(a=arrays(hnp.array_shapes(max_dims=3, max_side=4)), s=hs.sampled_from([0, 0.5, -1]))
def test_comparisons(op, a, s):
    a = np.round(a)  # ties happen
    t = st.tensor(a)
    out = getattr(t, op)(s)
    assert out.dtype == st.bool
    np.testing.assert_array_equal(out.numpy(), getattr(a, op)(s))
    np.testing.assert_array_equal(getattr(t, op)(t).numpy(), getattr(a, op)(a))


@given(a=arrays(), s=hs.floats(-2, 2, allow_nan=False))
def test_scalar_and_reflected(a, s):
    t = st.tensor(a)
    for ours, ref in [
        (t + s, a + s),
        (s + t, s + a),
        (t - s, a - s),
        (s - t, s - a),
        (t * s, a * s),
        (s * t, s * a),
        (t / 2.0, a / 2.0),
        (2.0 / (t.abs() + 1), 2.0 / (np.abs(a) + 1)),
        (2.0 ** t, 2.0**a),
        (-t, -a),
    ]:
        np.testing.assert_allclose(to_numpy(ours), ref, rtol=1e-12, atol=1e-12)


def test_type_promotion_with_python_scalars():
    i = st.tensor([1, 2, 3])
    assert (i + 2).dtype == st.int64
    assert (i + 2.5).dtype == st.float32
    assert (i / 2).dtype == st.float32
    assert (st.tensor([1.0], dtype=st.float64) + 1.5).dtype == st.float64
    assert (st.ones(2, dtype=st.int32) + st.ones(2, dtype=st.int64)).dtype == st.int64
    assert (st.tensor([True]) + 1).dtype == st.int64


@hs.composite
def reduce_case(draw):
    a = draw(arrays(hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=5)))
    dims = draw(hs.lists(hs.integers(0, a.ndim - 1), unique=True, max_size=a.ndim))
    return a, dims, draw(hs.booleans())


@given(case=reduce_case())
def test_sum_mean_amax(case):
    a, dims, keepdim = case
    axis = tuple(dims) if dims else None
    t = st.tensor(a)
    dim = dims if dims else None
    np.testing.assert_allclose(to_numpy(t.sum(dim, keepdim)), a.sum(axis, keepdims=keepdim), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(to_numpy(t.mean(dim, keepdim)), a.mean(axis, keepdims=keepdim), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(to_numpy(st.amax(t, dim, keepdim)), a.max(axis, keepdims=keepdim))
    np.testing.assert_allclose(to_numpy(st.amin(t, dim, keepdim)), a.min(axis, keepdims=keepdim))


@given(a=arrays(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=5)), data=hs.data())
def test_max_min_with_indices(a, data):
    dim = data.draw(hs.integers(-a.ndim, a.ndim - 1))
    t = st.tensor(a)
    values, indices = t.max(dim)
    np.testing.assert_array_equal(to_numpy(values), a.max(dim))
    np.testing.assert_array_equal(indices.numpy(), a.argmax(dim))
    values, indices = st.min(t, dim, keepdim=True)
    np.testing.assert_array_equal(indices.numpy(), np.expand_dims(a.argmin(dim), dim))
    assert st.argmax(t).item() == a.argmax()
    assert t.max().item() == a.max()


@given(
    shapes=hnp.mutually_broadcastable_shapes(num_shapes=2, max_dims=2, max_side=3),
    m=hs.integers(1, 5),
    k=hs.integers(1, 5),
    n=hs.integers(1, 5),
    data=hs.data(),
)
def test_matmul_batched(shapes, m, k, n, data):
    a = data.draw(arrays(shapes.input_shapes[0] + (m, k)))
    b = data.draw(arrays(shapes.input_shapes[1] + (k, n)))
    np.testing.assert_allclose(to_numpy(st.tensor(a) @ st.tensor(b)), a @ b, rtol=1e-10, atol=1e-10)


@given(case=strided())
def test_matmul_strided(case):
    view, a = make_view(*case)
    if view.ndim != 2:
        view, a = view.reshape(view.shape[0], -1), a.reshape(a.shape[0], -1)
    np.testing.assert_allclose(to_numpy(view @ view.T), a @ a.T, rtol=1e-10, atol=1e-10)


@given(a=arrays(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=6)), data=hs.data())
def test_softmax_log_softmax(a, data):
    dim = data.draw(hs.integers(-a.ndim, a.ndim - 1))
    e = np.exp(a - a.max(dim, keepdims=True))
    ref = e / e.sum(dim, keepdims=True)
    t = st.tensor(a)
    np.testing.assert_allclose(to_numpy(t.softmax(dim)), ref, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(to_numpy(st.log_softmax(t, dim)), np.log(ref), rtol=1e-10, atol=1e-12)


@given(a=arrays(hnp.array_shapes(min_dims=2, max_dims=3, min_side=2, max_side=6)))
def test_layer_norm(a):
    n = a.shape[-1]
    rng = np.random.default_rng(1)
    w, b = rng.standard_normal(n), rng.standard_normal(n)
    mu = a.mean(-1, keepdims=True)
    var = a.var(-1, keepdims=True)
    ref = (a - mu) / np.sqrt(var + 1e-5) * w + b
    out = st.nn.functional.layer_norm(st.tensor(a), (n,), st.tensor(w), st.tensor(b))
    np.testing.assert_allclose(to_numpy(out), ref, rtol=1e-9, atol=1e-9)


def test_cross_entropy_embedding_dropout():
    rng = np.random.default_rng(2)
    logits = rng.standard_normal((6, 5))
    target = np.array([0, 4, 2, 2, 1, 3])
    lse = np.log(np.exp(logits).sum(1))
    ref = (lse - logits[np.arange(6), target]).mean()
    F = st.nn.functional
    out = F.cross_entropy(st.tensor(logits), st.tensor(target))
    assert abs(out.item() - ref) < 1e-12
    per = F.cross_entropy(st.tensor(logits), st.tensor(target), reduction="none")
    np.testing.assert_allclose(to_numpy(per), lse - logits[np.arange(6), target], rtol=1e-12)

    table = rng.standard_normal((7, 3))
    idx = np.array([[0, 6], [3, 3]])
    np.testing.assert_array_equal(to_numpy(F.embedding(st.tensor(idx), st.tensor(table))), table[idx])

    x = st.ones(1000, dtype=st.float64)
    y = F.dropout(x, p=0.25)
    kept = to_numpy(y)
    assert set(np.unique(kept)) <= {0.0, 1 / 0.75}
    assert 0.6 < (kept > 0).mean() < 0.9
    assert F.dropout(x, p=0.25, training=False).tolist() == x.tolist()


def test_scaled_dot_product_attention():
    rng = np.random.default_rng(3)
    q, k, v = (rng.standard_normal((2, 3, 4, 8)) for _ in range(3))
    s = q @ k.swapaxes(-1, -2) / np.sqrt(8)
    s = s + np.triu(np.full((4, 4), -np.inf), 1)
    p = np.exp(s - s.max(-1, keepdims=True))
    ref = (p / p.sum(-1, keepdims=True)) @ v
    out = st.nn.functional.scaled_dot_product_attention(st.tensor(q), st.tensor(k), st.tensor(v), is_causal=True)
    np.testing.assert_allclose(to_numpy(out), ref, rtol=1e-10, atol=1e-12)


def test_joins():
    a, b = np.arange(6.0).reshape(2, 3), np.arange(6.0, 12.0).reshape(2, 3)
    ta, tb = st.tensor(a), st.tensor(b)
    np.testing.assert_array_equal(to_numpy(st.cat([ta, tb], 1)), np.concatenate([a, b], 1))
    np.testing.assert_array_equal(to_numpy(st.stack([ta, tb])), np.stack([a, b]))
    parts = st.split(st.tensor(np.arange(7.0)), 3)
    assert [p.tolist() for p in parts] == [[0, 1, 2], [3, 4, 5], [6]]
    parts = ta.split([1, 2], dim=1)
    assert [tuple(p.shape) for p in parts] == [(2, 1), (2, 2)]
    assert len(st.chunk(ta, 2, 1)) == 2


def test_factories():
    assert st.zeros(2, 3).tolist() == [[0, 0, 0], [0, 0, 0]]
    assert st.ones((2,), dtype=st.int32).dtype == st.int32
    assert st.full((2,), 7).dtype == st.int64 and st.full((2,), 7).tolist() == [7, 7]
    assert st.full([1], 0.5).dtype == st.float32
    assert st.arange(5).tolist() == [0, 1, 2, 3, 4] and st.arange(5).dtype == st.int64
    assert st.arange(1, 2, 0.25).tolist() == [1.0, 1.25, 1.5, 1.75]
    assert st.arange(3, dtype=st.float64).dtype == st.float64
    x = st.empty(4, 2, dtype=st.float16)
    assert x.shape == (4, 2) and x.dtype == st.float16
    assert st.zeros_like(x).dtype == st.float16 and st.ones_like(x, dtype=st.int64).dtype == st.int64
    assert st.full_like(x, 2).tolist() == [[2, 2]] * 4
    st.manual_seed(3)
    r1 = st.rand(100)
    st.manual_seed(3)
    assert st.rand(100).tolist() == r1.tolist()
    assert 0 <= r1.min().item() and r1.max().item() < 1
    n = st.randn(20000, dtype=st.float64)
    assert abs(n.mean().item()) < 0.05 and abs(to_numpy(n).std() - 1) < 0.05
    assert st.randn_like(n).shape == n.shape and st.rand_like(n).dtype == st.float64
    assert st.zeros(2, requires_grad=True).requires_grad
