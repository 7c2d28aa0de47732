"""`fruitops monitor …`: drift reports and feature tables (through ``fruitops.cli``)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer

from fruitops_core.asset_keys import DRIFT_REPORT, IMAGE_MANIFEST
from fruitops_core.lake import Lake
from fruitops_core.model_ref import ModelRef
from fruitops_core.options import with_options
from fruitops_core.output import JsonFlag, plain_console, run_command
from fruitops_core.workspace import Workspace, open_workspace
from fruitops_monitoring.config import DriftConfig
from fruitops_monitoring.options import DRIFT_POLICY
from fruitops_serving.predictions import read_predictions
from fruitops_serving.records import ScoredBatch

app = typer.Typer(help="Monitoring: image features and drift reports.", no_args_is_help=True)


@app.command()
@with_options(DRIFT_POLICY)
def drift(
    config: dict[str, dict[str, Any]],
    batch: Annotated[
        str | None,
        typer.Option(
            help="a predictions table (path or s3:// URI) written by fruitops score, or a day "
            "of fruitops serve's answers (<lake>/predictions/online/<date>/); default: the last "
            "table fruitops score wrote",
        ),
    ] = None,
    reference: Annotated[
        str | None,
        typer.Option(
            help="a reference record (.json, as monitoring/reference_profile stores it); "
            "default, or when it was made under another model version than the batch's: the "
            "held-out split as the batch's model version sees it (built on first use)",
        ),
    ] = None,
    json_mode: JsonFlag = False,
) -> None:
    """Compare a scored batch with the reference: HTML + JSON report and the decision."""

    def action() -> dict[str, Any]:
        from datetime import UTC, datetime

        from fruitops_core.lake import object_at
        from fruitops_core.materialize import run_asset
        from fruitops_core.records import load_value, read_record
        from fruitops_monitoring.records import ReferenceProfile

        ws = open_workspace()
        policy = DriftConfig(**config.get(DRIFT_REPORT, {}))
        scored = batch or last_scored(ws.lake)
        stamp = f"{datetime.now(UTC):%Y%m%dT%H%M%S}"
        record = None
        if reference:
            ref_lake, name = object_at(reference, ws.settings.s3_endpoint)
            record = ReferenceProfile.model_validate(ref_lake.read_json(name))
        manifest = ws.graph[IMAGE_MANIFEST]
        # the drift asset's own function, on this table rather than the graph's scored batch
        upstream = {
            "batch_predictions": scored_batch(ws, scored),
            "reference_profile": record,
            "image_manifest": (
                load_value(ws.lake, manifest) if read_record(ws.lake, manifest) else None
            ),
        }
        asset_config = {**policy.model_dump(exclude_unset=True), "folder": f"drift/{stamp}"}
        result = run_asset(
            ws.graph[DRIFT_REPORT], ws.resources, upstream, asset_config, run_id=stamp
        )
        keys = {
            "dataset_drift",
            "drift_share",
            "drifted_columns",
            "report_html_uri",
            "report_json_uri",
            "current_rows",
            "reference_rows",
            "reference_model_uri",
            "quarantined",
        }
        return result.model_dump(mode="json", include=keys) | {
            "batch": scored,
            "drift_threshold": policy.drift_share,
        }

    def human(result: dict[str, Any]) -> None:
        out = plain_console()
        if result["dataset_drift"]:
            out.print("drift", style="red", end="")
        else:
            out.print("no dataset drift", style="green", end="")
        drifted = ", ".join(result["drifted_columns"]) or "none"
        out.print(
            f": {result['drift_share']:.0%} of columns drifted ({drifted}); "
            f"dataset drift from {result['drift_threshold']:.0%}, or a critical column\n"
            f"batch: {result['batch']}\nreport: {result['report_html_uri']}"
        )

    run_command(json_mode, action, human)


def last_scored(lake: Lake) -> str:
    """The predictions table scored last: by `fruitops score` or a dated scoring run."""
    from fruitops_serving.config import LATEST_PREDICTIONS

    if not lake.exists(LATEST_PREDICTIONS):
        raise ValueError(
            "no scored batch: run `fruitops score FOLDER` first, or pass --batch TABLE"
        )
    return lake.read_json(LATEST_PREDICTIONS)["predictions_uri"]


def scored_batch(workspace: Workspace, batch: str) -> ScoredBatch:
    """What the drift asset needs of a predictions table (or a day's folder of them): where
    it is and the model version that scored it."""
    from fruitops_core.lake import object_at

    table_lake, name = object_at(batch, workspace.settings.s3_endpoint)
    scored = read_predictions(table_lake, name)
    if scored.empty:
        raise ValueError(f"{batch} holds no predictions: score a batch with images first")
    name, version = scored["model_name"].iloc[0], int(scored["model_version"].iloc[0])
    return ScoredBatch(
        predictions_uri=batch, model_uri=ModelRef.pinned(name, version).uri, model_version=version
    )


@app.command()
def features(
    input: Annotated[str, typer.Argument(help="folder, glob, s3://bucket/prefix or a file list")],
    output: Annotated[
        str | None,
        typer.Option(
            help="where the Parquet table goes (path or s3:// URI); "
            "default monitoring/features/<input>.parquet in the lake",
        ),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(help="also the model's view (class, confidence, entropy, margin, embedding)"),
    ] = None,
    json_mode: JsonFlag = False,
) -> None:
    """Image features of every file of INPUT (streamed); undecodable files are listed."""

    def action() -> dict[str, Any]:
        from fruitops_core.lake import object_at
        from fruitops_monitoring.profile import build_features
        from fruitops_serving.inputs import resolve_input

        workspace = open_workspace()
        settings = workspace.settings
        source = resolve_input(
            input,
            endpoint_url=settings.s3_endpoint,
            allowed_roots=settings.allowed_root_paths,
        )
        loaded = None
        if model:
            from fruitops_models.registry import load_model

            loaded = load_model(workspace.tracking, model)
        if output:
            target, key = object_at(output, settings.s3_endpoint)
        else:
            target, key = workspace.lake, f"monitoring/features/{source.name}.parquet"
        with tempfile.TemporaryDirectory(prefix="fruitops-features-") as tmp:
            built = build_features(
                source.keys,
                source.lake.read_bytes,
                Path(tmp) / "features.parquet",
                model=loaded,
                fit_components=4 if loaded is not None else 0,
                total=len(source.keys),
            )
            uri = target.put_file(built.table.path, key)
            columns = built.table.columns
        return {
            "images": len(source.keys),
            "rows": built.rows,
            "quarantined": built.quarantined,
            "columns": columns,
            "output_uri": uri,
        }

    def human(result: dict[str, Any]) -> None:
        plain_console().print(
            f"{result['rows']} of {result['images']} images → {result['output_uri']}; "
            f"{len(result['quarantined'])} undecodable"
        )

    run_command(json_mode, action, human)
