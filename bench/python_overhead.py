"""Cost from Python of eager execution: a tiny CPU add, and a 100-op autograd chain (forward and
backward) per forward op; PyTorch measured beside it in the same run when it is installed.

    python bench/python_overhead.py [--repeats 7]

Each figure is the median over `repeats` timings of a loop long enough (about 0.2 s) that timer
resolution does not matter. Both libraries run single-threaded so that the figures compare the
dispatch paths, not thread pools.
"""

import argparse
import os
import platform
import statistics
import time


def timed(fn, inner):
    start = time.perf_counter()
    for _ in range(inner):
        fn()
    return (time.perf_counter() - start) / inner


def measure(fn, repeats):
    fn()  # warm up: first-call allocations, lazy imports
    inner = 1
    while timed(fn, inner) * inner < 0.2:
        inner *= 2
    return statistics.median(timed(fn, inner) for _ in range(repeats))


def autograd_chain(leaf):
    """50 multiplies and 50 adds from `leaf`, then backward and clearing the gradient: 100 forward
    ops a call, for any library with PyTorch's API."""

    def chain():
        y = leaf
        for _ in range(50):
            y = y * 1.0001
            y = y + 0.5
        y.sum().backward()
        leaf.grad = None

    return chain


def cases(lib):
    """(name, function, ops per call) for a library with PyTorch's API (torch or spiraltorch)."""
    a, b = lib.ones(4), lib.ones(4)

    def tiny_add():
        return a + b

    chain = autograd_chain(lib.ones(4, requires_grad=True))
    return [("tiny CPU add (4 elements)", tiny_add, 1), ("100-op autograd chain, per forward op", chain, 100)]


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()

    # Before either library starts its thread pool.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import spiraltorch as st

    libs = [("spiraltorch " + st.__version__, st)]
    try:
        import torch

        torch.set_num_threads(1)
        libs.append(("torch " + torch.__version__, torch))
    except ImportError:
        pass

    print(f"# {platform.processor() or platform.machine()}, Python {platform.python_version()}")
    results = {}
    for lib_name, lib in libs:
        for case, fn, ops in cases(lib):
            results[(lib_name, case)] = measure(fn, args.repeats) / ops * 1e6
    names = [n for n, _ in libs]
    print("| case | " + " | ".join(f"{n} (us)" for n in names) + (" | ratio |" if len(names) == 2 else " |"))
    print("| --- " * (len(names) + 1 + (len(names) == 2)) + "|")
    for case, _, _ in cases(st):
        row = [results[(n, case)] for n in names]
        cells = " | ".join(f"{v:.2f}" for v in row)
        ratio = f" | {row[1] / row[0]:.2f}x faster |" if len(row) == 2 else " |"
        print(f"| {case} | {cells}{ratio}")


if __name__ == "__main__":
    main()
