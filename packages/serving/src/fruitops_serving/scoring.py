"""Batch scoring: images from a folder or lake prefix → a predictions table.

Everything the model needs (class names, image size) is read from the logged model. Images
are read and decoded a chunk at a time in threads; a file that cannot be decoded is
quarantined with its reason and counted, never dropped.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import torch
from PIL import UnidentifiedImageError
from tqdm import tqdm

from fruitops_core.lake import Lake
from fruitops_data.images import decode_array

PREDICTION_COLUMNS = [
    "key",
    "sha256",
    "label",
    "confidence",
    "top5",
    "model_name",
    "model_version",
    "run_id",
    "scored_at",
    "source_uri",
]


@dataclass
class LoadedModel:
    module: Any
    classes: list[str]
    image_size: int
    name: str
    version: int
    run_id: str
    uri: str


def load_model(model_uri: str) -> LoadedModel:
    """Load a registered model (``models:/name@alias`` or ``models:/name/version``)."""
    match = re.fullmatch(r"models:/([^/@]+)(?:@([^/]+)|/(\d+))", model_uri)
    if not match:
        raise ValueError(
            f"model URI {model_uri!r}: expected models:/NAME@ALIAS or models:/NAME/VERSION"
        )
    name, alias, number = match.groups()
    client = mlflow.MlflowClient()
    mv = (
        client.get_model_version_by_alias(name, alias)
        if alias
        else client.get_model_version(name, number)
    )
    pinned = f"models:/{name}/{mv.version}"
    metadata = mlflow.models.get_model_info(pinned).metadata or {}
    if "classes" not in metadata or "image_size" not in metadata:
        raise ValueError(
            f"{pinned} lacks class names or image size in its metadata: "
            "it was not logged by fruitops; retrain it with fruitops"
        )
    module = mlflow.pytorch.load_model(pinned, map_location="cpu")
    return LoadedModel(
        module,
        list(metadata["classes"]),
        int(metadata["image_size"]),
        name,
        int(mv.version),
        mv.run_id,
        model_uri,
    )


def _chunks(keys: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(keys), size):
        yield keys[start : start + size]


def score(
    lake: Lake, keys: list[str], model: LoadedModel, batch_size: int = 64, workers: int = 4
) -> tuple[pd.DataFrame, list[dict[str, str]]]:
    """Score ``keys`` of ``lake``; return the predictions and the quarantined files."""
    scored_at = datetime.now(UTC)
    frames: list[pd.DataFrame] = []
    quarantined: list[dict[str, str]] = []

    def load(key: str) -> tuple[str, str, np.ndarray | None, str | None]:
        data = lake.read_bytes(key)
        sha = hashlib.sha256(data).hexdigest()
        if not data:
            return key, sha, None, "empty file (0 bytes)"
        try:
            return key, sha, decode_array(data, model.image_size), None
        except UnidentifiedImageError:
            return key, sha, None, "not an image (Pillow cannot identify the format)"
        except (OSError, SyntaxError, ValueError) as err:
            return key, sha, None, f"undecodable: {err}"

    k = min(5, len(model.classes))
    with (
        ThreadPoolExecutor(workers) as pool,
        tqdm(total=len(keys), desc="score", unit="img", leave=False) as bar,
    ):
        for chunk in _chunks(keys, batch_size):
            loaded = list(pool.map(load, chunk))
            good = [item for item in loaded if item[2] is not None]
            quarantined += [{"key": key, "reason": err} for key, _, _, err in loaded if err]
            bar.update(len(chunk))
            if not good:
                continue
            batch = torch.from_numpy(np.stack([item[2] for item in good])).permute(0, 3, 1, 2)
            with torch.no_grad():
                probs = torch.softmax(model.module(batch.float().div_(255.0)), dim=1)
            top_p, top_i = probs.topk(k, dim=1)
            frames.append(
                pd.DataFrame(
                    {
                        "key": [item[0] for item in good],
                        "sha256": [item[1] for item in good],
                        "label": [model.classes[i] for i in top_i[:, 0].tolist()],
                        "confidence": top_p[:, 0].numpy().astype(np.float64),
                        "top5": [
                            [
                                {"label": model.classes[i], "probability": float(p)}
                                for i, p in zip(row_i, row_p, strict=True)
                            ]
                            for row_i, row_p in zip(top_i.tolist(), top_p.tolist(), strict=True)
                        ],
                    }
                )
            )
    predictions = (
        pd.concat(frames, ignore_index=True)
        if frames
        else pd.DataFrame(columns=PREDICTION_COLUMNS[:5])
    )
    predictions["model_name"] = model.name
    predictions["model_version"] = model.version
    predictions["run_id"] = model.run_id
    predictions["scored_at"] = scored_at
    predictions["source_uri"] = lake.root_uri
    return predictions[PREDICTION_COLUMNS], quarantined
