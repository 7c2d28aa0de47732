"""The lake: bytes, JSON and Parquet under one root URI, on local disk, S3 or GCS.

Every write is atomic: a local write goes to a temporary file in the same folder and is
renamed into place; an object store's PUT (and a completed multipart upload) becomes visible
whole. Paths inside a lake are POSIX-style relative keys like
``assets/data/image_manifest/versions/<id>/data.parquet``. `Lake.lock` keeps two writers of
one asset apart, across processes and machines.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlparse

from fruitops_core.lake_base import Lake, LakeError
from fruitops_core.lake_local import LocalLake
from fruitops_core.lake_object_store import ObjectStoreLake

if TYPE_CHECKING:
    from fruitops_core.settings import FruitOpsSettings

__all__ = [
    "Lake",
    "LakeError",
    "LocalLake",
    "ObjectStoreLake",
    "lake_from_uri",
    "object_at",
    "open_lake",
    "uri_exists",
]


def lake_from_uri(uri: str, endpoint_url: str | None = None, strict: bool = False) -> Lake:
    """Open the lake at ``uri``: a local path, ``file://``, ``s3://`` or ``gs://``.

    ``endpoint_url`` is the S3 endpoint (MinIO, SeaweedFS); ``gs://`` is Google Cloud
    Storage itself, with application-default credentials. ``strict`` opens a local folder
    of inputs by the rules for folders others write to (`LocalLake`).
    """
    parsed = urlparse(uri)
    if parsed.scheme in ("", "file") or (len(parsed.scheme) == 1 and os.name == "nt"):
        path = unquote(parsed.path) if parsed.scheme == "file" else uri
        return LocalLake(Path(path), strict=strict)
    if parsed.scheme in ("s3", "gs"):
        endpoint = endpoint_url if parsed.scheme == "s3" else None
        return ObjectStoreLake(parsed.scheme, parsed.netloc, parsed.path, endpoint_url=endpoint)
    raise LakeError(
        f"unsupported lake URI {uri!r}: use a folder path, file://, s3://bucket/prefix or gs://"
    )


def object_at(uri: str, endpoint_url: str | None = None) -> tuple[Lake, str]:
    """The lake of ``uri``'s folder and the object's name in it, to read or write one object.

    A bare name is in the current folder; ``/name`` and ``file:///name`` are at the root."""
    parent, sep, name = uri.rstrip("/").rpartition("/")
    if not sep:
        parent = "."
    elif parent in ("", "file://"):
        parent += "/"
    return lake_from_uri(parent, endpoint_url=endpoint_url), name


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
