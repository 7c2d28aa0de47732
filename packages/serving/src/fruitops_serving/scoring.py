"""Batch scoring: images → a predictions table, streamed, with bounded memory.

Everything the model needs (class names, image size) is read from the logged model. Files
are read and decoded a chunk at a time in threads (JPEG draft decoding down to the model's
size) and scored by a `Predictor` (`fruitops_serving.predictor`) in the precision the gate
allowed (`fruitops_serving.gate`); the next chunk decodes while the current one is scored,
so memory holds two chunks of images at most whatever the batch's size. Rows go to a
`PredictionWriter` (`fruitops_serving.predictions`), which publishes the table in one step
when the run completes: an interrupted run leaves the old table, and nothing else, behind.
A file that cannot be read or decoded is quarantined with its reason, never dropped.
"""

from __future__ import annotations

import hashlib
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fruitops_core.lake import Lake
from fruitops_core.progress import progress_bar
from fruitops_data.images import try_decode
from fruitops_data.manifest import windows
from fruitops_serving.answers import answers
from fruitops_serving.config import ScoringConfig
from fruitops_serving.inputs import ScoringInput
from fruitops_serving.predictions import PredictionWriter
from fruitops_serving.predictor import Predictor

CHUNK: int = ScoringConfig.model_fields["batch_size"].default  # images at a time


def _load(lake: Lake, key: str, size: int) -> tuple[str, str, np.ndarray | None, str | None]:
    try:
        data = lake.read_bytes(key)
    except Exception as err:  # a file that vanished or a storage error: keep it, with why
        return key, "", None, f"unreadable: {err}"
    decoded = try_decode(data, size)
    pixels = None if decoded.image is None else np.asarray(decoded.image, dtype=np.uint8)
    return key, hashlib.sha256(data).hexdigest(), pixels, decoded.error


def score(
    source: ScoringInput,
    predictor: Predictor,
    output: Lake,
    output_key: str,
    fmt: str = "parquet",
    batch_size: int = CHUNK,
    workers: int = 4,
) -> dict[str, Any]:
    """Score every key of ``source``; publish the table at ``output_key`` of ``output``."""
    model = predictor.model
    scored_at = datetime.now(UTC)
    quarantined: list[dict[str, str]] = []
    start = time.perf_counter()
    with (
        tempfile.TemporaryDirectory(prefix="fruitops-score-") as tmp,
        ThreadPoolExecutor(workers) as pool,
        progress_bar(len(source.keys), "score", "images") as bar,
    ):
        writer = PredictionWriter(fmt, Path(tmp))

        def decode(chunk: list[str]):  # submitted at once, collected later
            return pool.map(lambda key: _load(source.lake, key, model.image_size), chunk)

        chunks = windows(source.keys, batch_size)
        pending = decode(next(chunks, []))
        while loaded := list(pending):
            # the next chunk decodes in the threads while this one is scored: two chunks at
            # most are in memory
            pending = decode(next(chunks, []))
            chunk = [item[0] for item in loaded]
            quarantined += [{"key": key, "reason": err} for key, _, _, err in loaded if err]
            good = [item for item in loaded if item[2] is not None]
            bar.update(len(chunk))
            if not good:
                continue
            probabilities = predictor.probabilities_nhwc(np.stack([item[2] for item in good]))
            answered = answers(model.classes, probabilities)
            writer.write(
                pd.DataFrame(
                    {
                        "key": [item[0] for item in good],
                        "sha256": [item[1] for item in good],
                        "label": answered.labels,
                        "confidence": answered.confidences,
                        "top5": answered.top5,
                        "model_name": model.name,
                        "model_version": model.version,
                        "run_id": model.run_id,
                        "scored_at": scored_at,
                        "source_uri": source.lake.root_uri,
                    }
                )
            )
        uri = output.put_file(writer.close(), output_key)
    seconds = time.perf_counter() - start
    return {
        "images": len(source.keys),
        "scored": writer.rows,
        "quarantined": quarantined,
        "ignored": source.ignored,
        "predictions_uri": uri,
        "model_uri": model.uri,
        "model_version": model.version,
        "precision": predictor.precision,
        "backend": predictor.backend,
        "seconds": round(seconds, 3),
        "images_per_second": round(len(source.keys) / seconds, 1) if seconds else 0.0,
    }
