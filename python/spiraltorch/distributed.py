"""Data-parallel training over several processes, as torch.distributed.

Launch one process per rank with ``mpirun -n N python train.py`` (backend ``"mpi"``: CPU tensors;
``"nccl"``: CUDA tensors, one GPU per rank), or for NCCL without MPI with torchrun-style variables
(``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``) and ``ST_STORE_FILE`` naming a file every rank sees::

    import spiraltorch as st
    import spiraltorch.distributed as dist

    dist.init_process_group("mpi")
    model = st.nn.parallel.DistributedDataParallel(model)
    sampler = dist.DistributedSampler(len(data))

Each collective first checks that every rank passed the same kind of tensor (DistributedError,
ShapeError or DTypeError on every rank otherwise) and gives up after the group's timeout
(TimeoutError) instead of hanging.
"""

import datetime

from ._C import _distributed as _d

DistributedError = _d.DistributedError
TimeoutError = _d.TimeoutError  # noqa: A001 (also a subclass of the built-in TimeoutError)
ReduceOp = _d.ReduceOp
Work = _d.Work

is_initialized = _d.is_initialized
destroy_process_group = _d.destroy_process_group
abort = _d.abort
get_rank = _d.get_rank
get_world_size = _d.get_world_size
get_local_rank = _d.get_local_rank
get_backend = _d.get_backend
barrier = _d.barrier


def _as_timedelta(timeout):
    if isinstance(timeout, datetime.timedelta):
        return timeout
    return datetime.timedelta(seconds=float(timeout))


def init_process_group(backend="mpi", timeout=datetime.timedelta(minutes=5), store_file=None,
                       check_signatures=True):
    """Joins the process group. ``timeout`` (a timedelta or seconds) bounds every collective;
    ``store_file`` (or ST_STORE_FILE) hands NCCL's id to ranks not started by mpirun."""
    _d.init_process_group(backend, _as_timedelta(timeout), store_file or "", check_signatures)


def device():
    """The device of this rank's tensors: cpu for "mpi", cuda:LOCAL_RANK for "nccl"."""
    return _d.device()


def set_timeout(timeout):
    _d.set_timeout(_as_timedelta(timeout))


def _result(work, async_op):
    return work if async_op else None


def all_reduce(tensor, op=ReduceOp.SUM, async_op=False):
    """Reduces ``tensor`` over the ranks in place (SUM, AVG or MAX)."""
    return _result(_d.all_reduce(tensor, op, async_op), async_op)


def broadcast(tensor, src=0, async_op=False):
    """Rank ``src``'s values into ``tensor`` on every rank."""
    return _result(_d.broadcast(tensor, src, async_op), async_op)


def all_gather_into_tensor(output_tensor, input_tensor, async_op=False):
    """The ranks' inputs in rank order: output is [world * n, ...] or [world, *input.shape]."""
    return _result(_d.all_gather(output_tensor, input_tensor, async_op), async_op)


def all_gather(tensor_list, tensor, async_op=False):
    """Fills ``tensor_list`` (one tensor per rank, of ``tensor``'s shape) with the ranks' tensors.
    It has completed on return, also with ``async_op`` (the copies into the list need the data)."""
    world = get_world_size()
    if len(tensor_list) != world:
        raise ValueError(
            f"[all_gather] tensor_list has {len(tensor_list)} tensors for {world} ranks")
    from . import empty  # noqa: PLC0415 (the package has finished loading by the first call)

    gathered = empty([world, *tensor.shape], dtype=tensor.dtype, device=tensor.device)
    work = _d.all_gather(gathered, tensor.contiguous(), False)
    for r, out in enumerate(tensor_list):
        out.copy_(gathered[r])
    return _result(work, async_op)


def reduce_scatter_tensor(output, input, op=ReduceOp.SUM, async_op=False):  # noqa: A002
    """Reduces ``input`` ([world * n, ...] or [world, *output.shape]) and gives rank r block r."""
    return _result(_d.reduce_scatter(output, input, op, async_op), async_op)


class DistributedSampler:
    """The indices of a data set that this rank takes, as torch.utils.data.DistributedSampler: a
    permutation seeded by ``seed + epoch`` (the same on every rank), padded by wrapping around to
    a multiple of the world size (or cut to one with ``drop_last``), then every world-size-th index
    from the rank. Call ``set_epoch`` before each epoch for a new order."""

    def __init__(self, dataset, num_replicas=None, rank=None, shuffle=True, seed=0,
                 drop_last=False):
        self.size = dataset if isinstance(dataset, int) else len(dataset)
        self.num_replicas = get_world_size() if num_replicas is None else num_replicas
        self.rank = get_rank() if rank is None else rank
        self.shuffle, self.seed, self.drop_last, self.epoch = shuffle, seed, drop_last, 0

    def set_epoch(self, epoch):
        self.epoch = epoch

    def indices(self):
        return _d.sampler_indices(self.size, self.num_replicas, self.rank, self.shuffle, self.seed,
                                  self.drop_last, self.epoch)

    def __iter__(self):
        return iter(self.indices())

    def __len__(self):
        if self.drop_last:
            return self.size // self.num_replicas
        return -(-self.size // self.num_replicas)


__all__ = [
    "DistributedError",
    "DistributedSampler",
    "ReduceOp",
    "TimeoutError",
    "Work",
    "abort",
    "all_gather",
    "all_gather_into_tensor",
    "all_reduce",
    "barrier",
    "broadcast",
    "destroy_process_group",
    "device",
    "get_backend",
    "get_local_rank",
    "get_rank",
    "get_world_size",
    "init_process_group",
    "is_initialized",
    "reduce_scatter_tensor",
    "set_timeout",
]
