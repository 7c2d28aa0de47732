"""The training cache: every usable image decoded once, resized, stored as uint8 shards.

Shards are ``.npy`` files of ``N×3×S×S`` uint8 images plus an ``int64`` label vector, at most
``shard_size`` images each, under ``cache/<manifest hash>-<size>/`` in the lake. Training
memory-maps them (`open_split`), so a data set bigger than memory trains all the same.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from fruitops_core.lake import Lake
from fruitops_core.progress import progress_bar
from fruitops_core.scratch import user_scratch
from fruitops_core.tables import ParquetTable
from fruitops_data.images import decode_array
from fruitops_data.records import CacheSplit, Shard, TrainingCache

SPLITS = ("train", "val", "test")


def cache_prefix(manifest_hash: str, size: int) -> str:
    return f"cache/{manifest_hash}-{size}"


def usable_rows(manifest: pd.DataFrame, classes: list[str], split: str) -> pd.DataFrame:
    rows = manifest[
        (manifest["split"] == split) & manifest["readable"] & manifest["label"].isin(classes)
    ]
    return rows.sort_values("key")


def build_cache(
    manifest: pd.DataFrame,
    classes: list[str],
    size: int,
    read: Callable[[str], bytes],
    lake: Lake,
    prefix: str,
    shard_size: int = 2048,
    workers: int = 8,
) -> TrainingCache:
    """Decode, resize and store every usable image of each split; return the shard index."""
    index = {name: i for i, name in enumerate(classes)}
    splits: dict[str, CacheSplit] = {}
    for split in SPLITS:
        rows = usable_rows(manifest, classes, split)
        keys, labels = rows["key"].tolist(), [index[c] for c in rows["label"]]
        shards = []
        with (
            ThreadPoolExecutor(workers) as pool,
            progress_bar(len(keys), f"cache {split}", "images") as bar,
        ):
            for start in range(0, len(keys), shard_size):
                chunk = keys[start : start + shard_size]
                images = np.empty((len(chunk), 3, size, size), dtype=np.uint8)

                def decode(i: int, chunk=chunk, images=images, bar=bar) -> None:
                    images[i] = decode_array(read(chunk[i]), size).transpose(2, 0, 1)
                    bar.update()

                list(pool.map(decode, range(len(chunk))))
                name = f"{prefix}/{split}-{len(shards):05d}"
                lake.write_bytes(f"{name}.images.npy", _npy(images))
                lake.write_bytes(
                    f"{name}.labels.npy",
                    _npy(np.asarray(labels[start : start + shard_size], np.int64)),
                )
                shards.append(Shard(path=name, count=len(chunk)))
        splits[split] = CacheSplit(count=len(keys), shards=shards, keys=keys)
    return TrainingCache(prefix=prefix, image_size=size, classes=classes, splits=splits)


def cached_or_built(
    manifest: ParquetTable,
    classes: list[str],
    size: int,
    lake: Lake,
    manifest_hash: str,
    shard_size: int = 2048,
) -> tuple[TrainingCache, bool]:
    """The shard index of the cache for this data set and size, and whether it was already
    there: a cache is built once per manifest hash and image size, then reused."""
    prefix = cache_prefix(manifest_hash, size)
    index_path = f"{prefix}/index.json"
    if lake.exists(index_path):
        return TrainingCache.model_validate(lake.read_json(index_path)), True
    # the columns that pick usable images (the cache's index lists their keys anyway)
    usable = manifest.read(columns=["key", "split", "label", "readable"])
    cache = build_cache(usable, classes, size, lake.read_bytes, lake, prefix, shard_size=shard_size)
    lake.write_json(index_path, cache.model_dump(mode="json"))
    return cache, False


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


@dataclass
class CachedSplit:
    """A split's images as memory-mapped uint8 shards, indexable like one array."""

    shards: list[np.ndarray]
    labels: np.ndarray
    keys: list[str]

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, indices: np.ndarray) -> np.ndarray:
        """Images at ``indices`` (any order), copied out of the maps: B×3×S×S uint8."""
        offsets = np.cumsum([0] + [len(s) for s in self.shards])
        shard_of = np.searchsorted(offsets, indices, side="right") - 1
        out = np.empty((len(indices), *self.shards[0].shape[1:]), dtype=np.uint8)
        for j, (shard, i) in enumerate(zip(shard_of, indices, strict=True)):
            out[j] = self.shards[shard][i - offsets[shard]]
        return out


def local_copy(lake: Lake, path: str, workdir: Path) -> Path:
    """A local file for ``path``: the lake file itself when local, else a download."""
    local = lake.local_path(path)
    if local is not None:
        return local
    target = workdir / path
    if not target.exists() or target.stat().st_size != lake.size(path):
        lake.get_file(path, target)
    return target


def open_split(
    lake: Lake, cache: TrainingCache, split: str, workdir: Path | None = None
) -> CachedSplit:
    """Memory-map a split of the cache built by `build_cache`."""
    workdir = workdir or user_scratch("cache")
    info = cache.splits[split]
    size = cache.image_size
    shards, labels = [], []
    for shard in info.shards:
        shards.append(np.load(local_copy(lake, f"{shard.path}.images.npy", workdir), mmap_mode="r"))
        labels.append(np.load(local_copy(lake, f"{shard.path}.labels.npy", workdir)))
    if not shards:
        shards = [np.empty((0, 3, size, size), dtype=np.uint8)]
    all_labels = np.concatenate(labels) if labels else np.empty(0, np.int64)
    return CachedSplit(shards, all_labels, list(info.keys))
