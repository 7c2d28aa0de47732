"""`fruitops data …`: data commands contributed through the ``fruitops.cli`` entry points."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from fruitops_core.asset_keys import DATA_VALIDATION, IMAGE_MANIFEST, RAW_IMAGES
from fruitops_core.assets import AssetSpec
from fruitops_core.lake import Lake
from fruitops_core.materialize import materialize
from fruitops_core.options import ConfigOption, with_options
from fruitops_core.output import (
    CommandFailed,
    JsonFlag,
    plain_console,
    print_set_aside,
    run_command,
)
from fruitops_core.records import AssetCheckFailed, load_value, read_record
from fruitops_core.registry import AssetGraph
from fruitops_core.workspace import open_workspace
from fruitops_data.config import LOCAL_PATHS, SOURCE_FORMS, ManifestConfig, ValidationConfig
from fruitops_data.layout import find_dataset_root, walk
from fruitops_data.quarantine import unusable
from fruitops_data.summary import SUMMARY_COLUMNS, ManifestSummary
from fruitops_data.synthetic import SyntheticSpec, generate

app = typer.Typer(help="Data: ingest, validate, draw a synthetic set.", no_args_is_help=True)


def _stored(lake: Lake, spec: AssetSpec) -> Any:
    return load_value(lake, spec) if read_record(lake, spec) else None


def ingest_summary(lake: Lake, graph: AssetGraph) -> dict[str, Any]:
    """The ingest JSON, streamed from the stored manifest (only bad files are listed)."""
    raw = _stored(lake, graph[RAW_IMAGES])
    manifest = _stored(lake, graph[IMAGE_MANIFEST])
    summary, quarantined = ManifestSummary(), []
    for frame in manifest.batches(columns=[*SUMMARY_COLUMNS, "key", "error"]):
        summary.add(frame)
        quarantined += unusable(frame)
    return {
        "source": raw.meta.get("source"),
        "files": summary.files,
        "readable": summary.readable,
        "ignored": raw.meta.get("ignored", []),
        "quarantined": quarantined,
        "classes": sorted(set().union(*summary.labels.values())),
        "splits": dict(sorted(summary.splits.items())),
        "manifest_uri": read_record(lake, graph[IMAGE_MANIFEST]).artifact_uri,
    }


@app.command()
@with_options([ConfigOption(IMAGE_MANIFEST, ManifestConfig, "max_unusable_share")])
def ingest(
    config: dict[str, dict[str, Any]],
    source: Annotated[str, typer.Argument(help=f"what to ingest: {SOURCE_FORMS}; {LOCAL_PATHS}")],
    json_mode: JsonFlag = False,
) -> None:
    """Copy a source into the lake and build its manifest; bad files are quarantined.

    What is ingested is the data set every later step (validate, train, the DAGs) uses."""

    def action() -> dict[str, Any]:
        ws = open_workspace()
        graph, lake = ws.graph, ws.lake
        try:
            materialize(  # both named: a source is walked again even if its name is the same
                [RAW_IMAGES, IMAGE_MANIFEST],
                graph=graph,
                resources=ws.resources,
                config={**config, RAW_IMAGES: {"source": source}},
            )
        except AssetCheckFailed as err:
            raise CommandFailed(ingest_summary(lake, graph), str(err)) from err
        return ingest_summary(lake, graph)

    def human(result: dict[str, Any]) -> None:
        out = plain_console()
        out.print(
            f"{result['source']}: {result['files']} files, {result['readable']} readable, "
            f"{len(result['quarantined'])} quarantined, {len(result['ignored'])} ignored; "
            f"{len(result['classes'])} classes; splits {result['splits']}"
        )
        print_set_aside(out, result["quarantined"], result["ignored"])
        out.print(f"manifest: {result['manifest_uri']}")

    run_command(json_mode, action, human)


VALIDATION_FIELDS = (
    "success",
    "failed_expectations",
    "warnings",
    "messages",
    "report_uri",
    "docs_uri",
)


@app.command()
@with_options(
    [
        ConfigOption(DATA_VALIDATION, ValidationConfig, field)
        for field in ValidationConfig.model_fields
    ]
)
def validate(config: dict[str, dict[str, Any]], json_mode: JsonFlag = False) -> None:
    """Validate the ingested manifest with Great Expectations; exit 1 on a critical failure."""

    def action() -> dict[str, Any]:
        ws = open_workspace()
        graph, lake = ws.graph, ws.lake
        spec = graph[DATA_VALIDATION]
        if read_record(lake, graph[IMAGE_MANIFEST]) is None:
            raise ValueError("nothing has been ingested yet: run `fruitops data ingest SOURCE`")
        try:
            materialize([spec.key], graph=graph, resources=ws.resources, config=config)
        except AssetCheckFailed as err:
            record = read_record(lake, spec)
            if record is None or not record.blocked_by:  # an upstream gate, not validation's
                raise
            shown = load_value(lake, spec).model_dump(include=set(VALIDATION_FIELDS))
            raise CommandFailed(shown, str(err)) from err
        return load_value(lake, spec).model_dump(include=set(VALIDATION_FIELDS))

    def human(result: dict[str, Any]) -> None:
        out = plain_console()
        if result["success"]:
            out.print("validation passed", style="green")
        else:
            out.print(f"critical expectations failed: {result['failed_expectations']}", style="red")
        if result["warnings"]:
            out.print(f"warnings: {result['warnings']}")
        for message in result["messages"]:
            out.print(f"warning: {message}", style="yellow")
        out.print(f"report: {result['report_uri']}\nData Docs: {result['docs_uri']}")

    run_command(json_mode, action, human)


@app.command()
@with_options([ConfigOption("synthetic", SyntheticSpec, f) for f in SyntheticSpec.model_fields])
def synth(
    config: dict[str, dict[str, Any]],
    out: Annotated[Path, typer.Argument(help="Folder to write Fruit_dataset/ into")],
    json_mode: JsonFlag = False,
) -> None:
    """Draw a synthetic fruit set in the Kaggle layout (deterministic by seed)."""

    def action() -> dict[str, Any]:
        spec = SyntheticSpec(**config["synthetic"])
        dataset = generate(spec, out)
        return {"path": str(dataset), "classes": spec.classes, "splits": spec.split_counts()}

    run_command(json_mode, action, lambda r: plain_console().print(f"wrote {r['path']}"))


@app.command()
def inspect(
    folder: Annotated[Path, typer.Argument(help="A folder in the Kaggle layout")],
    json_mode: JsonFlag = False,
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
        plain_console().print(table)
        plain_console().print(f"{result['root']}: {len(result['ignored'])} ignored")

    run_command(json_mode, action, human)
