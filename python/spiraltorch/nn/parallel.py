"""Data parallelism, as torch.nn.parallel."""

import contextlib

from .. import distributed as _dist
from .module import Module


class DistributedDataParallel(Module):
    """Wraps ``module`` for data-parallel training: at construction every rank checks that the
    modules agree in parameter names, shapes and dtypes and takes rank 0's parameters (and
    buffers); each backward then averages the gradients over the ranks, in buckets of about
    ``bucket_cap_mb`` started as soon as their gradients are ready, while backward goes on.
    ``no_sync()`` accumulates local gradients only (gradient accumulation); the next backward
    outside it averages the sums. Parameters are named ``module.<name>``."""

    def __init__(self, module, bucket_cap_mb=25, broadcast_buffers=True):
        super().__init__()
        self.module = module
        named = list(module.named_parameters())
        if broadcast_buffers:
            named += list(module.named_buffers())
        _dist._d.broadcast_parameters([t for _, t in named], [n for n, _ in named])
        params = [p for p in module.parameters() if p.requires_grad]
        self.reducer = _dist._d.GradientReducer(params, int(bucket_cap_mb * 2**20))

    def forward(self, *args, **kwargs):
        return self.module(*args, **kwargs)

    @contextlib.contextmanager
    def no_sync(self):
        previous = self.reducer.sync
        self.reducer.sync = False
        try:
            yield
        finally:
            self.reducer.sync = previous


__all__ = ["DistributedDataParallel"]
