"""Every file gets a row, readable or not, with a reason a person can act on."""

import hashlib
import io
from pathlib import Path

import pandas as pd
from PIL import Image

from fruitops_core.lake import LocalLake
from fruitops_core.tables import ParquetTable, TableWriter
from fruitops_data.ingest import RAW_COLUMNS
from fruitops_data.manifest import (
    MANIFEST_COLUMNS,
    build_manifest,
    inspect_image,
    manifest_hash,
    stored_manifest_hash,
    table_manifest_hash,
    write_manifest,
)


def jpeg_bytes(size=(40, 30), mode="RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, 128).save(buffer, format="JPEG")
    return buffer.getvalue()


def test_good_image_row():
    row = inspect_image(jpeg_bytes())
    assert row["readable"] and row["error"] is None
    assert (row["format"], row["width"], row["height"], row["mode"]) == ("JPEG", 40, 30, "RGB")
    assert len(row["sha256"]) == 64 and row["bytes"] > 0


def test_exif_orientation_swaps_width_and_height():
    image = Image.new("RGB", (40, 30))
    exif = image.getexif()
    exif[0x0112] = 6  # rotated 90°
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", exif=exif)
    row = inspect_image(buffer.getvalue())
    assert (row["width"], row["height"]) == (30, 40)


def test_bad_files_are_kept_with_reasons():
    good = jpeg_bytes((200, 200))
    cases = {
        "empty": (b"", "empty file"),
        "text": (b"hello, not a picture", "not an image"),
        "truncated": (good[: len(good) // 2], "undecodable"),
    }
    for name, (data, reason) in cases.items():
        row = inspect_image(data)
        assert not row["readable"], name
        assert reason in row["error"], (name, row["error"])


def test_png_named_jpg_and_greyscale_are_readable():
    buffer = io.BytesIO()
    Image.new("L", (10, 10)).save(buffer, format="PNG")
    row = inspect_image(buffer.getvalue())
    assert row["readable"] and row["format"] == "PNG" and row["mode"] == "L"


def test_build_manifest_schema_and_order(real_sample: Path):
    files = sorted(real_sample.rglob("*.jpg"))[:10]
    entries = [(str(p), "train", p.parent.name) for p in files]
    entries.append(("broken.jpg", "val", "kiwi"))
    data = {str(p): p.read_bytes() for p in files} | {"broken.jpg": b"\xff\xd8garbage"}
    frame = build_manifest(entries, data.__getitem__, window=3, workers=2)
    assert list(frame.columns) == list(MANIFEST_COLUMNS)
    assert frame["key"].tolist() == [e[0] for e in entries]  # one row per file, in order
    assert frame["readable"].sum() == 10
    broken = frame.iloc[-1]
    assert not broken["readable"] and broken["split"] == "val" and broken["label"] == "kiwi"
    assert pd.isna(broken["width"])


def _raw_listing(tmp_path: Path) -> tuple[LocalLake, ParquetTable]:
    """A lake with four files (one unlabelled, one broken) and their raw_images listing."""
    lake = LocalLake(tmp_path / "lake")
    files = {
        "raw/ds/test/x.jpg": (None, jpeg_bytes((20, 20))),
        "raw/ds/train/apple/a.jpg": ("apple", jpeg_bytes()),
        "raw/ds/train/apple/b.jpg": ("apple", b"\xff\xd8garbage"),
        "raw/ds/val/kiwi/c.jpg": ("kiwi", jpeg_bytes((30, 30))),
    }
    for key, (_, data) in files.items():
        lake.write_bytes(key, data)
    listing = pd.DataFrame(
        {
            "key": list(files),
            "path": [k.removeprefix("raw/ds/") for k in files],
            "split": [k.split("/")[2] for k in files],
            "label": [label for label, _ in files.values()],
            "sha256": [hashlib.sha256(data).hexdigest() for _, data in files.values()],
        }
    )
    with TableWriter(tmp_path / "raw.parquet", RAW_COLUMNS) as writer:
        writer.write(listing)
        raw = writer.close(dataset_id="ds", source="test")
    return lake, raw


def test_manifest_hash_rides_in_the_footer_and_equals_the_recomputed_one(tmp_path: Path):
    lake, raw = _raw_listing(tmp_path)
    written = write_manifest(raw, lake, tmp_path / "manifest.parquet", workers=2)
    table = written.table
    assert table.meta["dataset_id"] == "ds" and table.meta["source"] == "test"
    assert table.meta["manifest_hash"] == table_manifest_hash(table) == written.manifest_hash
    assert stored_manifest_hash(table) == manifest_hash(table.read())
    assert [q["key"] for q in written.quarantined] == ["raw/ds/train/apple/b.jpg"]
    assert lake.read_json("quarantine/ds/reasons.json") == written.quarantined


def test_a_manifest_without_the_footer_entry_still_gives_the_hash(tmp_path: Path):
    """A lake made before the hash rode in the footer keeps working: it is computed."""
    lake, raw = _raw_listing(tmp_path)
    written = write_manifest(raw, lake, tmp_path / "manifest.parquet", workers=2)
    with TableWriter(tmp_path / "old.parquet", MANIFEST_COLUMNS) as writer:
        for frame in written.table.batches():
            writer.write(frame)
        old = writer.close(dataset_id="ds", source="test")
    assert "manifest_hash" not in old.meta
    assert stored_manifest_hash(old) == table_manifest_hash(old) == written.manifest_hash
