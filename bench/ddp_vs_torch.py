"""Data-parallel training, SpiralTorch or PyTorch, one process per GPU: the all-reduce bus
bandwidth of a 256 MiB f32 tensor, the training throughput of the GPT-2-small shape under
DistributedDataParallel, and the loss after the timed steps, written by rank 0 as one JSON line.
bench/multi_gpu.sh runs it on one GPU and on all of them for both libraries and prints the table
(`--report`).

    # one rank per GPU with torchrun's variables; SpiralTorch's NCCL id goes through ST_STORE_FILE
    RANK=0 LOCAL_RANK=0 WORLD_SIZE=2 ST_STORE_FILE=/tmp/id python3 bench/ddp_vs_torch.py --lib st &
    RANK=1 LOCAL_RANK=1 WORLD_SIZE=2 ST_STORE_FILE=/tmp/id python3 bench/ddp_vs_torch.py --lib st
    # CPU ranks over MPI, to check the script
    mpirun -n 2 python3 bench/ddp_vs_torch.py --lib st --device cpu --quick --json out.jsonl

One library per process (`--lib st` or `--lib torch`): the two would load two NCCLs into one
process. The model, its training step and the timing helpers are bench/cuda_vs_torch.py's.

How it measures. All-reduce: the sum of a 256 MiB f32 tensor in place, checked once against the
rank numbers, then timed with CUDA events around each call after a warm-up; the median per rank,
the slowest rank's median as the time (nccl-tests' accounting: algbw = bytes / time, busbw =
algbw * 2(n-1)/n, GB = 1e9 bytes). SpiralTorch's call returns once the collective is done (its
host waits), PyTorch's once its stream waits; both are timed on the caller's stream. Training: the
GPT of cuda_vs_torch.py (AdamW, bf16 autocast on CUDA, plain f32 on CPU) on this rank's share of
every global batch, wrapped in each library's DistributedDataParallel with the same bucket size
when there are several ranks (one rank trains the plain model, so scaling efficiency charges DDP
with all its cost); the step time is the slowest rank's median over the timed steps, tokens/s
counts the tokens of all ranks. Loss: the mean over the ranks of the last step's loss; with
`--accum K` one rank takes K micro-batches per step and adds their gradients (gradient
accumulation), so one GPU can compute what K GPUs do on the same global batch, which is how
multi_gpu.sh checks the loss. The token ids come from Python's seeded generator, the same for
both libraries and for any split of the global batch.
"""

import argparse
import datetime
import gc
import json
import os
import random
import sys
import tempfile


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lib", choices=["st", "torch"], default="st",
                        help="the library to measure in this process (default st)")
    parser.add_argument("--device", default="cuda",
                        help="cuda (default: NCCL, one GPU per rank), or cpu to check the script")
    parser.add_argument("--backend",
                        help="the process group's backend (default nccl on CUDA; on CPU mpi for "
                             "SpiralTorch, gloo for PyTorch)")
    parser.add_argument("--quick", action="store_true", help="small shapes, to check the script")
    parser.add_argument("--batch", type=int,
                        help="sequences per GPU and micro-batch (default 16 at T=1024, which "
                             "bench/cuda_vs_torch.py trains on one H200; 2 with --quick)")
    parser.add_argument("--accum", type=int, default=1,
                        help="micro-batches per step on a single rank (gradient accumulation)")
    parser.add_argument("--bucket-mb", type=float, default=25,
                        help="DDP's gradient bucket size for both libraries (default 25)")
    parser.add_argument("--allreduce-mb", type=float,
                        help="the all-reduce tensor in MiB (default 256; 4 with --quick)")
    parser.add_argument("--warmup", type=int, help="untimed training steps first (default 3)")
    parser.add_argument("--samples", type=int, help="timed samples (default 10; 3 with --quick)")
    parser.add_argument("--inner", type=int, help="training steps per sample (default 2)")
    parser.add_argument("--precision", choices=["bf16", "f32"],
                        help="bf16 autocast (default on CUDA) or plain f32 (default on CPU)")
    parser.add_argument("--no-check-signatures", dest="check_signatures", action="store_false",
                        help="SpiralTorch: skip the signature exchange before each collective "
                             "(DDP's buckets never have one)")
    parser.add_argument("--json", help="rank 0 appends its results here as one JSON line")
    parser.add_argument("--report", metavar="JSONL",
                        help="no measurement: print the table of the runs in JSONL")
    parser.add_argument("--results", help="with --report: a Markdown file to append the table to")
    parser.add_argument("--command", help="with --report: the command to name in the table")
    parser.add_argument("--machine", help="with --report: the machine to name in the table")
    parser.add_argument("--loss-rtol", type=float,
                        help="with --report: the loss check's relative tolerance (default 1e-4 in "
                             "f32, 2e-3 under bf16 autocast)")
    args = parser.parse_args(argv)
    quick = args.quick
    for name, full, small in [("allreduce_mb", 256, 4), ("warmup", 3, 2), ("samples", 10, 3),
                              ("inner", 2, 1)]:
        if getattr(args, name) is None:
            setattr(args, name, small if quick else full)
    if args.precision is None:
        args.precision = "bf16" if args.device.startswith("cuda") else "f32"
    if args.backend is None:
        cuda = args.device.startswith("cuda")
        args.backend = "nccl" if cuda else ("mpi" if args.lib == "st" else "gloo")
    if args.accum < 1:
        parser.error("--accum must be at least 1")
    if args.precision == "bf16" and not args.device.startswith("cuda"):
        parser.error("--precision bf16 is CUDA's autocast (cuda_vs_torch.gpt_step): use f32 on CPU")
    return args


# ---------------------------------------------------------------------------------------------
# The process group of either library, behind one small interface.


def env_int(*names, default):
    """The first of the variables that is set: torchrun's, then Open MPI's."""
    for name in names:
        if os.environ.get(name):
            return int(os.environ[name])
    return default


class Group:
    """What both libraries' process groups share: `mod` the library, `dist` its distributed
    module, `world` and `device` set by the subclass."""

    def all_reduce(self, x):
        self.dist.all_reduce(x)

    def reduce(self, values, op):
        """Python floats, reduced over the ranks: "max" or "mean" (a sum divided here: gloo has no
        AVG)."""
        t = self.mod.tensor(values, dtype=self.mod.float64, device=self.device)
        self.dist.all_reduce(t, self.dist.ReduceOp.MAX if op == "max" else self.dist.ReduceOp.SUM)
        return [v / (1 if op == "max" else self.world) for v in t.tolist()]

    def close(self):
        self.dist.destroy_process_group()


class StGroup(Group):
    def __init__(self, st, args):
        import spiraltorch.distributed as dist

        self.mod, self.dist = st, dist
        dist.init_process_group(args.backend, check_signatures=args.check_signatures)
        self.rank, self.world = dist.get_rank(), dist.get_world_size()
        self.local_rank = dist.get_local_rank()
        self.device = str(dist.device())

    def wrap(self, bucket_mb):
        return lambda model: self.mod.nn.parallel.DistributedDataParallel(
            model, bucket_cap_mb=bucket_mb)


class TorchGroup(Group):
    def __init__(self, torch, args):
        import torch.distributed as dist

        self.mod, self.dist = torch, dist
        self.rank = env_int("RANK", "OMPI_COMM_WORLD_RANK", default=0)
        self.world = env_int("WORLD_SIZE", "OMPI_COMM_WORLD_SIZE", default=1)
        self.local_rank = env_int("LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_RANK", default=self.rank)
        if args.device.startswith("cuda"):
            torch.cuda.set_device(self.local_rank)
            self.device = f"cuda:{self.local_rank}"
        else:
            self.device = "cpu"
        if os.environ.get("MASTER_ADDR"):
            init = "env://"
        else:
            # The store file that SpiralTorch's NCCL id uses serves PyTorch's FileStore too.
            path = os.environ.get("ST_STORE_FILE")
            if not path:
                if self.world > 1:
                    sys.exit("[ddp_vs_torch] several ranks need MASTER_ADDR/MASTER_PORT or "
                             "ST_STORE_FILE (a fresh path every rank sees)")
                path = os.path.join(tempfile.gettempdir(), f"ddp_vs_torch-{os.getpid()}.store")
            init = "file://" + os.path.abspath(path)
        dist.init_process_group(args.backend, init_method=init, rank=self.rank,
                                world_size=self.world)

    def wrap(self, bucket_mb):
        ids = [self.local_rank] if self.device.startswith("cuda") else None
        return lambda model: self.mod.nn.parallel.DistributedDataParallel(
            model, device_ids=ids, bucket_cap_mb=bucket_mb)


# ---------------------------------------------------------------------------------------------
# The measurements.


def rank_lib(cvt, mod, device):
    """cuda_vs_torch.Lib on this rank's device. SpiralTorch has no current device: its events
    and synchronize name the device, which the base class leaves at cuda:0."""

    class RankLib(cvt.Lib):
        def __init__(self):
            super().__init__(mod, device)
            self.index = int(device.partition(":")[2] or 0)

        def sync(self):
            if self.cuda:
                self.mod.cuda.synchronize(self.index)

        def event(self):
            return cvt.st.cuda.Event(self.index) if self.is_st else super().event()

    return RankLib()


def bench_all_reduce(cvt, lib, group, args):
    n = int(args.allreduce_mb * 2**20) // 4
    nbytes = 4 * n
    x = lib.mod.full((n,), float(group.rank + 1), dtype=lib.mod.float32, device=lib.device)
    group.all_reduce(x)
    expected = group.world * (group.world + 1) / 2
    lo, hi = x.min().item(), x.max().item()
    if lo != expected or hi != expected:
        raise SystemExit(f"[ddp_vs_torch] all_reduce gave values in [{lo}, {hi}] on rank "
                         f"{group.rank}, expected {expected}")
    # Zeros stay zeros over the many timed sums; NCCL's speed does not depend on the values.
    x = lib.mod.zeros(n, dtype=lib.mod.float32, device=lib.device)
    ms = cvt.gpu_ms(lib, lambda: group.all_reduce(x), samples=10 if args.quick else 50,
                    warmup=2 if args.quick else 5)
    (ms,) = group.reduce([ms], "max")
    algbw = nbytes / (ms * 1e-3) / cvt.GB
    busbw = algbw * 2 * (group.world - 1) / group.world
    return dict(bytes=nbytes, ms=ms, algbw_GBps=algbw, busbw_GBps=busbw, checked=True)


def global_batches(shape, parts, count=4, seed=1234):
    """`count` global batches of `parts` micro-batches, each [batch, context] token ids and as
    many targets, as Python lists: the same for any split of a global batch."""
    rng = random.Random(seed)
    b, t, v = shape["batch"], shape["context"], shape["vocab"]

    def rows():
        return [[rng.randrange(v) for _ in range(t)] for _ in range(b)]

    return [[(rows(), rows()) for _ in range(parts)] for _ in range(count)]


def bench_gpt(cvt, lib, group, args, shape):
    parts = group.world * args.accum
    mine = slice(group.rank * args.accum, (group.rank + 1) * args.accum)

    def to(rows):
        return lib.mod.tensor(rows, dtype=lib.mod.int64, device=lib.device)

    data = [[(to(idx), to(tgt)) for idx, tgt in batch[mine]]
            for batch in global_batches(shape, parts)]
    ddp = group.world > 1
    step, last = cvt.gpt_step(lib, **shape, autocast=args.precision == "bf16",
                              wrap=group.wrap(args.bucket_mb) if ddp else None, data=data)
    first = []

    def timed_step():
        step()
        if not first:
            first.append(last[0])

    ms = cvt.train_ms(lib, timed_step, samples=args.samples, warmup=args.warmup,
                      inner=args.inner)
    (ms,) = group.reduce([ms], "max")
    loss_first, loss_last = group.reduce([first[0].item(), last[0].item()], "mean")
    tokens = parts * shape["batch"] * shape["context"]
    return dict(shape={k: v for k, v in shape.items() if k != "batch"}, batch=shape["batch"],
                accum=args.accum, global_batch=parts * shape["batch"], ddp=ddp,
                bucket_mb=args.bucket_mb if ddp else None, precision=args.precision,
                step_ms=ms, tokens_per_s=tokens / (ms * 1e-3),
                steps=args.warmup + args.samples * args.inner, loss_first=loss_first,
                loss_last=loss_last)


def write(args, record):
    line = json.dumps(record)
    print(line, flush=True)
    if args.json:
        with open(args.json, "a") as f:
            f.write(line + "\n")


def measure(args):
    record = dict(lib=args.lib, date=datetime.datetime.now(datetime.timezone.utc).isoformat(
        timespec="seconds"), device=args.device.split(":")[0], backend=args.backend,
        command="python3 " + " ".join(sys.argv))
    if args.lib == "st":
        # Keeps PyTorch, and with it a second NCCL, out of this process.
        sys.modules["torch"] = None
    else:
        try:
            import torch  # noqa: F401 (imported before spiraltorch, as cuda_vs_torch.py does)
        except ImportError as e:
            # Only the launching rank speaks; the others end quietly.
            if env_int("RANK", "OMPI_COMM_WORLD_RANK", default=0) == 0:
                print(f"# PyTorch is absent ({e}): nothing measured for --lib torch", flush=True)
                write(args, dict(record, name="PyTorch", absent=str(e),
                                 world=env_int("WORLD_SIZE", "OMPI_COMM_WORLD_SIZE", default=1)))
            return
    import cuda_vs_torch as cvt

    mod = cvt.st if args.lib == "st" else cvt.torch
    group = StGroup(mod, args) if args.lib == "st" else TorchGroup(mod, args)
    if args.accum > 1 and group.world > 1:
        sys.exit("[ddp_vs_torch] --accum is for a single rank (DDP's no_sync is not used here)")
    lib = rank_lib(cvt, mod, group.device)
    if lib.cuda:
        lib.set_tf32(False)
    shape = dict(cvt.GPT2_QUICK if args.quick else cvt.GPT2_SMALL)
    if args.batch:
        shape["batch"] = args.batch
    version = mod.__version__
    if group.rank == 0:
        print(f"# {lib.name} {version}, {group.world} rank(s) on {args.device} over "
              f"{args.backend}", flush=True)
    record.update(name=lib.name, version=version, world=group.world)
    if lib.cuda and args.lib == "torch":
        record["gpu"] = mod.cuda.get_device_name(lib.index)
    record["allreduce"] = bench_all_reduce(cvt, lib, group, args)
    if group.rank == 0:
        a = record["allreduce"]
        print(f"  all_reduce {a['bytes'] / 2**20:.0f} MiB f32: {a['ms']:.3f} ms, algbw "
              f"{a['algbw_GBps']:.1f} GB/s, busbw {a['busbw_GBps']:.1f} GB/s", flush=True)
    record["gpt"] = bench_gpt(cvt, lib, group, args, shape)
    if group.rank == 0:
        g = record["gpt"]
        print(f"  GPT {shape['layers']}L d{shape['d']} T{shape['context']}, {g['batch']} "
              f"sequences per micro-batch x {g['accum']} per rank, global batch "
              f"{g['global_batch']}: {g['step_ms']:.1f} ms per step, "
              f"{g['tokens_per_s']:.0f} tokens/s, loss {g['loss_first']:.5f} -> "
              f"{g['loss_last']:.5f} after {g['steps']} steps", flush=True)
        write(args, record)
    # The DDP module, held in cycles, goes before the process group: PyTorch (2.15, gloo) aborted
    # at exit now and then when the group went first.
    gc.collect()
    group.close()


# ---------------------------------------------------------------------------------------------
# The table of a driver's runs (no library needed).


def fmt(v, digits=3):
    if v is None:
        return "-"
    return f"{v:.{digits}g}" if abs(v) < 1000 else f"{v:.0f}"


def report(args):
    runs = [json.loads(line) for line in open(args.report) if line.strip()]
    absent = {r["name"]: r["absent"] for r in runs if r.get("absent")}
    runs = [r for r in runs if not r.get("absent")]
    # The last run of each configuration counts.
    by = {(r["lib"], r["world"], r["gpt"]["accum"]): r for r in runs}
    worlds = sorted({w for _, w, a in by if a == 1})
    n = max(worlds) if worlds else 1

    def tps(lib, w, a=1):
        return by[(lib, w, a)]["gpt"]["tokens_per_s"] if (lib, w, a) in by else None

    head = ["library", "GPUs", "sequences per GPU x accum", "global batch", "tokens/s",
            "scaling efficiency", "ratio to PyTorch", "all-reduce busbw GB/s",
            "loss after the steps"]
    rows = []
    for (lib, w, a), r in sorted(by.items(), key=lambda kv: (kv[0][0] != "st", kv[0][2], kv[0][1])):
        g, ar = r["gpt"], r["allreduce"]
        ours = g["tokens_per_s"]
        one = tps(lib, 1)
        eff = ours / (w * one) if a == 1 and w > 1 and one else None
        theirs = tps("torch", w, a)
        ratio = ours / theirs if lib == "st" and theirs else None
        rows.append([r["name"], str(w), f"{g['batch']} x {a}", str(g["global_batch"]), fmt(ours),
                     "-" if eff is None else f"{eff:.3f}", "-" if ratio is None else f"{ratio:.2f}",
                     fmt(ar["busbw_GBps"]) if w > 1 else "-",
                     f"{g['loss_last']:.5f} ({g['steps']} steps)"])
    for name, why in absent.items():
        rows.append([name, "-", "-", "-", "-", "-", "-", "-", f"not measured: {why}"])

    notes, bad = [], False
    for lib in ("st", "torch"):
        multi, single = by.get((lib, n, 1)), by.get((lib, 1, n))
        if n == 1 or multi is None:
            continue
        name = multi["name"]
        if single is None:
            notes.append(f"{name}: loss check not run (no 1-GPU run with --accum {n})")
            continue
        gm, gs = multi["gpt"], single["gpt"]
        rtol = args.loss_rtol or (1e-4 if gm["precision"] == "f32" else 2e-3)
        same = (gm["steps"] == gs["steps"] and gm["global_batch"] == gs["global_batch"]
                and gm["precision"] == gs["precision"])
        diff = abs(gm["loss_last"] - gs["loss_last"])
        rel = diff / abs(gs["loss_last"])
        verdict = ("not comparable (different steps, global batch or precision)" if not same
                   else "agrees" if rel <= rtol else "DIFFERS")
        bad = bad or verdict != "agrees"
        notes.append(f"{name} loss check, global batch {gm['global_batch']}, {gm['steps']} "
                     f"steps, {gm['precision']}: {n} GPUs {gm['loss_last']:.6f} vs 1 GPU with "
                     f"{n} accumulated micro-batches {gs['loss_last']:.6f}: relative difference "
                     f"{rel:.2e}, tolerance {rtol:.0e}: {verdict}")
    if n > 1:
        eff = {lib: (tps(lib, n) / (n * tps(lib, 1)) if tps(lib, n) and tps(lib, 1) else None)
               for lib in ("st", "torch")}
        if eff["st"] is not None:
            bar = [0.9] if n == 2 else []
            if eff["torch"] is not None:
                bar.append(eff["torch"])
            verdict = ("no target applies without PyTorch" if not bar
                       else "met" if all(eff["st"] >= b for b in bar) else "missed")
            notes.append(f"scaling efficiency on {n} GPUs: SpiralTorch {eff['st']:.3f}, PyTorch "
                         f"DDP {fmt(eff['torch'])} (target: >= 0.9 on 2 GPUs and >= PyTorch "
                         f"DDP's): {verdict}")
    else:
        notes.append("one rank only: scaling needs two or more")

    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    table = "\n".join(lines + [""] + [f"- {note}" for note in notes])
    print(table)
    if args.results:
        machine = f": {args.machine}" if args.machine else ""
        command = args.command or "python3 " + " ".join(sys.argv)
        text = (f"\n### {datetime.date.today().isoformat()}: data parallel{machine}\n\n"
                f"Command: `{command}`\n\n{table}\n")
        with open(args.results, "a") as f:
            f.write(text)
    return 1 if bad else 0


def main():
    args = parse_args()
    if args.report:
        sys.exit(report(args))
    else:
        measure(args)


if __name__ == "__main__":
    main()
