"""DDP under ``torchrun``: environment detection, process group (gloo on CPU, nccl on CUDA), collectives.

Outside ``torchrun`` (no ``WORLD_SIZE`` > 1 in the environment) everything here is a no-op for one process.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0 alone logs and writes files."""
        return self.rank == 0


def detect() -> DistContext:
    """This process's place in a ``torchrun`` job, from ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``."""
    env = os.environ
    world = int(env.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext()
    return DistContext(rank=int(env["RANK"]), world_size=world, local_rank=int(env.get("LOCAL_RANK", "0")),
                       local_world_size=int(env.get("LOCAL_WORLD_SIZE", str(world))))


def init_process_group(context: DistContext, device) -> None:
    """Join the job (nccl for CUDA, gloo otherwise); on CPU share the cores among the local processes."""
    import torch.distributed as dist

    if not context.enabled or dist.is_initialized():
        return
    dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    if device.type == "cpu":
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // context.local_world_size))


def shutdown(context: DistContext, finished: bool = True) -> None:
    """Leave the job; after a ``finished`` run, only once every process has finished (a barrier).

    Why the barrier: gloo's worker threads release a finished collective's tensors just after they wake the caller,
    and releasing a tensor that has a Python object needs the GIL. A process whose last collective comes just before
    its exit (a rank that writes no files) can reach interpreter finalisation while a worker thread still waits for
    the GIL to do that; the thread is then ended inside C++ and the process aborts ("terminate called without an
    active exception", SIGABRT; seen about once in 15 two-process runs on 2 cores, core dump: ``~AsyncWork`` ->
    ``decref_pyobject`` -> ``take_gil`` -> ``PyThread_exit_thread``). Waiting in a barrier releases the GIL, so the
    workers finish that release first; the barrier's own tensors are made in C++ and need no GIL. After a failure
    the other processes may never arrive, so no barrier then."""
    import torch.distributed as dist

    if context.enabled and dist.is_initialized():
        if finished:
            dist.barrier()
        dist.destroy_process_group()


def barrier(context: DistContext) -> None:
    import torch.distributed as dist

    if context.enabled:
        dist.barrier()


def all_reduce_sum(values: list[float], context: DistContext, device) -> list[float]:
    """Element-wise sum of ``values`` over all processes (float64)."""
    if not context.enabled:
        return list(values)
    import torch.distributed as dist

    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return tensor.tolist()


class _GatherWithGrad(torch.autograd.Function):
    """all_gather in the forward pass; in the backward pass each process gets the gradient summed over processes
    for its own slice (all_reduce then slice: works on gloo, which has no reduce_scatter)."""

    @staticmethod
    def forward(ctx, tensor):
        import torch.distributed as dist

        world = dist.get_world_size()
        ctx.rank, ctx.rows = dist.get_rank(), tensor.shape[0]
        parts = [torch.empty_like(tensor) for _ in range(world)]
        dist.all_gather(parts, tensor.contiguous())
        return torch.cat(parts, dim=0)

    @staticmethod
    def backward(ctx, grad):
        import torch.distributed as dist

        grad = grad.contiguous().clone()
        dist.all_reduce(grad)
        return grad[ctx.rank * ctx.rows:(ctx.rank + 1) * ctx.rows]


def make_gather(context: DistContext):
    """``gather(t)``: (B, ...) -> (world*B, ...) in rank order, differentiable; identity for one process.

    If every process computes the same loss L from the gathered tensors, process r's parameters receive
    ``world * dL/dθ_r``, and DDP's gradient averaging turns that into exactly dL/dθ: the global-batch gradient.
    """
    if not context.enabled:
        return lambda tensor: tensor
    return _GatherWithGrad.apply


def gather_with_grad(tensor):
    """(B, ...) -> (world*B, ...) in rank order over the initialised process group, with :func:`make_gather`'s
    gradient (for layers that have no :class:`DistContext`, e.g. a global BatchNorm inside a head)."""
    return _GatherWithGrad.apply(tensor)
