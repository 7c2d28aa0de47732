"""Materialization records: the lineage of each artifact, where it lies, and whether it is fresh.

A record (``assets/<key>/materialization.json``) is the commit point of a materialization;
everything that reads an asset goes through it (`read_record`, `load_value`), and
`staleness` compares it with the upstream records to decide what must be made again.
"""

from __future__ import annotations

import hashlib
import inspect
from datetime import datetime
from functools import cache
from importlib.metadata import PackageNotFoundError, packages_distributions, version
from typing import Any

from pydantic import BaseModel, Field

from fruitops_core.assets import (
    CURRENT,
    VERSIONS,
    AssetSpec,
    asset_dir,
)
from fruitops_core.lake import Lake
from fruitops_core.registry import AssetGraph


class CheckOutcome(BaseModel):
    name: str
    passed: bool
    blocking: bool
    description: str = ""
    metadata: dict[str, Any] = Field(default_factory=dict)


#: The metadata entry of a record that holds what decided its result (`AssetSpec.reuse_key`):
#: `materialize` keeps the result while it is the same.
REUSE_KEY = "reuse_key"


class MaterializationRecord(BaseModel):
    """The lineage of one artifact: what made it, from what, when."""

    asset_key: str
    run_id: str
    version: str
    artifact_uri: str
    artifact_path: str = ""
    """The artifact's path in the lake; empty in records made before versioned folders."""
    upstream: dict[str, str]
    code_version: str
    started_at: datetime
    finished_at: datetime
    seconds: float
    config: dict[str, Any] = Field(default_factory=dict)
    metadata: dict[str, Any] = Field(default_factory=dict)
    checks: list[CheckOutcome] = Field(default_factory=list)

    @property
    def blocked_by(self) -> list[CheckOutcome]:
        return [c for c in self.checks if c.blocking and not c.passed]


class MaterializationError(RuntimeError):
    """An asset could not be materialized; the message says which and what to do."""


class AssetCheckFailed(MaterializationError):
    """A blocking check failed: the artifact is kept for inspection, downstream must not run."""


@cache
def _distribution_version(top_module: str) -> str:
    """Version of the distribution that ships ``top_module`` (scanning them all takes ~0.3 s,
    so the answer is kept for the life of the process)."""
    dist = (packages_distributions().get(top_module) or [top_module])[0]
    try:
        return version(dist)
    except PackageNotFoundError:
        return "0+unknown"


def code_version(spec: AssetSpec) -> str:
    """Distribution version plus a hash of the asset function's source."""
    dist_version = _distribution_version(spec.fn.__module__.split(".")[0])
    try:
        source = inspect.getsource(spec.fn)
    except (OSError, TypeError):
        source = spec.fn.__qualname__
    return f"{dist_version}+{hashlib.sha256(source.encode()).hexdigest()[:10]}"


def read_record(lake: Lake, spec: AssetSpec) -> MaterializationRecord | None:
    if not lake.exists(spec.record_path):
        return None
    return MaterializationRecord.model_validate(lake.read_json(spec.record_path))


#: Versions of an asset kept besides the one its record names: a reader that read the
#: previous record a moment ago still finds its artifact.
KEEP_VERSIONS = 2


def stored_path(record: MaterializationRecord, spec: AssetSpec) -> str:
    """The path of the artifact ``record`` names (the folder layout before versions for
    records that predate them)."""
    return record.artifact_path or spec.artifact_path(asset_dir(spec.key))


def load_value(lake: Lake, spec: AssetSpec, record: MaterializationRecord | None = None) -> Any:
    """The value of the artifact the asset's committed record names."""
    record = record or read_record(lake, spec)
    if record is None:
        raise MaterializationError(
            f"{spec.key} has not been materialized in {lake.root_uri}: "
            f"run `fruitops materialize {spec.key} --with-upstream`"
        )
    return spec.io.load(lake, stored_path(record, spec))


def failed_checks(record: MaterializationRecord) -> str:
    """The blocking checks a record failed, with what each said."""
    return "; ".join(f"{c.name}: {c.description}" for c in record.blocked_by)


def staleness(spec: AssetSpec, graph: AssetGraph, lake: Lake, given: dict[str, Any]) -> str | None:
    """Why ``spec`` must be (re)made, or None when its stored artifact is fresh.

    Stale means: never made; made by other code; made from other versions of its upstream
    assets; or made with other values of the config fields the caller ``given`` now.
    """
    record = read_record(lake, spec)
    if record is None:
        return "not materialized yet"
    code = code_version(spec)
    if record.code_version != code:
        return f"its code changed ({record.code_version} → {code})"
    for dep in spec.deps:
        current = read_record(lake, graph[dep])
        if current is None or record.upstream.get(dep) != current.version:
            return f"upstream {dep} changed since it was made"
    parsed = spec.parse_config(given)
    wanted = parsed.model_dump(mode="json", include=set(given))
    changed = {k: v for k, v in wanted.items() if record.config.get(k) != v}
    if changed:
        return "config changed: " + ", ".join(
            f"{k} {record.config.get(k)!r} → {v!r}" for k, v in changed.items()
        )
    return None


def commit_record(lake: Lake, spec: AssetSpec, record: MaterializationRecord, folder: str) -> None:
    """Write the record (the commit point), point ``current`` at its folder, drop old ones."""
    payload = record.model_dump(mode="json")
    lake.write_json(f"{asset_dir(spec.key)}/history/{record.run_id}.json", payload)
    lake.write_json(spec.record_path, payload)
    lake.point_link(f"{asset_dir(spec.key)}/{CURRENT}", folder)
    versions = f"{asset_dir(spec.key)}/{VERSIONS}"
    committed = folder.rsplit("/", 1)[-1]
    names = {p[len(versions) + 1 :].split("/", 1)[0] for p in lake.list(versions)}
    older = sorted(names - {committed})
    for name in older[: max(0, len(older) - KEEP_VERSIONS)]:
        lake.delete_prefix(f"{versions}/{name}")
