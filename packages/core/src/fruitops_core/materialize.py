"""`materialize()`: run assets with their upstream values and record the lineage.

The CLI, the Airflow tasks and the tests all call this one function. Each materialization
writes the artifact and, next to it, a record (run id, upstream versions, code version,
config, timings, metadata, check results); a copy of the record is kept under ``history/``.

The record is what makes an asset *fresh*: upstream assets are only re-run when they are
missing or stale (see `staleness`), so asking for an asset never silently redoes, or
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

from fruitops_core.assets import AssetContext, AssetSpec, CheckResult
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


def load_value(lake: Lake, spec: AssetSpec) -> Any:
    return spec.io.load(lake, spec.artifact_path)


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
        values[dep.rsplit("/", 1)[-1]] = load_value(lake, dep_spec)
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
        artifact_uri, version = spec.io.store(lake, spec.artifact_path, value)
        checks = _run_checks(ctx, spec, value)
        record = MaterializationRecord(
            asset_key=spec.key,
            run_id=run_id,
            version=version,
            artifact_uri=artifact_uri,
            upstream=upstream_versions,
            code_version=code_version(spec),
            started_at=started,
            finished_at=datetime.now(UTC),
            seconds=round(time.perf_counter() - t0, 3),
            config=ctx.config.model_dump(mode="json"),
            metadata={**spec.io.describe(value), **ctx.metadata},
            checks=checks,
        )
    payload = record.model_dump(mode="json")
    lake.write_json(f"{spec.record_path.rsplit('/', 1)[0]}/history/{run_id}.json", payload)
    lake.write_json(spec.record_path, payload)
    if record.blocked_by:
        raise AssetCheckFailed(f"{spec.key} failed blocking checks: {failed_checks(record)}")
    return record


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
            reason = "requested" if force or key in keys else None
            reason = reason or staleness(graph[key], graph, lake, given[key])
            if reason is None:
                log.info("%s is up to date: kept", key)
                continue
            log.info("materializing %s: %s", key, reason)
            records.append(materialize_one(graph[key], graph, settings, lake, run_id, given[key]))
        except LakeError as err:
            raise MaterializationError(f"{key}: {err}") from err
    return records
