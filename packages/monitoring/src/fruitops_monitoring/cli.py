"""`fruitops monitor …`: drift reports and feature tables (through ``fruitops.cli``)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from fruitops_core.output import JSON_OPTION, run_command

app = typer.Typer(help="Monitoring: image features and drift reports.", no_args_is_help=True)


@app.command()
def drift(
    batch: str = typer.Option(
        ..., help="a predictions table (path or s3:// URI) written by fruitops score"
    ),
    reference: str | None = typer.Option(
        None,
        help="a reference record (.json, as monitoring/reference_profile stores it); "
        "default: the reference profile in the lake",
    ),
    drift_share: float = typer.Option(0.5, help="dataset drift at this share of columns"),
    critical: list[str] = typer.Option(
        [], help="a column whose drift alone is dataset drift (repeatable)"
    ),
    json_mode: bool = JSON_OPTION,
) -> None:
    """Compare a scored batch with the reference: HTML + JSON report and the decision."""

    def action() -> dict[str, Any]:
        from datetime import UTC, datetime

        from fruitops_core.cli import open_workspace
        from fruitops_core.lake import object_at
        from fruitops_core.materialize import load_value, read_record
        from fruitops_monitoring.assets import DriftConfig, run_drift

        settings, graph, lake = open_workspace()
        if reference:
            ref_lake, name = object_at(reference, settings.s3_endpoint)
            record = ref_lake.read_json(name)
        else:
            spec = graph["monitoring/reference_profile"]
            if read_record(lake, spec) is None:
                raise ValueError(
                    "no reference profile in the lake: run `fruitops materialize "
                    "monitoring/reference_profile --with-upstream` or pass --reference"
                )
            record = load_value(lake, spec)
        policy = DriftConfig(drift_share=drift_share, critical_columns=critical)
        stamp = f"{datetime.now(UTC):%Y%m%dT%H%M%S}"
        with tempfile.TemporaryDirectory(prefix="fruitops-drift-") as tmp:
            result = run_drift(
                lake, settings, batch, record, policy, f"drift/{stamp}", Path(tmp), f"drift-{stamp}"
            )
        keys = (
            "dataset_drift",
            "drift_share",
            "drifted_columns",
            "report_html_uri",
            "report_json_uri",
        )
        return {k: result[k] for k in keys} | {
            "current_rows": result["current_rows"],
            "reference_rows": result["reference_rows"],
            "quarantined": result["quarantined"],
        }

    def human(result: dict[str, Any]) -> None:
        out = Console(soft_wrap=True)
        verdict = "[red]drift[/]" if result["dataset_drift"] else "[green]no dataset drift[/]"
        out.print(
            f"{verdict}: {result['drift_share']:.0%} of columns drifted "
            f"{result['drifted_columns']}\nreport: {result['report_html_uri']}"
        )

    run_command(json_mode, action, human)


@app.command()
def features(
    input: str = typer.Argument(..., help="folder, glob, s3://bucket/prefix or a file list"),
    output: str | None = typer.Option(
        None,
        help="where the Parquet table goes (path or s3:// URI); "
        "default monitoring/features/<input>.parquet in the lake",
    ),
    model: str | None = typer.Option(
        None, help="also the model's view (class, confidence, entropy, margin, embedding)"
    ),
    json_mode: bool = JSON_OPTION,
) -> None:
    """Image features of every file of INPUT (streamed); undecodable files are listed."""

    def action() -> dict[str, Any]:
        from fruitops_core.lake import object_at, open_lake
        from fruitops_core.settings import FruitOpsSettings
        from fruitops_core.tracking import configure_mlflow
        from fruitops_monitoring.profile import build_features
        from fruitops_serving.inputs import resolve_input

        settings = FruitOpsSettings()
        source = resolve_input(input, endpoint_url=settings.s3_endpoint)
        loaded = None
        if model:
            from fruitops_models.registry import load_model

            configure_mlflow(settings)
            loaded = load_model(model)
        if output:
            target, key = object_at(output, settings.s3_endpoint)
        else:
            target, key = open_lake(settings), f"monitoring/features/{source.name}.parquet"
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
        Console(soft_wrap=True).print(
            f"{result['rows']} of {result['images']} images → {result['output_uri']}; "
            f"{len(result['quarantined'])} undecodable"
        )

    run_command(json_mode, action, human)
