"""Per-image features that say how a batch of photos looks, and what the model makes of it.

Image features (light, colour, sharpness, size) come from the bytes alone. Model features
(predicted class, confidence, entropy, top-2 margin, and a few principal components of the
penultimate-layer embedding) come from the champion; the projection onto those components
is fitted on the reference and stored with it, so every batch is projected the same way.

Everything is computed a chunk at a time (`feature_frames`), so memory does not grow with
the number of images, and each row depends only on its own image: the result is the same
whatever the chunk size.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image, ImageFilter

from fruitops_core.progress import progress_bar
from fruitops_data.images import decode_rgb, open_image, try_decode
from fruitops_data.manifest import windows
from fruitops_monitoring.embedder import Embedder

IMAGE_COLUMNS = [
    "brightness",
    "contrast",
    "saturation",
    "mean_r",
    "mean_g",
    "mean_b",
    "sharpness",
    "width",
    "height",
    "aspect",
    "file_size",
]
MODEL_COLUMNS = ["confidence", "entropy", "margin"]
_STATS_SIZE = 128  # statistics on a 128 px copy: the same numbers to 2 decimals, far faster
_LAPLACE = ImageFilter.Kernel((3, 3), [0, 1, 0, 1, -4, 1, 0, 1, 0], scale=1, offset=128)


def _stats(image: Image.Image, width: int, height: int, size: int) -> dict[str, float]:
    small = image.copy()
    small.thumbnail((_STATS_SIZE, _STATS_SIZE))
    rgb = np.asarray(small, dtype=np.float32) / 255.0
    grey = rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    hsv = np.asarray(small.convert("HSV"), dtype=np.float32) / 255.0
    # variance of the Laplacian of the grey image: low when blurred
    laplace = np.asarray(small.convert("L").filter(_LAPLACE), dtype=np.float32) - 128.0
    return {
        "brightness": float(grey.mean()),
        "contrast": float(grey.std()),
        "saturation": float(hsv[..., 1].mean()),
        "mean_r": float(rgb[..., 0].mean()),
        "mean_g": float(rgb[..., 1].mean()),
        "mean_b": float(rgb[..., 2].mean()),
        "sharpness": float(laplace.var()),
        "width": float(width),
        "height": float(height),
        "aspect": float(width / height),
        "file_size": float(size),
    }


def image_features(data: bytes) -> dict[str, float]:
    """Features of one image; raises on bytes that are not a decodable image."""
    with open_image(data) as probe:
        width, height = probe.size
    return _stats(decode_rgb(data, None, draft=_STATS_SIZE), width, height, len(data))


@dataclass(frozen=True)
class Decoded:
    key: str
    features: dict[str, float] | None
    pixels: np.ndarray | None  # H×W×3 uint8 at the model's size, when a model is used
    error: str | None


def _decode(key: str, data: bytes, size: int | None) -> Decoded:
    # one reduced (draft) decode serves the statistics and the model's input
    decoded = try_decode(data, None, draft=max(_STATS_SIZE, size or 0))
    if decoded.image is None:
        return Decoded(key, None, None, decoded.error)
    width, height = decoded.stored_size
    features = _stats(decoded.image, width, height, len(data))
    pixels = None
    if size is not None:
        pixels = np.asarray(decoded.image.resize((size, size), Image.BILINEAR), dtype=np.uint8)
    return Decoded(key, features, pixels, None)


@dataclass
class Projection:
    """Principal components of the embedding, fitted on the reference (`profile.Moments`)."""

    mean: np.ndarray
    components: np.ndarray  # k × D

    def apply(self, embeddings: np.ndarray) -> np.ndarray:
        return (embeddings - self.mean) @ self.components.T

    @property
    def columns(self) -> list[str]:
        return [f"embedding_pc{i + 1}" for i in range(len(self.components))]

    def to_dict(self) -> dict[str, Any]:
        return {"mean": self.mean.tolist(), "components": self.components.tolist()}

    @classmethod
    def from_dict(cls, value: dict[str, Any]) -> Projection:
        return cls(
            np.asarray(value["mean"], np.float64), np.asarray(value["components"], np.float64)
        )


def add_components(
    frame: pd.DataFrame, embeddings: np.ndarray | None, projection: Projection | None
) -> pd.DataFrame:
    """The embedding's principal components as ``embedding_pc*`` columns of ``frame``."""
    if embeddings is not None and projection is not None:
        for name, values in zip(projection.columns, projection.apply(embeddings).T, strict=True):
            frame[name] = values
    return frame


def feature_frames(
    keys: Iterable[str],
    read: Callable[[str], bytes],
    model: Any | None = None,
    projection: Projection | None = None,
    chunk: int = 64,
    workers: int = 4,
    total: int | None = None,
    desc: str = "features",
    keep_embeddings: bool = False,
) -> Iterator[tuple[pd.DataFrame, np.ndarray | None, list[dict[str, str]]]]:
    """Feature rows a chunk at a time: ``(frame, embeddings, quarantined)``.

    With ``model`` (a loaded model, or its `Embedder`), the frame also holds the
    ``predicted_class``, confidence, entropy, margin and, with ``projection``, the embedding
    components; ``embeddings`` are returned raw only when ``keep_embeddings`` (the reference
    needs them to fit the projection). Files that cannot be decoded are reported with their
    reason, never dropped silently.
    """
    if model is not None and not isinstance(model, Embedder):
        model = Embedder(model)
    size = model.image_size if model is not None else None
    with (
        ThreadPoolExecutor(workers) as pool,
        progress_bar(total, desc, "images") as bar,
    ):
        for window in windows(keys, chunk):

            def one(key: str) -> Decoded:
                try:
                    data = read(key)
                except Exception as err:  # a vanished file or storage error: keep it, with why
                    return Decoded(key, None, None, f"unreadable: {err}")
                return _decode(key, data, size)

            decoded = list(pool.map(one, window))
            bar.update(len(window))
            bad = [{"key": d.key, "reason": d.error or ""} for d in decoded if d.error]
            good = [d for d in decoded if d.error is None]
            frame = pd.DataFrame(
                [{"key": d.key, **(d.features or {})} for d in good],
                columns=["key", *IMAGE_COLUMNS],
            )
            embeddings = None
            if model is not None and good:
                outputs = model(np.stack([d.pixels for d in good]))
                frame["predicted_class"] = outputs.predicted_class
                frame["confidence"] = outputs.confidence
                frame["entropy"] = outputs.entropy
                frame["margin"] = outputs.margin
                embeddings = outputs.embeddings
                frame = add_components(frame, embeddings, projection)
            yield frame, (embeddings if keep_embeddings else None), bad


def features_for(
    keys: list[str], read: Callable[[str], bytes], workers: int = 4, desc: str = "features"
) -> pd.DataFrame:
    """Image feature rows for ``keys`` in memory (undecodable files are left out)."""
    frames = [
        f for f, _, _ in feature_frames(keys, read, workers=workers, total=len(keys), desc=desc)
    ]
    return (
        pd.concat(frames, ignore_index=True)
        if frames
        else pd.DataFrame(columns=["key", *IMAGE_COLUMNS])
    )
