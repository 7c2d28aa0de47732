"""Epoch checkpoints in the lake, so a retried training task resumes instead of restarting.

`TrainState` is what one holds; its field names are the checkpoint's keys, and
`LakeCheckpointer` stores it as the plain dict of them (``torch.save``, loaded back with
``weights_only=True``), so a checkpoint needs no class of ours to be read.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, fields
from typing import Any, Protocol

import torch

from fruitops_core.lake import Lake
from fruitops_models.config import TrainConfig


class Checkpointer(Protocol):
    """Where a run keeps its last `TrainState`, as the dict of its fields (a test keeps it in
    memory)."""

    def load(self) -> dict[str, Any] | None: ...

    def save(self, state: dict[str, Any]) -> None: ...


@dataclass
class TrainState:
    """Everything a resumed run needs to go on bit for bit from the end of an epoch."""

    epoch: int  # the last finished one
    model: dict[str, Any]  # state dicts, as torch objects give them
    optimizer: dict[str, Any]
    scheduler: dict[str, Any]
    generator: torch.Tensor  # the shuffling generator's state
    torch_rng: torch.Tensor  # the global CPU generator's: augmentation and mixup draw from it
    best_state: dict[str, torch.Tensor] | None  # the best epoch's weights so far, on the CPU
    best_f1: float
    stale: int  # epochs since the best one
    best_epoch: int
    history: list[dict[str, float]]  # one row per epoch
    ema: dict[str, Any] | None = None  # the moving average's state, when the recipe keeps one

    def save(self, checkpointer: Checkpointer) -> None:
        checkpointer.save({f.name: getattr(self, f.name) for f in fields(self)})

    @classmethod
    def load(cls, checkpointer: Checkpointer) -> TrainState | None:
        saved = checkpointer.load()
        if saved is None:
            return None
        return cls(**{f.name: saved[f.name] for f in fields(cls) if f.name in saved})


def torch_state_bytes(state: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def torch_state_load(data: bytes) -> dict[str, Any]:
    """Load a checkpoint safely: tensors and plain containers only (weights_only=True)."""
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)


def checkpoint_prefix(run_id: str, config: TrainConfig, data_key: str) -> str:
    """One folder per (asset run, architecture, config, data): a retry finds its own."""
    digest = hashlib.sha256(f"{config.model_dump_json()}|{data_key}".encode()).hexdigest()[:12]
    return f"checkpoints/{run_id}/{config.arch}-{digest}"


class LakeCheckpointer:
    def __init__(self, lake: Lake, prefix: str):
        self.lake = lake
        self.path = f"{prefix}/last.pt"

    def load(self) -> dict[str, Any] | None:
        if not self.lake.exists(self.path):
            return None
        return torch_state_load(self.lake.read_bytes(self.path))

    def save(self, state: dict[str, Any]) -> None:
        self.lake.write_bytes(self.path, torch_state_bytes(state))
