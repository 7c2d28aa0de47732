"""Sources: one ``SOURCE`` string selects where the photos come from.

- a folder path (or ``file://`` URI) in the Kaggle layout;
- a ``.zip`` of such a folder (extracted safely into the FruitOps home);
- ``s3://bucket/prefix`` on any S3 endpoint, or ``gs://bucket/prefix`` (mirrored into the
  FruitOps home);
- ``kaggle:owner/dataset`` through ``kagglehub`` (optional extra ``fruitops-data[kaggle]``);
- ``synthetic:classes=N,per_class=M,size=S,seed=K`` draws a set (see `synthetic`).

Every source ends as a local folder whose children are the split folders. The kinds stay in
one module (over 300 lines, one section each: zip, S3/GCS mirror, Kaggle) because they share
`SourceError`, the size limits and `resolve`'s dispatch (docs/design.md §4).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import stat
import tempfile
import zipfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlparse

from fruitops_core.progress import track
from fruitops_core.safe_files import check_allowed, size_reason
from fruitops_data import synthetic
from fruitops_data.layout import (
    MAX_FILE_BYTES,
    find_dataset_root,
    key_refusal,
    scan,
    skip_reason,
    skipped,
)

#: Limits for zip extraction: a hostile or broken archive must not fill the disk.
MAX_ZIP_BYTES = 50 * 1024**3
MAX_ZIP_FILES = 1_000_000
#: Space left free on the disk after an extraction (the FruitOps home keeps working).
DISK_RESERVE_BYTES = 1024**3


class SourceError(ValueError):
    """The source string cannot be used; the message says what to give instead."""


@dataclass(frozen=True)
class ResolvedSource:
    source: str
    dataset_id: str  # stable name of this data set inside the lake
    root: Path  # local folder whose children are the split folders
    refused: tuple[dict[str, str], ...] = ()  # what the source held that could not be taken


def _short_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def resolve(
    source: str,
    workdir: Path,
    endpoint_url: str | None = None,
    max_zip_bytes: int = MAX_ZIP_BYTES,
    max_zip_files: int = MAX_ZIP_FILES,
    max_file_bytes: int = MAX_FILE_BYTES,
    allowed_roots: Sequence[Path] = (),
) -> ResolvedSource:
    """Make ``source`` available as a local folder under ``workdir`` when it is not one.

    A local folder or zip must lie in ``allowed_roots`` (FRUITOPS_ALLOWED_ROOTS; none: not
    a system folder)."""
    source = source.strip()
    if not source:
        raise SourceError(
            "empty source: set FRUITOPS_SOURCE to a folder, .zip, s3://, "
            "kaggle:owner/dataset or synthetic:..."
        )
    if source.startswith("synthetic:") or source == "synthetic":
        spec = synthetic.SyntheticSpec.parse(source.partition(":")[2])
        dataset = synthetic.generate(spec, workdir / "sources" / spec.slug)
        return ResolvedSource(source, spec.slug, find_dataset_root(dataset))
    if source.startswith("kaggle:"):
        folder = _from_kaggle(source.removeprefix("kaggle:"))
        name = source.removeprefix("kaggle:").replace("/", "-")
        return ResolvedSource(source, f"kaggle-{name}", find_dataset_root(folder))
    parsed = urlparse(source)
    if parsed.scheme in ("s3", "gs"):
        target = workdir / "sources" / f"{parsed.scheme}-{parsed.netloc}-{_short_hash(source)}"
        refused = _mirror(
            source, target, endpoint_url, max_bytes=max_zip_bytes, max_file_bytes=max_file_bytes
        )
        return ResolvedSource(source, target.name, find_dataset_root(target), tuple(refused))
    if parsed.scheme not in ("", "file"):
        raise SourceError(
            f"source {source!r}: scheme {parsed.scheme!r} is not supported; give a folder in "
            "the Kaggle layout, a .zip, s3://bucket/prefix, gs://bucket/prefix, "
            "kaggle:owner/dataset or "
            "synthetic:classes=N,per_class=M,size=S,seed=K"
        )
    path = local_path(source)
    assert path is not None  # every other scheme was handled above
    check_allowed(path, list(allowed_roots), "source")
    # the absolute path is the source: later steps find the same data from any folder
    if path.suffix.lower() == ".zip":
        target = workdir / "sources" / f"zip-{path.stem}-{_zip_fingerprint(path)}"
        extract_zip(path, target, max_zip_bytes, max_zip_files, max_file_bytes)
        return ResolvedSource(str(path), target.name, find_dataset_root(target))
    root = find_dataset_root(path)
    return ResolvedSource(str(path), f"{path.name or 'root'}-{_short_hash(str(root))}", root)


def local_path(source: str) -> Path | None:
    """A folder or zip source (plain path or file://) as the absolute path the lake records;
    None for the other kinds of source."""
    parsed = urlparse(source)
    if parsed.scheme not in ("", "file"):
        return None
    return Path(unquote(parsed.path) if parsed.scheme else source).expanduser().resolve()


# --- zip -------------------------------------------------------------------------------------


def _zip_fingerprint(path: Path) -> str:
    if not path.is_file():
        raise SourceError(f"{path} does not exist: give the path of a .zip of the Kaggle layout")
    info = path.stat()
    return _short_hash(f"{path}:{info.st_size}:{info.st_mtime_ns}")


def _safe_member_path(name: str) -> PurePosixPath | None:
    """The member's relative path, or None when it would land outside the target."""
    normalised = PurePosixPath(name.replace("\\", "/"))
    if normalised.is_absolute() or ".." in normalised.parts:
        return None
    if normalised.parts and ":" in normalised.parts[0]:
        return None
    return normalised  # "./" is the extraction folder itself (no parts): harmless


def extract_zip(
    archive: Path,
    target: Path,
    max_bytes: int,
    max_files: int,
    max_file_bytes: int = MAX_FILE_BYTES,
) -> Path:
    """Extract ``archive`` into ``target`` unless already done; refuse hostile members.

    A member whose path escapes the target (``../``, absolute, a drive letter) or that is a
    symbolic link fails the whole extraction, as do archives over the size or count limits.
    Each extraction writes a staging folder of its own, removed whatever happens; the first
    to finish publishes it (two ingests of one zip at once both succeed).
    """
    done = target / ".complete"
    if done.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f"{target.name}.partial-", dir=target.parent))
    try:
        _extract_members(archive, staging, max_bytes, max_files, max_file_bytes)
        (staging / ".complete").write_text(str(archive))
        if not done.exists():
            if target.exists():  # a stale, unfinished target (no .complete)
                shutil.rmtree(target, ignore_errors=True)
            try:
                os.replace(staging, target)
            except OSError:
                if not done.exists():  # not another extraction that won: a real error
                    raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _extract_members(
    archive: Path, staging: Path, max_bytes: int, max_files: int, max_file_bytes: int
) -> None:
    try:
        with zipfile.ZipFile(archive) as zf:
            members = zf.infolist()
            if len(members) > max_files:
                raise SourceError(
                    f"{archive} holds {len(members)} entries, over the limit of "
                    f"{max_files}; raise it or split the archive"
                )
            total = sum(m.file_size for m in members)
            if total > max_bytes:
                raise SourceError(
                    f"{archive} unpacks to {total} bytes, over the limit of "
                    f"{max_bytes}; raise it or split the archive"
                )
            largest = max(members, key=lambda m: m.file_size, default=None)
            if largest is not None and largest.file_size > max_file_bytes:
                raise SourceError(
                    f"{archive}: member {largest.filename!r} unpacks to {largest.file_size} "
                    f"bytes, over the per-file limit of {max_file_bytes}; refusing the archive"
                )
            free = shutil.disk_usage(staging).free
            if total > free - DISK_RESERVE_BYTES:
                raise SourceError(
                    f"{archive} unpacks to {total} bytes but {staging.parent} has {free} "
                    f"free (and keeps {DISK_RESERVE_BYTES} in reserve): free some space or "
                    "give the extracted folder"
                )
            for member in members:
                rel = _safe_member_path(member.filename)
                if rel is None:
                    raise SourceError(
                        f"{archive}: member {member.filename!r} would be written "
                        "outside the extraction folder; refusing the archive"
                    )
                if stat.S_ISLNK(member.external_attr >> 16):
                    raise SourceError(
                        f"{archive}: member {member.filename!r} is a symbolic "
                        "link; refusing the archive"
                    )
                destination = staging / rel
                if member.is_dir() or not rel.parts:
                    destination.mkdir(parents=True, exist_ok=True)
                    continue
                destination.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(member) as src, open(destination, "wb") as dst:
                    # Python's zipfile stops at the declared size and checks the CRC, so a
                    # member cannot unpack to more than its header says
                    shutil.copyfileobj(src, dst, 1 << 20)
    except zipfile.BadZipFile as err:
        raise SourceError(
            f"{archive} is not a readable zip archive ({err}); download it "
            "again or give the extracted folder"
        ) from None
    except (zipfile.LargeZipFile, EOFError, OSError) as err:
        raise SourceError(f"{archive} could not be extracted: {err}") from None


# --- S3 --------------------------------------------------------------------------------------


#: The mirror's record of what it holds: key → ETag of the object it was copied from.
MIRROR_STATE = ".mirror.json"


def _mirror(
    uri: str,
    target: Path,
    endpoint_url: str | None,
    workers: int = 16,
    max_bytes: int = MAX_ZIP_BYTES,
    max_file_bytes: int = MAX_FILE_BYTES,
) -> list[dict[str, str]]:
    """Make ``target`` an exact copy of the objects under the prefix; return the keys left
    out (each with why): they are listed, never written anywhere.

    The zip's limits hold here too, checked on the listing before anything is downloaded:
    an object over the per-file limit (or with an unclean key, or junk by name) is left out,
    and a prefix over the total size, or larger than the disk's free space, is refused. An
    object is downloaded again when its ETag or size changed; a local file whose object is
    gone is deleted. Every path stays inside ``target``.
    """
    from fruitops_core.lake import lake_from_uri

    lake = lake_from_uri(uri, endpoint_url=endpoint_url)
    objects, refused = {}, []
    for key, size, etag in lake.listing():
        reason = key_refusal(key) or skip_reason(key.split("/"))
        if reason is None and size > max_file_bytes:
            reason = size_reason(size, max_file_bytes)
        if reason:
            refused.append(skipped(key, reason))
        else:
            objects[key] = (size, etag)
    if not objects:
        raise SourceError(
            f"{uri} holds no usable objects (endpoint {endpoint_url or 'AWS default'}): "
            "check the bucket and prefix"
            + (
                f"; {len(refused)} keys were refused, e.g. {refused[0]['path']!r}"
                if refused
                else ""
            )
        )
    total = sum(size for size, _ in objects.values())
    if total > max_bytes:
        raise SourceError(
            f"{uri} holds {total} bytes in {len(objects)} objects, over the limit of "
            f"{max_bytes}; split the data set or raise the limit"
        )
    target.mkdir(parents=True, exist_ok=True)
    root = target.resolve()
    state_path = target / MIRROR_STATE
    state = json.loads(state_path.read_text()) if state_path.exists() else {}
    for entry in scan(root):
        key = "/".join(entry.parts)
        if key != MIRROR_STATE and key not in objects:
            (root / key).unlink()  # its object is gone: the mirror follows
            state.pop(key, None)

    def current(key: str) -> bool:
        local = root / key
        size, etag = objects[key]
        return local.is_file() and local.stat().st_size == size and state.get(key) == etag

    needed = [key for key in objects if not current(key)]
    wanted = sum(objects[key][0] for key in needed)
    free = shutil.disk_usage(root).free
    if wanted > free - DISK_RESERVE_BYTES:
        raise SourceError(
            f"{uri}: {wanted} bytes to download but {root} has {free} free (and keeps "
            f"{DISK_RESERVE_BYTES} in reserve): free some space first"
        )

    def fetch(key: str) -> None:
        local = root / key
        if not local.resolve().is_relative_to(root):
            raise SourceError(f"{uri}: key {key!r} would be written outside {root}")
        lake.get_file(key, local)
        if local.stat().st_size > max_file_bytes:  # grew since it was listed
            local.unlink()
            raise SourceError(f"{uri}: {key!r} grew past the per-file limit while downloaded")
        state[key] = objects[key][1]

    with ThreadPoolExecutor(workers) as pool:
        for _ in track(pool.map(fetch, needed), len(needed), "download", "files"):
            pass
    tmp = state_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, sort_keys=True))
    os.replace(tmp, state_path)
    return refused


# --- Kaggle ----------------------------------------------------------------------------------


def _kaggle_credentials_present() -> bool:
    if os.environ.get("KAGGLE_API_TOKEN"):
        return True
    if os.environ.get("KAGGLE_USERNAME") and os.environ.get("KAGGLE_KEY"):
        return True
    config = Path(os.environ.get("KAGGLE_CONFIG_DIR", Path.home() / ".kaggle"))
    return (config / "kaggle.json").is_file() or (config / "access_token").is_file()


def _from_kaggle(handle: str, host: str = "www.kaggle.com", timeout: float = 3.0) -> Path:
    """Download a Kaggle data set with kagglehub; fail fast offline or without credentials."""
    if handle.count("/") != 1:
        raise SourceError(
            f"kaggle:{handle}: expected kaggle:owner/dataset, e.g. "
            "kaggle:icebearogo/fruit-classification-dataset"
        )
    try:
        import kagglehub
    except ImportError:
        raise SourceError(
            "the kaggle: source needs kagglehub: install the extra "
            "fruitops-data[kaggle] (pip install kagglehub)"
        ) from None
    if not _kaggle_credentials_present():
        raise SourceError(
            "no Kaggle credentials: set KAGGLE_USERNAME and KAGGLE_KEY (or "
            "KAGGLE_API_TOKEN), or put kaggle.json in ~/.kaggle"
        )
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
    except OSError as err:
        raise SourceError(
            f"cannot reach {host} ({err}): the kaggle: source needs network "
            "access; download the archive elsewhere and give the .zip"
        ) from None
    try:
        return Path(kagglehub.dataset_download(handle))
    except Exception as err:  # kagglehub raises its own types for auth and HTTP errors
        raise SourceError(f"kagglehub could not download {handle}: {err}") from None
