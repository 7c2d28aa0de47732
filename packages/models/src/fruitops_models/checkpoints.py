"""Epoch checkpoints in the lake, so a retried training task resumes instead of restarting."""

from __future__ import annotations

import hashlib
from typing import Any

from fruitops_core.lake import Lake
from fruitops_models.config import TrainConfig
from fruitops_models.train import torch_state_bytes, torch_state_load


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
