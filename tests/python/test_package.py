"""The installed package: version, typing files, docstrings."""

import pathlib

import spiraltorch as st


def test_version_and_typing_files():
    root = pathlib.Path(st.__file__).parent
    assert (root / "py.typed").exists()
    stub = (root / "_C.pyi").read_text()
    assert "class Tensor" in stub and "def from_numpy" in stub
    assert st.__version__ == st._C.__version__


def test_public_functions_have_docstrings():
    for name in ["tensor", "zeros", "arange", "from_numpy", "from_dlpack", "matmul", "manual_seed",
                 "backends", "save", "load"]:
        assert getattr(st, name).__doc__, name
    assert st.Tensor.backward.__doc__ and st.Tensor.to.__doc__ and st.nn.Module.__doc__
