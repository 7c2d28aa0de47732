"""Files from folders others can write to, opened once and never through a link.

A folder of photos is not ours: between listing it and reading a file, its owner (or an
attacker with write access) can swap a file or a whole subfolder for a link to a host file,
a FIFO, or a file grown past any limit. So every file is opened exactly once, relative to
its folder's handle (``openat``), with ``O_NOFOLLOW | O_NONBLOCK``; the handle is checked
(`os.fstat`: a regular file, within the size limit), and everything done with the file —
hash, decode, copy — reads that handle, never the path again. Folders are entered the same
way (``O_DIRECTORY | O_NOFOLLOW``), so a folder swapped for a link is refused, not followed.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path

#: The largest single file taken (a photo is a few MB): larger ones are left out, with why,
#: by ingest, scoring and monitoring alike, so a worker's memory is bounded whatever a
#: folder holds.
MAX_FILE_BYTES = 256 * 1024**2

LINK_REASON = "a symbolic link: links are never followed (copy the file itself)"
SPECIAL_REASON = "not a regular file (a pipe, socket or device)"
CHUNK = 1 << 20

_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


def size_reason(size: int, limit: int = MAX_FILE_BYTES) -> str:
    return f"{size} bytes, over the per-file limit of {limit} (a photo needs far less)"


class RefusedFile(ValueError):
    """A file that is not taken, with the reason reports list it under."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class OpenedFile:
    """One regular file, opened once: every read goes through this handle (``pread`` from
    the start, so hashing and then copying read the same file, whatever its path now is).

    Reads stop at ``limit``: a file grown past it since it was opened is refused then.
    """

    def __init__(self, fd: int, size: int, limit: int = MAX_FILE_BYTES):
        self.fd, self.size, self.limit = fd, size, limit

    def chunks(self, chunk: int = CHUNK) -> Iterator[bytes]:
        offset = 0
        while block := os.pread(self.fd, chunk, offset):
            offset += len(block)
            if offset > self.limit:
                raise RefusedFile(f"grew past the per-file limit of {self.limit} while read")
            yield block

    def read(self) -> bytes:
        return b"".join(self.chunks())

    def sha256(self) -> str:
        digest = hashlib.sha256()
        for block in self.chunks():
            digest.update(block)
        return digest.hexdigest()

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> OpenedFile:
        return self

    def __exit__(self, *_exc) -> None:
        self.close()


def open_file(
    name: str | Path, dir_fd: int | None = None, limit: int = MAX_FILE_BYTES
) -> OpenedFile:
    """Open ``name`` (relative to ``dir_fd`` if given) as an `OpenedFile`, or raise
    `RefusedFile`: a link, anything but a regular file, or over ``limit`` bytes."""
    try:
        fd = os.open(name, _FILE_FLAGS, dir_fd=dir_fd)
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise RefusedFile(LINK_REASON) from None
        if err.errno in (errno.ENXIO, errno.EOPNOTSUPP):  # a socket, or a FIFO on some OSes
            raise RefusedFile(SPECIAL_REASON) from None
        raise
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise RefusedFile(SPECIAL_REASON)
    if info.st_size > limit:
        os.close(fd)
        raise RefusedFile(size_reason(info.st_size, limit))
    return OpenedFile(fd, info.st_size, limit)


def open_dir(name: str | Path, dir_fd: int | None = None) -> int:
    """A folder's handle, never through a link (`RefusedFile` then)."""
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
    except OSError as err:
        if err.errno in (errno.ELOOP, errno.ENOTDIR):
            if err.errno == errno.ENOTDIR and not _is_link(name, dir_fd):
                raise RefusedFile("not a folder any more (changed while read)") from None
            raise RefusedFile(LINK_REASON) from None
        raise


def _is_link(name: str | Path, dir_fd: int | None) -> bool:
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except OSError:
        return False


def open_beneath(root: Path, relpath: str, limit: int = MAX_FILE_BYTES) -> OpenedFile:
    """The file at ``relpath`` under ``root``, every folder on the way entered without
    following a link: a path that a swapped folder would lead outside ``root`` is refused."""
    parts = [p for p in relpath.split("/") if p]
    if not parts or any(p in (".", "..") for p in parts):
        raise RefusedFile(f"{relpath!r} is not a path inside the folder")
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0))
    try:
        for part in parts[:-1]:
            inner = open_dir(part, fd)
            os.close(fd)
            fd = inner
        return open_file(parts[-1], fd, limit)
    finally:
        os.close(fd)


#: Folders no photo comes from: a source or batch there is a mistake or an attack (a batch
#: of "/" walked /proc). Refused unless FRUITOPS_ALLOWED_ROOTS names them.
SYSTEM_FOLDERS = tuple(Path(p) for p in ("/proc", "/sys", "/dev", "/etc", "/boot", "/run"))


class OutsideAllowedRoots(ValueError):
    """A local path outside the folders inputs may come from; the message names the setting."""


def check_allowed(path: Path, allowed: list[Path], what: str) -> Path:
    """``path`` resolved, if it lies in one of ``allowed`` (FRUITOPS_ALLOWED_ROOTS); with
    none configured, anywhere but the root folder and `SYSTEM_FOLDERS`."""
    real = Path(path).expanduser().resolve()
    if allowed:
        if not any(real.is_relative_to(root) for root in allowed):
            raise OutsideAllowedRoots(
                f"{what} {path} is outside FRUITOPS_ALLOWED_ROOTS "
                f"({os.pathsep.join(map(str, allowed))}): put it under one of them, or add "
                "its folder to FRUITOPS_ALLOWED_ROOTS"
            )
        return real
    if real == Path(real.anchor) or any(real.is_relative_to(s) for s in SYSTEM_FOLDERS):
        raise OutsideAllowedRoots(
            f"{what} {path} is a system folder, not one of photos: give the folder that holds "
            "them (FRUITOPS_ALLOWED_ROOTS lists the folders inputs may come from)"
        )
    return real
