"""Each source kind resolves to the Kaggle layout, or fails with a message saying what to do."""

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from fruitops_core.lake import LocalLake, lake_from_uri
from fruitops_core.materialize import materialize
from fruitops_core.registry import AssetGraph
from fruitops_data.layout import LayoutError, walk
from fruitops_data.sources import SourceError, resolve

SHARED_REAL = Path(__file__).resolve().parents[3].parent / "shared" / "datasets" / "fruits-real"


def zip_folder(folder: Path, archive: Path, extra: dict[str, bytes] | None = None) -> Path:
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                zf.write(path, path.relative_to(folder.parent).as_posix())
        for name, data in (extra or {}).items():
            zf.writestr(name, data)
    return archive


def test_zip_is_extracted_once_and_walked(tmp_path: Path, real_sample: Path):
    archive = zip_folder(real_sample / "Fruit_dataset", tmp_path / "fruits.zip")
    resolved = resolve(str(archive), tmp_path / "home")
    files, _ = walk(resolved.root)
    assert len(files) == 24 and resolved.dataset_id.startswith("zip-fruits-")
    marker = resolved.root.parent / ".complete"
    stamp = marker.stat().st_mtime_ns
    assert resolve(str(archive), tmp_path / "home").root == resolved.root
    assert marker.stat().st_mtime_ns == stamp  # not extracted twice


def test_zip_member_escaping_the_target_is_refused(tmp_path: Path, real_sample: Path):
    archive = zip_folder(
        real_sample / "Fruit_dataset", tmp_path / "evil.zip", {"../../outside.txt": b"gotcha"}
    )
    with pytest.raises(SourceError, match="outside the extraction folder"):
        resolve(str(archive), tmp_path / "home")
    assert not (tmp_path / "outside.txt").exists()
    assert not list((tmp_path / "home").rglob("outside.txt"))


def test_two_ingests_of_one_zip_at_once_both_succeed_and_leave_no_staging(
    tmp_path: Path, real_sample: Path
):
    from concurrent.futures import ThreadPoolExecutor
    from threading import Barrier

    archive = zip_folder(real_sample / "Fruit_dataset", tmp_path / "fruits.zip")
    start = Barrier(2)

    def ingest(_: int) -> Path:
        start.wait()
        return resolve(str(archive), tmp_path / "home").root

    with ThreadPoolExecutor(2) as pool:
        roots = list(pool.map(ingest, range(2)))
    assert roots[0] == roots[1] and len(walk(roots[0])[0]) == 24
    assert not list((tmp_path / "home" / "sources").glob("*.partial*"))


def test_a_refused_archive_leaves_nothing_behind(tmp_path: Path, real_sample: Path):
    archive = zip_folder(
        real_sample / "Fruit_dataset", tmp_path / "evil.zip", {"ok/../../x.txt": b"x"}
    )
    with pytest.raises(SourceError, match="outside the extraction folder"):
        resolve(str(archive), tmp_path / "home")
    assert list((tmp_path / "home" / "sources").iterdir()) == []


def test_broken_and_oversized_zips(tmp_path: Path, real_sample: Path):
    broken = tmp_path / "broken.zip"
    broken.write_bytes(b"PK\x03\x04 this is not really a zip")
    with pytest.raises(SourceError, match="not a readable zip"):
        resolve(str(broken), tmp_path / "home")
    archive = zip_folder(real_sample / "Fruit_dataset", tmp_path / "big.zip")
    with pytest.raises(SourceError, match="over the limit of 10"):
        resolve(str(archive), tmp_path / "home", max_zip_files=10)
    with pytest.raises(SourceError, match="unpacks to .* over the limit"):
        resolve(str(archive), tmp_path / "home2", max_zip_bytes=1000)
    with pytest.raises(SourceError, match="does not exist"):
        resolve(str(tmp_path / "missing.zip"), tmp_path / "home")
    with pytest.raises(SourceError, match="over the per-file limit of 1000"):
        resolve(str(archive), tmp_path / "home3", max_file_bytes=1000)


def test_a_zip_that_would_fill_the_disk_is_refused_before_extraction(
    tmp_path: Path, real_sample: Path, monkeypatch
):
    from collections import namedtuple

    from fruitops_data import sources

    archive = zip_folder(real_sample / "Fruit_dataset", tmp_path / "fruits.zip")
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(
        sources.shutil, "disk_usage", lambda _: usage(10**9, 10**9, sources.DISK_RESERVE_BYTES)
    )
    with pytest.raises(SourceError, match=r"unpacks to \d+ bytes but .* free"):
        resolve(str(archive), tmp_path / "home")
    assert list((tmp_path / "home" / "sources").iterdir()) == []


def test_s3_prefix_against_a_real_s3_server(tmp_path: Path, real_sample: Path, s3_server):
    bucket = lake_from_uri(f"s3://{s3_server.bucket}/photos", endpoint_url=s3_server.endpoint)
    for path in (real_sample / "Fruit_dataset").rglob("*.jpg"):
        bucket.put_file(path, path.relative_to(real_sample).as_posix())
    resolved = resolve(
        f"s3://{s3_server.bucket}/photos", tmp_path / "home", endpoint_url=s3_server.endpoint
    )
    files, _ = walk(resolved.root)
    assert len(files) == 24 and {f.label for f in files} == {"banana", "kiwi", "lemon"}
    with pytest.raises(SourceError, match="holds no usable objects"):
        resolve(
            f"s3://{s3_server.bucket}/nothing-here",
            tmp_path / "home",
            endpoint_url=s3_server.endpoint,
        )


def test_s3_mirror_follows_deletes_and_changes_on_a_real_server(
    tmp_path: Path, real_sample: Path, s3_server
):
    """A deleted object leaves the mirror, one replaced at the same size is fetched again;
    odd keys the server accepts (it refuses '..' and folds '//') stay inside the mirror."""
    import uuid

    from botocore.exceptions import ClientError

    client = s3_server.client()
    bucket, prefix = s3_server.bucket, f"mirror-{uuid.uuid4().hex[:8]}"
    photos = sorted((real_sample / "Fruit_dataset").rglob("*.jpg"))
    for path in photos:
        key = f"{prefix}/{path.relative_to(real_sample).as_posix()}"
        client.put_object(Bucket=bucket, Key=key, Body=path.read_bytes())
    escape = f"fruitops-escape-{uuid.uuid4().hex[:8]}.jpg"
    for odd in (f"{prefix}//tmp/{escape}", f"{prefix}/Fruit_dataset/../../{escape}"):
        try:
            client.put_object(Bucket=bucket, Key=odd, Body=b"not yours")
        except ClientError:
            pass  # SeaweedFS refuses '..' keys outright
    source = f"s3://{bucket}/{prefix}"
    resolved = resolve(source, tmp_path / "home", endpoint_url=s3_server.endpoint)
    assert not Path("/tmp", escape).exists() and not (tmp_path / escape).exists()
    inside = [p for p in (tmp_path / "home").rglob(escape)]
    assert all(p.resolve().is_relative_to(resolved.root.parent.resolve()) for p in inside)
    assert len(walk(resolved.root)[0]) == len(photos)

    gone, changed = photos[0], photos[1]
    client.delete_object(Bucket=bucket, Key=f"{prefix}/{gone.relative_to(real_sample).as_posix()}")
    data = bytearray(changed.read_bytes())
    data[-3] ^= 0xFF  # same size, other bytes
    changed_key = f"{prefix}/{changed.relative_to(real_sample).as_posix()}"
    client.put_object(Bucket=bucket, Key=changed_key, Body=bytes(data))
    again = resolve(source, tmp_path / "home", endpoint_url=s3_server.endpoint)
    mirrored = {f.path.relative_to(again.root).as_posix(): f.path for f in walk(again.root)[0]}
    assert len(mirrored) == len(photos) - 1
    assert gone.relative_to(real_sample / "Fruit_dataset").as_posix() not in mirrored
    assert mirrored[changed.relative_to(real_sample / "Fruit_dataset").as_posix()].read_bytes() == (
        bytes(data)
    )


def test_s3_keys_that_would_escape_are_refused_and_listed_on_a_fake_s3_server_moto(
    tmp_path: Path, real_sample: Path, monkeypatch, free_port
):
    """AWS keeps keys as given: ``prefix//etc/x`` lists as ``/etc/x`` under the prefix, and
    ``..`` segments stay. SeaweedFS cannot hold them, so moto's S3 server (a fake, over
    HTTP, that keeps keys as AWS does) holds them, made through the S3 API: each is
    refused with its reason, none is written."""

    import boto3
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    for var, value in {"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "y"}.items():
        monkeypatch.setenv(var, value)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    endpoint = f"http://127.0.0.1:{port}"
    try:
        client = boto3.client("s3", endpoint_url=endpoint)
        client.create_bucket(Bucket="photos")
        photo = next((real_sample / "Fruit_dataset").rglob("*.jpg"))
        objects = {
            "Fruit_dataset/train1/kiwi/ok.jpg": photo.read_bytes(),
            "/tmp/escaped.jpg": b"x",
            "Fruit_dataset/../../escaped.jpg": b"x",
            "Fruit_dataset/train1//kiwi.jpg": b"x",
            "Fruit_dataset/./train1/kiwi/dot.jpg": b"x",
        }
        for key, data in objects.items():
            client.put_object(Bucket="photos", Key=f"day/{key}", Body=data)
        resolved = resolve("s3://photos/day", tmp_path / "home", endpoint_url=endpoint)
    finally:
        server.stop()
    reasons = {r["path"]: r["reason"] for r in resolved.refused}
    assert set(reasons) == set(objects) - {"Fruit_dataset/train1/kiwi/ok.jpg"}
    assert "leading '/'" in reasons["/tmp/escaped.jpg"]
    assert "'..'" in reasons["Fruit_dataset/../../escaped.jpg"]
    assert "empty segment" in reasons["Fruit_dataset/train1//kiwi.jpg"]
    assert not list(tmp_path.rglob("escaped.jpg")) and not list(tmp_path.rglob("dot.jpg"))
    assert [f.relpath for f in walk(resolved.root)[0]] == ["train/kiwi/ok.jpg"]


def test_kaggle_fails_fast_saying_what_to_set(tmp_path: Path, monkeypatch):
    for var in ("KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_API_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(tmp_path / "no-kaggle"))
    with pytest.raises(SourceError, match=r"kagglehub|KAGGLE_USERNAME|cannot reach"):
        resolve("kaggle:icebearogo/fruit-classification-dataset", tmp_path)
    with pytest.raises(SourceError, match="kaggle:owner/dataset"):
        resolve("kaggle:just-a-name", tmp_path)


def test_csv_labels_and_unlabeled_rows(tmp_path: Path, real_sample: Path):
    data = tmp_path / "Fruit_dataset"
    shutil.copytree(real_sample / "Fruit_dataset", data)
    (data / "classname.txt").write_text("Banana fruit\nKiwi fruit\nLemon fruit\n")
    kiwi = sorted((data / "test1" / "kiwi").iterdir())
    rows = ["image:FILE,category"] + [f"test/kiwi/{p.name},-1" for p in kiwi]
    rows.append("test/lemon/" + sorted((data / "test1" / "lemon").iterdir())[0].name + ",2")
    (data / "test.csv").write_text("\n".join(rows) + "\n")
    files, _ = walk(data)
    labels = {f.relpath: f.label for f in files}
    assert all(labels[f"test/kiwi/{p.name}"] is None for p in kiwi)
    assert "Lemon fruit" in labels.values()
    assert (
        labels["train/banana/" + sorted((data / "train1" / "banana").iterdir())[0].name] == "banana"
    )  # no CSV row: the folder name stands
    (data / "test.csv").write_text("image:FILE,category\ntest/kiwi/x.jpg,many\n")
    with pytest.raises(ValueError, match="not an integer"):
        walk(data)
    # a short row, a long row, a file that is not UTF-8: each names the file (and line)
    (data / "test.csv").write_text("image:FILE,category\ntest/kiwi/x.jpg,1\ntest/kiwi/y.jpg\n")
    with pytest.raises(LayoutError, match=r"test\.csv:3: expected 2 fields .* found 1"):
        walk(data)
    (data / "test.csv").write_text("image:FILE,category\ntest/kiwi/x.jpg,1,spare\n")
    with pytest.raises(LayoutError, match=r"test\.csv:2: expected 2 fields .* found 3"):
        walk(data)
    (data / "test.csv").write_bytes("image:FILE,category\ntest/kiwi/é.jpg,1\n".encode("latin-1"))
    with pytest.raises(LayoutError, match=r"test\.csv: not UTF-8 text .* save it as UTF-8"):
        walk(data)


def test_a_dot_slash_member_is_the_folder_itself(tmp_path: Path, real_sample: Path):
    """Archives made with `zip -r x.zip ./` list ``./`` first; it is not an error."""
    archive = tmp_path / "dot.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("./", b"")
        for path in sorted((real_sample / "Fruit_dataset").rglob("*.jpg")):
            zf.write(path, "./" + path.relative_to(real_sample / "Fruit_dataset").as_posix())
    files, _ = walk(resolve(str(archive), tmp_path / "home").root)
    assert len(files) == 24


def test_cli_validate_json_and_exit_status(settings, real_sample: Path):
    fruitops = str(Path(sys.executable).parent / "fruitops")
    ingest = subprocess.run(
        [fruitops, "data", "ingest", str(real_sample), "--json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert ingest.returncode == 0, ingest.stdout + ingest.stderr
    assert json.loads(ingest.stdout)["readable"] == 24
    strict = subprocess.run(
        [fruitops, "data", "validate", "--json"], capture_output=True, text=True, timeout=300
    )
    report = json.loads(strict.stdout)
    assert strict.returncode == 1  # 4 train images per class, 10 required
    assert report["failed_expectations"] == ["min_train_per_class"] and not report["success"]
    assert Path(report["docs_uri"].removeprefix("file://")).is_file()
    lenient = subprocess.run(
        [fruitops, "data", "validate", "--min-train-per-class", "4", "--json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert lenient.returncode == 0, lenient.stdout
    assert json.loads(lenient.stdout)["success"] is True


@pytest.mark.slow
@pytest.mark.skipif(not SHARED_REAL.exists(), reason="needs ../shared/datasets/fruits-real")
def test_the_real_fruit_photos_ingest_and_validate(settings):
    graph = AssetGraph.from_entry_points()
    lake = LocalLake(settings.home / "lake")
    records = materialize(
        ["data/data_validation"],
        with_upstream=True,
        settings=settings,
        graph=graph,
        lake=lake,
        config={"data/raw_images": {"source": str(SHARED_REAL)}},
    )
    manifest = lake.read_parquet("assets/data/image_manifest/current/data.parquet")
    assert len(manifest) == 1925 and manifest["readable"].all()
    assert manifest.loc[manifest["split"] == "train", "label"].nunique() == 28
    assert records[-1].metadata["success"] is True
