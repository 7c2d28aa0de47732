"""Per-image features that say how a batch of photos looks: light, colour, size."""

from __future__ import annotations

import io
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
from PIL import Image
from tqdm import tqdm

from fruitops_data.images import DECODE_ERRORS, decode_rgb

FEATURE_COLUMNS = [
    "brightness",
    "contrast",
    "saturation",
    "mean_r",
    "mean_g",
    "mean_b",
    "width",
    "height",
    "aspect",
    "file_size",
]
_STATS_SIZE = 128  # statistics on a 128 px copy: the same numbers to 2 decimals, far faster


def image_features(data: bytes) -> dict[str, float]:
    """Features of one image; raises on bytes that are not a decodable image."""
    with Image.open(io.BytesIO(data)) as probe:
        width, height = probe.size
    small = decode_rgb(data, None)
    small.thumbnail((_STATS_SIZE, _STATS_SIZE))
    rgb = np.asarray(small, dtype=np.float32) / 255.0
    grey = rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    hsv = np.asarray(small.convert("HSV"), dtype=np.float32) / 255.0
    return {
        "brightness": float(grey.mean()),
        "contrast": float(grey.std()),
        "saturation": float(hsv[..., 1].mean()),
        "mean_r": float(rgb[..., 0].mean()),
        "mean_g": float(rgb[..., 1].mean()),
        "mean_b": float(rgb[..., 2].mean()),
        "width": float(width),
        "height": float(height),
        "aspect": float(width / height),
        "file_size": float(len(data)),
    }


def features_for(
    keys: list[str], read: Callable[[str], bytes], workers: int = 4, desc: str = "features"
) -> pd.DataFrame:
    """A feature row per key (files that fail to decode are left out and logged by caller)."""

    def one(key: str) -> dict[str, float | str] | None:
        try:
            return {"key": key, **image_features(read(key))}
        except DECODE_ERRORS:
            return None

    with ThreadPoolExecutor(workers) as pool:
        rows = [
            r
            for r in tqdm(pool.map(one, keys), total=len(keys), desc=desc, unit="img", leave=False)
            if r is not None
        ]
    return pd.DataFrame(rows, columns=["key", *FEATURE_COLUMNS])
