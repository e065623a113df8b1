"""PyTorch (cuBLAS, CUDA kernels) figures beside bench_vulkan's, same shapes and byte counts, run
right after it on the same GPU: GEMM f32 TFLOP/s (TF32 off), copy, add, softmax and layer_norm
GB/s."""
import torch

torch.backends.cuda.matmul.allow_tf32 = False


def best_seconds(reps, run):
    run()
    torch.cuda.synchronize()
    best = float("inf")
    for _ in range(3):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(reps):
            run()
        end.record()
        torch.cuda.synchronize()
        best = min(best, start.elapsed_time(end) / 1e3 / reps)
    return best


dev = "cuda"
for n in (1024, 4096):
    a, b = torch.randn(n, n, device=dev), torch.randn(n, n, device=dev)
    s = best_seconds(10, lambda: a @ b)
    print(f"torch gemm_f32 n={n}: {s * 1e3:.3f} ms, {2 * n ** 3 / s / 1e12:.2f} TFLOP/s")
numel = 1 << 26
x, y = torch.randn(numel, device=dev), torch.empty(numel, device=dev)
s = best_seconds(20, lambda: y.copy_(x))
print(f"torch copy_f32 256MiB: {s * 1e3:.3f} ms, {2 * numel * 4 / s / 1e9:.1f} GB/s (read + write)")
s = best_seconds(20, lambda: x + y)
gbs = 3 * numel * 4 / s / 1e9
print(f"torch add_f32 256MiB: {s * 1e3:.3f} ms, {gbs:.1f} GB/s (2 reads + write)")
xt = torch.randn(8192, 8192, device=dev)
s = best_seconds(10, lambda: xt.t().contiguous())
print(f"torch transpose_copy_f32 8192x8192: {s * 1e3:.3f} ms, {2 * 8192 * 8192 * 4 / s / 1e9:.1f} GB/s")
for cols in (1024, 8192):
    rows = numel // cols
    x = torch.randn(rows, cols, device=dev)
    s = best_seconds(10, lambda: torch.softmax(x, -1))
    print(f"torch softmax_f32 {rows}x{cols}: {s * 1e3:.3f} ms, {2 * rows * cols * 4 / s / 1e9:.1f} GB/s")
    s = best_seconds(10, lambda: torch.nn.functional.layer_norm(x, (cols,)))
    print(f"torch layer_norm_f32 {rows}x{cols}: {s * 1e3:.3f} ms, {2 * rows * cols * 4 / s / 1e9:.1f} GB/s")
