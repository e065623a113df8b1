"""SpiralTorch beside PyTorch on one CUDA device, in one process: GEMMs, the memory-bound kernels,
the cost of an op from Python, and training steps, each with its target from the CUDA performance
goals, printed as one table and appended to a results file with the date and the command.

    python3 bench/cuda_vs_torch.py [--quick] [--no-compile] [--results bench/RESULTS.md]

How it measures. GPU work is timed with each library's own CUDA events around the calls, after a
warm-up; each figure is the median of many samples. The cost of an op from Python is timed with the
wall clock. Inputs are random normal, never zeros, and rotated among copies when one copy would
sit in the L2 cache. `ratio` reads "higher is better for SpiralTorch": throughput ours / theirs,
or time theirs / ours, against the better of PyTorch eager and torch.compile where both run.
`floor` is what the hardware allows: for memory-bound kernels the copy bandwidth measured here
(bytes = inputs read once + outputs written once), for training steps the time of their GEMM
FLOPs at the GEMM rate measured here. PyTorch runs with TF32 off except in the tf32 rows, as
SpiralTorch does by default. Without PyTorch the SpiralTorch column is still measured.

The training steps run SpiralTorch twice: eager, and each step replayed from one CUDA graph
(st.cuda.capture_step); the SpiralTorch column is the graphed figure and the note has the eager
one (--no-graphs: eager only). PyTorch runs eager and under torch.compile's default mode.
"""

import argparse
import contextlib
import datetime
import itertools
import math
import statistics
import sys
import time

# PyTorch is imported before spiraltorch: the other order crashes inside `import torch` (README,
# "Semantics worth knowing").
try:
    import torch
except ImportError:
    torch = None

import spiraltorch as st
from python_overhead import autograd_chain

GB = 1e9


class Lib:
    """One library under test: its module, events, synchronization, dtypes and device."""

    def __init__(self, mod, device):
        self.mod = mod
        self.device = device
        self.is_st = mod is st
        self.name = "SpiralTorch" if self.is_st else "PyTorch"
        self.key = "st" if self.is_st else "torch"
        self.cuda = device.startswith("cuda")

    def dtype(self, name):
        return getattr(self.mod, name)

    def sync(self):
        if self.cuda:
            self.mod.cuda.synchronize()

    def event(self):
        return st.cuda.Event() if self.is_st else torch.cuda.Event(enable_timing=True)

    def set_tf32(self, allow):
        if self.is_st:
            st.cuda.set_allow_tf32(allow)
        else:
            torch.backends.cuda.matmul.allow_tf32 = allow
            torch.backends.cudnn.allow_tf32 = allow

    def randn(self, *shape, dtype="float32", requires_grad=False):
        x = self.mod.randn(*shape, dtype=self.dtype(dtype), device=self.device)
        return x.requires_grad_() if requires_grad else x

    def randint(self, high, shape):
        if self.is_st:
            return (st.rand(*shape, device=self.device) * high).long()
        return torch.randint(0, high, shape, device=self.device)


def gpu_ms(lib, fn, samples, warmup=3, inner=1):
    """Median milliseconds per call of fn on the device, between the library's own events (the
    wall clock on a CPU device)."""
    for _ in range(warmup):
        fn()
    lib.sync()
    times = []
    if lib.cuda:
        start, end = lib.event(), lib.event()
    for _ in range(samples):
        if lib.cuda:
            start.record()
        else:
            t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        if lib.cuda:
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end) / inner)
        else:
            times.append((time.perf_counter() - t0) * 1e3 / inner)
    return statistics.median(times)


def host_us(lib, fn, samples=7):
    """Median wall-clock microseconds per call, over loops of at least 50 ms."""
    fn()
    lib.sync()
    inner = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        lib.sync()
        if time.perf_counter() - t0 > 0.05:
            break
        inner *= 2
    times = []
    for _ in range(samples):
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        lib.sync()
        times.append((time.perf_counter() - t0) / inner * 1e6)
    return statistics.median(times)


def rotating(make, nbytes, l2_bytes):
    """A function returning, call after call, one of enough copies of make()'s inputs that their
    total is 4x the L2 (one copy when one is already that large)."""
    copies = max(1, math.ceil(4 * l2_bytes / nbytes)) if nbytes < 4 * l2_bytes else 1
    return itertools.cycle([make() for _ in range(copies)]).__next__


class Table:
    def __init__(self):
        self.rows = []

    def add(self, name, unit, ours, eager, compiled=None, higher=True, floor=None, target=None,
            note=""):
        """target: ("ratio", v) for ratio >= v, ("at most", v) or ("at least", v) for our own
        figure; `higher` says whether a higher figure is better."""
        best = [v for v in (eager, compiled) if v is not None]
        ref = (max(best) if higher else min(best)) if best else None
        ratio = None
        if ours is not None and ref:
            ratio = ours / ref if higher else ref / ours
        met = None
        if target and ours is not None:
            kind, value = target
            if kind == "ratio":
                met = None if ratio is None else ratio >= value
            else:
                met = ours <= value if kind == "at most" else ours >= value
        self.rows.append(dict(name=name, unit=unit, ours=ours, eager=eager, compiled=compiled,
                              ratio=ratio, floor=floor, target=target, met=met, note=note))
        r = self.rows[-1]
        print("  " + " | ".join(self.cells(r)), flush=True)

    @staticmethod
    def fmt(v):
        if v is None:
            return "-"
        return f"{v:.3g}" if abs(v) < 100 else f"{v:.0f}"

    def cells(self, r):
        target = ""
        if r["target"]:
            kind, value = r["target"]
            target = f"ratio >= {value}" if kind == "ratio" else (
                f"{'<=' if kind == 'at most' else '>='} {self.fmt(value)} {r['unit']}")
        met = {None: "", True: "met", False: "missed"}[r["met"]]
        ratio = "-" if r["ratio"] is None else f"{r['ratio']:.2f}"
        return [r["name"], self.fmt(r["ours"]), self.fmt(r["eager"]), self.fmt(r["compiled"]),
                r["unit"], ratio, self.fmt(r["floor"]), target, met, r["note"]]

    def markdown(self):
        head = ["workload", "SpiralTorch", "PyTorch eager", "torch.compile", "unit", "ratio",
                "floor", "target", "", "note"]
        lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
        lines += ["| " + " | ".join(self.cells(r)) + " |" for r in self.rows]
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Workloads. Each takes the libraries (SpiralTorch first, PyTorch second or absent).


def bench_gemm(libs, table, args, l2):
    sizes = [1024] if args.quick else [4096, 8192]
    modes = [("f32", "float32", False), ("tf32", "float32", True), ("bf16", "bfloat16", False),
             ("f16", "float16", False)]
    rates = {}  # the best cuBLAS rate seen per dtype, TFLOP/s: the ceiling of the training rows
    for n in sizes:
        flop = 2.0 * n**3
        for mode, dtype, tf32 in modes:
            paths = ["cublaslt"] + (["tensorcore"] if dtype != "float32" else [])
            for path in paths:
                figures = []
                for lib in libs:
                    if not lib.is_st and path != "cublaslt":
                        figures.append(figures_cublas[-1])  # PyTorch has one GEMM
                        continue
                    lib.set_tf32(tf32)
                    if lib.is_st:
                        st.cuda.set_gemm_backend(path)
                    nbytes = 2 * n * n * (4 if dtype == "float32" else 2)

                    def pair():
                        return lib.randn(n, n, dtype=dtype), lib.randn(n, n, dtype=dtype)

                    nxt = rotating(pair, nbytes, l2)
                    samples = 10 if n >= 8192 else 20
                    ms = gpu_ms(lib, lambda: lib.mod.matmul(*nxt()), samples=samples)
                    figures.append(flop / (ms * 1e-3) / 1e12)
                    lib.set_tf32(False)
                    if lib.is_st:
                        st.cuda.set_gemm_backend("cublaslt")
                if path == "cublaslt":
                    figures_cublas = figures
                    rates[mode] = max([rates.get(mode, 0)] + [f for f in figures if f])
                target = ("ratio", 0.97) if path == "cublaslt" else ("ratio", 0.8)
                name = f"GEMM {mode} {n}^3"
                if path != "cublaslt":
                    name += " (own tensor-core kernel)"
                table.add(name, "TFLOP/s", figures[0], figures[1] if len(libs) > 1 else None,
                          target=target)
    # bmm
    b, n = (8, 512) if args.quick else (64, 1024)
    figures = []
    for lib in libs:
        x, y = lib.randn(b, n, n, dtype="bfloat16"), lib.randn(b, n, n, dtype="bfloat16")
        ms = gpu_ms(lib, lambda: lib.mod.matmul(x, y), samples=20)
        figures.append(2.0 * b * n**3 / (ms * 1e-3) / 1e12)
    table.add(f"bmm bf16 {b}x{n}^3", "TFLOP/s", figures[0], figures[1] if len(libs) > 1 else None,
              target=("ratio", 1.0))
    return rates


def bench_memory(libs, table, args):
    """copy/add/sum over 256M f32 values; returns the copy bandwidth (the best of both), GB/s."""
    n = (1 << 22) if args.quick else (1 << 28)
    results = {}
    for lib in libs:
        x, y = lib.randn(n), lib.randn(n)
        for op, nbytes, fn in [("copy", 8 * n, lambda: x.clone()), ("add", 12 * n, lambda: x + y),
                               ("sum", 4 * n, lambda: x.sum())]:
            results[(lib.name, op)] = nbytes / (gpu_ms(lib, fn, samples=30) * 1e-3) / GB
        del x, y
    bandwidth = max(results[(lib.name, "copy")] for lib in libs)
    label = f"{n >> 20}M f32"
    for op in ("copy", "add", "sum"):
        table.add(f"{op} {label}", "GB/s", results[("SpiralTorch", op)],
                  results.get(("PyTorch", op)), floor=bandwidth, target=("ratio", 0.95))
    return bandwidth


def bench_rows(libs, table, args, bandwidth):
    """softmax and layer_norm, forward and backward, over the last dim of a 2-D tensor."""
    shapes = [(1024, 4096)] if args.quick else [(16384, 4096), (262144, 256)]
    targets = {("softmax", "fwd", "float32"): 1.2, ("softmax", "bwd", "float32"): 1.5,
               ("softmax", "fwd", "bfloat16"): 2.0, ("layer_norm", "fwd", "float32"): 1.2,
               ("layer_norm", "bwd", "float32"): 1.2, ("layer_norm", "fwd", "bfloat16"): 1.2,
               ("layer_norm", "bwd", "bfloat16"): 1.2}
    for rows, cols in shapes:
        main_shape = (rows, cols) == shapes[0]
        for dtype in ("float32", "bfloat16"):
            if not main_shape and dtype != "float32":
                continue
            for op in ("softmax", "layer_norm"):
                figures = {"fwd": [], "bwd": []}
                for lib in libs:
                    F = lib.mod.nn.functional
                    x = lib.randn(rows, cols, dtype=dtype, requires_grad=True)
                    w = lib.randn(cols, dtype=dtype, requires_grad=True)
                    b = lib.randn(cols, dtype=dtype, requires_grad=True)
                    g = lib.randn(rows, cols, dtype=dtype)
                    if op == "softmax":
                        fwd = lambda: F.softmax(x, -1)  # noqa: E731
                    else:
                        fwd = lambda: F.layer_norm(x, (cols,), w, b, 1e-5)  # noqa: E731
                    y = fwd()

                    def bwd():
                        # Fresh gradients each time: an accumulating add would double the bytes.
                        x.grad = w.grad = b.grad = None
                        y.backward(g, retain_graph=True)

                    item = x.element_size()
                    nbytes = rows * cols * item
                    figures["fwd"].append(2 * nbytes / (gpu_ms(lib, fwd, 30) * 1e-3) / GB)
                    figures["bwd"].append(3 * nbytes / (gpu_ms(lib, bwd, 30) * 1e-3) / GB)
                    del x, w, b, g, y
                for direction in ("fwd", "bwd"):
                    f = figures[direction]
                    short = {"float32": "f32", "bfloat16": "bf16"}[dtype]
                    target = targets.get((op, direction, dtype)) if main_shape else None
                    table.add(f"{op} {direction} {short} {rows}x{cols}", "GB/s", f[0],
                              f[1] if len(f) > 1 else None, floor=bandwidth,
                              target=("ratio", target) if target else None)


def bench_overhead(libs, table):
    figures = {}
    for lib in libs:
        a, b = lib.randn(4), lib.randn(4)
        figures[(lib.name, "queued")] = host_us(lib, lambda: a + b)

        def synced():
            a + b
            lib.sync()

        figures[(lib.name, "synced")] = host_us(lib, synced)
        chain = autograd_chain(lib.randn(4, requires_grad=True))
        figures[(lib.name, "chain")] = host_us(lib, chain) / 100
    get = lambda lib, k: figures.get((lib, k))  # noqa: E731
    table.add("tiny CUDA op a + b, queued", "us", get("SpiralTorch", "queued"),
              get("PyTorch", "queued"), higher=False, target=("at most", 5))
    table.add("tiny CUDA op a + b, then synchronize", "us", get("SpiralTorch", "synced"),
              get("PyTorch", "synced"), higher=False)
    table.add("100-op autograd chain, per forward op", "us", get("SpiralTorch", "chain"),
              get("PyTorch", "chain"), higher=False, target=("at most", 12))


def compile_note(libs, args):
    return "torch.compile not run (--no-compile)" if len(libs) > 1 and not args.compile else ""


def train_ms(lib, step, samples, warmup=3, inner=5):
    return gpu_ms(lib, step, samples=samples, warmup=warmup, inner=inner)


def variants(lib, args):
    """(compiled, graphed) runs of a training step: PyTorch eager and compiled, SpiralTorch eager
    and from a CUDA graph."""
    if lib.is_st:
        return [(False, False)] + ([(False, True)] if args.graphs and lib.cuda else [])
    return [(False, False)] + ([(True, False)] if args.compile else [])


def add_training_row(table, args, libs, name, unit, figures, **row):
    """figures: {(library, compiled, graphed): value}; SpiralTorch's column is its graphed figure
    where there is one, and the note gives the eager one."""
    eager_st = figures.get(("st", False, False))
    ours = figures.get(("st", False, True), eager_st)
    notes = [compile_note(libs, args), row.pop("note", "")]
    if ("st", False, True) in figures:
        notes.insert(0, f"SpiralTorch eager (no graph): {Table.fmt(eager_st)} {unit}")
    table.add(name, unit, ours, figures.get(("torch", False, False)),
              figures.get(("torch", True, False)), note="; ".join(filter(None, notes)), **row)


def bench_mlp(libs, table, args, rates):
    batch, sizes = 128, [784, 512, 512, 10]
    flop = 6 * batch * sum(a * b for a, b in zip(sizes, sizes[1:]))
    floor = flop / (rates.get("f32", 0) * 1e12) * 1e3 if rates.get("f32") else None
    figures = {}
    for lib in libs:
        nn, F = lib.mod.nn, lib.mod.nn.functional
        for compiled, graphed in variants(lib, args):
            layers = [nn.Linear(a, b) for a, b in zip(sizes, sizes[1:])]
            model = nn.Sequential(layers[0], nn.ReLU(), layers[1], nn.ReLU(), layers[2])
            model = model.to(lib.device)
            kwargs = {} if lib.is_st else {"fused": True}
            opt = lib.mod.optim.Adam(model.parameters(), lr=1e-3, **kwargs)
            forward = torch.compile(model) if compiled else model
            x, y = lib.randn(batch, sizes[0]), lib.randint(10, (batch,))

            def train(x, y):
                loss = F.cross_entropy(forward(x), y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                return loss

            run = st.cuda.capture_step(train) if graphed else train
            figures[lib.key, compiled, graphed] = train_ms(
                lib, lambda: run(x, y), samples=20, warmup=10 if compiled else 3)
    add_training_row(table, args, libs, "MLP 784-512-512-10 b128 Adam step", "ms", figures,
                     higher=False, floor=floor, target=("at most", 0.7))


def make_gpt(lib, vocab, d, heads, layers, context):
    """The same GPT in either library: pre-norm blocks of causal attention (fused scaled dot
    product attention) and a 4x GELU MLP, learned positions, an untied head."""
    nn, F = lib.mod.nn, lib.mod.nn.functional

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
            self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
            self.fc, self.out = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)

        def forward(self, x):
            b, t, _ = x.shape
            q, k, v = (z.view(b, t, heads, d // heads).transpose(1, 2)
                       for z in self.qkv(self.ln1(x)).split(d, 2))
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            x = x + self.proj(y.transpose(1, 2).reshape(b, t, d))
            return x + self.out(F.gelu(self.fc(self.ln2(x)), approximate="tanh"))

    class GPT(nn.Module):
        def __init__(self):
            super().__init__()
            self.tok, self.pos = nn.Embedding(vocab, d), nn.Embedding(context, d)
            self.blocks = nn.ModuleList([Block() for _ in range(layers)])
            self.ln = nn.LayerNorm(d)
            self.head = nn.Linear(d, vocab, bias=False)

        def forward(self, idx):
            t = idx.shape[1]
            x = self.tok(idx) + self.pos(lib.mod.arange(t, device=lib.device))
            for block in self.blocks:
                x = block(x)
            return self.head(self.ln(x))

    return GPT().to(lib.device)


# The GPT shapes of the targets, and small stand-ins that check the script quickly.
GPT_SMALL = dict(vocab=256, d=384, heads=6, layers=6, context=256, batch=32)
GPT2_SMALL = dict(vocab=50304, d=768, heads=12, layers=12, context=1024, batch=16)
GPT_QUICK = dict(vocab=256, d=64, heads=2, layers=2, context=64, batch=4)
GPT2_QUICK = dict(vocab=512, d=128, heads=4, layers=2, context=128, batch=2)


def gpt_flop(vocab, d, layers, context, tokens):
    """Forward + backward FLOPs: 6 per parameter of the GEMMs per token, plus attention."""
    gemm_params = layers * 12 * d * d + d * vocab
    return 6 * gemm_params * tokens + layers * 12 * d * context * tokens


def gpt_step(lib, vocab, d, heads, layers, context, batch, autocast, compiled=False, wrap=None,
             data=None, graphed=False):
    """One training step of the GPT (AdamW, fused on the PyTorch side) on rotating random data, as
    a function, and a list that holds the last step's loss tensor. `graphed` replays SpiralTorch's
    step from a CUDA graph (one micro-batch a step). For bench/ddp_vs_torch.py: `wrap(model)` gives
    the module that runs forward (DistributedDataParallel), and `data`, one list of (input,
    target) micro-batches per step, replaces the random data; the gradients of a step's
    micro-batches add up before the update (the loss is their mean)."""
    lib.mod.manual_seed(0)
    model = make_gpt(lib, vocab, d, heads, layers, context)
    kwargs = {} if lib.is_st else {"fused": True}
    opt = lib.mod.optim.AdamW(model.parameters(), lr=3e-4, betas=(0.9, 0.95), weight_decay=0.1,
                              **kwargs)
    forward = wrap(model) if wrap else model
    F = lib.mod.nn.functional
    if data is None:
        data = [[(lib.randint(vocab, (batch, context)), lib.randint(vocab, (batch, context)))]
                for _ in range(4)]
    nxt = itertools.cycle(data).__next__
    last = []

    def micro_loss(idx, target_ids):
        # The loss inside the autocast scope, as PyTorch's mixed-precision recipe has it (autocast
        # computes cross_entropy in f32 from the bf16 logits), and compiled with the model, as
        # nanoGPT compiles its loss: torch.compile can then fuse the loss into its kernels.
        scope = (lib.mod.autocast(device_type="cuda", dtype=lib.mod.bfloat16) if autocast
                 else contextlib.nullcontext())
        with scope:
            return F.cross_entropy(forward(idx).view(-1, vocab), target_ids.view(-1))

    micro_loss = torch.compile(micro_loss) if compiled else micro_loss

    def train(idx, target_ids):
        loss = micro_loss(idx, target_ids)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss

    if graphed:
        train = st.cuda.capture_step(train)

    def step():
        micro = nxt()
        if len(micro) == 1:
            loss = train(*micro[0])
        else:
            opt.zero_grad(set_to_none=True)
            loss = None
            for idx, target_ids in micro:
                part = micro_loss(idx, target_ids) / len(micro)
                part.backward()
                loss = part.detach() if loss is None else loss + part.detach()
            opt.step()
        last[:] = [loss]

    return step, last


def bench_gpt(libs, table, args, rates, name, autocast, target, **shape):
    tokens = shape["batch"] * shape["context"]
    rate = rates.get("bf16" if autocast else "f32")
    flop = gpt_flop(shape["vocab"], shape["d"], shape["layers"], shape["context"], tokens)
    floor = tokens / (flop / (rate * 1e12)) if rate else None
    figures, losses = {}, []
    for lib in libs:
        for compiled, graphed in variants(lib, args):
            step, last = gpt_step(lib, **shape, autocast=autocast, compiled=compiled,
                                  graphed=graphed)
            ms = train_ms(lib, step, samples=3 if args.quick else 8, warmup=5 if compiled else 3,
                          inner=2)
            figures[lib.key, compiled, graphed] = tokens / (ms * 1e-3)
            losses.append(f"{last[0].item():.3f}")
            del step, last
    add_training_row(table, args, libs, name, "tokens/s", figures, floor=floor, target=target,
                     note="loss after the timed steps: " + " / ".join(losses))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, to check the script")
    parser.add_argument("--no-compile", dest="compile", action="store_false",
                        help="skip torch.compile (it compiles each model for a minute or so)")
    parser.add_argument("--device", default="cuda",
                        help="cuda (default), or cpu to check the script")
    parser.add_argument("--no-graphs", dest="graphs", action="store_false",
                        help="run SpiralTorch's training steps eagerly only, not also from a CUDA "
                        "graph")
    parser.add_argument("--results", help="a Markdown file to append the dated table to")
    parser.add_argument("--only", choices=["kernels", "training"],
                        help="only the kernel rows (GEMMs to per-op costs) or only the training "
                        "steps (their floors then need the GEMM rates and are left out)")
    args = parser.parse_args()

    libs = [Lib(st, args.device)]
    if torch is not None:
        libs.append(Lib(torch, args.device))
    cuda = args.device.startswith("cuda")
    st.manual_seed(0)
    if torch is not None:
        torch.manual_seed(0)
    if cuda:
        for lib in libs:
            lib.set_tf32(False)
    if torch is not None and cuda:
        props = torch.cuda.get_device_properties(0)
        device_text = f"{props.name}, {props.multi_processor_count} SMs, torch {torch.__version__}"
        l2 = props.L2_cache_size
    else:
        device_text = args.device + ("" if torch else ", PyTorch not importable")
        l2 = 60 << 20
    print(f"# {device_text}, spiraltorch {st.__version__}", flush=True)

    table = Table()
    rates = {}
    if args.only != "training":
        rates = bench_gemm(libs, table, args, l2) if cuda else {}
        bandwidth = bench_memory(libs, table, args)
        bench_rows(libs, table, args, bandwidth)
        if cuda:
            bench_overhead(libs, table)
    if args.only == "kernels":
        return finish(args, device_text, table)
    bench_mlp(libs, table, args, rates)
    small, big = (GPT_QUICK, GPT2_QUICK) if args.quick else (GPT_SMALL, GPT2_SMALL)
    for shape, autocast, target in [(small, False, ("ratio", 1.15)),
                                    (small, True, ("at least", 1.0e6)),
                                    (big, True, ("ratio", 1.0))]:
        name = "GPT {layers}L d{d} T{context} B{batch} V{vocab}".format(**shape)
        name += ", bf16 autocast" if autocast else ", f32 (no TF32)"
        bench_gpt(libs, table, args, rates, name, autocast, target, **shape)
    finish(args, device_text, table)


def finish(args, device_text, table):
    """Prints the dated table with its command and appends it to the results file."""
    command = "python3 " + " ".join(sys.argv)
    text = (f"\n### {datetime.date.today().isoformat()}: {device_text}\n\n"
            f"Command: `{command}`\n\n{table.markdown()}\n")
    print(text)
    if args.results:
        with open(args.results, "a") as f:
            f.write(text)


if __name__ == "__main__":
    main()
