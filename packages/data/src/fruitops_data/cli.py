"""`fruitops data …`: data commands contributed through the ``fruitops.cli`` entry points."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from fruitops_core.assets import AssetSpec
from fruitops_core.cli import open_workspace
from fruitops_core.lake import Lake
from fruitops_core.materialize import AssetCheckFailed, load_value, materialize, read_record
from fruitops_core.output import JSON_OPTION, CommandFailed, run_command
from fruitops_core.registry import AssetGraph
from fruitops_data.assets import SUMMARY_COLUMNS, ManifestSummary
from fruitops_data.layout import find_dataset_root, walk
from fruitops_data.synthetic import SyntheticSpec, generate

app = typer.Typer(help="Data: ingest, validate, draw a synthetic set.", no_args_is_help=True)


def _stored(lake: Lake, spec: AssetSpec) -> Any:
    return load_value(lake, spec) if read_record(lake, spec) else None


def ingest_summary(lake: Lake, graph: AssetGraph) -> dict[str, Any]:
    """The ingest JSON, streamed from the stored manifest (only bad files are listed)."""
    raw = _stored(lake, graph["data/raw_images"])
    manifest = _stored(lake, graph["data/image_manifest"])
    summary, quarantined = ManifestSummary(), []
    for frame in manifest.batches(columns=[*SUMMARY_COLUMNS, "key", "error"]):
        summary.add(frame)
        bad = frame[~frame["readable"]]
        quarantined += [
            {"key": k, "reason": r} for k, r in zip(bad["key"], bad["error"], strict=True)
        ]
    return {
        "files": summary.files,
        "readable": summary.readable,
        "ignored": raw.meta.get("ignored", []),
        "quarantined": quarantined,
        "classes": sorted(set().union(*summary.labels.values())),
        "splits": dict(sorted(summary.splits.items())),
        "manifest_uri": lake.uri(graph["data/image_manifest"].artifact_path),
    }


@app.command()
def ingest(
    source: str = typer.Argument(
        ...,
        help="folder, .zip, s3://bucket/prefix, kaggle:owner/"
        "dataset or synthetic:classes=N,per_class=M,size=S,seed=K",
    ),
    max_unusable_share: float = typer.Option(0.05, help="fail past this share of bad files"),
    json_mode: bool = JSON_OPTION,
) -> None:
    """Copy a source into the lake and build its manifest; bad files are quarantined."""

    def action() -> dict[str, Any]:
        settings, graph, lake = open_workspace()
        config = {
            "data/raw_images": {"source": source},
            "data/image_manifest": {"max_unusable_share": max_unusable_share},
        }
        try:
            materialize(
                ["data/image_manifest"],
                with_upstream=True,
                settings=settings,
                graph=graph,
                lake=lake,
                config=config,
            )
        except AssetCheckFailed as err:
            raise CommandFailed(ingest_summary(lake, graph), str(err)) from err
        return ingest_summary(lake, graph)

    def human(result: dict[str, Any]) -> None:
        out = Console(soft_wrap=True)
        out.print(
            f"{result['files']} files, {result['readable']} readable, "
            f"{len(result['quarantined'])} quarantined, {len(result['ignored'])} ignored; "
            f"{len(result['classes'])} classes; splits {result['splits']}"
        )
        for item in result["quarantined"][:20]:
            out.print(f"  quarantined {item['key']}: {item['reason']}")
        out.print(f"manifest: {result['manifest_uri']}")

    run_command(json_mode, action, human)


@app.command()
def validate(
    min_train_per_class: int = typer.Option(10, help="train images each class needs"),
    max_imbalance_ratio: float = typer.Option(10.0, help="largest / smallest class (warning)"),
    json_mode: bool = JSON_OPTION,
) -> None:
    """Validate the ingested manifest with Great Expectations; exit 1 on a critical failure."""

    def action() -> dict[str, Any]:
        settings, graph, lake = open_workspace()
        config = {
            "data/data_validation": {
                "min_train_per_class": min_train_per_class,
                "max_imbalance_ratio": max_imbalance_ratio,
            }
        }
        fields = ("success", "failed_expectations", "warnings", "report_uri", "docs_uri")
        try:
            materialize(
                ["data/data_validation"], settings=settings, graph=graph, lake=lake, config=config
            )
        except AssetCheckFailed as err:
            stored = _stored(lake, graph["data/data_validation"])
            raise CommandFailed({k: stored[k] for k in fields}, str(err)) from err
        stored = _stored(lake, graph["data/data_validation"])
        return {k: stored[k] for k in fields}

    def human(result: dict[str, Any]) -> None:
        out = Console(soft_wrap=True)
        out.print(
            "[green]validation passed[/]"
            if result["success"]
            else f"[red]critical expectations failed:[/] {result['failed_expectations']}"
        )
        if result["warnings"]:
            out.print(f"warnings: {result['warnings']}")
        out.print(f"report: {result['report_uri']}\nData Docs: {result['docs_uri']}")

    run_command(json_mode, action, human)


@app.command()
def synth(
    out: Path = typer.Argument(..., help="Folder to write Fruit_dataset/ into"),
    classes: int = typer.Option(6, min=2, max=100),
    per_class: int = typer.Option(40, min=3),
    size: int = typer.Option(64, min=16, max=1024),
    seed: int = 0,
    json_mode: bool = JSON_OPTION,
) -> None:
    """Draw a synthetic fruit set in the Kaggle layout (deterministic by seed)."""

    def action() -> dict[str, Any]:
        spec = SyntheticSpec(classes=classes, per_class=per_class, size=size, seed=seed)
        dataset = generate(spec, out)
        return {"path": str(dataset), "classes": classes, "splits": spec.split_counts()}

    run_command(json_mode, action, lambda r: Console().print(f"wrote {r['path']}"))


@app.command()
def inspect(
    folder: Path = typer.Argument(..., help="A folder in the Kaggle layout"),
    json_mode: bool = JSON_OPTION,
) -> None:
    """Count the files per split and class of a folder, and the OS junk that is ignored."""

    def action() -> dict[str, Any]:
        root = find_dataset_root(folder)
        files, ignored = walk(root)
        counts: dict[str, dict[str, int]] = {}
        for f in files:
            split = counts.setdefault(f.split, {})
            split[f.label or "(unlabeled)"] = split.get(f.label or "(unlabeled)", 0) + 1
        return {"root": str(root), "files": len(files), "ignored": ignored, "counts": counts}

    def human(result: dict[str, Any]) -> None:
        table = Table("split", "files", "classes")
        for split, per_class in result["counts"].items():
            table.add_row(split, str(sum(per_class.values())), str(len(per_class)))
        Console().print(table)
        Console(soft_wrap=True).print(f"{result['root']}: {len(result['ignored'])} ignored")

    run_command(json_mode, action, human)
