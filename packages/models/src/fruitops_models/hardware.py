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

from fruitops_models.config import LITE

if TYPE_CHECKING:
    import torch
    from torch import nn

    from fruitops_models.config import TrainConfig

BF16_FLAGS = {"avx512_bf16", "amx_bf16"}
#: int8 dot products without int16 saturation (AVX2 alone saturates: `cpu_has_vnni`)
VNNI_FLAGS = {"avx512_vnni", "avx_vnni", "amx_int8"}
#: The instruction-set flags that decide how fast training and scoring run, as benchmarks
#: and run params report them (a CPU with none of the AVX-512 ones is "AVX2 only").
REPORTED_FLAGS = (
    "avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16",
    "amx_int8", "amx_tile", "avx512_fp16",
)  # fmt: skip
#: oneDNN's ISA caps (ONEDNN_MAX_CPU_ISA) under which its bf16 kernels still run
BF16_ISAS = ("AVX512_CORE_BF16", "AVX512_CORE_FP16", "AVX512_CORE_AMX", "AVX10", "ALL")
#: and those under which its VNNI int8 kernels still run
VNNI_ISAS = ("AVX2_VNNI", "AVX512_CORE_VNNI", *BF16_ISAS)


def _cpuinfo() -> dict[str, str]:
    """The first processor's lines of Linux's /proc/cpuinfo ({} elsewhere)."""
    path = Path("/proc/cpuinfo")
    fields: dict[str, str] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            if not line.strip():
                break
            name, _, value = line.partition(":")
            fields[name.strip()] = value.strip()
    return fields


def _onednn_cap() -> str | None:
    """The ISA oneDNN is limited to (ONEDNN_MAX_CPU_ISA, or DNNL_MAX_CPU_ISA), if any."""
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA")
    return cap.upper() if cap else None


@functools.cache
def cpu_has_bf16() -> bool:
    """Native bf16 matmuls: AVX-512 BF16 or AMX, and oneDNN not capped below them
    (``ONEDNN_MAX_CPU_ISA=AVX2`` makes any CPU behave as an AVX2-only one). Linux's cpuinfo
    flags, else torch's probe."""
    cap = _onednn_cap()
    if cap is not None and not cap.startswith(BF16_ISAS):
        return False
    flags = _cpuinfo().get("flags")
    if flags is not None:
        return bool(BF16_FLAGS & set(flags.split()))
    import torch

    return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


@functools.cache
def cpu_has_vnni() -> bool:
    """int8 dot products in one instruction (AVX-512 VNNI, AVX-VNNI or AMX), and oneDNN (also
    OpenVINO's) not capped below them. Without them int8 runs on AVX2's multiply-adds, which
    saturate at 16 bits: an int8 model must then keep its weights to 7 bits
    (`fruitops_serving.quantize`)."""
    cap = _onednn_cap()
    if cap is not None and not cap.startswith(VNNI_ISAS):
        return False
    return bool(VNNI_FLAGS & set(_cpuinfo().get("flags", "").split()))


def usable_cores() -> int:
    """The cores this process may run on (a container's or taskset's share, not the host's)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def cpu_features() -> dict[str, object]:
    """What this CPU is, as benchmarks print it and runs record it: model, cores, the
    instruction sets that matter here, bf16 or not, and any cap put on oneDNN or ATen."""
    info = _cpuinfo()
    flags = set(info.get("flags", "").split())
    return {
        "model": info.get("model name", "unknown"),
        "cores": usable_cores(),
        "flags": [f for f in REPORTED_FLAGS if f in flags],
        "bf16": cpu_has_bf16(),
        "vnni": cpu_has_vnni(),
        "onednn_max_isa": _onednn_cap(),
        "aten_cpu_capability": os.environ.get("ATEN_CPU_CAPABILITY"),
    }


def cpu_summary(features: dict[str, object] | None = None) -> str:
    """One line of `cpu_features`: 'Intel Xeon …, 2 cores, avx2 fma avx512f …, bf16'."""
    f = features or cpu_features()
    capped = f" (oneDNN capped at {f['onednn_max_isa']})" if f.get("onednn_max_isa") else ""
    return (
        f"{f['model']}, {f['cores']} cores, {' '.join(f['flags']) or 'no AVX2'}"  # type: ignore[arg-type]
        f"{capped}, {'bf16' if f['bf16'] else 'no bf16'}"
    )


def dist_info() -> tuple[int, int]:
    """(rank, world size) when started by torchrun, else (0, 1)."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def device_for() -> torch.device:
    """This process's GPU (torchrun's LOCAL_RANK) when there is one, else the CPU."""
    import torch

    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return torch.device("cpu")


#: Architectures that train faster in fp32 than under bf16 autocast on a CPU, bf16 or not:
#: their step is memory-bound depthwise and 1×1 work, which bf16 kernels do not speed up,
#: and autocast adds a cast per layer (EfficientNet-Lite0 on an AMX CPU: fp32 1.1-1.2×
#: faster at 128-192 px; the cnn and resnet18, convolution-bound, 2× faster in bf16).
FP32_ON_CPU = LITE


def precision_choice(config: TrainConfig, device: torch.device) -> tuple[torch.dtype | None, str]:
    """The autocast dtype (None: fp32) and why: bf16 where the hardware has it and the
    architecture gains from it, fp16 AMP on GPUs without bf16."""
    import torch

    if config.precision == "fp32":
        return None, "fp32: asked for"
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return torch.bfloat16, "bf16 autocast: the GPU has bf16"
        return torch.float16, "fp16 autocast: the GPU has no bf16"
    if config.precision == "bf16":
        return torch.bfloat16, "bf16: asked for"
    if not cpu_has_bf16():
        return None, "fp32: the CPU has no bf16 (no AVX-512 BF16, no AMX)"
    if config.arch in FP32_ON_CPU:
        return None, f"fp32: {config.arch} trains faster in fp32 than in bf16 on a CPU"
    return torch.bfloat16, "bf16 autocast: the CPU has bf16 (AVX-512 BF16 or AMX)"


def autocast_dtype(config: TrainConfig, device: torch.device) -> torch.dtype | None:
    """`precision_choice`'s dtype."""
    return precision_choice(config, device)[0]


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


def device_summary(device: torch.device) -> str:
    """The device a run trained on, in words: the GPU's name, or `cpu_summary`."""
    import torch

    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda})"
    return cpu_summary()


def hardware_settings(
    device: torch.device, dtype: torch.dtype | None, config: TrainConfig
) -> dict[str, str]:
    """The settings this run took from the hardware, as MLflow params: where it ran, in what
    precision, with how many threads."""
    import torch

    return {
        "hardware": device_summary(device),
        "precision_used": str(dtype).removeprefix("torch.") if dtype else "fp32",
        "precision_reason": precision_choice(config, device)[1],
        "threads": str(torch.get_num_threads()),
        "torch_version": torch.__version__,
    }
