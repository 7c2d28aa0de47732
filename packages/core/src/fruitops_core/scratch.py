"""Scratch folders kept between runs (tables and cache shards copied from an object store).

One per user, mode 700, checked before use: a shared, predictable ``/tmp`` path would lock
out the next user, or let another plant the files a run then reads.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path


class ScratchError(PermissionError):
    """The user's scratch folder is not theirs alone; the message says what to do."""


def user_scratch(name: str) -> Path:
    """``<tmp>/fruitops-<uid>/<name>``, made private to this user if new, refused if not."""
    root = Path(tempfile.gettempdir()) / f"fruitops-{os.getuid()}"
    try:
        root.mkdir(mode=0o700)
    except FileExistsError:
        pass
    info = root.lstat()
    if (
        not stat.S_ISDIR(info.st_mode)
        or info.st_uid != os.getuid()
        or stat.S_IMODE(info.st_mode) & 0o077
    ):
        raise ScratchError(
            f"{root} is not a private folder of this user (owner uid {info.st_uid}, mode "
            f"{stat.filemode(info.st_mode)}): remove it, or set TMPDIR to a folder of your own"
        )
    folder = root / name
    folder.mkdir(mode=0o700, exist_ok=True)
    return folder
