"""`ObjectStoreLake`: a lake in S3 or GCS, locked with a renewed lease object."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import sys
import threading
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fruitops_core.lake_base import (
    Lake,
    LakeError,
    Lease,
    LockWait,
    clean_path,
    lock_path,
    log,
    replace_atomically,
)

#: A lock held on an object store is renewed every quarter of this and taken over by
#: another run once this old (its holder died without releasing it).
LEASE_SECONDS = 120.0


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
        self.prefix = clean_path(prefix)
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
        return "/".join(p for p in (self.prefix, clean_path(path)) if p)

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

    def put_chunks(self, chunks: Iterable[bytes], path: str) -> str:
        """Streamed into one upload, made visible when it completes; a failure mid-way
        discards it (fsspec would otherwise complete what was written on close)."""
        digest = hashlib.sha256()
        handle = self._call("uploading to", path, self.fs.open, self._full(path), "wb")
        try:
            for block in chunks:
                digest.update(block)
                handle.write(block)
        except BaseException:
            handle.discard()
            raise
        self._call("uploading to", path, handle.close)
        return digest.hexdigest()

    def get_file(self, path: str, local: Path) -> Path:
        return replace_atomically(
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
    def lock(self, name: str, *, holder: str, wait_seconds: float) -> Iterator[Lease]:
        """A lease object ``locks/<name>.lock``, made with a conditional PUT (If-None-Match;
        a generation match on GCS), renewed while held and taken over once
        `LEASE_SECONDS` old (its holder died)."""
        path = lock_path(name)
        token = uuid.uuid4().hex
        body = json.dumps({"holder": holder, "token": token, "host": socket.gethostname()})
        wait = LockWait(name, self.uri(path), wait_seconds)
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
            yield _ObjectLease(self, path, token)
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


class _ObjectLease(Lease):
    """The lease object's token, read again: another token there means another run took
    the lock over (this one stalled past `LEASE_SECONDS`), and nothing may be committed."""

    def __init__(self, lake: ObjectStoreLake, path: str, token: str):
        self.lake, self.path, self.token = lake, path, token

    def check(self) -> None:
        if self.lake._holder_token(self.path) != self.token:
            raise LakeError(
                f"lost the lock {self.lake.uri(self.path)} to another run before committing: "
                "nothing was committed; run it again once that run is done"
            )


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
