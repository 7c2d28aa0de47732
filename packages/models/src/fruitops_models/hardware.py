"""Where and in what precision training runs: device, autocast dtype, torchrun's processes.

Importing this module does not import torch (each function that needs it imports it): the
scorer asks `cpu_has_bf16` and the CLI asks `dist_info` before they know they need torch.
"""

from __future__ import annotations

import contextlib
import functools
import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch
    from torch import nn

    from fruitops_models.config import TrainConfig

BF16_FLAGS = {"avx512_bf16", "amx_bf16"}


@functools.cache
def cpu_has_bf16() -> bool:
    """Native bf16 matmuls: AVX-512 BF16 or AMX. Linux's cpuinfo flags, else torch's probe."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("flags"):
                return bool(BF16_FLAGS & set(line.split(":", 1)[1].split()))
    import torch

    return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


def dist_info() -> tuple[int, int]:
    """(rank, world size) when started by torchrun, else (0, 1)."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def device_for() -> torch.device:
    """This process's GPU (torchrun's LOCAL_RANK) when there is one, else the CPU."""
    import torch

    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return torch.device("cpu")


def autocast_dtype(config: TrainConfig, device: torch.device) -> torch.dtype | None:
    """bf16 where the hardware has it, fp16 AMP on older GPUs, else None (fp32)."""
    import torch

    if config.precision == "fp32":
        return None
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if config.precision == "bf16" or cpu_has_bf16():
        return torch.bfloat16
    return None


def augment_precision(config: TrainConfig, dtype: torch.dtype | None) -> torch.dtype | None:
    """The augmentation matmuls' dtype: bf16 when the model trains in bf16 (its first layer
    rounds the pixels to bf16 anyway), else fp32; None when the config augments nothing."""
    import torch

    if not config.augment:
        return None
    return torch.bfloat16 if dtype is torch.bfloat16 else torch.float32


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """torch.autocast to ``dtype``, or nothing for fp32 (None)."""
    if dtype is None:
        return contextlib.nullcontext()
    import torch

    return torch.autocast(device_type=device.type, dtype=dtype)


def init_distributed(world: int, device: torch.device) -> None:
    """Join torchrun's process group (NCCL on GPUs, gloo on CPUs) once, when there are several
    processes. Nothing tears it down: it lasts as long as the process."""
    import torch

    if world > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")


def wrap_for_training(model: nn.Module, world: int, compiled: bool) -> nn.Module:
    """What the steps call: DDP around ``model`` with several processes, compiled if asked.

    DDP copies rank 0's weights to every replica, so wrap only once they are final (resumed).
    """
    import torch

    wrapped = model
    if world > 1:
        wrapped = torch.nn.parallel.DistributedDataParallel(model)
    if compiled:
        wrapped = torch.compile(wrapped)
    return wrapped


def share_buffers(model: nn.Module) -> None:
    """Rank 0's buffers (BatchNorm statistics, per process in DDP) on every rank, so every
    replica scores the same model and makes the same early-stopping call."""
    import torch

    for buffer in model.buffers():
        torch.distributed.broadcast(buffer, src=0)


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside DDP and torch.compile's wrappers."""
    model = getattr(model, "module", model)  # DDP
    return getattr(model, "_orig_mod", model)  # torch.compile
