"""The installed package: version, typing files, docstrings, and the GIL released around long
work (other Python threads run meanwhile)."""

import pathlib
import threading
import time

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


def test_matmul_releases_the_gil():
    a = st.randn(1024, 1024)
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
        for _ in range(4):
            a @ a
        end = time.perf_counter()
    finally:
        done.set()
        thread.join()
    # Holding the GIL, the counter could run at most between products; released, it ticks
    # throughout.
    assert sum(start < t < end for t in ticks) > 8
