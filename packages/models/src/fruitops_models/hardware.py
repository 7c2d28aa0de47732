"""What the CPU can do, asked without importing torch: a scorer should not pay for it."""

from __future__ import annotations

import functools
from pathlib import Path

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
