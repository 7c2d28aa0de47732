"""The lake: bytes, JSON and Parquet under one root URI, on local disk, S3 or GCS.

Every write is atomic: a local write goes to a temporary file in the same folder and is
renamed into place; an object store's PUT (and a completed multipart upload) becomes visible
whole. Paths inside a lake are POSIX-style relative keys like
``assets/data/image_manifest/versions/<id>/data.parquet``. `Lake.lock` keeps two writers of
one asset apart, across processes and machines.
"""

from __future__ import annotations

import fcntl
import io
import json
import logging
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

import pandas as pd

if TYPE_CHECKING:
    from fruitops_core.settings import FruitOpsSettings


log = logging.getLogger("fruitops.lake")

#: A lock held on an object store is renewed every quarter of this and taken over by
#: another run once this old (its holder died without releasing it).
LEASE_SECONDS = 120.0
LOCK_POLL_SECONDS = 1.0


class LakeError(RuntimeError):
    """A lake operation failed; the message names the URI and what to check."""


def _lock_path(name: str) -> str:
    return f"locks/{_clean(name)}.lock"


class _LockWait:
    """The waiting half of taking a lock, the same on every lake: say once who holds it,
    poll, and give up at the deadline naming the holder."""

    def __init__(self, name: str, where: str, seconds: float):
        self.name, self.where, self.seconds = name, where, seconds
        self.deadline = time.monotonic() + seconds
        self.said = False

    def held_by(self, holder: str) -> None:
        if time.monotonic() > self.deadline:
            raise LakeError(
                f"gave up after {self.seconds:.0f} s waiting for the lock {self.where}, held "
                f"by {holder}: another run of this asset is still going; wait for it, or stop it"
            ) from None
        if not self.said:
            log.info("waiting for %s: held by %s", self.name, holder)
            self.said = True
        time.sleep(LOCK_POLL_SECONDS)


def _clean(path: str) -> str:
    parts = [p for p in path.replace("\\", "/").split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise LakeError(f"lake path {path!r} escapes the lake root ('..' is not allowed)")
    return "/".join(parts)


class Lake(ABC):
    """Storage under a root URI. Subclasses implement the byte-level operations."""

    root_uri: str

    @abstractmethod
    def uri(self, path: str = "") -> str: ...

    @abstractmethod
    def exists(self, path: str) -> bool: ...

    @abstractmethod
    def read_bytes(self, path: str) -> bytes: ...

    @abstractmethod
    def write_bytes(self, path: str, data: bytes) -> str: ...

    @abstractmethod
    def put_file(self, local: Path, path: str) -> str:
        """Copy a local file into the lake without loading it into memory."""

    @abstractmethod
    def get_file(self, path: str, local: Path) -> Path:
        """Copy a lake object to a local file without loading it into memory, atomically
        (`_replace_atomically`): processes sharing a local copy never read half of one."""

    @abstractmethod
    def list(self, prefix: str = "") -> Iterator[str]:
        """Relative paths of every object under ``prefix``, streamed in sorted order."""

    @abstractmethod
    def size(self, path: str) -> int: ...

    @abstractmethod
    def delete_prefix(self, prefix: str) -> int: ...

    def local_path(self, path: str = "") -> Path | None:
        """Where ``path`` lies on this machine's disk; None for an object store."""
        return None

    @abstractmethod
    @contextmanager
    def lock(self, name: str, *, holder: str, wait_seconds: float) -> Iterator[None]:
        """Hold the lock ``name`` (an asset's folder) for the block; wait up to
        ``wait_seconds`` for another holder, then raise `LakeError` naming it."""

    def point_link(self, link: str, folder: str) -> None:
        """Point the link ``link`` at ``folder``, for people browsing the lake; an object
        store has no links (its records say where each version lies)."""
        return None

    def listing(self, prefix: str = "") -> Iterator[tuple[str, int, str]]:
        """``(path, size, version tag)`` of every object under ``prefix``; an object store
        gives the ETag of its listing, others no tag."""
        for path in self.list(prefix):
            yield path, self.size(path), ""

    def read_json(self, path: str) -> Any:
        return json.loads(self.read_bytes(path))

    def write_json(self, path: str, value: Any) -> str:
        data = json.dumps(value, indent=2, sort_keys=True, default=str).encode()
        return self.write_bytes(path, data)

    def read_parquet(self, path: str) -> pd.DataFrame:
        return pd.read_parquet(io.BytesIO(self.read_bytes(path)))

    def write_parquet(self, path: str, frame: pd.DataFrame) -> str:
        buffer = io.BytesIO()
        frame.to_parquet(buffer, index=False)
        return self.write_bytes(path, buffer.getvalue())


def _replace_atomically(target: Path, fill: Callable[[str], object]) -> Path:
    """``fill(tmp)`` writes ``.<name>.<pid>-<random>.tmp`` beside ``target``, which is then
    renamed over it: a reader (another task copying the same cache shard, a reader of the
    lake) sees the old file or the whole new one, and a failed write leaves nothing behind."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.{os.getpid()}-",
                               suffix=".tmp")  # fmt: skip
    os.close(fd)
    try:
        fill(tmp)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def _remove_stale_temporaries(folder: Path) -> None:
    """Delete the temporary files in ``folder`` left by writers that no longer run."""
    for leftover in folder.glob(".*.*-*.tmp"):
        pid = leftover.name.removesuffix(".tmp").rsplit("-", 1)[0].rsplit(".", 1)[-1]
        if pid.isdigit() and not _running(int(pid)):
            leftover.unlink(missing_ok=True)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


class LocalLake(Lake):
    """A lake in a local folder (the embedded profile)."""

    def __init__(self, root: Path):
        self.root = Path(root).resolve()
        self.root_uri = self.root.as_uri()
        mask = os.umask(0)
        os.umask(mask)
        self._file_mode = 0o666 & ~mask  # what open() would give; mkstemp alone gives 0600
        self._swept: set[Path] = set()  # folders cleared of killed writers' temporaries

    def _path(self, path: str) -> Path:
        return self.root / _clean(path)

    def uri(self, path: str = "") -> str:
        return self._path(path).as_uri()

    def local_path(self, path: str = "") -> Path | None:
        return self._path(path)

    def exists(self, path: str) -> bool:
        return self._path(path).exists()

    @contextmanager
    def lock(self, name: str, *, holder: str, wait_seconds: float) -> Iterator[None]:
        """An exclusive ``flock`` on ``locks/<name>.lock``: the kernel releases it when its
        process dies, so a killed run never leaves the asset locked."""
        path = self.root / _lock_path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        wait = _LockWait(name, str(path), wait_seconds)
        with open(path, "a+") as handle:
            while True:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    handle.seek(0)
                    wait.held_by(handle.read().strip() or "?")
            try:
                handle.truncate(0)
                handle.write(f"{holder} (pid {os.getpid()} on {socket.gethostname()})")
                handle.flush()
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def point_link(self, link: str, folder: str) -> None:
        """Swap the symbolic link atomically (a new link renamed over the old one). A lake
        copied without its links (``cp -r``) holds a plain folder there: it goes first."""
        target = self._path(link)
        relative = os.path.relpath(self._path(folder), target.parent)
        tmp = target.parent / f".{target.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp"
        os.symlink(relative, tmp)
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        os.replace(tmp, target)

    def read_bytes(self, path: str) -> bytes:
        target = self._path(path)
        try:
            # never through a link: a folder of photos may hold one to a host file
            fd = os.open(target, os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            raise LakeError(f"{target.as_uri()} does not exist in the lake") from None
        except OSError as err:
            if target.is_symlink():
                raise LakeError(f"{target}: a symbolic link, not followed") from None
            raise LakeError(f"{target}: {err.strerror}") from None
        with os.fdopen(fd, "rb") as handle:
            return handle.read()

    def _atomic(self, path: str, write) -> str:
        """Write the target through `_replace_atomically`, with ordinary permissions. After
        the first successful write into a folder, the leftovers there of writers that were
        killed (their PID gone) are removed: one listing per folder, not one per write."""

        def fill(tmp: str) -> None:
            with open(tmp, "wb") as handle:
                os.fchmod(handle.fileno(), self._file_mode)
                write(handle)

        target = _replace_atomically(self._path(path), fill)
        if target.parent not in self._swept:
            self._swept.add(target.parent)
            _remove_stale_temporaries(target.parent)
        return target.as_uri()

    def write_bytes(self, path: str, data: bytes) -> str:
        return self._atomic(path, lambda handle: handle.write(data))

    def put_file(self, local: Path, path: str) -> str:
        with open(local, "rb") as source:
            return self._atomic(path, lambda handle: shutil.copyfileobj(source, handle))

    def get_file(self, path: str, local: Path) -> Path:
        return _replace_atomically(local, lambda tmp: shutil.copyfile(self._path(path), tmp))

    def list(self, prefix: str = "") -> Iterator[str]:
        base = self._path(prefix)
        if base.is_file():
            yield _clean(prefix)
            return
        if not base.is_dir():
            return
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames.sort()
            for name in sorted(filenames):
                if name.startswith(".") and name.endswith(".tmp"):
                    continue  # an atomic write in flight
                yield Path(dirpath, name).relative_to(self.root).as_posix()

    def size(self, path: str) -> int:
        return self._path(path).stat().st_size

    def delete_prefix(self, prefix: str) -> int:
        target = self._path(prefix)
        if target.is_file():
            target.unlink()
            return 1
        if not target.exists():
            return 0
        count = sum(1 for p in target.rglob("*") if p.is_file())
        shutil.rmtree(target)
        return count


def _cause(err: BaseException, kind: type) -> BaseException | None:
    """The first exception of ``kind`` in ``err``'s chain (s3fs wraps botocore's)."""
    while err is not None:
        if isinstance(err, kind):
            return err
        err = err.__cause__ or err.__context__
    return None


class ObjectStoreLake(Lake):
    """A lake under ``s3://bucket/prefix`` (AWS, MinIO, SeaweedFS) or ``gs://bucket/prefix``
    (Google Cloud Storage with application-default credentials: Workload Identity on GKE),
    through fsspec's ``s3fs`` and ``gcsfs``.

    Uploads and downloads are streamed in parts (s3fs: 50 MiB), never read whole; an object
    store's PUT becomes visible whole, so every write is atomic.
    """

    def __init__(self, scheme: str, bucket: str, prefix: str = "", endpoint_url: str | None = None):
        self.scheme = scheme
        self.bucket = bucket
        self.prefix = _clean(prefix)
        self.endpoint_url = endpoint_url
        self.root_uri = f"{scheme}://{bucket}/{self.prefix}".rstrip("/")
        self._fs = None

    @property
    def fs(self):
        """The fsspec filesystem, made on first use: naming a lake (an Airflow Asset's URI
        at DAG parse time) needs no credentials and no network."""
        if self._fs is None:
            self._fs = self._call("opening", "", _filesystem, self.scheme, self.endpoint_url)
        return self._fs

    def _key(self, path: str) -> str:
        return "/".join(p for p in (self.prefix, _clean(path)) if p)

    def _full(self, path: str) -> str:
        return f"{self.bucket}/{self._key(path)}".rstrip("/")

    def uri(self, path: str = "") -> str:
        return f"{self.scheme}://{self._full(path)}"

    def _where(self) -> str:
        if self.scheme == "gs":
            return "Google Cloud Storage"
        return self.endpoint_url or "AWS (no endpoint set)"

    def _call(self, what: str, path: str, fn, *args, **kwargs):
        """``fn(*args)``, its errors turned into a `LakeError` that says what to check."""
        try:
            return fn(*args, **kwargs)
        except LakeError:
            raise
        except FileNotFoundError:
            code = _error_code(sys.exc_info()[1])
            if code == "NoSuchBucket":
                raise LakeError(
                    f"bucket {self.bucket!r} does not exist at {self._where()}: "
                    "create it (make services-up does) or fix FRUITOPS_LAKE_URI"
                ) from None
            raise LakeError(f"{self.uri(path)} does not exist in the lake") from None
        except PermissionError as err:
            if isinstance(err.filename, str) and os.path.isabs(err.filename):
                raise LakeError(  # this machine's disk refused, not the store
                    f"{what} {self.uri(path)}: cannot write {err.filename} here "
                    f"({err.strerror}): check that folder's owner and permissions"
                ) from None
            raise LakeError(
                f"{what} {self.uri(path)} was refused ({err}): check the credentials "
                + (
                    "(application-default credentials, the service account's roles)"
                    if self.scheme == "gs"
                    else "(AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY) and the bucket policy"
                )
            ) from None
        except Exception as err:
            hint = (
                "Are the application-default credentials set (`gcloud auth "
                "application-default login`, or Workload Identity on GKE)?"
                if self.scheme == "gs"
                else f"Is the S3 endpoint {self._where()} up? Set AWS_ENDPOINT_URL and "
                "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY for a local store."
            )
            raise LakeError(
                f"{what} {self.uri(path)} failed: {str(err).rstrip('.')}. {hint} "
                "If this is not the store you meant, fix FRUITOPS_LAKE_URI (or the source)."
            ) from err

    def exists(self, path: str) -> bool:
        return self._call("checking", path, self.fs.exists, self._full(path))

    def read_bytes(self, path: str) -> bytes:
        return self._call("reading", path, self.fs.cat_file, self._full(path))

    def write_bytes(self, path: str, data: bytes) -> str:
        self._call("writing", path, self.fs.pipe_file, self._full(path), data)
        return self.uri(path)

    def put_file(self, local: Path, path: str) -> str:
        self._call("uploading to", path, self.fs.put_file, str(local), self._full(path))
        return self.uri(path)

    def get_file(self, path: str, local: Path) -> Path:
        return _replace_atomically(
            local,
            lambda tmp: self._call("downloading", path, self.fs.get_file, self._full(path), tmp),
        )

    def _objects(self, prefix: str) -> list[tuple[str, dict[str, Any]]]:
        """``(key relative to the lake, info)`` of every object under ``prefix``, key order.
        The listing is held as names and sizes (about 200 bytes an object), never contents."""
        base = self._full(prefix)
        found = self._call("listing", prefix, self.fs.find, base, detail=True)
        if not found:
            return []
        strip = len(f"{self.bucket}/{self.prefix}".rstrip("/")) + 1
        return [
            (name[strip:], info)
            for name, info in sorted(found.items())
            if info.get("type", "file") == "file" and (name == base or name.startswith(base + "/"))
        ]

    def list(self, prefix: str = "") -> Iterator[str]:
        for key, _ in self._objects(prefix):
            yield key

    def listing(self, prefix: str = "") -> Iterator[tuple[str, int, str]]:
        """``(key relative to the lake, size, ETag)`` of every object under ``prefix``, raw:
        a key may hold empty or ``..`` segments; the caller decides what to do with them."""
        for key, info in self._objects(prefix):
            tag = info.get("ETag") or info.get("etag") or info.get("generation") or ""
            yield key, int(info.get("size") or 0), str(tag).strip('"')

    def size(self, path: str) -> int:
        return int(self._call("checking", path, self.fs.size, self._full(path)))

    def delete_prefix(self, prefix: str) -> int:
        # the listed keys as they are (not cleaned): an odd key is deleted, not its look-alike
        names = [
            "/".join(p for p in (self.bucket, self.prefix) if p) + "/" + k
            for k in self.list(prefix)
        ]
        if names:
            self._call("deleting", prefix, self.fs.rm, names)
        return len(names)

    @contextmanager
    def lock(self, name: str, *, holder: str, wait_seconds: float) -> Iterator[None]:
        """A lease object ``locks/<name>.lock``, made with a conditional PUT (If-None-Match;
        a generation match on GCS), renewed while held and taken over once
        `LEASE_SECONDS` old (its holder died)."""
        path = _lock_path(name)
        token = uuid.uuid4().hex
        body = json.dumps({"holder": holder, "token": token, "host": socket.gethostname()})
        wait = _LockWait(name, self.uri(path), wait_seconds)
        while not self._create(path, body.encode(), token):
            held = self._lease(path)
            if held is None:
                continue  # released meanwhile
            holder, age = held
            if age > LEASE_SECONDS:
                log.warning("taking over %s: its lease by %s is %.0f s old", path, holder, age)
                self._call("removing a stale lock", path, self.fs.rm, self._full(path))
                continue
            wait.held_by(holder)
        stop = threading.Event()
        renew = threading.Thread(target=self._renew, args=(path, body, token, stop), daemon=True)
        renew.start()
        try:
            yield
        finally:
            stop.set()
            renew.join()
            if self._holder_token(path) == token:
                self._call("releasing a lock", path, self.fs.rm, self._full(path))

    def _create(self, path: str, data: bytes, token: str) -> bool:
        """Make ``path`` if no object is there; whether this call made it. The look first
        keeps a store that ignores the PUT's condition (some emulators) from handing one lock
        to two runs one after the other; only the store's condition closes the race."""
        if self.exists(path):
            return False
        try:
            self.fs.pipe_file(self._full(path), data, mode="create")
        except Exception as err:
            if not self.exists(path):
                raise LakeError(f"taking the lock {self.uri(path)} failed: {err}") from err
            return False
        # a store that ignored the condition: the read-back shows whose write won
        return self._holder_token(path) == token

    def _holder_token(self, path: str) -> str | None:
        try:
            return json.loads(self.fs.cat_file(self._full(path))).get("token")
        except Exception:
            return None

    def _lease(self, path: str) -> tuple[str, float] | None:
        """The holder of the lease at ``path`` and its age in seconds; None when it is gone."""
        try:
            info = self.fs.info(self._full(path))
            holder = json.loads(self.fs.cat_file(self._full(path))).get("holder", "?")
        except FileNotFoundError:
            return None
        modified = info.get("LastModified") or info.get("updated") or info.get("mtime")
        if isinstance(modified, str):
            modified = datetime.fromisoformat(modified.replace("Z", "+00:00"))
        age = (datetime.now(UTC) - modified).total_seconds() if modified else 0.0
        return holder, age

    def _renew(self, path: str, body: str, token: str, stop: threading.Event) -> None:
        while not stop.wait(LEASE_SECONDS / 4):
            if self._holder_token(path) != token:
                log.error("lost the lock %s to another run", self.uri(path))
                return
            try:
                self.fs.pipe_file(self._full(path), body.encode())
            except Exception as err:  # the next renewal tries again
                log.warning("renewing the lock %s failed: %s", self.uri(path), err)


def _error_code(err: BaseException | None) -> str:
    from botocore.exceptions import ClientError

    client_error = _cause(err, ClientError) if err else None
    return client_error.response.get("Error", {}).get("Code", "") if client_error else ""


def _filesystem(scheme: str, endpoint_url: str | None):
    """The fsspec filesystem of ``scheme``: fresh (not fsspec's instance cache), so a
    changed endpoint or credential is always seen; failures fast, not minutes of retries."""
    if scheme == "s3":
        import s3fs

        return s3fs.S3FileSystem(
            endpoint_url=endpoint_url,
            skip_instance_cache=True,
            config_kwargs={
                "connect_timeout": 5,
                "retries": {"max_attempts": 3, "mode": "standard"},
            },
        )
    # gcsfs.core's class: the JSON API only; the package's default class first asks the
    # storage-control gRPC API for the bucket's layout (a minute's timeout off Google Cloud)
    from gcsfs.core import GCSFileSystem

    # an emulator (STORAGE_EMULATOR_HOST) takes no credentials; elsewhere only ADC counts
    token = "anon" if os.environ.get("STORAGE_EMULATOR_HOST") else "google_default"
    return GCSFileSystem(token=token, skip_instance_cache=True)


def lake_from_uri(uri: str, endpoint_url: str | None = None) -> Lake:
    """Open the lake at ``uri``: a local path, ``file://``, ``s3://`` or ``gs://``.

    ``endpoint_url`` is the S3 endpoint (MinIO, SeaweedFS); ``gs://`` is Google Cloud
    Storage itself, with application-default credentials.
    """
    parsed = urlparse(uri)
    if parsed.scheme in ("", "file") or (len(parsed.scheme) == 1 and os.name == "nt"):
        path = unquote(parsed.path) if parsed.scheme == "file" else uri
        return LocalLake(Path(path))
    if parsed.scheme in ("s3", "gs"):
        endpoint = endpoint_url if parsed.scheme == "s3" else None
        return ObjectStoreLake(parsed.scheme, parsed.netloc, parsed.path, endpoint_url=endpoint)
    raise LakeError(
        f"unsupported lake URI {uri!r}: use a folder path, file://, s3://bucket/prefix or gs://"
    )


def object_at(uri: str, endpoint_url: str | None = None) -> tuple[Lake, str]:
    """The lake of ``uri``'s folder and the object's name in it, to read or write one object."""
    parent, _, name = uri.rstrip("/").rpartition("/")
    return lake_from_uri(parent or ".", endpoint_url=endpoint_url), name


def uri_exists(uri: str, endpoint_url: str | None = None) -> bool:
    """Whether the object (or folder with objects) at ``uri`` exists."""
    parsed = urlparse(uri)
    if parsed.scheme in ("", "file"):
        return Path(unquote(parsed.path) if parsed.scheme else uri).exists()
    lake, name = object_at(uri, endpoint_url)
    return lake.exists(name) or next(iter(lake.list(name)), None) is not None


def open_lake(settings: FruitOpsSettings) -> Lake:
    """The lake the settings name, on their S3 endpoint."""
    return lake_from_uri(settings.lake_root, endpoint_url=settings.s3_endpoint)
