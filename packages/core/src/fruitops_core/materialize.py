"""`materialize()`: run assets with their upstream values and record the lineage.

The CLI, the Airflow tasks and the tests all call this one function. Each materialization
writes its artifact (and any extra files) into a folder of its own,
``assets/<key>/versions/<id>/``, and then the record (run id, upstream versions, the
artifact's path, code version, config, timings, metadata, check results) at
``assets/<key>/materialization.json``; a copy of the record is kept under ``history/``.
The record is the commit point: a reader goes through it, so it sees the previous version
or the new one, never half of one. On a local lake ``assets/<key>/current`` links to the
version the record names, for people to open. Two materializations of one asset never
interleave: each holds the asset's lock (`Lake.lock`).

The record is also what makes an asset *fresh*: upstream assets are only re-run when they
are missing or stale (see `staleness`), so asking for an asset never silently redoes, or
replaces, work that is done.
"""

from __future__ import annotations

import hashlib
import inspect
import logging
import tempfile
import time
import uuid
from datetime import UTC, datetime
from functools import cache
from importlib.metadata import PackageNotFoundError, packages_distributions, version
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from fruitops_core.assets import (
    CURRENT,
    VERSIONS,
    AssetContext,
    AssetSpec,
    CheckResult,
    asset_dir,
)
from fruitops_core.lake import Lake, LakeError, open_lake
from fruitops_core.registry import AssetGraph
from fruitops_core.settings import FruitOpsSettings

log = logging.getLogger("fruitops.materialize")


class CheckOutcome(BaseModel):
    name: str
    passed: bool
    blocking: bool
    description: str = ""
    metadata: dict[str, Any] = Field(default_factory=dict)


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

#: How long a materialization waits for another one of the same asset to finish.
LOCK_WAIT_SECONDS = 6 * 3600


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
            return f"upstream {dep} changed since"
    parsed = spec.parse_config(given)
    wanted = parsed.model_dump(mode="json", include=set(given))
    changed = {k: v for k, v in wanted.items() if record.config.get(k) != v}
    if changed:
        return "config changed: " + ", ".join(
            f"{k} {record.config.get(k)!r} → {v!r}" for k, v in changed.items()
        )
    return None


def _run_checks(ctx: AssetContext, spec: AssetSpec, value: Any) -> list[CheckOutcome]:
    outcomes = []
    for check in spec.checks:
        try:
            result = check.fn(ctx, value)
        except Exception as err:  # a crashing check is a failing check, reported as such
            result = CheckResult(False, f"check raised {type(err).__name__}: {err}")
        outcomes.append(
            CheckOutcome(
                name=check.name,
                passed=bool(result.passed),
                blocking=check.blocking,
                description=result.description or check.description,
                metadata=result.metadata,
            )
        )
    return outcomes


def _upstream(
    spec: AssetSpec, graph: AssetGraph, lake: Lake
) -> tuple[dict[str, Any], dict[str, str]]:
    """The stored values and versions of ``spec``'s upstream assets, checks respected."""
    values: dict[str, Any] = {}
    versions: dict[str, str] = {}
    for dep in spec.deps:
        dep_spec = graph[dep]
        record = read_record(lake, dep_spec)
        if record is None:
            raise MaterializationError(
                f"{spec.key} needs {dep}, which has not been materialized in {lake.root_uri}: "
                f"run `fruitops materialize {spec.key} --with-upstream`"
            )
        if record.blocked_by:
            raise AssetCheckFailed(
                f"{spec.key} cannot run: upstream {dep} failed its blocking checks "
                f"({failed_checks(record)}); its record: {lake.uri(dep_spec.record_path)}"
            )
        values[dep.rsplit("/", 1)[-1]] = load_value(lake, dep_spec, record)
        versions[dep] = record.version
    return values, versions


def compute(
    spec: AssetSpec,
    graph: AssetGraph,
    settings: FruitOpsSettings,
    lake: Lake,
    run_id: str,
    config: dict[str, Any] | None = None,
) -> Any:
    """Run ``spec``'s function on the stored upstream values without storing the result.

    For a slice of an asset's work done elsewhere (one architecture of ``models/trained_model``
    in an Airflow mapped task): the asset's own materialization then finds that work done.
    The value must not need the scratch folder, which is gone on return.
    """
    upstream, _ = _upstream(spec, graph, lake)
    config = spec.given_config(config, settings)
    with tempfile.TemporaryDirectory(prefix="fruitops-asset-") as workdir:
        return spec.fn(_context(spec, settings, lake, run_id, config, Path(workdir)), **upstream)


def _context(
    spec: AssetSpec,
    settings: FruitOpsSettings,
    lake: Lake,
    run_id: str,
    config: dict[str, Any] | None,
    workdir: Path,
) -> AssetContext:
    previous = read_record(lake, spec)
    return AssetContext(
        key=spec.key,
        run_id=run_id,
        settings=settings,
        lake=lake,
        config=spec.parse_config(config),
        log=logging.getLogger(f"fruitops.{spec.key.replace('/', '.')}"),
        workdir=workdir,
        previous=previous.metadata if previous else None,
    )


def materialize_one(
    spec: AssetSpec,
    graph: AssetGraph,
    settings: FruitOpsSettings,
    lake: Lake,
    run_id: str,
    config: dict[str, Any] | None = None,
) -> MaterializationRecord:
    """Materialize one asset from the stored values of its upstream assets."""
    upstream_values, upstream_versions = _upstream(spec, graph, lake)
    with tempfile.TemporaryDirectory(prefix="fruitops-asset-") as workdir:
        ctx = _context(spec, settings, lake, run_id, config, Path(workdir))
        started = datetime.now(UTC)
        t0 = time.perf_counter()
        value = spec.fn(ctx, **upstream_values)
        artifact_path = spec.artifact_path(ctx.asset_dir)
        artifact_uri, version = spec.io.store(lake, artifact_path, value)
        checks = _run_checks(ctx, spec, value)
        record = MaterializationRecord(
            asset_key=spec.key,
            run_id=run_id,
            version=version,
            artifact_uri=artifact_uri,
            artifact_path=artifact_path,
            upstream=upstream_versions,
            code_version=code_version(spec),
            started_at=started,
            finished_at=datetime.now(UTC),
            seconds=round(time.perf_counter() - t0, 3),
            config=ctx.config.model_dump(mode="json"),
            metadata={**spec.io.describe(value), **ctx.metadata},
            checks=checks,
        )
    _commit(lake, spec, record, ctx.asset_dir)
    if record.blocked_by:
        raise AssetCheckFailed(f"{spec.key} failed blocking checks: {failed_checks(record)}")
    return record


def _commit(lake: Lake, spec: AssetSpec, record: MaterializationRecord, folder: str) -> None:
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


def materialize(
    keys: list[str],
    *,
    settings: FruitOpsSettings | None = None,
    graph: AssetGraph | None = None,
    with_upstream: bool = False,
    config: dict[str, dict[str, Any]] | None = None,
    run_id: str | None = None,
    lake: Lake | None = None,
    force: bool = False,
) -> list[MaterializationRecord]:
    """Materialize ``keys`` and, with ``with_upstream``, what they depend on, in order.

    The named ``keys`` always run. Their upstream assets run only when missing or stale
    (`staleness`), or always with ``force``. ``config`` maps asset keys to config values;
    every given config is validated before anything runs. Returns the records of the
    assets that ran.
    """
    settings = settings or FruitOpsSettings()
    graph = graph or AssetGraph.from_entry_points()
    lake = lake or open_lake(settings)
    run_id = run_id or f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
    config = config or {}
    unknown = sorted(set(config) - set(graph.assets))
    if unknown:
        raise MaterializationError(f"config given for unknown assets {unknown}")
    for key in keys:
        graph[key]  # noqa: B018 - raises a clear error for an unknown key
    selected = graph.upstream_closure(keys) if with_upstream else set(keys)
    order = graph.topological_order(selected)
    given = {key: graph[key].given_config(config.get(key), settings) for key in order}
    for key in order:
        graph[key].parse_config(given[key])  # a wrong value fails now, not after hours of work
    records = []
    for key in order:
        try:
            # under the asset's lock: another run may have made it fresh while this one waited
            with lake.lock(asset_dir(key), holder=run_id, wait_seconds=LOCK_WAIT_SECONDS):
                reason = "requested" if force or key in keys else None
                reason = reason or staleness(graph[key], graph, lake, given[key])
                if reason is None:
                    log.info("%s is up to date: kept", key)
                    continue
                log.info("materializing %s: %s", key, reason)
                records.append(
                    materialize_one(graph[key], graph, settings, lake, run_id, given[key])
                )
        except LakeError as err:
            raise MaterializationError(f"{key}: {err}") from err
    return records
