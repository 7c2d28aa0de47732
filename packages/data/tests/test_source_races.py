"""A source folder that changes while it is ingested: swaps for links, FIFOs, growth, in-place
edits. The changes are injected deterministically (a `Walk` that changes the folder right
after yielding a chosen file, or a hash that changes the file right after reading it), and
no byte from outside the source reaches the lake, whatever the timing."""

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
from corpus import (
    ingest,  # noqa: I001 - the shared helper, after the module it patches
    jpeg,
)

from fruitops_core.safe_files import OpenedFile
from fruitops_core.tables import ParquetTable
from fruitops_data import ingest as ingest_module
from fruitops_data.layout import LINK_REASON, SPECIAL_REASON, Walk
from fruitops_data.synthetic import draw_image

HOST_SECRET = b"root:$6$hash-of-the-host:19000:0:99999:7:::\n"


def source(root: Path, classes=("aaa", "bbb"), per_class: int = 6) -> Path:
    """A small clean source: train/val/test of two classes, ``per_class`` photos each."""
    data = root / "Fruit_dataset"
    rng = np.random.default_rng(0)
    for split in ("train1", "val1", "test1"):
        for index, name in enumerate(classes):
            folder = data / split / name
            folder.mkdir(parents=True)
            for i in range(per_class):
                (folder / f"{name}-{i}.jpg").write_bytes(jpeg(draw_image(index, 40, rng)))
    return data


@pytest.fixture
def host(tmp_path: Path) -> Path:
    """A host folder the source must never reach: files that look like photos and a secret."""
    folder = tmp_path / "host"
    folder.mkdir()
    (folder / "shadow").write_bytes(HOST_SECRET)
    for i in range(6):
        (folder / f"bbb-{i}.jpg").write_bytes(HOST_SECRET)
    return folder


def walk_that(after: str, change) -> type[Walk]:
    """A `Walk` that calls ``change()`` once, right after yielding the file ``after``."""

    class Changing(Walk):
        def __iter__(self):
            done = False
            for found in super().__iter__():
                yield found
                if not done and found.relpath == after:
                    change()
                    done = True

    return Changing


def lake_bytes(lake) -> list[bytes]:
    return [p.read_bytes() for p in (lake.root / "raw").rglob("*") if p.is_file()]


def assert_lake_matches_listing(lake) -> ParquetTable:
    """Every raw file's bytes hash to the listing's sha256, and none holds the secret."""
    raw = ParquetTable(lake.root / "assets/data/raw_images/current/data.parquet")
    listing = raw.read()
    for key, sha in zip(listing["key"], listing["sha256"], strict=True):
        assert hashlib.sha256(lake.read_bytes(key)).hexdigest() == sha, key
    assert not any(HOST_SECRET in data for data in lake_bytes(lake))
    return raw


def test_a_folder_swapped_for_a_link_after_the_walk_started_is_refused(
    settings, tmp_path, host, monkeypatch
):
    data = source(tmp_path / "src", classes=("aaa", "bbb", "ccc"))
    bbb = data / "train1" / "bbb"

    def swap() -> None:
        bbb.rename(tmp_path / "bbb-moved")
        bbb.symlink_to(host, target_is_directory=True)

    monkeypatch.setattr(ingest_module, "Walk", walk_that("train/aaa/aaa-0.jpg", swap))
    lake, manifest, _ = ingest(settings, data)
    raw = assert_lake_matches_listing(lake)
    assert not any(key.split("/")[-3:-1] == ["train", "bbb"] for key in manifest["key"])
    reasons = {i["path"]: i["reason"] for i in raw.meta["ignored"]}
    assert reasons["train/bbb"] == LINK_REASON


def test_a_file_swapped_for_a_link_after_its_hash_keeps_its_own_bytes(
    settings, tmp_path, host, monkeypatch
):
    """The hash and the copy read the one handle opened by the walk: a swap of the path in
    between changes nothing (63 of 400 lake files held the host's bytes before)."""
    data = source(tmp_path / "src")
    original = OpenedFile.sha256

    def hash_then_swap(self: OpenedFile) -> str:
        digest = original(self)
        path = Path(os.readlink(f"/proc/self/fd/{self.fd}"))
        if path.exists():
            path.unlink()
            path.symlink_to(host / "shadow")
        return digest

    monkeypatch.setattr(OpenedFile, "sha256", hash_then_swap)
    lake, manifest, _ = ingest(settings, data)
    assert_lake_matches_listing(lake)
    assert len(manifest) == 36  # every photo, each with its own bytes


def test_a_file_edited_in_place_between_hash_and_copy_is_left_out(settings, tmp_path, monkeypatch):
    data = source(tmp_path / "src")
    victim = data / "train1" / "aaa" / "aaa-3.jpg"
    original = OpenedFile.sha256

    def hash_then_edit(self: OpenedFile) -> str:
        digest = original(self)
        if os.path.samestat(os.fstat(self.fd), victim.stat()):
            with open(victim, "r+b") as handle:  # same inode, other bytes
                handle.write(b"\xff\xd8 edited")
        return digest

    monkeypatch.setattr(OpenedFile, "sha256", hash_then_edit)
    lake, manifest, _ = ingest(settings, data)
    raw = assert_lake_matches_listing(lake)
    reasons = {i["path"]: i["reason"] for i in raw.meta["ignored"]}
    assert reasons["train/aaa/aaa-3.jpg"].startswith("changed while it was read")
    assert not any(k.endswith("train/aaa/aaa-3.jpg") for k in manifest["key"])


@pytest.mark.timeout(60)
def test_a_file_swapped_for_a_fifo_during_the_walk_does_not_hang_ingest(
    settings, tmp_path, monkeypatch
):
    data = source(tmp_path / "src")
    target = data / "train1" / "bbb" / "bbb-2.jpg"

    def swap() -> None:
        target.unlink()
        os.mkfifo(target)

    monkeypatch.setattr(ingest_module, "Walk", walk_that("train/aaa/aaa-5.jpg", swap))
    lake, manifest, _ = ingest(settings, data)
    raw = assert_lake_matches_listing(lake)
    reasons = {i["path"]: i["reason"] for i in raw.meta["ignored"]}
    assert reasons["train/bbb/bbb-2.jpg"] == SPECIAL_REASON
    assert len(manifest) == 35


def test_a_file_grown_past_the_limit_after_it_was_opened_is_left_out(
    settings, tmp_path, monkeypatch
):
    from fruitops_data import layout

    data = source(tmp_path / "src")
    limit = max(p.stat().st_size for p in data.rglob("*.jpg")) + 10
    monkeypatch.setattr(layout, "MAX_FILE_BYTES", limit)
    grown = data / "train1" / "bbb" / "bbb-1.jpg"

    def grow() -> None:
        with open(grown, "ab") as handle:
            handle.write(b"\0" * (limit + 1))

    monkeypatch.setattr(ingest_module, "Walk", walk_that("train/aaa/aaa-0.jpg", grow))
    lake, manifest, _ = ingest(settings, data)
    raw = assert_lake_matches_listing(lake)
    reasons = {i["path"]: i["reason"] for i in raw.meta["ignored"]}
    assert "over the per-file limit" in reasons["train/bbb/bbb-1.jpg"] or reasons[
        "train/bbb/bbb-1.jpg"
    ].startswith("grew past the per-file limit")
    assert not any(k.endswith("train/bbb/bbb-1.jpg") for k in manifest["key"])


def test_label_files_are_never_read_through_links(settings, tmp_path, host):
    from fruitops_core.records import AssetCheckFailed  # noqa: F401 - errors are plain here

    data = source(tmp_path / "src")
    (data / "train.csv").symlink_to(host / "shadow")
    with pytest.raises(Exception, match="symbolic link") as failed:
        ingest(settings, data)
    assert "hash-of-the-host" not in str(failed.value)  # no line of the host file is shown
    (data / "train.csv").unlink()
    (data / "train.csv").write_text("image:FILE,category\ntrain/aaa/aaa-0.jpg,0\n")
    (data / "classname.txt").symlink_to(host / "shadow")
    with pytest.raises(Exception, match="classname.txt: a symbolic link"):
        ingest(settings, data)


def test_a_label_file_that_is_not_a_csv_shows_no_more_than_its_start(settings, tmp_path):
    data = source(tmp_path / "src")
    (data / "train.csv").write_bytes(HOST_SECRET * 3)
    with pytest.raises(Exception, match="expected the columns image:FILE,category") as failed:
        ingest(settings, data)
    assert HOST_SECRET.decode().strip() not in str(failed.value)


def test_names_not_utf8_or_too_long_are_listed_and_ingest_completes(settings, tmp_path):
    data = source(tmp_path / "src")
    folder = data / "train1" / "aaa"
    photo = (folder / "aaa-0.jpg").read_bytes()
    odd = os.path.join(os.fsencode(folder), b"caf\xe9.jpg")  # Latin-1, not UTF-8
    with open(odd, "wb") as handle:
        handle.write(photo)
    long_name = "x" * 240 + ".jpg"
    (folder / long_name).write_bytes(photo)
    lake, manifest, _ = ingest(settings, data)
    raw = ParquetTable(lake.root / "assets/data/raw_images/current/data.parquet")
    reasons = {i["path"]: i["reason"] for i in raw.meta["ignored"]}
    assert any("not UTF-8" in r for r in reasons.values())
    assert reasons[f"train/aaa/{long_name}"].startswith("a name of 244 bytes")
    assert len(manifest) == 36


def test_a_reingest_that_fails_half_way_leaves_every_committed_byte(
    settings, tmp_path, monkeypatch
):
    """Raw files are versioned: a re-ingest writes changed files into a folder of its own,
    so one that fails half-way leaves the committed listing's objects as they were (it
    overwrote them in place before, and the committed sha256 no longer matched)."""
    from fruitops_core.lake import LocalLake

    data = source(tmp_path / "src")
    lake, _, _ = ingest(settings, data)
    for photo in sorted((data / "train1").rglob("*.jpg")):  # every train photo changes
        photo.write_bytes(photo.read_bytes() + b"\0")
    real_put = LocalLake.put_chunks
    calls = []

    def put_then_fail(self, chunks, path):
        calls.append(path)
        if len(calls) > 3:
            raise OSError("disk gone")
        return real_put(self, chunks, path)

    monkeypatch.setattr(LocalLake, "put_chunks", put_then_fail)
    with pytest.raises(Exception, match="disk gone"):
        ingest(settings, data)
    assert len(calls) > 3  # some changed files were written before it failed
    assert_lake_matches_listing(lake)  # the committed listing still describes every object
