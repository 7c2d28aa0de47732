"""Every awkward file a real folder holds, ingested and validated: each outcome asserted."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from corpus import (
    EXPECTED,
    JUNK,
    add_leak_and_val_only_class,
    build_corpus,
    ingest,
    source_path,
)

from fruitops_core.materialize import materialize
from fruitops_core.records import AssetCheckFailed
from fruitops_core.registry import AssetGraph
from fruitops_core.tables import ParquetTable
from fruitops_core.tracking import Tracking
from fruitops_data.images import decode_rgb
from fruitops_data.records import TrainingCache

FRUITOPS = str(Path(sys.executable).parent / "fruitops")
LENIENT = {"data/image_manifest": {"max_unusable_share": 0.5}}


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    return build_corpus(tmp_path / "corpus")


def test_every_file_gets_a_row_with_the_right_outcome(settings, corpus):
    lake, manifest, records = ingest(settings, corpus, LENIENT)
    dataset = records[0].metadata["source"]
    assert dataset == str(corpus)
    rows = {
        source_path(key): row
        for key, row in zip(manifest["key"], manifest.to_dict("records"), strict=True)
    }
    for name, (readable, error) in EXPECTED.items():
        assert rows[name]["readable"] == readable, (name, rows[name]["error"])
        if error:
            assert error in rows[name]["error"], (name, rows[name]["error"])
    assert rows["train/apple/png-named.jpg"]["format"] == "PNG"
    assert rows["train/apple/cmyk.jpg"]["mode"] == "CMYK"
    assert rows["train/apple/sixteen-bit.png"]["mode"].startswith("I")
    rotated = rows["train/apple/exif-rotated.jpg"]
    assert (rotated["width"], rotated["height"]) == (32, 64)  # after EXIF orientation
    # junk is ignored and reported, never a row; the empty class folder adds no class
    raw = ParquetTable(lake.root / "assets/data/raw_images/current/data.parquet")
    assert sorted(i["path"] for i in raw.meta["ignored"]) == sorted(JUNK)
    assert not any(j.split("/", 1)[1] in rows for j in JUNK)
    assert "cherry" not in set(manifest["label"])


def test_links_and_devices_are_listed_with_why_and_never_followed(settings, corpus, tmp_path):
    """A folder of photos that links to files and folders outside it (or to itself): none of
    their bytes reach the lake, each link is listed with its reason and counted."""
    import os

    from fruitops_data.layout import LINK_REASON, SPECIAL_REASON

    outside = tmp_path / "outside"
    outside.mkdir()
    secret = outside / "passwd"
    secret.write_bytes(b"root:x:0:0:root:/root:/bin/bash\n")
    (outside / "kept-out.jpg").write_bytes((corpus / "val1/apple/apple-000.jpg").read_bytes())
    train = corpus / "train1"
    (train / "apple" / "passwd.jpg").symlink_to(secret)
    (train / "linked-class").symlink_to(outside, target_is_directory=True)
    (train / "apple" / "loop").symlink_to(train, target_is_directory=True)
    (train / "banana" / "dangling.jpg").symlink_to(tmp_path / "gone.jpg")
    os.mkfifo(train / "banana" / "pipe.jpg")
    lake, manifest, records = ingest(settings, corpus, LENIENT)

    lake_root = (settings.home / "lake").resolve()
    for path in (settings.home / "lake").rglob("*"):
        # the only links are the lake's own: an asset's `current`, to its version folder
        if path.is_symlink():
            assert path.name == "current", path
            assert (
                path.resolve().parent == lake_root / path.parent.relative_to(lake_root) / "versions"
            )
        if path.is_file():
            assert not path.read_bytes().startswith(b"root:x"), path
    assert not any("kept-out" in key or "passwd" in key for key in manifest["key"])
    raw = ParquetTable(lake.root / "assets/data/raw_images/current/data.parquet")
    reasons = {i["path"]: i["reason"] for i in raw.meta["ignored"]}
    assert {k: reasons[k] for k in reasons if k not in JUNK} == {
        "train/apple/passwd.jpg": LINK_REASON,
        "train/linked-class": LINK_REASON,
        "train/apple/loop": LINK_REASON,
        "train/banana/dangling.jpg": LINK_REASON,
        "train/banana/pipe.jpg": SPECIAL_REASON,
    }
    assert records[0].metadata["ignored"] == len(JUNK) + 5


def test_files_over_the_size_limit_are_left_out_with_why(settings, corpus, monkeypatch):
    from fruitops_data import layout

    sizes = {
        p.relative_to(corpus).as_posix(): p.stat().st_size
        for p in corpus.rglob("*")
        if p.is_file() and not p.is_symlink()
    }
    limit = sorted(sizes.values())[-3]  # the two largest files are over it
    monkeypatch.setattr(layout, "MAX_FILE_BYTES", limit)
    lake, manifest, records = ingest(settings, corpus, LENIENT)
    raw = ParquetTable(lake.root / "assets/data/raw_images/current/data.parquet")
    over = {i["path"] for i in raw.meta["ignored"] if "over the per-file limit" in i["reason"]}
    expected = {
        k.replace("train1", "train").replace("val1", "val").replace("test1", "test")
        for k, size in sizes.items()
        if size > limit and not any(part.startswith(".") for part in k.split("/"))
    }
    assert over == expected and over
    assert not any(source_path(k) in over for k in manifest["key"])


def test_one_pixel_limit_for_ingest_scoring_and_monitoring(monkeypatch):
    """The decompression-bomb limit is one number: what ingest quarantines, scoring and
    monitoring refuse too (they all decode through `open_image`)."""
    import io

    from PIL import Image

    from fruitops_data import images
    from fruitops_data.manifest import inspect_image

    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), "red").save(buffer, format="PNG")
    data = buffer.getvalue()
    assert inspect_image(data)["readable"] and images.decode_rgb(data).size == (40, 30)
    monkeypatch.setattr(images, "MAX_PIXELS", 40 * 30 - 1)
    row = inspect_image(data)
    assert not row["readable"] and row["error"].startswith("decompression bomb")
    for decode in (images.decode_rgb, images.decode_array):
        with pytest.raises(Image.DecompressionBombError, match="1200 pixels"):
            decode(data)


def test_unusable_files_are_quarantined_with_reasons(settings, corpus):
    lake, manifest, records = ingest(settings, corpus, LENIENT)
    dataset_id = records[1].metadata["dataset_id"]
    reasons = lake.read_json(f"quarantine/{dataset_id}/reasons.json")
    bad = {name for name, (ok, _) in EXPECTED.items() if not ok}
    assert {source_path(r["key"]) for r in reasons} == bad
    for entry in reasons:
        assert lake.exists(entry["quarantine_key"]) and entry["reason"]
    assert records[1].metadata["quarantined"] == len(bad)


def test_valid_but_unusual_images_decode_to_rgb(corpus):
    apple = corpus / "train1" / "apple"
    for name in (
        "png-named.jpg",
        "cmyk.jpg",
        "grey.jpg",
        "palette.png",
        "rgba.png",
        "sixteen-bit.png",
        "exif-rotated.jpg",
    ):
        image = decode_rgb((apple / name).read_bytes(), 32)
        assert image.mode == "RGB" and image.size == (32, 32), name
    grey = np.asarray(decode_rgb((apple / "sixteen-bit.png").read_bytes()))
    assert 0 < grey.mean() < 255  # 16-bit values scaled, not clipped to white


def test_too_many_bad_files_stop_the_run(settings, corpus):
    with pytest.raises(AssetCheckFailed, match="unusable_share_within_threshold"):
        ingest(settings, corpus)  # default threshold 5 %: 4 bad of ~45 files


def test_validation_catches_leakage_and_unknown_labels(settings, corpus):
    add_leak_and_val_only_class(corpus)
    lake, _, _ = ingest(settings, corpus, LENIENT)
    graph = AssetGraph.from_entry_points()
    with pytest.raises(AssetCheckFailed, match="critical_expectations_pass"):
        materialize(
            ["data/data_validation"],
            settings=settings,
            graph=graph,
            lake=lake,
            config={"data/data_validation": {"min_train_per_class": 5}},
        )
    result = lake.read_json("assets/data/data_validation/current/result.json")
    assert set(result["failed_expectations"]) == {
        "no_leakage_across_splits",
        "eval_labels_subset_of_train",
    }
    leak = next(r for r in result["results"] if r["name"] == "no_leakage_across_splits")
    assert leak["unexpected_count"] == 2  # the train copy and the test copy
    assert lake.exists("assets/data/data_validation/current/data_docs/index.html")
    with pytest.raises(AssetCheckFailed, match="upstream data/data_validation failed"):
        materialize(["data/class_mapping"], settings=settings, graph=graph, lake=lake)


def test_clean_data_passes_and_builds_the_cache(settings, tmp_path):
    corpus = build_corpus(tmp_path / "clean")
    for name in EXPECTED:  # keep only the good files
        if not EXPECTED[name][0]:
            (corpus / name.replace("train/", "train1/", 1)).unlink()
    lake, manifest, _ = ingest(settings, corpus)
    graph = AssetGraph.from_entry_points()
    materialize(
        ["data/data_validation", "data/class_mapping", "data/training_cache"],
        settings=settings,
        graph=graph,
        lake=lake,
        config={"data/training_cache": {"image_size": 32, "shard_size": 5}},
    )
    validation = lake.read_json("assets/data/data_validation/current/result.json")
    assert validation["success"], validation["failed_expectations"]
    mapping = lake.read_json("assets/data/class_mapping/current/data.json")
    assert mapping["classes"] == ["apple", "banana"] and mapping["index"]["banana"] == 1
    # a typed record, stored as plain JSON
    cache = TrainingCache.model_validate(
        lake.read_json("assets/data/training_cache/current/data.json")
    )
    assert cache.splits["train"].count == int((manifest["split"] == "train").sum())
    assert len(cache.splits["train"].shards) > 1  # sharded
    stored = ParquetTable(lake.root / "assets/data/image_manifest/current/data.parquet")
    assert cache.manifest_hash == stored.meta["manifest_hash"]  # read from the footer
    # the validation run, logged through the Tracking resource
    tracking = Tracking(settings)
    (run,) = tracking.search_runs("tags.fruitops_kind = 'validation'")
    logged = {a.path for a in tracking.client.list_artifacts(run.info.run_id, "validation")}
    assert logged == {"validation/result.json", "validation/data_docs"}
    assert run.info.run_name.startswith("validation-")
    assert run.data.tags["manifest_hash"] == cache.manifest_hash
    assert run.data.tags["validation_success"] == "True"
    assert run.data.metrics["validation_success"] == 1.0
    assert {"failed_expectations", "warnings"} <= set(run.data.metrics)
    again = materialize(
        ["data/training_cache"],
        settings=settings,
        graph=graph,
        lake=lake,
        config={"data/training_cache": {"image_size": 32, "shard_size": 5}},
    )
    assert again[0].metadata["reused"] is True


def test_cli_ingest_reports_quarantine_and_exits_1_past_threshold(settings, corpus):
    result = subprocess.run(
        [FRUITOPS, "data", "ingest", str(corpus), "--json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert "unusable" in report["error"]
    assert {source_path(q["key"]) for q in report["quarantined"]} == {
        n for n, (ok, _) in EXPECTED.items() if not ok
    }
    assert report["files"] == len(report["quarantined"]) + report["readable"]
    assert sorted(i["path"] for i in report["ignored"]) == sorted(JUNK)
    assert report["classes"] == ["apple", "banana"]
    assert set(report["splits"]) == {"train", "val", "test"}
