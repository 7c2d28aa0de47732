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

import logging
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fruitops_core.assets import (
    AssetContext,
    AssetSpec,
    CheckResult,
    asset_dir,
)
from fruitops_core.lake import Lake, LakeError
from fruitops_core.lake_base import Lease
from fruitops_core.records import (
    REUSE_KEY,
    AssetCheckFailed,
    CheckOutcome,
    MaterializationError,
    MaterializationRecord,
    code_version,
    commit_record,
    failed_checks,
    load_value,
    read_record,
    staleness,
)
from fruitops_core.registry import AssetGraph
from fruitops_core.resources import Resources
from fruitops_core.settings import FruitOpsSettings
from fruitops_core.tracking import Tracking

log = logging.getLogger("fruitops.materialize")

#: How long a materialization waits for another one of the same asset to finish.
LOCK_WAIT_SECONDS = 6 * 3600


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


def run_mapped(
    spec: AssetSpec,
    graph: AssetGraph,
    resources: Resources,
    run_id: str,
    config: dict[str, Any] | None = None,
) -> Any:
    """Run ``spec``'s function on the stored upstream values without storing the result.

    For one item of an asset's work done in an Airflow mapped task (one architecture of
    ``models/trained_model``): the asset's own materialization then finds that work done.
    The value must not need the scratch folder, which is gone on return.
    """
    upstream, _ = _upstream(spec, graph, resources.lake)
    return run_asset(spec, resources, upstream, config, run_id)


def run_asset(
    spec: AssetSpec,
    resources: Resources,
    upstream: dict[str, Any],
    config: dict[str, Any] | None = None,
    run_id: str | None = None,
) -> Any:
    """Run ``spec``'s function on upstream values the caller gives, storing no record.

    For a command that runs an asset on inputs from outside the graph (`fruitops score` on any
    folder, `fruitops monitor drift` on any table): the asset's function stays the one code
    path of the capability, and the command only finds its inputs. ``upstream`` maps each
    upstream asset's name (the last part of its key) to its value. The value must not need
    the scratch folder, which is gone on return.
    """
    names = {dep.rsplit("/", 1)[-1] for dep in spec.deps}
    if set(upstream) != names:
        raise MaterializationError(
            f"{spec.key} takes the values of {sorted(names)}, was given {sorted(upstream)}"
        )
    config = spec.given_config(config, resources.settings)
    run_id = run_id or f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory(prefix="fruitops-asset-") as workdir:
        ctx = _context(spec, resources, run_id, config, Path(workdir))
        return spec.fn(ctx, **upstream)


def _context(
    spec: AssetSpec,
    resources: Resources,
    run_id: str,
    config: dict[str, Any] | None,
    workdir: Path,
) -> AssetContext:
    previous = read_record(resources.lake, spec)
    return AssetContext(
        key=spec.key,
        run_id=run_id,
        settings=resources.settings,
        lake=resources.lake,
        config=spec.parse_config(config),
        log=logging.getLogger(f"fruitops.{spec.key.replace('/', '.')}"),
        workdir=workdir,
        previous=previous.metadata if previous else None,
        tracking=resources.tracking,
    )


def _still_holds(spec: AssetSpec, lake: Lake, key: Any) -> MaterializationRecord | None:
    """The last record when it was made by this code from the same ``key`` and passed its
    blocking checks; None when the function must run."""
    import json

    record = read_record(lake, spec)
    if record is None or not record.artifact_path or record.blocked_by:
        return None
    if record.code_version != code_version(spec):
        return None
    same = json.dumps(record.metadata.get(REUSE_KEY), sort_keys=True, default=str) == json.dumps(
        key, sort_keys=True, default=str
    )
    return record if same and lake.exists(record.artifact_path) else None


def materialize_one(
    spec: AssetSpec,
    graph: AssetGraph,
    resources: Resources,
    run_id: str,
    config: dict[str, Any] | None = None,
    lease: Lease | None = None,
) -> MaterializationRecord:
    """Materialize one asset from the stored values of its upstream assets; the lock's
    ``lease`` is checked right before the record commits it."""
    lake = resources.lake
    upstream_values, upstream_versions = _upstream(spec, graph, lake)
    with tempfile.TemporaryDirectory(prefix="fruitops-asset-") as workdir:
        ctx = _context(spec, resources, run_id, config, Path(workdir))
        started = datetime.now(UTC)
        t0 = time.perf_counter()
        if spec.reuse_key is not None:
            key = spec.reuse_key(ctx, **upstream_values)
            kept = _still_holds(spec, lake, key)
            if kept is not None:
                log.info("%s: its last result still holds (same %s): kept", spec.key, REUSE_KEY)
                record = kept.model_copy(
                    update={
                        "run_id": run_id,
                        "upstream": upstream_versions,
                        "started_at": started,
                        "finished_at": datetime.now(UTC),
                        "seconds": round(time.perf_counter() - t0, 3),
                        "config": ctx.config.model_dump(mode="json"),
                        "metadata": {**kept.metadata, "reused": True},
                    }
                )
                if lease is not None:
                    lease.check()
                commit_record(lake, spec, record, kept.artifact_path.rsplit("/", 1)[0])
                return record
            ctx.add_metadata(reused=False, **{REUSE_KEY: key})
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
    if lease is not None:
        lease.check()  # a run that lost its lock while stalled commits nothing
    commit_record(lake, spec, record, ctx.asset_dir)
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
    tracking: Tracking | None = None,
    resources: Resources | None = None,
) -> list[MaterializationRecord]:
    """Materialize ``keys`` and, with ``with_upstream``, what they depend on, in order.

    The named ``keys`` always run. Their upstream assets run only when missing or stale
    (`staleness`), or always with ``force``. ``config`` maps asset keys to config values;
    every given config is validated before anything runs. Returns the records of the
    assets that ran. ``resources`` (a command's `Workspace` has them), or else the lake and
    ``tracking`` (the MLflow resource), are built from ``settings`` unless given, and shared
    by every asset of the run.
    """
    resources = resources or Resources.of(settings, lake, tracking)
    settings, lake = resources.settings, resources.lake
    graph = graph or AssetGraph.from_entry_points()
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
            with lake.lock(asset_dir(key), holder=run_id, wait_seconds=LOCK_WAIT_SECONDS) as lease:
                reason = "requested" if force or key in keys else None
                reason = reason or staleness(graph[key], graph, lake, given[key])
                if reason is None:
                    log.info("%s is up to date: kept", key)
                    continue
                log.info("materializing %s: %s", key, reason)
                records.append(
                    materialize_one(graph[key], graph, resources, run_id, given[key], lease)
                )
        except LakeError as err:
            raise MaterializationError(f"{key}: {err}") from err
    return records
