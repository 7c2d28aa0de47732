"""Every file gets a row, readable or not, with a reason a person can act on."""

import io
from pathlib import Path

import pandas as pd
from PIL import Image

from fruitops_data.manifest import MANIFEST_COLUMNS, build_manifest, inspect_image


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
