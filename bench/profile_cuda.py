"""Where a CUDA workload spends its time, kernel by kernel, SpiralTorch beside PyTorch.

    python3 bench/profile_cuda.py [--workload gpt2|gpt-f32|gpt-bf16|tiny|copies] [--steps 3] [--top 25]
                                  [--full-names]

Both libraries run the same workload as bench/cuda_vs_torch.py under PyTorch's profiler, which
records every kernel and CUDA runtime call of the process through CUPTI, SpiralTorch's too. For
each library it prints the wall time per step, the GPU time its kernels and copies add up to per
step (when the two are close the step is bound by the GPU, otherwise by the host), and the kernels
and runtime calls that take the most time, per step. Needs PyTorch with CUDA.
"""

import argparse
import collections
import re
import time

import torch
from torch.profiler import DeviceType, ProfilerActivity, profile

import spiraltorch as st
from cuda_vs_torch import GPT2_QUICK, GPT2_SMALL, GPT_QUICK, GPT_SMALL, Lib, gpt_step

WORKLOADS = {"gpt2": (GPT2_SMALL, GPT2_QUICK, True), "gpt-bf16": (GPT_SMALL, GPT_QUICK, True),
             "gpt-f32": (GPT_SMALL, GPT_QUICK, False)}


def short_name(name):
    """A kernel's name without its template arguments and parameter list, where that leaves
    something; the namespaces are dropped too."""
    name = name.replace("(anonymous namespace)::", "")
    base = re.split(r"[<(]", name, maxsplit=1)[0].strip() or name
    base = base.split("::")[-1]
    if base.startswith("void "):
        base = base[5:]
    return base[:70]


def workload(lib, args):
    if args.workload == "tiny":
        a, b = lib.randn(4), lib.randn(4)
        return lambda: [a + b for _ in range(100)]
    if args.workload == "copies":  # the layout changes around attention in a GPT-2-small block
        x = lib.randn(16, 12, 1024, 64, dtype="bfloat16")
        parts = [lib.randn(16, 1024, 768, dtype="bfloat16") for _ in range(3)]
        return lambda: (x.transpose(1, 2).contiguous(), lib.mod.cat(parts, 2))
    shape, quick, autocast = WORKLOADS[args.workload]
    step, _ = gpt_step(lib, **(quick if args.quick else shape), autocast=autocast)
    return step


def profile_one(lib, args):
    fn = workload(lib, args)
    for _ in range(3):
        fn()
    lib.sync()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        t0 = time.perf_counter()
        for _ in range(args.steps):
            fn()
        lib.sync()
        wall = (time.perf_counter() - t0) / args.steps * 1e3
    gpu = collections.defaultdict(lambda: [0.0, 0, 0.0])  # us per step, calls per step, longest
    host = collections.defaultdict(lambda: [0.0, 0, 0.0])
    for e in prof.events():
        bucket = gpu if e.device_type == DeviceType.CUDA else host
        if bucket is host and not e.name.startswith("cuda"):
            continue  # PyTorch's own operator spans; the runtime calls are what both share
        entry = bucket[e.name if bucket is host or args.full_names else short_name(e.name)]
        us = e.time_range.elapsed_us()
        entry[0] += us / args.steps
        entry[1] += 1 / args.steps
        entry[2] = max(entry[2], us)
    busy = sum(v[0] for v in gpu.values()) / 1e3
    print(f"\n## {lib.name}: {wall:.3f} ms per step wall, {busy:.3f} ms of kernels and copies "
          f"({sum(v[1] for v in gpu.values()):.0f} per step)")
    for title, bucket in (("GPU", gpu), ("host: CUDA runtime calls", host)):
        print(f"{title:<72} {'ms/step':>9} {'share':>6} {'calls':>7} {'max us':>8}")
        total = sum(v[0] for v in bucket.values()) or 1.0
        for name, (us, calls, longest) in sorted(bucket.items(), key=lambda kv: -kv[1][0])[:args.top]:
            print(f"  {name[:400]:<70} {us / 1e3:9.3f} {us / total:6.1%} {calls:7.1f} {longest:8.0f}")
    return wall


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workload", choices=sorted(WORKLOADS) + ["tiny", "copies"], default="gpt2")
    parser.add_argument("--steps", type=int, default=3, help="profiled steps (after 3 warm-up)")
    parser.add_argument("--top", type=int, default=25, help="rows per table")
    parser.add_argument("--quick", action="store_true", help="the small stand-in shapes")
    parser.add_argument("--full-names", action="store_true",
                        help="kernels with their template arguments (which elementwise op, which dtypes)")
    args = parser.parse_args()
    libs = [Lib(st, "cuda"), Lib(torch, "cuda")]
    for lib in libs:
        lib.set_tf32(False)
    print(f"# {args.workload}: {torch.cuda.get_device_name()}, torch {torch.__version__}, "
          f"spiraltorch {st.__version__}")
    walls = [profile_one(lib, args) for lib in libs]
    print(f"\nwall time per step, PyTorch / SpiralTorch: {walls[1] / walls[0]:.2f}")


if __name__ == "__main__":
    main()
