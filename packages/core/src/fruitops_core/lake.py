"""The lake: bytes, JSON and Parquet under one root URI, on local disk or an S3 store.

Every write is atomic: a local write goes to a temporary file in the same folder and is
renamed into place; an S3 PUT (and a completed multipart upload) becomes visible whole.
Paths inside a lake are POSIX-style relative keys like ``assets/data/image_manifest/data.parquet``.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

import pandas as pd

if TYPE_CHECKING:
    from fruitops_core.settings import FruitOpsSettings


class LakeError(RuntimeError):
    """A lake operation failed; the message names the URI and what to check."""


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
        """Copy a lake object to a local file without loading it into memory."""

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
        """Write to ``.<name>.<pid>-<random>.tmp`` beside the target, then rename it over the
        target: a reader sees the old file or the new one, never half of one. After the
        first successful write into a folder, the leftovers there of writers that were killed
        (their PID gone) are removed: one listing per folder, not one per write."""
        target = self._path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        prefix = f".{target.name}.{os.getpid()}-"
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=prefix, suffix=".tmp")
        try:
            os.fchmod(fd, self._file_mode)
            with os.fdopen(fd, "wb") as handle:
                write(handle)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
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
        local.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self._path(path), local)
        return local

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


class S3Lake(Lake):
    """A lake under ``s3://bucket/prefix`` on any S3 endpoint (AWS, MinIO, SeaweedFS, GCS)."""

    def __init__(self, bucket: str, prefix: str = "", endpoint_url: str | None = None):
        import boto3
        from botocore.config import Config

        self.bucket = bucket
        self.prefix = _clean(prefix)
        self.endpoint_url = endpoint_url
        self.scheme = "s3"
        self.root_uri = f"s3://{bucket}/{self.prefix}".rstrip("/")
        self._client = boto3.client(
            "s3",
            endpoint_url=endpoint_url,
            config=Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=5),
        )

    def _key(self, path: str) -> str:
        return "/".join(p for p in (self.prefix, _clean(path)) if p)

    def uri(self, path: str = "") -> str:
        return f"{self.scheme}://{self.bucket}/{self._key(path)}".rstrip("/")

    def _call(self, what: str, path: str, fn, *args, **kwargs):
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return fn(*args, **kwargs)
        except ClientError as err:
            code = err.response.get("Error", {}).get("Code", "")
            if code in ("NoSuchKey", "404", "NotFound"):
                raise LakeError(f"{self.uri(path)} does not exist in the lake") from None
            if code == "NoSuchBucket":
                raise LakeError(
                    f"bucket {self.bucket!r} does not exist at {self.endpoint_url or 'AWS'}: "
                    "create it (make services-up does) or fix FRUITOPS_LAKE_URI"
                ) from None
            raise LakeError(f"{what} {self.uri(path)} failed: {err}") from err
        except BotoCoreError as err:
            raise LakeError(
                f"{what} {self.uri(path)} failed: {err}. Is the S3 endpoint "
                f"{self.endpoint_url or '(AWS default)'} up? Set AWS_ENDPOINT_URL and "
                "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY for a local store."
            ) from err

    def exists(self, path: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self._client.head_object(Bucket=self.bucket, Key=self._key(path))
            return True
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise LakeError(f"checking {self.uri(path)} failed: {err}") from err

    def read_bytes(self, path: str) -> bytes:
        response = self._call(
            "reading", path, self._client.get_object, Bucket=self.bucket, Key=self._key(path)
        )
        return response["Body"].read()

    def write_bytes(self, path: str, data: bytes) -> str:
        self._call(
            "writing",
            path,
            self._client.put_object,
            Bucket=self.bucket,
            Key=self._key(path),
            Body=data,
        )
        return self.uri(path)

    def put_file(self, local: Path, path: str) -> str:
        self._call(
            "uploading to", path, self._client.upload_file, str(local), self.bucket, self._key(path)
        )
        return self.uri(path)

    def get_file(self, path: str, local: Path) -> Path:
        local.parent.mkdir(parents=True, exist_ok=True)
        self._call(
            "downloading",
            path,
            self._client.download_file,
            self.bucket,
            self._key(path),
            str(local),
        )
        return local

    def list(self, prefix: str = "") -> Iterator[str]:
        key_prefix = self._key(prefix)
        if key_prefix:
            key_prefix += "/"
        paginator = self._client.get_paginator("list_objects_v2")
        pages = paginator.paginate(Bucket=self.bucket, Prefix=key_prefix)
        strip = len(self.prefix) + 1 if self.prefix else 0
        iterator = iter(pages)
        while True:  # S3 lists keys in sorted order, a page (≤1000 keys) at a time
            page = self._call("listing", prefix, next, iterator, None)
            if page is None:
                return
            for obj in page.get("Contents", []):
                yield obj["Key"][strip:]

    def listing(self, prefix: str = "") -> Iterator[tuple[str, int, str]]:
        """``(key relative to the lake, size, ETag)`` of every object under ``prefix``, raw:
        a key may hold empty or ``..`` segments; the caller decides what to do with them."""
        key_prefix = self._key(prefix)
        if key_prefix:
            key_prefix += "/"
        pages = iter(
            self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=key_prefix
            )
        )
        strip = len(self.prefix) + 1 if self.prefix else 0
        while page := self._call("listing", prefix, next, pages, None):
            for obj in page.get("Contents", []):
                yield obj["Key"][strip:], int(obj["Size"]), obj["ETag"].strip('"')

    def size(self, path: str) -> int:
        head = self._call(
            "checking", path, self._client.head_object, Bucket=self.bucket, Key=self._key(path)
        )
        return int(head["ContentLength"])

    def delete_prefix(self, prefix: str) -> int:
        keys = [self._key(p) for p in self.list(prefix)]
        for start in range(0, len(keys), 1000):
            batch = [{"Key": k} for k in keys[start : start + 1000]]
            self._call(
                "deleting",
                prefix,
                self._client.delete_objects,
                Bucket=self.bucket,
                Delete={"Objects": batch},
            )
        return len(keys)


def lake_from_uri(uri: str, endpoint_url: str | None = None) -> Lake:
    """Open the lake at ``uri``: a local path, ``file://``, ``s3://`` or ``gs://``.

    ``gs://`` uses the GCS XML API's S3 interoperability (HMAC keys in AWS_* variables).
    """
    parsed = urlparse(uri)
    if parsed.scheme in ("", "file") or (len(parsed.scheme) == 1 and os.name == "nt"):
        path = unquote(parsed.path) if parsed.scheme == "file" else uri
        return LocalLake(Path(path))
    if parsed.scheme == "s3":
        return S3Lake(parsed.netloc, parsed.path, endpoint_url=endpoint_url)
    if parsed.scheme == "gs":
        lake = S3Lake(
            parsed.netloc,
            parsed.path,
            endpoint_url=endpoint_url or "https://storage.googleapis.com",
        )
        lake.scheme = "gs"
        lake.root_uri = lake.uri()
        return lake
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
