"""This machine's matmul throughput: the ceiling a conv- or matmul-bound step is held to."""

from __future__ import annotations

import time

import torch


def matmul_peak_gflops(dtype: torch.dtype, n: int = 2048, repeats: int = 10) -> float:
    """GFLOP/s of an n×n ``torch.matmul`` in ``dtype`` on this machine's threads."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    for _ in range(3):
        a @ b
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * n**3 * repeats / (time.perf_counter() - start) / 1e9
