import hashlib
import shutil
from pathlib import Path

import pytest
from corpus import ingest

from fruitops_core.materialize import materialize
from fruitops_data.layout import JUNK_REASON, LayoutError, Walk, find_dataset_root, walk
from fruitops_data.sources import SourceError, resolve


def test_kaggle_layout_found_from_parent(real_sample: Path):
    root = find_dataset_root(real_sample)
    assert root == real_sample / "Fruit_dataset"
    files, ignored = walk(root)
    assert len(files) == 24 and ignored == []
    assert {f.split for f in files} == {"train", "val", "test"}
    assert {f.label for f in files} == {"banana", "kiwi", "lemon"}
    assert all(f.relpath.startswith(f"{f.split}/{f.label}/") for f in files)


def test_plain_split_names_and_junk(tmp_path: Path, real_sample: Path):
    for split in ("train", "val", "test"):
        src = real_sample / "Fruit_dataset" / f"{split}1" / "kiwi"
        shutil.copytree(src, tmp_path / split / "kiwi")
    (tmp_path / "train" / "kiwi" / ".DS_Store").write_bytes(b"junk")
    (tmp_path / "train" / "Thumbs.db").write_bytes(b"junk")
    files, ignored = walk(find_dataset_root(tmp_path))
    assert len(files) == 8
    assert sorted(i["path"] for i in ignored) == ["train/Thumbs.db", "train/kiwi/.DS_Store"]
    assert {i["reason"] for i in ignored} == {JUNK_REASON}


def test_missing_and_empty_folders_say_what_is_expected(tmp_path: Path):
    with pytest.raises(LayoutError, match="does not exist"):
        find_dataset_root(tmp_path / "nope")
    with pytest.raises(LayoutError, match="train1\\|val1\\|test1"):
        find_dataset_root(tmp_path)
    (tmp_path / "train").mkdir()
    with pytest.raises(LayoutError, match="no files"):
        walk(find_dataset_root(tmp_path))


def test_unknown_source_scheme(tmp_path: Path):
    with pytest.raises(SourceError, match="'ftp' is not supported"):
        resolve("ftp://host/photos", tmp_path)


def test_raw_images_are_idempotent_and_manifest_counts(settings, real_sample: Path):
    lake, manifest, first = ingest(settings, real_sample)
    assert first[0].metadata["uploaded"] == 24
    assert len(manifest) == 24 and manifest["readable"].all()
    assert set(manifest["label"]) == {"banana", "kiwi", "lemon"}
    assert first[1].checks[0].passed

    again = materialize(
        ["data/raw_images"],
        settings=settings,
        lake=lake,
        config={"data/raw_images": {"source": str(real_sample)}},
    )
    assert again[0].metadata["uploaded"] == 0 and again[0].metadata["unchanged"] == 24


def test_reingest_uploads_only_changed_and_new_files(settings, tmp_path: Path, real_sample: Path):
    source = tmp_path / "photos"
    shutil.copytree(real_sample, source)
    lake, _, first = ingest(settings, source)
    assert first[0].metadata["uploaded"] == 24
    kiwi = source / "Fruit_dataset" / "train1" / "kiwi"
    changed = sorted(kiwi.iterdir())[0]
    changed.write_bytes(
        (real_sample / "Fruit_dataset" / "train1" / "lemon").iterdir().__next__().read_bytes()
    )
    shutil.copy(changed, kiwi / "zz new.jpg")
    first_manifest = lake.read_parquet("assets/data/image_manifest/current/data.parquet")
    _, manifest, again = ingest(settings, source)
    assert again[0].metadata["uploaded"] == 2 and again[0].metadata["unchanged"] == 23
    assert len(manifest) == 25
    # versioned like every asset: the unchanged files keep their objects, the changed and
    # new ones go to a version folder of this ingest, and nothing the first listing names
    # was written over
    versions = {key.split("/")[3] for key in manifest["key"]}
    assert len(versions) == 2
    for key, sha in zip(first_manifest["key"], first_manifest["sha256"], strict=True):
        assert hashlib.sha256(lake.read_bytes(key)).hexdigest() == sha, key


def test_walk_streams_files_in_key_string_order(tmp_path: Path):
    # folder "a b" sorts before "a" as a string ("a b/…" < "a/…"), unlike a per-level sort
    for rel in ("train/a/x.jpg", "train/a b/y.jpg", "train/a-c/z.jpg", "val/a/1.jpg"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    walker = Walk(tmp_path)
    relpaths = [f.relpath for f in walker]
    assert (
        relpaths
        == sorted(relpaths)
        == [
            "train/a b/y.jpg",
            "train/a-c/z.jpg",
            "train/a/x.jpg",
            "val/a/1.jpg",
        ]
    )
    assert walker.count() == 4


def test_data_commands_join_the_fruitops_cli(tmp_path: Path, real_sample: Path):
    import json
    import subprocess
    import sys

    fruitops = str(Path(sys.executable).parent / "fruitops")
    made = subprocess.run(
        [
            fruitops,
            "data",
            "synth",
            str(tmp_path / "syn"),
            "--classes",
            "3",
            "--per-class",
            "5",
            "--size",
            "32",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout)["splits"] == {"train": 3, "val": 1, "test": 1}
    seen = subprocess.run(
        [fruitops, "data", "inspect", str(real_sample), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert seen.returncode == 0, seen.stderr
    report = json.loads(seen.stdout)
    assert report["files"] == 24 and report["counts"]["val"] == {"banana": 2, "kiwi": 2, "lemon": 2}
