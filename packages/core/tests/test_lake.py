import threading
from pathlib import Path

import pandas as pd
import pytest

from fruitops_core.lake import LakeError, LocalLake, lake_from_uri, object_at, uri_exists


@pytest.fixture(params=["local", "s3", "fake_gcs"])
def lake(request, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    if request.param == "local":
        return LocalLake(tmp_path / "lake")
    if request.param == "fake_gcs":
        gcs = request.getfixturevalue("fake_gcs_server")
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs.host)
        return lake_from_uri(f"gs://{gcs.bucket}/{tmp_path.name}")
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


def test_local_writes_reach_the_disk_before_the_rename_commits_them(tmp_path, monkeypatch):
    """A crash right after the rename must not leave an empty or half file under the name:
    the data is fsynced first, then renamed."""
    import os

    import fruitops_core.lake_base as lake_base

    events = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (events.append("fsync"), real_fsync(fd))[1])
    monkeypatch.setattr(
        lake_base.os, "replace", lambda a, b: (events.append("rename"), real_replace(a, b))[1]
    )
    lake = LocalLake(tmp_path / "lake")
    lake.write_bytes("a/data.bin", b"x" * 100)
    lake.put_chunks([b"y", b"z"], "a/chunks.bin")
    assert events == ["fsync", "rename", "fsync", "rename"]


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


def test_gs_without_application_default_credentials_says_what_to_set(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    """gs:// is Google Cloud Storage itself (no HMAC key, no S3 endpoint): without
    application-default credentials the error says how to get them."""
    for var in ("STORAGE_EMULATOR_HOST", "GOOGLE_APPLICATION_CREDENTIALS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "no-gcloud"))
    monkeypatch.setenv("GCE_METADATA_HOST", "127.0.0.1:9")  # no metadata server either
    monkeypatch.setenv("GCE_METADATA_IP", "127.0.0.1:9")
    lake = lake_from_uri("gs://my-bucket/lake", endpoint_url="http://127.0.0.1:9")
    assert lake.uri("a/b") == "gs://my-bucket/lake/a/b"  # naming it needs no credentials
    with pytest.raises(LakeError, match=r"gs://my-bucket/lake.*application-default login"):
        lake.exists("a/b")


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


# --- locks -------------------------------------------------------------------------------


@pytest.fixture
def quick_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    import fruitops_core.lake_base as lake_module

    monkeypatch.setattr(lake_module, "LOCK_POLL_SECONDS", 0.05)


def test_a_lock_has_one_holder_and_a_waiter_names_it(lake, quick_polls):
    with lake.lock("assets/a/b", holder="run-1", wait_seconds=30):
        with pytest.raises(LakeError, match=r"assets/a/b\.lock, held by run-1"):
            with lake.lock("assets/a/b", holder="run-2", wait_seconds=0.5):
                pytest.fail("a second holder got the lock")
        with lake.lock("assets/a/other", holder="run-2", wait_seconds=0.5):
            pass  # another asset's lock is free
    with lake.lock("assets/a/b", holder="run-2", wait_seconds=0.5):
        pass  # released on leaving the block


def test_a_waiter_gets_the_lock_when_its_holder_releases_it(lake, quick_polls):
    import time

    order = []

    def hold():
        with lake.lock("assets/x", holder="first", wait_seconds=30):
            order.append("first in")
            time.sleep(0.8)
            order.append("first out")

    holder = threading.Thread(target=hold)
    holder.start()
    while not order:
        time.sleep(0.01)
    with lake.lock("assets/x", holder="second", wait_seconds=30):
        order.append("second in")
    holder.join()
    assert order == ["first in", "first out", "second in"]


def test_a_killed_holder_does_not_keep_a_local_lock(tmp_path: Path, quick_polls):
    """flock: the kernel drops the lock with the process that held it."""
    import signal
    import subprocess
    import sys

    code = (
        "import sys, time; from pathlib import Path; from fruitops_core.lake import LocalLake\n"
        "with LocalLake(Path(sys.argv[1])).lock('assets/k', holder='doomed', wait_seconds=5):\n"
        "    print('held', flush=True); time.sleep(60)\n"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", code, str(tmp_path / "lake")], stdout=subprocess.PIPE, text=True
    )
    assert child.stdout.readline().strip() == "held"
    lake = LocalLake(tmp_path / "lake")
    with pytest.raises(LakeError, match="held by doomed"):
        with lake.lock("assets/k", holder="next", wait_seconds=0.3):
            pass
    child.send_signal(signal.SIGKILL)
    child.wait()
    with lake.lock("assets/k", holder="next", wait_seconds=2):
        pass


def test_a_dead_holders_lease_on_an_object_store_is_taken_over(
    s3_server, tmp_path: Path, quick_polls, monkeypatch: pytest.MonkeyPatch
):
    import json
    import time

    import fruitops_core.lake_object_store as lake_module

    monkeypatch.setattr(lake_module, "LEASE_SECONDS", 1.0)
    lake = lake_from_uri(f"s3://{s3_server.bucket}/{tmp_path.name}", s3_server.endpoint)
    # what a holder killed without releasing leaves behind
    lake.write_bytes("locks/assets/k.lock", json.dumps({"holder": "dead", "token": "t"}).encode())
    time.sleep(1.5)
    with lake.lock("assets/k", holder="alive", wait_seconds=5):
        assert json.loads(lake.read_bytes("locks/assets/k.lock"))["holder"] == "alive"
    assert not lake.exists("locks/assets/k.lock")


def test_a_held_lease_is_renewed_so_it_is_never_taken_over(
    s3_server, tmp_path: Path, quick_polls, monkeypatch: pytest.MonkeyPatch
):
    import time

    import fruitops_core.lake_object_store as lake_module

    monkeypatch.setattr(lake_module, "LEASE_SECONDS", 3.0)  # S3 dates are whole seconds
    lake = lake_from_uri(f"s3://{s3_server.bucket}/{tmp_path.name}", s3_server.endpoint)
    with lake.lock("assets/k", holder="long-run", wait_seconds=5):
        time.sleep(4.0)  # past the lease: only renewals keep it
        with pytest.raises(LakeError, match="held by long-run"):
            with lake.lock("assets/k", holder="other", wait_seconds=1.5):
                pass


def test_a_run_that_lost_its_lease_commits_nothing(s3_server, tmp_path: Path, quick_polls):
    """The fencing token: a holder stalled past its lease, whose lock another run took over,
    finds out before committing and commits nothing (it only logged before, and wrote on)."""
    import json

    from fruitops_core.assets import AssetSpec
    from fruitops_core.materialize import materialize_one
    from fruitops_core.registry import AssetGraph
    from fruitops_core.resources import Resources
    from fruitops_core.settings import FruitOpsSettings

    lake = lake_from_uri(f"s3://{s3_server.bucket}/{tmp_path.name}", s3_server.endpoint)
    took_over = json.dumps({"holder": "newer-run", "token": "theirs"}).encode()

    def slow_asset(ctx):
        lake.write_bytes("locks/assets/demo/slow.lock", took_over)  # meanwhile, a takeover
        return {"made": "by the stalled run"}

    spec = AssetSpec(key="demo/slow", fn=slow_asset)
    graph = AssetGraph({spec.key: spec})
    resources = Resources(FruitOpsSettings(home=tmp_path / "home"), lake, tracking=None)
    with lake.lock("assets/demo/slow", holder="stalled-run", wait_seconds=5) as lease:
        lease.check()  # held: nothing to say
        with pytest.raises(LakeError, match="lost the lock .* nothing was committed"):
            materialize_one(spec, graph, resources, "stalled-run", lease=lease)
    assert not lake.exists("assets/demo/slow/materialization.json")


def test_object_store_listing_gives_each_objects_etag(s3_server, tmp_path: Path):
    lake = lake_from_uri(f"s3://{s3_server.bucket}/{tmp_path.name}", s3_server.endpoint)
    lake.write_bytes("a/one.jpg", b"1")
    lake.write_bytes("a/two.jpg", b"22")
    listed = list(lake.listing("a"))
    assert [(key, size) for key, size, _ in listed] == [("a/one.jpg", 1), ("a/two.jpg", 2)]
    before = dict((k, tag) for k, _, tag in listed)
    lake.write_bytes("a/two.jpg", b"33")  # same size, new content
    after = dict((k, tag) for k, _, tag in lake.listing("a"))
    assert after["a/one.jpg"] == before["a/one.jpg"] and after["a/two.jpg"] != before["a/two.jpg"]


def test_a_local_disk_refusal_is_not_blamed_on_the_store():
    """A download whose local target cannot be written names that file, not the credentials
    (the error mapping alone: as root, which CI is, no folder refuses a write)."""
    lake = lake_from_uri("s3://bucket/refusal", endpoint_url="http://127.0.0.1:9")

    def refused(*_args, **_kwargs):  # what the OS raises for a folder this user cannot write
        raise PermissionError(13, "Permission denied", "/srv/theirs/t.bin")

    with pytest.raises(LakeError) as caught:
        lake._call("downloading", "t.bin", refused)
    assert "cannot write /srv/theirs/t.bin" in str(caught.value)
    assert "credentials" not in str(caught.value)


def test_a_download_is_whole_or_absent_for_other_readers(lake, tmp_path: Path, monkeypatch):
    """Two tasks copying one cache shard share its local path: the copy appears whole, by a
    rename, and a copy that fails half-way leaves neither a file nor a temporary behind."""
    lake.write_bytes("shards/a.npy", b"x" * 10_000)
    target = tmp_path / "copies" / "a.npy"
    assert lake.get_file("shards/a.npy", target).read_bytes() == b"x" * 10_000
    target.unlink()

    import shutil

    def half_then_fail(source, destination, *args, **kwargs):
        Path(destination).write_bytes(b"x" * 10)  # what a reader would have seen
        raise OSError("connection reset")

    monkeypatch.setattr(shutil, "copyfile", half_then_fail)
    if lake.local_path() is None:
        monkeypatch.setattr(lake.fs, "get_file", half_then_fail)
    with pytest.raises((OSError, LakeError)):
        lake.get_file("shards/a.npy", target)
    assert list((tmp_path / "copies").iterdir()) == []


@pytest.mark.parametrize(
    ("uri", "folder", "name"),
    [
        ("/batch.parquet", "/", "batch.parquet"),
        ("file:///batch.parquet", "/", "batch.parquet"),
        ("/tmp/x/batch.parquet", "/tmp/x", "batch.parquet"),
        ("batch.parquet", ".", "batch.parquet"),
    ],
)
def test_object_at_keeps_a_path_at_the_root_at_the_root(uri, folder, name, tmp_path, monkeypatch):
    """``/x`` once resolved against the current folder: another file was read, silently."""
    monkeypatch.chdir(tmp_path)
    lake, found = object_at(uri)
    assert (lake.local_path(), found) == (Path(folder).resolve(), name)
