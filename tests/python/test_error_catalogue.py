"""The error catalogue from Python: each bad input raises the documented exception (an st error
class that is also the built-in Python code expects) with a message naming the op and the offending
shapes, dtypes or devices; the library keeps working afterwards. The C++ twin is
tests/test_error_catalogue.cpp. Python's own argument handling (indices, sizes, dtypes, devices,
keywords) is exercised here too, with hypothesis where the space is large."""

import math
import os
import struct
import json

import numpy as np
import pytest
from hypothesis import given, strategies as hs

import spiraltorch as st

DEVICES = [d for d in st.backends() if d != "cpu"]
inf = math.inf


def usable():
    assert (st.tensor([1.0]) + st.tensor([2.0])).tolist() == [3.0]


CASES = [
    # Shapes that do not broadcast or fit.
    ("broadcast", lambda: st.ones(2, 3) + st.ones(4), st.ShapeError, ValueError, ["[add]", "[2, 3]", "[4]"]),
    ("matmul", lambda: st.ones(3, 4) @ st.ones(5, 6), st.ShapeError, ValueError, ["[matmul]", "[3, 4]", "[5, 6]"]),
    ("cat", lambda: st.cat([st.ones(2, 3), st.ones(2, 4)]), st.ShapeError, ValueError, ["[cat]", "[2, 3]", "[2, 4]"]),
    ("view", lambda: st.ones(2, 3).view(4, 2), st.ShapeError, ValueError, ["[view]", "[2, 3]", "[4, 2]"]),
    ("cross_entropy", lambda: st.nn.functional.cross_entropy(st.ones(2, 5), st.zeros(3, dtype=st.int64)),
     st.ShapeError, ValueError, ["[cross_entropy]", "[2, 5]", "[3]"]),
    # Wrong dtypes.
    ("embedding dtype", lambda: st.nn.functional.embedding(st.ones(3), st.ones(10, 4)), st.DTypeError, TypeError,
     ["[embedding]", "float32"]),
    ("matmul dtypes", lambda: st.ones(2, 2) @ st.ones(2, 2, dtype=st.float64), st.DTypeError, TypeError,
     ["[matmul]", "float32", "float64"]),
    ("layer_norm int", lambda: st.nn.functional.layer_norm(st.ones(2, 3, dtype=st.int64), (3,)), st.DTypeError,
     TypeError, ["[layer_norm]", "int64"]),
    ("in-place dtype", lambda: st.zeros(3, dtype=st.int64).add_(1.5), st.DTypeError, TypeError, ["add", "int64"]),
    # Indices out of range and of the wrong type.
    ("index", lambda: st.ones(2, 3)[5], st._C.IndexError, IndexError, ["index 5", "size 2"]),
    ("index dim", lambda: st.ones(2, 3)[0, 0, 0], st._C.IndexError, IndexError, ["[index]"]),
    ("sum dim", lambda: st.ones(2, 3).sum(2), st._C.IndexError, IndexError, ["[sum]", "dim 2"]),
    ("gather index", lambda: st.ones(4)[st.tensor([1, 4])], st._C.IndexError, IndexError, ["out of bounds"]),
    ("float index tensor", lambda: st.ones(4)[st.tensor([1.0])], st._C.IndexError, IndexError, ["[index]", "float32"]),
    ("embedding row", lambda: st.nn.functional.embedding(st.tensor([3, 10]), st.ones(10, 4)), st._C.IndexError,
     IndexError, ["[embedding]", "10"]),
    # Negative and overflowing sizes.
    ("negative size", lambda: st.zeros(2, -3), st.ShapeError, ValueError, ["[zeros]", "[2, -3]"]),
    ("numel overflow", lambda: st.zeros(1 << 40, 1 << 40), st.ShapeError, ValueError, ["[zeros]", "overflows"]),
    ("bytes overflow", lambda: st.empty(1 << 62), st.ShapeError, ValueError, ["[empty]", "float32"]),
    # Autograd misuse.
    ("non-scalar backward", lambda: (st.ones(2, 2, requires_grad=True) * 2).backward(), st.SpiralTorchError,
     RuntimeError, ["[backward]", "[2, 2]"]),
    ("no grad", lambda: st.ones(2).sum().backward(), st.SpiralTorchError, RuntimeError,
     ["[backward]", "requires_grad"]),
    ("leaf in place", lambda: st.ones(3, requires_grad=True).add_(1), st.SpiralTorchError, RuntimeError,
     ["add", "leaf", "requires grad"]),
]


@pytest.mark.parametrize("name,fn,kind,builtin,fragments", CASES, ids=[c[0] for c in CASES])
def test_catalogue(name, fn, kind, builtin, fragments):
    with pytest.raises(kind) as info:
        fn()
    assert isinstance(info.value, builtin) and isinstance(info.value, st.SpiralTorchError)
    message = str(info.value)
    assert message.startswith("["), message
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    usable()


PYTHON_ARGUMENTS = [
    # Python-side argument handling: wrong types where ints, dtypes and devices are expected.
    (lambda: st.ones(2, 3)["a"], TypeError, "[index]"),
    (lambda: st.ones(2, 3)[1.5], TypeError, "float"),
    (lambda: st.ones(2, 3)[None, 1.5], TypeError, "float"),
    (lambda: st.zeros("a"), TypeError, None),
    (lambda: st.zeros(2.5), TypeError, None),
    (lambda: st.zeros(True), TypeError, "bool"),  # found by hypothesis: bools were taken as sizes
    (lambda: st.zeros(1 << 63), ValueError, "does not fit in int64"),  # was a bare std::bad_cast
    (lambda: st.ones(2, 3).sum(1 << 70), ValueError, "[sum]"),
    (lambda: st.ones(2).to("tpu"), st.DeviceError, "tpu"),
    (lambda: st.ones(2).to(device="cuda:x"), st.DeviceError, "cuda:x"),
    (lambda: st.ones(2).to(colour="red"), TypeError, "colour"),
    (lambda: st.ones(2, dtype="float32"), TypeError, None),
    (lambda: st.tensor([[1, 2], [3]]), (ValueError, TypeError), None),
    (lambda: st.nn.functional.cross_entropy(st.ones(2, 3), st.zeros(2, dtype=st.int64), reduction="avg"),
     ValueError, "reduction"),
    (lambda: st.ones(2).sum(dim="x"), TypeError, None),
]


@pytest.mark.parametrize("fn,kind,fragment", PYTHON_ARGUMENTS)
def test_python_arguments(fn, kind, fragment):
    with pytest.raises(kind) as info:
        fn()
    if fragment is not None:
        assert fragment in str(info.value), str(info.value)
    usable()


def test_mixed_devices():
    if not DEVICES:
        pytest.skip("needs two devices")
    other = DEVICES[0]
    with pytest.raises(st.DeviceError) as info:
        st.ones(3) + st.ones(3, device=other)
    assert "[add]" in str(info.value) and "cpu" in str(info.value) and other.split(":")[0] in str(info.value)
    usable()


def test_huge_allocation_is_a_memory_error_and_the_process_goes_on():
    for _ in range(3):
        with pytest.raises(MemoryError) as info:
            st.empty(1 << 48)  # 2^50 bytes
        assert isinstance(info.value, st.OutOfMemoryError)
        assert "[empty]" in str(info.value) and "[281474976710656]" in str(info.value)
    x = st.ones(1 << 20)
    assert x.sum().item() == 1 << 20


def test_backward_twice_without_retain_graph():
    x = st.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = (x * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match=r"\[backward\].*retain_graph"):
        y.backward()
    z = (x * x).sum()
    x.grad = None
    z.backward(retain_graph=True)
    z.backward()
    np.testing.assert_allclose(x.grad.tolist(), [4.0, 8.0, 12.0])


def test_in_place_change_of_a_saved_tensor():
    x = st.tensor([1.0, 2.0, 3.0], requires_grad=True)
    e = (x * 2).exp()
    loss = (e * e).sum()
    with st.no_grad():
        e.add_(1)
    with pytest.raises(RuntimeError, match=r"\[backward\].*modified in place"):
        loss.backward()


def test_softmax_and_cross_entropy_with_infinite_logits():
    logits = st.tensor([[-inf, 0.0, 1.0], [1e30, -1e30, 0.0], [-inf, -inf, 2.0]])
    p = st.softmax(logits, 1).tolist()
    e = math.exp(1.0)
    np.testing.assert_allclose(p, [[0, 1 / (1 + e), e / (1 + e)], [1, 0, 0], [0, 0, 1]], atol=1e-6)
    loss = st.nn.functional.cross_entropy(logits, st.tensor([2, 0, 2])).item()
    assert math.isfinite(loss) and abs(loss - math.log1p(math.exp(-1.0)) / 3) < 1e-6
    assert math.isnan(st.softmax(st.tensor([[-inf, -inf]]), 1).tolist()[0][0])


def _safetensors(header, data=b""):
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + data


@pytest.mark.parametrize(
    "name,content",
    [
        ("empty", b""),
        ("short length", b"\x10\x00\x00"),
        ("length past the end", struct.pack("<Q", 1 << 40) + b"{}"),
        ("not json", struct.pack("<Q", 4) + b"\xff\xfe{]"),
        ("lying shape", _safetensors({"w": {"dtype": "F32", "shape": [1000000, 1000000], "data_offsets": [0, 16]}},
                                     bytes(16))),
        ("offsets past the data", _safetensors({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}},
                                               bytes(8))),
        ("unknown dtype", _safetensors({"w": {"dtype": "Q4", "shape": [4], "data_offsets": [0, 16]}}, bytes(16))),
    ],
)
def test_damaged_checkpoints(tmp_path, name, content):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(content)
    with pytest.raises(st.SerializationError) as info:
        st.load(path)
    assert str(info.value).startswith("[load_safetensors]") and str(path) in str(info.value)
    usable()


def test_truncated_checkpoints(tmp_path):
    good = tmp_path / "good.safetensors"
    st.save({"w": st.arange(12, dtype=st.float32).view(3, 4)}, good)
    content = good.read_bytes()
    for keep in sorted({0, 7, 8, 30, len(content) // 2, len(content) - 1}):
        path = tmp_path / f"cut{keep}.safetensors"
        path.write_bytes(content[:keep])
        with pytest.raises(st.SerializationError, match=r"\[load_safetensors\]"):
            st.load(path)
    assert st.load(good)["w"].tolist() == np.arange(12.0).reshape(3, 4).tolist()


# Index parsing lives in the bindings (it reads Python objects), so it is fuzzed here with
# hypothesis rather than with libFuzzer: any index either gives NumPy's answer or raises one of the
# documented exceptions.
INDEX_ITEMS = hs.one_of(
    hs.integers(-6, 6),
    hs.slices(6),
    hs.none(),
    hs.just(Ellipsis),
    hs.booleans(),
    hs.floats(-3, 3),
    hs.text(max_size=2),
    hs.lists(hs.integers(-6, 6), max_size=3),
)


@given(shape=hs.lists(hs.integers(0, 4), min_size=0, max_size=3), index=hs.lists(INDEX_ITEMS, max_size=4))
def test_arbitrary_indices_match_numpy_or_raise(shape, index):
    a = np.arange(int(np.prod(shape)), dtype=np.float64).reshape(shape)
    t = st.tensor(a)
    key = tuple(index)
    try:
        expected = a[key]
    except (IndexError, TypeError, ValueError):
        expected = None
    if any(isinstance(i, slice) and i.step is not None and i.step < 0 for i in key):
        expected = None  # negative steps are refused, as in PyTorch
    try:
        got = t[key]
    except (IndexError, TypeError, ValueError, NotImplementedError) as e:
        assert isinstance(e, st.SpiralTorchError) or isinstance(e, (TypeError, IndexError)), repr(e)
        return
    assert expected is not None, f"{key} on {shape} gave a result; NumPy refuses it"
    np.testing.assert_array_equal(np.array(got.tolist()).reshape(np.shape(expected)), expected)


# Huge sizes start at 2^62 elements: their bytes cannot be addressed, so nothing is allocated.
SIZE_ITEMS = hs.one_of(hs.integers(-3, 5), hs.integers(1 << 62, 1 << 64), hs.floats(-2, 2), hs.none(),
                       hs.text(max_size=1), hs.booleans())


@given(size=hs.lists(SIZE_ITEMS, max_size=4), as_tuple=hs.booleans())
def test_arbitrary_size_arguments_give_a_tensor_or_a_clean_error(size, as_tuple):
    args = (tuple(size),) if as_tuple else tuple(size)
    ints = all(isinstance(s, int) and not isinstance(s, bool) for s in size)
    in_range = ints and all(0 <= s < 1 << 63 for s in size)
    # Exact products: the elements, and the sizes with zeros counted as 1, which strides reach
    # even in a tensor with no elements and so must fit int64 too.
    numel = math.prod(size) if in_range else None
    span = math.prod(max(s, 1) for s in size) if in_range else None
    valid = in_range and numel < 1 << 62 and span < 1 << 63
    try:
        t = st.zeros(*args)
    except (TypeError, ValueError, OverflowError, MemoryError) as e:
        assert not valid, f"st.zeros{args} refused valid sizes: {e!r}"
        return
    assert valid, f"st.zeros{args} accepted invalid sizes"
    assert tuple(t.shape) == tuple(size)
