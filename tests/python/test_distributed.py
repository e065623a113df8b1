"""st.distributed from Python: this file run by ``mpirun -n 2`` (the test below launches it) checks
the collectives against values computed from the rank numbers, the errors across ranks, and
DistributedDataParallel (with no_sync) against one process training on the whole batch, in
float64 against NumPy. Skipped where mpirun or the MPI process group is missing."""

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import spiraltorch as st


def _mpi_env():
    env = dict(os.environ)
    # Open MPI refuses root (CI runs as root) and more ranks than cores unless told; its
    # single-copy shared memory needs ptrace rights that containers often lack.
    env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMPI_MCA_rmaps_base_oversubscribe="1",
               OMPI_MCA_btl_vader_single_copy_mechanism="none", OMP_NUM_THREADS="1")
    return env


@pytest.mark.parametrize("ranks", [2, 3])
def test_under_mpirun(ranks):
    mpirun = shutil.which("mpirun") or shutil.which("mpiexec")
    if mpirun is None:
        pytest.skip("mpirun is not installed")
    probe = subprocess.run([sys.executable, "-c", "import spiraltorch.distributed as d; "
                            "d.init_process_group('mpi'); print(d.get_world_size())"],
                           capture_output=True, text=True, env=_mpi_env(), timeout=120)
    if probe.returncode != 0 and "no MPI" in probe.stderr:
        pytest.skip("this build of spiraltorch has no MPI process group")
    done = subprocess.run([mpirun, "-n", str(ranks), sys.executable, __file__],
                          capture_output=True, text=True, env=_mpi_env(), timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("all distributed checks passed") == ranks, done.stdout


# ------------------------------------------------------------------------------------------------
# What each rank runs.


def values(t):
    return np.array(t.tolist(), dtype=np.float64)


def rank_input(r, n):
    return np.array([(i * 7 + r * 3) % 5 + r - 2 for i in range(n)], dtype=np.float64)


def check_collectives(dist, rank, world):
    inputs = [rank_input(r, 12) for r in range(world)]
    for dtype in (st.float32, st.float64, st.bfloat16, st.int64):
        t = st.tensor(inputs[rank].tolist(), dtype=dtype)
        dist.all_reduce(t)
        assert np.allclose(values(t), sum(inputs), atol=1e-2), dtype
        t = st.tensor(inputs[rank].tolist(), dtype=dtype)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        assert np.allclose(values(t), np.max(inputs, axis=0)), dtype
    t = st.tensor(inputs[rank].tolist(), dtype=st.float64)
    work = dist.all_reduce(t, op=dist.ReduceOp.AVG, async_op=True)
    work.wait()
    assert work.is_completed()
    assert np.allclose(values(t), np.mean(inputs, axis=0))

    t = st.tensor(inputs[rank].tolist())
    dist.broadcast(t, src=world - 1)
    assert np.array_equal(values(t), inputs[world - 1])

    gathered = [st.zeros(12) for _ in range(world)]
    dist.all_gather(gathered, st.tensor(inputs[rank].tolist()))
    for r in range(world):
        assert np.array_equal(values(gathered[r]), inputs[r])
    out = st.zeros(world * 12, dtype=st.float64)
    dist.all_gather_into_tensor(out, st.tensor(inputs[rank].tolist(), dtype=st.float64))
    assert np.array_equal(values(out), np.concatenate(inputs))

    whole = [rank_input(r, world * 4) for r in range(world)]
    out = st.zeros(4, dtype=st.float64)
    dist.reduce_scatter_tensor(out, st.tensor(whole[rank].tolist(), dtype=st.float64))
    assert np.allclose(values(out), sum(whole)[rank * 4:(rank + 1) * 4])
    dist.barrier()


def check_errors(dist, rank, world):
    with pytest.raises(st.ShapeError, match=r"\[all_reduce\].*different shapes"):
        dist.all_reduce(st.zeros(3 if rank == 0 else 4))
    with pytest.raises(dist.DistributedError, match="different dtypes"):
        dist.broadcast(st.zeros(4, dtype=st.float64 if rank == 0 else st.float32))
    with pytest.raises(ValueError, match="contiguous"):
        dist.all_reduce(st.zeros(3, 4).T)
    assert issubclass(dist.TimeoutError, TimeoutError)
    assert issubclass(dist.TimeoutError, st.SpiralTorchError)
    dist.set_timeout(0.3)
    if rank == 0:
        with pytest.raises(dist.TimeoutError, match=r"\[barrier\]"):
            dist.barrier()
    else:
        import time

        time.sleep(1.5)
        dist.barrier()  # matches rank 0's timed-out barrier
    dist.set_timeout(60)
    dist.barrier()


def make_model():
    st.manual_seed(3)
    model = st.nn.Sequential(st.nn.Linear(4, 8), st.nn.ReLU(), st.nn.Linear(8, 2))
    model.to(st.float64)
    return model


def check_ddp(dist, rank, world):
    rows, steps, micro = 4, 3, 2
    rng = np.random.default_rng(11)
    xs = rng.standard_normal((steps, world * rows, 4))
    ys = rng.standard_normal((steps, world * rows, 2))

    local = make_model()
    if rank != 0:  # DDP must start every rank from rank 0's parameters
        with st.no_grad():
            for p in local.parameters():
                p.add_(1.0)
    ddp = st.nn.parallel.DistributedDataParallel(local, bucket_cap_mb=100 / 2**20)
    assert ddp.reducer.bucket_count > 1
    opt = st.optim.SGD(ddp.parameters(), lr=0.1, momentum=0.9)
    single = make_model()
    single_opt = st.optim.SGD(single.parameters(), lr=0.1, momentum=0.9)

    def mse(model, x, y):
        d = model(st.tensor(x.tolist(), dtype=st.float64)) - st.tensor(y.tolist(), dtype=st.float64)
        return (d * d).mean()

    for s in range(steps):
        opt.zero_grad()
        mine = slice(rank * rows, (rank + 1) * rows)
        x, y = xs[s][mine], ys[s][mine]
        half = rows // micro
        with ddp.no_sync():
            (mse(ddp, x[:half], y[:half]) * 0.5).backward()
        (mse(ddp, x[half:], y[half:]) * 0.5).backward()
        opt.step()
        single_opt.zero_grad()
        mse(single, xs[s], ys[s]).backward()
        single_opt.step()
    for (name, a), (_, b) in zip(ddp.module.named_parameters(), single.named_parameters()):
        assert np.allclose(values(a), values(b), rtol=1e-10, atol=1e-12), name
    assert [n for n, _ in ddp.named_parameters()][0].startswith("module.")


def check_sampler(dist, rank, world):
    sampler = dist.DistributedSampler(10, shuffle=True, seed=4)
    sampler.set_epoch(1)
    shares = [dist.DistributedSampler(10, num_replicas=world, rank=r, seed=4) for r in range(world)]
    for s in shares:
        s.set_epoch(1)
    assert list(sampler) == list(shares[rank])
    covered = sorted(set(i for s in shares for i in s))
    assert covered == list(range(10))
    assert len(sampler) == -(-10 // world)


def main():
    import spiraltorch.distributed as dist

    dist.init_process_group("mpi", timeout=60)
    rank, world = dist.get_rank(), dist.get_world_size()
    check_collectives(dist, rank, world)
    check_errors(dist, rank, world)
    check_ddp(dist, rank, world)
    check_sampler(dist, rank, world)
    dist.destroy_process_group()
    print(f"rank {rank}: all distributed checks passed", flush=True)


if __name__ == "__main__":
    main()
