import threading
from pathlib import Path

import pandas as pd
import pytest

from fruitops_core.lake import LakeError, LocalLake, lake_from_uri, uri_exists


@pytest.fixture(params=["local", "s3"])
def lake(request, tmp_path: Path):
    if request.param == "local":
        return LocalLake(tmp_path / "lake")
    server = request.getfixturevalue("s3_server")
    return lake_from_uri(f"s3://{server.bucket}/{tmp_path.name}", endpoint_url=server.endpoint)


def test_bytes_json_parquet_round_trip(lake):
    frame = pd.DataFrame({"key": ["a", "b"], "n": [1, 2]})
    assert lake.write_bytes("x/raw.bin", b"\x00\x01").endswith("x/raw.bin")
    lake.write_json("x/doc.json", {"b": 2, "a": [1]})
    lake.write_parquet("y/t.parquet", frame)
    assert lake.read_bytes("x/raw.bin") == b"\x00\x01"
    assert lake.read_json("x/doc.json") == {"a": [1], "b": 2}
    pd.testing.assert_frame_equal(lake.read_parquet("y/t.parquet"), frame)
    assert list(lake.list()) == ["x/doc.json", "x/raw.bin", "y/t.parquet"]
    assert list(lake.list("x")) == ["x/doc.json", "x/raw.bin"]
    assert lake.size("x/raw.bin") == 2
    assert uri_exists(lake.uri("x/doc.json"), endpoint_url=getattr(lake, "endpoint_url", None))


def test_files_and_delete(lake, tmp_path: Path):
    local = tmp_path / "big.bin"
    local.write_bytes(b"z" * 100_000)
    lake.put_file(local, "f/big.bin")
    back = lake.get_file("f/big.bin", tmp_path / "back.bin")
    assert back.read_bytes() == local.read_bytes()
    assert lake.delete_prefix("f") == 1
    assert not lake.exists("f/big.bin")


def test_missing_object_names_the_uri(lake):
    with pytest.raises(LakeError, match="nothing/here.json.*does not exist"):
        lake.read_json("nothing/here.json")


def test_paths_cannot_escape_the_root(lake):
    with pytest.raises(LakeError, match="escapes"):
        lake.write_bytes("../outside", b"x")


def test_local_write_is_atomic_for_readers(tmp_path: Path):
    """A reader polling during rewrites sees either the old or the new bytes, never a mix."""
    lake = LocalLake(tmp_path)
    old, new = b"a" * 2_000_000, b"b" * 2_000_000
    lake.write_bytes("obj", old)
    seen: set[bytes] = set()
    stop = threading.Event()

    def reader():
        while not stop.is_set():
            data = lake.read_bytes("obj")
            seen.add(data[:1] + data[-1:] + bytes([len(data) == len(old)]))

    thread = threading.Thread(target=reader)
    thread.start()
    for i in range(30):
        lake.write_bytes("obj", new if i % 2 else old)
    stop.set()
    thread.join()
    assert seen <= {b"aa\x01", b"bb\x01"}
    assert [p.name for p in tmp_path.iterdir()] == ["obj"]  # no temp files left


def test_local_objects_get_ordinary_permissions(tmp_path: Path):
    """Other users of a shared lake (a web server, an Airflow worker) can read what we write."""
    import os
    import stat

    lake = LocalLake(tmp_path)
    lake.write_bytes("obj", b"x")
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE((tmp_path / "obj").stat().st_mode) == 0o666 & ~mask


def test_failed_local_write_leaves_old_object(tmp_path: Path):
    lake = LocalLake(tmp_path)
    lake.write_bytes("obj", b"old")

    def boom(handle):
        handle.write(b"partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        lake._atomic("obj", boom)
    assert lake.read_bytes("obj") == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["obj"]


def test_unreachable_s3_endpoint_says_what_to_check(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "y")
    lake = lake_from_uri("s3://bucket/p", endpoint_url="http://127.0.0.1:9")
    with pytest.raises(LakeError, match=r"127\.0\.0\.1:9.*AWS_ENDPOINT_URL"):
        lake.read_bytes("a")


def test_missing_bucket_is_named(s3_server):
    lake = lake_from_uri("s3://no-such-bucket-here", endpoint_url=s3_server.endpoint)
    with pytest.raises(LakeError, match="no-such-bucket-here"):
        lake.read_bytes("a")


def test_unsupported_scheme():
    with pytest.raises(LakeError, match="unsupported lake URI"):
        lake_from_uri("ftp://host/x")


def test_gs_uses_gcs_interoperability_endpoint():
    lake = lake_from_uri("gs://my-bucket/lake")
    assert lake.endpoint_url == "https://storage.googleapis.com"
    assert lake.uri("a/b") == "gs://my-bucket/lake/a/b"


def test_a_killed_writers_temporary_file_goes_with_the_next_write(tmp_path):
    """A write killed half-way leaves ``.<name>.<pid>-….tmp``; the next successful write of
    that name removes it (its PID is gone), not a live writer's."""
    import os
    import subprocess
    import sys

    from fruitops_core.lake import LocalLake

    lake = LocalLake(tmp_path)
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()  # fmt: skip
    (tmp_path / "assets").mkdir()
    killed = tmp_path / "assets" / f".data.json.{gone}-abc123.tmp"
    killed.write_bytes(b"half a fi")
    live = tmp_path / "assets" / f".data.json.{os.getpid()}-def456.tmp"
    live.write_bytes(b"being written")
    assert list(lake.list("assets")) == []  # temporaries are never listed
    lake.write_json("assets/data.json", {"ok": True})
    assert not killed.exists() and live.exists()
    assert lake.read_json("assets/data.json") == {"ok": True}
