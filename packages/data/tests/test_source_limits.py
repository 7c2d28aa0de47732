"""The same limits for every source: where a local path may lie, and what an S3 mirror
downloads (per object, in total, and only what the disk can hold)."""

import uuid
from pathlib import Path

import pytest

from fruitops_core.materialize import materialize
from fruitops_core.registry import AssetGraph
from fruitops_core.safe_files import OutsideAllowedRoots, check_allowed
from fruitops_core.settings import FruitOpsSettings
from fruitops_data.sources import SourceError, resolve


@pytest.mark.parametrize("path", ["/", "/proc", "/proc/self", "/etc", "/dev/shm"])
def test_system_folders_are_no_source_when_no_roots_are_configured(path):
    with pytest.raises(OutsideAllowedRoots, match="system folder"):
        check_allowed(Path(path), [], "batch")


def test_configured_roots_are_the_only_places_inputs_come_from(tmp_path, monkeypatch):
    inside, outside = tmp_path / "photos", tmp_path / "elsewhere"
    inside.mkdir()
    outside.mkdir()
    monkeypatch.setenv("FRUITOPS_ALLOWED_ROOTS", f"{inside}:{tmp_path / 'more'}")
    roots = FruitOpsSettings().allowed_root_paths
    assert check_allowed(inside / "day-1", roots, "batch") == (inside / "day-1").resolve()
    with pytest.raises(OutsideAllowedRoots, match="outside FRUITOPS_ALLOWED_ROOTS"):
        check_allowed(outside, roots, "batch")
    (inside / "escape").symlink_to(outside, target_is_directory=True)
    with pytest.raises(OutsideAllowedRoots):  # resolved first: a link out of a root is out
        check_allowed(inside / "escape", roots, "batch")
    with pytest.raises(OutsideAllowedRoots, match="source"):
        resolve(str(outside), tmp_path / "home", allowed_roots=roots)


def test_a_batch_param_of_slash_is_refused_before_anything_is_listed(settings, real_sample):
    """`batch=/` walked /proc; now the incoming batch refuses it, naming the setting."""
    graph = AssetGraph.from_entry_points()
    config = {
        "data/raw_images": {"source": str(real_sample)},
        "data/incoming_batch": {"source": "/"},
    }
    with pytest.raises(OutsideAllowedRoots, match="FRUITOPS_ALLOWED_ROOTS"):
        materialize(
            ["data/incoming_batch"],
            settings=settings,
            graph=graph,
            config=config,
            with_upstream=True,
        )


def _put(client, bucket: str, key: str, body: bytes) -> None:
    client.put_object(Bucket=bucket, Key=key, Body=body)


@pytest.fixture
def s3_prefix(s3_server, real_sample):
    """A prefix on the real S3 server holding the real sample photos, and its client."""
    client = s3_server.client()
    prefix = f"limits-{uuid.uuid4().hex[:8]}"
    for path in sorted((real_sample / "Fruit_dataset").rglob("*.jpg")):
        _put(client, s3_server.bucket, f"{prefix}/{path.relative_to(real_sample).as_posix()}",
             path.read_bytes())  # fmt: skip
    return client, prefix


def test_an_object_over_the_per_file_limit_is_listed_never_downloaded(
    tmp_path, s3_server, s3_prefix
):
    client, prefix = s3_prefix
    big = f"{prefix}/Fruit_dataset/train1/banana/huge.jpg"
    _put(client, s3_server.bucket, big, b"\xff" * 300_000)
    resolved = resolve(
        f"s3://{s3_server.bucket}/{prefix}",
        tmp_path / "home",
        endpoint_url=s3_server.endpoint,
        max_file_bytes=200_000,
    )
    reasons = {r["path"]: r["reason"] for r in resolved.refused}
    assert "over the per-file limit" in reasons["Fruit_dataset/train1/banana/huge.jpg"]
    assert not list(resolved.root.rglob("huge.jpg"))


def test_a_prefix_over_the_total_limit_is_refused_before_downloading(
    tmp_path, s3_server, s3_prefix
):
    _, prefix = s3_prefix
    with pytest.raises(SourceError, match="over the limit of 1000"):
        resolve(
            f"s3://{s3_server.bucket}/{prefix}",
            tmp_path / "home",
            endpoint_url=s3_server.endpoint,
            max_zip_bytes=1000,
        )
    assert not list((tmp_path / "home").rglob("*.jpg"))


def test_a_prefix_larger_than_the_free_disk_is_refused_before_downloading(
    tmp_path, s3_server, s3_prefix, monkeypatch
):
    import shutil
    from collections import namedtuple

    _, prefix = s3_prefix
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda _: usage(10**9, 10**9, 4096))
    with pytest.raises(SourceError, match="bytes to download but .* free"):
        resolve(f"s3://{s3_server.bucket}/{prefix}", tmp_path / "home",
                endpoint_url=s3_server.endpoint)  # fmt: skip
    assert not list((tmp_path / "home").rglob("*.jpg"))
