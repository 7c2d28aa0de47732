"""The `Lake` interface, its error, and what every lake shares: path cleaning, waiting for
a lock, replacing a local file atomically. Implementations: `lake_local`, `lake_object_store`.
"""

from __future__ import annotations

import io
import json
import logging
import os
import tempfile
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

log = logging.getLogger("fruitops.lake")

#: How often a run waiting for a lock looks again.
LOCK_POLL_SECONDS = 1.0


class LakeError(RuntimeError):
    """A lake operation failed; the message names the URI and what to check."""


def lock_path(name: str) -> str:
    return f"locks/{clean_path(name)}.lock"


class Lease:
    """What holding a lock gives: `check`, called right before committing (a fencing
    token). A local ``flock`` lasts as long as its process, so it always holds; an object
    store's lease can be taken over by another run while this one is stalled, and then the
    stalled run must not commit over the new holder's work."""

    def check(self) -> None:
        return None


class LockWait:
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


def clean_path(path: str) -> str:
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
    def put_chunks(self, chunks: Iterable[bytes], path: str) -> str:
        """Write the byte chunks as one object, atomically (a failure mid-way leaves
        nothing); return their SHA-256, taken on the way."""

    @abstractmethod
    def get_file(self, path: str, local: Path) -> Path:
        """Copy a lake object to a local file without loading it into memory, atomically
        (`replace_atomically`): processes sharing a local copy never read half of one."""

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
    def lock(self, name: str, *, holder: str, wait_seconds: float) -> Iterator[Lease]:
        """Hold the lock ``name`` (an asset's folder) for the block; wait up to
        ``wait_seconds`` for another holder, then raise `LakeError` naming it. The `Lease`
        given is checked before committing."""

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


def replace_atomically(target: Path, fill: Callable[[str], object]) -> Path:
    """``fill(tmp)`` writes ``.<name's start>.<pid>-<random>.tmp`` beside ``target``, which is
    then renamed over it: a reader (another task copying the same cache shard, a reader of
    the lake) sees the old file or the whole new one, and a failed write leaves nothing
    behind."""
    target.parent.mkdir(parents=True, exist_ok=True)
    # the name's start only: a 200-byte name plus the suffix would pass the file system's 255
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name[:40]}.{os.getpid()}-",
                               suffix=".tmp")  # fmt: skip
    os.close(fd)
    try:
        fill(tmp)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target
