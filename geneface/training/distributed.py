"""Device choice and multi-GPU data parallelism through PyTorch's own DDP.

Nothing home-made: `torchrun` starts one process per GPU and sets RANK / WORLD_SIZE /
LOCAL_RANK / MASTER_ADDR; we join its process group (NCCL on CUDA, gloo on CPU), wrap the
model in `DistributedDataParallel` (which averages gradients across processes), and let only
rank 0 write files. Example (4 GPUs on one machine):

    torchrun --standalone --nproc_per_node 4 --no-python geneface train syncnet --data ... --out ...
"""

from __future__ import annotations

import os
from typing import Any

import attrs
import torch

from geneface.errors import UsageError


@attrs.frozen
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def choose_device(preference: str, local_rank: int = 0) -> torch.device:
    """`auto` picks CUDA when present; under torchrun each process takes GPU `local_rank`."""
    if preference == "auto":
        preference = "cuda" if torch.cuda.is_available() else "cpu"
    if preference.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UsageError(f"device '{preference}' asked for, but CUDA is not available here (use --device cpu)")
        if preference == "cuda":
            return torch.device("cuda", local_rank)
        return torch.device(preference)
    if preference != "cpu":
        raise UsageError(f"unknown device '{preference}' (use auto, cpu, cuda or cuda:N)")
    return torch.device("cpu")


def init_distributed(device_preference: str) -> DistInfo:
    """Join torchrun's process group when launched by it; a no-op for a single process."""
    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    info = DistInfo(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        use_cuda = device_preference != "cpu" and torch.cuda.is_available()
        if use_cuda:
            torch.cuda.set_device(info.local_rank)
        dist.init_process_group("nccl" if use_cuda else "gloo")
    return info


def wrap_model(model: torch.nn.Module, info: DistInfo, device: torch.device) -> torch.nn.Module:
    if not info.enabled:
        return model
    from torch.nn.parallel import DistributedDataParallel

    if device.type == "cuda":
        # Batch statistics over every GPU's share of the batch, as one big batch would give.
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        return DistributedDataParallel(model, device_ids=[device.index])
    return DistributedDataParallel(model)


def broadcast(value: Any, info: DistInfo) -> Any:
    """Rank 0's `value` on every rank (validation metrics decide things all ranks must agree on)."""
    if not info.enabled:
        return value
    import torch.distributed as dist

    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather(value: Any, info: DistInfo) -> list:
    """Every rank's `value`, in rank order, on every rank."""
    if not info.enabled:
        return [value]
    import torch.distributed as dist

    out = [None] * info.world_size
    dist.all_gather_object(out, value)
    return out


def any_rank(flag: bool, info: DistInfo) -> bool:
    """True on every rank if it is true on any (a Ctrl-C seen by one process stops them all)."""
    if not info.enabled:
        return flag
    import torch.distributed as dist

    t = torch.tensor([1.0 if flag else 0.0])
    if dist.get_backend() == "nccl":
        t = t.cuda()
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def barrier(info: DistInfo) -> None:
    if info.enabled:
        import torch.distributed as dist

        dist.barrier()


def shutdown(info: DistInfo) -> None:
    if info.enabled:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


def broadcast_parameters(model: torch.nn.Module) -> None:
    """Rank 0's weights and buffers on every rank (what a DDP wrapper does when it is made)."""
    import torch.distributed as dist

    with torch.no_grad():
        for tensor in [*model.parameters(), *model.buffers()]:
            dist.broadcast(tensor.data, src=0)
