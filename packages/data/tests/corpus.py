"""Builds the bad-input corpus the data tests ingest: every awkward file a real folder holds."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from fruitops_core.lake import LocalLake
from fruitops_core.materialize import materialize
from fruitops_core.records import MaterializationRecord
from fruitops_core.registry import AssetGraph
from fruitops_data.synthetic import draw_image

#: file name → what the manifest must say about it (readable, error fragment)
EXPECTED = {
    "train/apple/truncated.jpg": (False, "undecodable"),
    "train/apple/empty.jpg": (False, "empty file"),
    "train/apple/notes.jpg": (False, "not an image"),
    "train/apple/bomb.png": (False, "decompression bomb"),
    "train/apple/png-named.jpg": (True, None),
    "train/apple/cmyk.jpg": (True, None),
    "train/apple/grey.jpg": (True, None),
    "train/apple/palette.png": (True, None),
    "train/apple/rgba.png": (True, None),
    "train/apple/sixteen-bit.png": (True, None),
    "train/apple/exif-rotated.jpg": (True, None),
    "train/apple/pomme à la crème 1.jpg": (True, None),
    # Pillow's TIFF parser raises TypeError on this one: quarantined, never a crash
    "train/apple/malformed.tif": (False, "undecodable: TypeError"),
    "train/apple/icon.jpg": (False, "not an image in a format FruitOps decodes"),  # an ICO
}
CRASHES = Path(__file__).parent / "fixtures" / "decoder-crashes"  # found by fuzzing Pillow
JUNK = ["train/apple/.DS_Store", "train/Thumbs.db", "train/banana/.hidden.jpg"]


def source_path(key: str) -> str:
    """The source path (``<split>/<class>/<file>``) of a raw object key: ingest keeps every
    file under ``raw/<dataset>/v/<version>/``."""
    parts = key.split("/")
    assert parts[0] == "raw" and parts[2] == "v", key
    return "/".join(parts[4:])


def jpeg(image: Image.Image, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", **kwargs)
    return buffer.getvalue()


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def build_corpus(root: Path, per_class: int = 12) -> Path:
    """``root/Fruit_dataset`` with good images of two classes and every bad case above."""
    data = root / "Fruit_dataset"
    rng = np.random.default_rng(0)
    for split, count in (("train1", per_class), ("val1", 3), ("test1", 3)):
        for index, name in enumerate(("apple", "banana")):
            folder = data / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                (folder / f"{name}-{i:03d}.jpg").write_bytes(jpeg(draw_image(index, 48, rng)))
    apple = data / "train1" / "apple"
    sample = draw_image(0, 64, rng)
    good = jpeg(sample)
    (apple / "truncated.jpg").write_bytes(good[: len(good) // 2])
    (apple / "empty.jpg").write_bytes(b"")
    (apple / "notes.jpg").write_text("shopping list: apples, bananas")
    (apple / "bomb.png").write_bytes(png(Image.new("1", (14_000, 14_000))))
    (apple / "png-named.jpg").write_bytes(png(sample))
    (apple / "cmyk.jpg").write_bytes(jpeg(sample.convert("CMYK")))
    (apple / "grey.jpg").write_bytes(jpeg(sample.convert("L")))
    (apple / "palette.png").write_bytes(png(sample.convert("P")))
    (apple / "rgba.png").write_bytes(png(sample.convert("RGBA")))
    sixteen = Image.fromarray(np.asarray(sample.convert("L"), np.uint16) * 257)
    (apple / "sixteen-bit.png").write_bytes(png(sixteen))
    wide = draw_image(0, 64, rng).resize((64, 32))
    exif = wide.getexif()
    exif[0x0112] = 6  # stored landscape, shown portrait
    (apple / "exif-rotated.jpg").write_bytes(jpeg(wide, exif=exif))
    (apple / "pomme à la crème 1.jpg").write_bytes(jpeg(draw_image(0, 48, rng)))
    (apple / "malformed.tif").write_bytes((CRASHES / "typeerror.tif").read_bytes())
    icon = io.BytesIO()
    sample.save(icon, format="ICO")
    (apple / "icon.jpg").write_bytes(icon.getvalue())
    (apple / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    (data / "train1" / "Thumbs.db").write_bytes(b"junk")
    (data / "train1" / "banana" / ".hidden.jpg").write_bytes(good)
    (data / "train1" / "cherry").mkdir()  # an empty class folder
    return data


def add_leak_and_val_only_class(data: Path) -> None:
    """The same bytes in train and test, and a class that exists only in val."""
    leaked = (data / "train1" / "banana" / "banana-000.jpg").read_bytes()
    (data / "test1" / "banana" / "copied-from-train.jpg").write_bytes(leaked)
    only_val = data / "val1" / "kiwi"
    only_val.mkdir()
    (only_val / "kiwi-1.jpg").write_bytes(jpeg(draw_image(5, 48, np.random.default_rng(9))))


def ingest(
    settings, source: Path, config=None
) -> tuple[LocalLake, pd.DataFrame, list[MaterializationRecord]]:
    """Materialize raw_images and image_manifest from ``source``: the lake, the manifest, the
    two records."""
    graph = AssetGraph.from_entry_points()
    lake = LocalLake(settings.home / "lake")
    config = {"data/raw_images": {"source": str(source)}, **(config or {})}
    records = materialize(  # both named, as `fruitops data ingest` does: the walk always runs
        ["data/raw_images", "data/image_manifest"],
        settings=settings,
        graph=graph,
        lake=lake,
        config=config,
    )
    return lake, lake.read_parquet("assets/data/image_manifest/current/data.parquet"), records
