"""`fruitops data …`: data commands contributed through the ``fruitops.cli`` entry points."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from fruitops_core.output import run_command
from fruitops_data.layout import find_dataset_root, walk
from fruitops_data.synthetic import SyntheticSpec, generate

app = typer.Typer(help="Data sets: draw a synthetic one, inspect a folder.", no_args_is_help=True)
JSON_OPTION = typer.Option(False, "--json", help="Print exactly one JSON object on stdout.")


@app.command()
def synthesize(
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
        out = Console(soft_wrap=True)
        out.print(f"{result['root']}: {result['files']} files, {len(result['ignored'])} ignored")
        for split, per_class in result["counts"].items():
            out.print(f"  {split}: {sum(per_class.values())} files in {len(per_class)} classes")

    run_command(json_mode, action, human)
