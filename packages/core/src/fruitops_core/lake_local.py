"""`LocalLake`: a lake in a local folder (the embedded profile), locked with ``flock``."""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import socket
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from fruitops_core.lake_base import (
    Lake,
    LakeError,
    Lease,
    LockWait,
    clean_path,
    lock_path,
    replace_atomically,
)
from fruitops_core.safe_files import OpenedFile, RefusedFile, open_beneath


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
    """A lake in a local folder (the embedded profile), or a folder of input photos.

    ``strict`` is for folders others can write to (inputs to score, incoming batches):
    every file is opened by `fruitops_core.safe_files.open_beneath`, each folder on the way
    entered without following a link, and taken only as a regular file within the per-file
    limit. The FruitOps lake itself is not strict: its ``current`` links are its own.
    """

    def __init__(self, root: Path, strict: bool = False):
        self.root = Path(root).resolve()
        self.strict = strict
        self.root_uri = self.root.as_uri()
        mask = os.umask(0)
        os.umask(mask)
        self._file_mode = 0o666 & ~mask  # what open() would give; mkstemp alone gives 0600
        self._swept: set[Path] = set()  # folders cleared of killed writers' temporaries

    def _path(self, path: str) -> Path:
        return self.root / clean_path(path)

    def uri(self, path: str = "") -> str:
        return self._path(path).as_uri()

    def local_path(self, path: str = "") -> Path | None:
        return self._path(path)

    def exists(self, path: str) -> bool:
        return self._path(path).exists()

    @contextmanager
    def lock(self, name: str, *, holder: str, wait_seconds: float) -> Iterator[Lease]:
        """An exclusive ``flock`` on ``locks/<name>.lock``: the kernel releases it when its
        process dies, so a killed run never leaves the asset locked."""
        path = self.root / lock_path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        wait = LockWait(name, str(path), wait_seconds)
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
                yield Lease()
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

    def _open_strict(self, path: str) -> OpenedFile:
        try:
            return open_beneath(self.root, clean_path(path))
        except FileNotFoundError:
            raise LakeError(f"{self._path(path).as_uri()} does not exist") from None
        except RefusedFile as refused:
            raise LakeError(f"{self._path(path)}: {refused.reason}") from None
        except OSError as err:
            raise LakeError(f"{self._path(path)}: {err.strerror}") from None

    def read_bytes(self, path: str) -> bytes:
        if self.strict:
            with self._open_strict(path) as opened:
                try:
                    return opened.read()
                except RefusedFile as refused:
                    raise LakeError(f"{self._path(path)}: {refused.reason}") from None
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
        """Write the target through `replace_atomically`, with ordinary permissions. After
        the first successful write into a folder, the leftovers there of writers that were
        killed (their PID gone) are removed: one listing per folder, not one per write."""

        def fill(tmp: str) -> None:
            with open(tmp, "wb") as handle:
                os.fchmod(handle.fileno(), self._file_mode)
                write(handle)
                handle.flush()
                os.fsync(handle.fileno())  # on disk before the rename commits it

        target = replace_atomically(self._path(path), fill)
        if target.parent not in self._swept:
            self._swept.add(target.parent)
            _remove_stale_temporaries(target.parent)
        return target.as_uri()

    def write_bytes(self, path: str, data: bytes) -> str:
        return self._atomic(path, lambda handle: handle.write(data))

    def put_chunks(self, chunks: Iterable[bytes], path: str) -> str:
        digest = hashlib.sha256()

        def write(handle) -> None:
            for block in chunks:
                digest.update(block)
                handle.write(block)

        self._atomic(path, write)
        return digest.hexdigest()

    def put_file(self, local: Path, path: str) -> str:
        with open(local, "rb") as source:
            return self._atomic(path, lambda handle: shutil.copyfileobj(source, handle))

    def get_file(self, path: str, local: Path) -> Path:
        if self.strict:

            def copy(tmp: str) -> None:
                with self._open_strict(path) as opened, open(tmp, "wb") as handle:
                    for block in opened.chunks():
                        handle.write(block)

            return replace_atomically(local, copy)
        return replace_atomically(local, lambda tmp: shutil.copyfile(self._path(path), tmp))

    def list(self, prefix: str = "") -> Iterator[str]:
        base = self._path(prefix)
        if base.is_file():
            yield clean_path(prefix)
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
        return self._path(path).lstat().st_size if self.strict else self._path(path).stat().st_size

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
