"""The Tensor API: metadata, conversions, indexing against NumPy, repr, and the error mapping."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as hs

import spiraltorch as st
from conftest import to_numpy

A = np.arange(60, dtype=np.float64).reshape(3, 4, 5)


def test_metadata():
    t = st.zeros(2, 3, dtype=st.float64)
    assert t.shape == (2, 3) and isinstance(t.shape, tuple) and isinstance(t.shape, st.Size)
    assert repr(t.shape) == "st.Size([2, 3])" and t.shape.numel() == 6
    assert t.size() == (2, 3) and t.size(-1) == 3 and t.stride() == (3, 1)
    assert t.ndim == 2 and t.dim() == 2 and t.numel() == 6 and len(t) == 2
    assert t.dtype == st.float64 and t.dtype.is_floating_point and t.dtype.itemsize == 8
    assert t.device == st.device("cpu") and t.device == "cpu" and str(t.device) == "cpu"
    assert repr(st.device("cpu")) == "device(type='cpu')"
    assert t.T.shape == (3, 2) and t.mT.shape == (3, 2)
    assert st.float == st.float32 and st.long == st.int64 and repr(st.bfloat16) == "st.bfloat16"
    assert isinstance(st.__version__, str) and st.__version__.count(".") == 2
    assert "cpu" in st.backends()


def test_item_tolist_and_conversions():
    t = st.tensor([[1.5, 2.0], [3.0, 4.0]])
    assert t.tolist() == [[1.5, 2.0], [3.0, 4.0]]
    assert t[0, 0].item() == 1.5 and float(t[1, 1]) == 4.0 and int(t[1, 0]) == 3
    assert st.tensor(True).item() is True and st.tensor(3).item() == 3
    assert [1, 2, 3][st.tensor(1)] == 2  # __index__
    assert bool(st.tensor([1]))
    with pytest.raises(st.SpiralTorchError, match="ambiguous"):
        bool(st.ones(2))
    assert t.to(st.int64).dtype == st.int64 and t.to("cpu") is not None
    assert t.to(st.zeros(1, dtype=st.float64)).dtype == st.float64
    assert t.to(dtype=st.float16).half().dtype == st.float16
    assert t.double().dtype == st.float64 and t.long().tolist() == [[1, 2], [3, 4]]
    assert t.bool().dtype == st.bool and t.int().dtype == st.int32 and t.float().dtype == st.float32
    c = t.to(st.float32, copy=True)
    c[0, 0] = 0
    assert t[0, 0].item() == 1.5
    assert st.tensor([[1, 2], [3, 4]], dtype=st.float64).dtype == st.float64
    assert st.tensor([]).shape == (0,)
    assert st.tensor([[]]).shape == (1, 0)
    with pytest.raises(ValueError):
        st.tensor([[1, 2], [3]])


def test_repr_matches_pytorch_style():
    assert repr(st.tensor([1.0, 2.5])) == "tensor([1.0000, 2.5000])"
    assert repr(st.tensor([1, 2])) == "tensor([1, 2])"
    assert repr(st.tensor([1.0], dtype=st.float64)) == "tensor([1.], dtype=st.float64)"
    assert repr(st.ones(2, requires_grad=True)) == "tensor([1., 1.], requires_grad=True)"
    x = st.ones(2, requires_grad=True)
    assert repr(x * x) == "tensor([1., 1.], grad_fn=<MulBackward>)"
    assert repr(st.zeros(0, 3)) == "tensor([], size=(0, 3))"


BASIC_INDICES = [
    1,
    -1,
    (1, 2),
    (slice(None), 1),
    slice(1, None),
    slice(None, None, 2),
    (slice(None, None, 2), slice(1, 4, 2), -2),
    (Ellipsis, 1),
    (1, Ellipsis),
    (None, 1, None),
    (Ellipsis, None),
    (slice(None), None, slice(1, 3)),
    (-1, slice(-3, None), slice(None, None, 3)),
    (),
]


@pytest.mark.parametrize("index", BASIC_INDICES, ids=repr)
def test_basic_indexing_is_a_view(index):
    t = st.tensor(A)
    got = t[index]
    np.testing.assert_array_equal(to_numpy(got), A[index])
    if got.numel() > 0:
        got.fill_(-1)  # a view: the write shows in the base tensor
        assert (to_numpy(t) == -1).sum() == np.asarray(A[index]).size


ADVANCED_INDICES = [
    [0, 2],
    ([0, 2], [1, 3]),
    (slice(None), [3, 0, 3]),
    (slice(None), [0, 1], [4, 2]),
    ([[0, 1], [2, 2]], slice(1, 3)),
    (1, [0, 3], slice(None)),
    ([0, 2], slice(None), [1, 4]),
    (Ellipsis, [-1, 0]),
    ([-3, -1],),
]


@pytest.mark.parametrize("index", ADVANCED_INDICES, ids=repr)
def test_integer_array_indexing(index):
    t = st.tensor(A)
    ref = A[index]
    np.testing.assert_array_equal(to_numpy(t[index]), ref)
    tensor_index = tuple(st.tensor(i) if isinstance(i, list) else i for i in (index if isinstance(index, tuple) else (index,)))
    np.testing.assert_array_equal(to_numpy(t[tensor_index]), ref)


@given(seed=hs.integers(0, 2**16))
def test_boolean_mask_indexing(seed):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((4, 3))
    t = st.tensor(a)
    np.testing.assert_array_equal(to_numpy(t[t > 0]), a[a > 0])
    rows = rng.random(4) > 0.5
    np.testing.assert_array_equal(to_numpy(t[st.tensor(rows)]), a[rows])
    np.testing.assert_array_equal(to_numpy(t[:, st.tensor([True, False, True])]), a[:, [True, False, True]])


def test_setitem():
    a = A.copy()
    t = st.tensor(A)
    for index, value in [
        ((0, 1), 5.0),
        ((slice(None), 0), st.tensor([1.0, 2.0, 3.0, 4.0, 5.0])),
        ((Ellipsis, 2), 7),
        (([0, 2], [1, 3]), -2.0),
        ((slice(None), [0, 3]), st.tensor([[9.0], [8.0], [7.0], [6.0], [5.0]]).T.unsqueeze(0) * 0 + 11),
        ((1, [3, 0]), [[1, 2, 3, 4, 5], [6, 7, 8, 9, 10]]),
    ]:
        np_value = to_numpy(value) if isinstance(value, st.Tensor) else value
        a[index] = np_value
        t[index] = value
        np.testing.assert_array_equal(to_numpy(t), a)
    a[a > 30] = 0
    t[t > 30] = 0
    np.testing.assert_array_equal(to_numpy(t), a)
    mask = a > 5
    a[mask] = np.arange(mask.sum())
    t[st.tensor(mask)] = st.arange(int(mask.sum()), dtype=st.float64)
    np.testing.assert_array_equal(to_numpy(t), a)


def test_iteration_and_in_place_operators():
    t = st.arange(6).reshape(3, 2)
    assert [row.tolist() for row in t] == [[0, 1], [2, 3], [4, 5]]
    u = t
    u += 1
    u *= 2
    assert t.tolist() == [[2, 4], [6, 8], [10, 12]] and u is t
    m = (t > 4) & (t < 12)
    assert m.tolist() == [[False, False], [True, True], [True, False]]
    assert (~m).tolist() == [[True, True], [False, False], [False, True]]
    assert ((t < 4) | (t > 10)).tolist() == [[True, False], [False, False], [False, True]]


ERRORS = [
    (lambda: st.ones(2, 3) + st.ones(4), st.ShapeError, ValueError, r"\[add\] shapes \[2, 3\] and \[4\]"),
    (lambda: st.ones(2, 3) @ st.ones(2, 3), st.ShapeError, ValueError, r"\[matmul\]"),
    (lambda: st.exp(st.ones(2, dtype=st.int64)).sum() + st.randn(2, dtype=st.int64), st.DTypeError, TypeError, r"randn"),
    (lambda: st.ones(2, 3)[5], st._C.IndexError, IndexError, r"index 5"),
    (lambda: st.ones(2).sum(3), st._C.IndexError, IndexError, r"dim 3"),
    (lambda: st.ones(2)[st.tensor([2])], st._C.IndexError, IndexError, r"out of bounds"),
    (lambda: st.nn.functional.dropout(st.ones(2), p=1.5), st._C.ValueError, ValueError, r"dropout"),
    (lambda: st.ones(2).to("vulkan:7"), st.SpiralTorchError, RuntimeError, r"vulkan"),
    (lambda: st.ones(2).view(3), st.ShapeError, ValueError, r"view"),
]


@pytest.mark.parametrize("fn,kind,builtin,message", ERRORS)
def test_error_mapping(fn, kind, builtin, message):
    with pytest.raises(kind, match=message) as info:
        fn()
    assert isinstance(info.value, builtin) and isinstance(info.value, st.SpiralTorchError)


def test_not_implemented_and_memory_errors():
    x = st.ones(2, requires_grad=True)
    y = x * 1
    v = y[0]
    with pytest.raises(NotImplementedError) as info:
        y.add_(1)  # in place on a tensor with live views while recording
    assert isinstance(info.value, st.SpiralTorchError)
    del v
    with pytest.raises(MemoryError) as info:
        st.empty(1 << 48)  # 2^50 bytes: beyond any machine's memory and address space
    assert isinstance(info.value, st.SpiralTorchError)


def _has_negative_step(index):
    items = index if isinstance(index, tuple) else (index,)
    return any(isinstance(i, slice) and i.step is not None and i.step < 0 for i in items)


@hs.composite
def basic_case(draw):
    from hypothesis.extra import numpy as hnp

    shape = draw(hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=5))
    index = draw(hnp.basic_indices(shape, allow_newaxis=True, allow_ellipsis=True))
    return shape, index


@given(case=basic_case())
def test_random_basic_indices_match_numpy(case):
    from hypothesis import assume

    shape, index = case
    assume(not _has_negative_step(index))  # PyTorch refuses negative steps too
    a = np.arange(int(np.prod(shape)), dtype=np.float64).reshape(shape)
    np.testing.assert_array_equal(to_numpy(st.tensor(a)[index]), a[index])


@hs.composite
def integer_array_case(draw):
    from hypothesis.extra import numpy as hnp

    shape = draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=5))
    index = draw(hnp.integer_array_indices(shape, result_shape=hnp.array_shapes(max_dims=2, max_side=3)))
    return shape, index


@given(case=integer_array_case())
def test_random_integer_array_indices_match_numpy(case):
    shape, index = case
    a = np.arange(int(np.prod(shape)), dtype=np.float64).reshape(shape)
    t = st.tensor(a)
    np.testing.assert_array_equal(to_numpy(t[tuple(st.from_numpy(i.astype(np.int64)) for i in index)]), a[index])
    b = a.copy()
    b[index] = -1.0
    t[tuple(st.tensor(i.astype(np.int64)) for i in index)] = -1.0
    np.testing.assert_array_equal(to_numpy(t), b)
