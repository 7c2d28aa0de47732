"""`fruitops score` (added through the ``fruitops.cli`` entry points)."""

from __future__ import annotations

from typing import Any

import typer
from rich.console import Console

from fruitops_core.output import JSON_OPTION, run_command


def score_command(
    input: str = typer.Argument(
        ..., help="folder, glob, s3://bucket/prefix or a .csv/.parquet list of files"
    ),
    model: str | None = typer.Option(None, help="default models:/<registered model>@champion"),
    output: str | None = typer.Option(
        None,
        help="where the table goes (path or s3:// URI); "
        "default predictions/<input>.<format> in the lake",
    ),
    fmt: str = typer.Option("parquet", "--format", help="parquet or csv"),
    batch_size: int = typer.Option(128, min=1),
    precision: str = typer.Option("auto", help="auto (bf16 where it passed the gate) or fp32"),
    backend: str = typer.Option("openvino", help="openvino (the faster, default) or torch"),
    json_mode: bool = JSON_OPTION,
) -> None:
    """Score images with the champion; undecodable files are quarantined, never dropped.

    An empty input exits 0 with an empty table and a warning.
    """

    def action() -> dict[str, Any]:
        from fruitops_core.lake import object_at, open_lake
        from fruitops_core.settings import FruitOpsSettings
        from fruitops_core.tracking import champion_uri, configure_mlflow
        from fruitops_serving.gate import choose_predictor
        from fruitops_serving.inputs import resolve_input
        from fruitops_serving.scoring import BACKENDS, load_model, score

        if fmt not in ("parquet", "csv"):
            raise ValueError(f"--format {fmt!r}: use parquet or csv")
        if precision not in ("auto", "fp32"):
            raise ValueError(f"--precision {precision!r}: use auto or fp32")
        if backend not in BACKENDS:
            raise ValueError(f"--backend {backend!r}: use {' or '.join(BACKENDS)}")
        settings = FruitOpsSettings()
        configure_mlflow(settings)
        lake = open_lake(settings)
        source = resolve_input(input, endpoint_url=settings.s3_endpoint)
        loaded = load_model(model or champion_uri(settings))
        predictor, gate = choose_predictor(loaded, lake, settings, precision, backend)
        if output:
            target, key = object_at(output, settings.s3_endpoint)
        else:
            target, key = lake, f"predictions/{source.name}.{fmt}"
        result = score(source, predictor, target, key, fmt=fmt, batch_size=batch_size)
        result["precision_gate"] = gate
        if not source.keys:
            result["warning"] = f"no files found in {input}: wrote an empty table"
        return result

    def human(result: dict[str, Any]) -> None:
        out = Console(soft_wrap=True)
        if result.get("warning"):
            out.print(f"[yellow]warning:[/] {result['warning']}")
        out.print(
            f"{result['scored']} of {result['images']} images scored with "
            f"{result['model_uri']} v{result['model_version']} "
            f"({result['backend']} {result['precision']}), "
            f"{result['images_per_second']} img/s; {len(result['quarantined'])} "
            f"quarantined\npredictions: {result['predictions_uri']}"
        )
        for item in result["quarantined"][:20]:
            out.print(f"  quarantined {item['key']}: {item['reason']}")

    run_command(json_mode, action, human)
