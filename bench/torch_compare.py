"""Times in PyTorch the cases bench_cuda times in SpiralTorch, in the same run, and prints one table:
case, SpiralTorch, PyTorch, ratio (ours / theirs, higher is better).

    python3 bench/torch_compare.py build/bench/bench_cuda [--quick]

PyTorch runs eager with the same sizes and dtypes, TF32 off (as SpiralTorch's default), and the
same timing method: warm-up, five repetitions of a loop between synchronizations, the median.
"""

import statistics
import subprocess
import sys
import time

import torch


def median_seconds(body, iters):
    for _ in range(2):
        body()
    torch.cuda.synchronize()
    reps = []
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(iters):
            body()
        torch.cuda.synchronize()
        reps.append((time.perf_counter() - t0) / iters)
    return statistics.median(reps)


def torch_cases(quick):
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.manual_seed(0)
    out = {}
    names = {torch.float32: "f32", torch.bfloat16: "bf16", torch.float16: "f16"}
    for n in [1024] if quick else [4096, 8192]:
        for dtype in names:
            a = torch.randn(n, n, dtype=dtype, device="cuda")
            b = torch.randn(n, n, dtype=dtype, device="cuda")
            s = median_seconds(lambda: a @ b, 5 if n >= 8192 else 20)
            tflops = 2.0 * n**3 / s / 1e12
            # PyTorch has one GEMM (cuBLAS); every path of ours is read against it.
            for path in ("cublaslt", "tiled", "tensorcore"):
                out[f"gemm_{path}_{names[dtype]}_{n}"] = tflops
    rows, cols = (1024, 4096) if quick else (16384, 4096)
    for dtype in (torch.float32, torch.bfloat16):
        item = torch.tensor([], dtype=dtype).element_size()
        n = rows * cols
        x = torch.randn(rows, cols, dtype=dtype, device="cuda")
        y = torch.randn(rows, cols, dtype=dtype, device="cuda")
        w = torch.randn(cols, dtype=dtype, device="cuda")
        bias = torch.randn(cols, dtype=dtype, device="cuda")
        cases = {
            "copy": (2 * n * item, lambda: x.clone()),
            "add": (3 * n * item, lambda: x + y),
            "sum": (n * item, lambda: x.sum()),
            "softmax": (2 * n * item, lambda: torch.softmax(x, -1)),
            "layer_norm": (2 * n * item, lambda: torch.nn.functional.layer_norm(x, (cols,), w, bias, 1e-5)),
        }
        for op, (nbytes, body) in cases.items():
            out[f"{op}_{names[dtype]}"] = nbytes / median_seconds(body, 20) / 1e9
    return out


def main():
    binary = sys.argv[1]
    quick = "--quick" in sys.argv
    ours_text = subprocess.run([binary] + (["--quick"] if quick else []), check=True,
                               capture_output=True, text=True).stdout
    ours = {}
    units = {}
    for line in ours_text.splitlines():
        parts = line.split()
        if len(parts) == 3:
            ours[parts[0]] = float(parts[1])
            units[parts[0]] = parts[2]
    theirs = torch_cases(quick)
    print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}")
    print(f"{'case':<28} {'SpiralTorch':>12} {'PyTorch':>10} {'ratio':>6}  unit")
    for name, value in ours.items():
        ref = theirs.get(name)
        ratio = f"{value / ref:6.2f}" if ref else "     -"
        ref_text = f"{ref:10.1f}" if ref else "         -"
        print(f"{name:<28} {value:12.1f} {ref_text} {ratio}  {units[name]}")


if __name__ == "__main__":
    main()
