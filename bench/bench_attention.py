"""Fused causal attention, SpiralTorch beside PyTorch's flash backend, in one process on one GPU.

    PYTHONPATH=build-device/python python3 bench/bench_attention.py [--dtype bf16|f16] [--samples N]
        [--shape B,H,T,D] [--backend flash|cudnn]

For each shape (the GPT shapes of bench/RESULTS.md: B=32, H=6, T=256, D=64 and B=16, H=12, T=1024,
D=64) it times scaled_dot_product_attention(q, k, v, is_causal=True) forward, and forward plus
backward, with CUDA events: warm-up, then the median of several samples of a few calls each. It
prints milliseconds, TFLOP/s (the causal half of the 4 B H T^2 D forward FLOPs; backward 2.5x
that) and the ratio ours / PyTorch (higher is better). Inputs are random normal, [B, H, T, D].

Under Nsight Compute, one shape and few samples keep the profiled launches few, e.g.
    ncu -k regex:flash_backward_dq -c 1 --section SpeedOfLight python3 bench/bench_attention.py \
        --shape 16,12,1024,64 --samples 1
"""

import argparse
import statistics

# torch first: importing it after spiraltorch crashes (README, "Semantics worth knowing").
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

import spiraltorch as st

SHAPES = [(32, 6, 256, 64), (16, 12, 1024, 64)]


def median_ms(event, sync, fn, samples, inner=10, warmup=3):
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(samples):
        start, end = event(), event()
        start.record()
        for _ in range(inner):
            fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / inner)
    return statistics.median(times)


def spiraltorch_ms(shape, dtype, samples):
    B, H, T, D = shape
    dt = {"bf16": st.bfloat16, "f16": st.float16}[dtype]
    q, k, v = (st.randn(B, H, T, D, dtype=dt, device="cuda", requires_grad=True) for _ in range(3))
    grad = st.randn(B, H, T, D, dtype=dt, device="cuda")
    sdpa = st.nn.functional.scaled_dot_product_attention

    def forward():
        with st.no_grad():
            sdpa(q, k, v, is_causal=True)

    def forward_backward():
        sdpa(q, k, v, is_causal=True).backward(grad)

    event = lambda: st.cuda.Event()  # noqa: E731
    sync = st.cuda.synchronize
    return (median_ms(event, sync, forward, samples),
            median_ms(event, sync, forward_backward, samples))


def torch_ms(shape, dtype, samples, backend):
    B, H, T, D = shape
    dt = {"bf16": torch.bfloat16, "f16": torch.float16}[dtype]
    q, k, v = (torch.randn(B, H, T, D, dtype=dt, device="cuda", requires_grad=True) for _ in range(3))
    grad = torch.randn(B, H, T, D, dtype=dt, device="cuda")
    sdpa = torch.nn.functional.scaled_dot_product_attention

    def forward():
        with torch.no_grad():
            sdpa(q, k, v, is_causal=True)

    def forward_backward():
        sdpa(q, k, v, is_causal=True).backward(grad)

    event = lambda: torch.cuda.Event(enable_timing=True)  # noqa: E731
    with sdpa_kernel(backend):
        return (median_ms(event, torch.cuda.synchronize, forward, samples),
                median_ms(event, torch.cuda.synchronize, forward_backward, samples))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dtype", default="bf16", choices=["bf16", "f16"])
    parser.add_argument("--samples", type=int, default=15)
    parser.add_argument("--shape", help="one shape B,H,T,D instead of the GPT shapes")
    parser.add_argument("--backend", default="flash", choices=["flash", "cudnn"],
                        help="PyTorch's flash-attention kernels or cuDNN's")
    args = parser.parse_args()
    backend = {"flash": SDPBackend.FLASH_ATTENTION,
               "cudnn": SDPBackend.CUDNN_ATTENTION}[args.backend]
    shapes = [tuple(int(n) for n in args.shape.split(","))] if args.shape else SHAPES
    print(f"causal attention, {args.dtype}, {torch.cuda.get_device_name()}, "
          f"torch {torch.__version__}, PyTorch's {args.backend} kernels")
    print(f"{'shape B,H,T,D':<18}{'pass':<9}{'ours ms':>9}{'torch ms':>10}"
          f"{'ours TF/s':>11}{'torch TF/s':>12}{'ratio':>7}")
    for shape in shapes:
        B, H, T, D = shape
        forward_flop = 4 * B * H * T * T * D / 2
        ours = spiraltorch_ms(shape, args.dtype, args.samples)
        theirs = torch_ms(shape, args.dtype, args.samples, backend)
        for name, flop, o, t in (("fwd", forward_flop, ours[0], theirs[0]),
                                 ("fwd+bwd", 3.5 * forward_flop, ours[1], theirs[1])):
            print(f"{','.join(map(str, shape)):<18}{name:<9}{o:>9.3f}{t:>10.3f}"
                  f"{flop / o / 1e9:>11.1f}{flop / t / 1e9:>12.1f}{t / o:>7.2f}")


if __name__ == "__main__":
    main()
