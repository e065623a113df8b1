"""Shared helpers of the Python suite: NumPy is the reference, in float64."""

import numpy as np
import pytest
from hypothesis import settings

import spiraltorch as st

# Enough examples to find shape and stride bugs while keeping the suite well under a minute.
settings.register_profile("spiraltorch", max_examples=30, deadline=None)
settings.load_profile("spiraltorch")


def to_numpy(t):
    """A float64 (or exact integer/bool) NumPy copy of a tensor's values."""
    values = np.array(t.detach().tolist(), dtype=np.float64 if t.dtype.is_floating_point else None)
    return values.reshape(tuple(t.shape))


def numeric_grad(fn, inputs, eps=1e-6):
    """Central differences of the scalar fn(*inputs) (NumPy float64 arrays) for each input."""
    grads = []
    for i, x in enumerate(inputs):
        g = np.zeros_like(x)
        flat, gflat = x.reshape(-1), g.reshape(-1)
        for j in range(flat.size):
            saved = flat[j]
            flat[j] = saved + eps
            plus = fn(*inputs)
            flat[j] = saved - eps
            minus = fn(*inputs)
            flat[j] = saved
            gflat[j] = (plus - minus) / (2 * eps)
        grads.append(g)
    return grads


def gradcheck(op, *arrays, atol=1e-6, rtol=1e-5):
    """Checks the autograd gradients of sum(op(*tensors) * w), w fixed random, in float64."""
    rng = np.random.default_rng(0)
    arrays = [np.array(a, dtype=np.float64) for a in arrays]
    out_shape = op(*[st.tensor(a) for a in arrays]).shape
    w = rng.standard_normal(tuple(out_shape))

    def value(*xs):
        return float((to_numpy(op(*[st.tensor(x) for x in xs])) * w).sum())

    expected = numeric_grad(value, [a.copy() for a in arrays])
    tensors = [st.tensor(a, requires_grad=True) for a in arrays]
    (op(*tensors) * st.tensor(w)).sum().backward()
    for t, e in zip(tensors, expected):
        np.testing.assert_allclose(to_numpy(t.grad), e, atol=atol, rtol=rtol)


@pytest.fixture(autouse=True)
def _seed():
    st.manual_seed(0)
    yield
