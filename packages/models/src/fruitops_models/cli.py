"""`fruitops train` and `fruitops models …` (added through the ``fruitops.cli`` entry points)."""

from __future__ import annotations

import time
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from fruitops_core.cli import open_workspace
from fruitops_core.materialize import load_value, materialize, read_record
from fruitops_core.output import JSON_OPTION, run_command
from fruitops_core.settings import FruitOpsSettings

models_app = typer.Typer(
    help="The model registry: list versions, promote the best.", no_args_is_help=True
)


def train(
    arch: str = typer.Option("cnn", help="cnn, resnet18, resnet50 or efficientnet_b0"),
    epochs: int = typer.Option(3, min=1),
    image_size: int = typer.Option(64, help="side of the training images (the cache's size)"),
    batch_size: int = typer.Option(32, min=2),
    lr: float = typer.Option(3e-3),
    pretrained: bool = typer.Option(False, help="start from torchvision's ImageNet weights"),
    weights: str | None = typer.Option(None, help="local ImageNet weights file (offline)"),
    finetune: str = typer.Option("full", help="full or head"),
    source: str | None = typer.Option(
        None, help="SOURCE to ingest first (default: the stored manifest, else FRUITOPS_SOURCE)"
    ),
    json_mode: bool = JSON_OPTION,
) -> None:
    """Train ARCH, log everything to MLflow and register it (promotion is separate)."""
    config = {
        "arch": arch,
        "architectures": [arch],
        "epochs": epochs,
        "batch_size": batch_size,
        "lr": lr,
        "pretrained": pretrained,
        "weights": weights,
        "finetune": finetune,
    }

    def action() -> dict[str, Any]:
        from fruitops_models.train import dist_info

        settings, graph, lake = open_workspace()
        rank, world = dist_info()
        if rank > 0:
            return _train_follower(settings, graph, lake, config)
        start = time.perf_counter()
        asset_config: dict[str, dict[str, Any]] = {
            "data/training_cache": {"image_size": image_size},
            "models/trained_model": config,
        }
        if source:
            asset_config["data/raw_images"] = {"source": source}
        needs_data = source is not None or read_record(lake, graph["data/image_manifest"]) is None
        keys = ["data/training_cache", "models/trained_model"]
        records = materialize(
            keys,
            settings=settings,
            graph=graph,
            lake=lake,
            with_upstream=needs_data,
            config=asset_config,
        )
        (candidate,) = load_value(lake, graph["models/trained_model"])["candidates"]
        return {
            "run_id": candidate["run_id"],
            "model_name": candidate["name"],
            "model_version": candidate["version"],
            "arch": candidate["arch"],
            "metrics": {
                k: candidate["metrics"].get(k)
                for k in ("val_accuracy", "val_macro_f1", "test_accuracy", "test_macro_f1")
            },
            "seconds": round(time.perf_counter() - start, 2),
            "images_per_second": candidate["images_per_second"],
            "asset_run_id": records[-1].run_id,
            "world_size": world,
        }

    def human(result: dict[str, Any]) -> None:
        out = Console(soft_wrap=True)
        out.print(
            f"{result['arch']} → {result['model_name']} v{result['model_version']} "
            f"(MLflow run {result['run_id']}), {result['images_per_second']} img/s"
        )
        out.print(", ".join(f"{k}={v:.3f}" for k, v in result["metrics"].items() if v is not None))

    run_command(json_mode, action, human)


def _train_follower(settings, graph, lake, config: dict[str, Any]) -> dict[str, Any]:
    """A torchrun process other than rank 0: train in step with rank 0, log nothing."""
    from fruitops_models.config import TrainConfig
    from fruitops_models.train import train as train_model
    from fruitops_models.training_run import TrainingInputs, open_splits

    if read_record(lake, graph["data/training_cache"]) is None:
        raise RuntimeError(
            "under torchrun the training cache must exist first: run "
            "`fruitops materialize data/training_cache --with-upstream`"
        )
    cache = load_value(lake, graph["data/training_cache"])
    inputs = TrainingInputs(cache, {"success": True}, lake, settings, "follower")
    splits = open_splits(inputs)
    train_config = TrainConfig(**{k: v for k, v in config.items() if k != "architectures"})
    result = train_model(train_config, splits["train"], splits["val"], cache["classes"])
    return {"rank_follower": True, "images_per_second": result.images_per_second}


@models_app.command("promote")
def promote(
    margin: float = typer.Option(0.0, help="macro-F1 the candidate must gain"),
    split: str = typer.Option("val", help="split both models are scored on"),
    json_mode: bool = JSON_OPTION,
) -> None:
    """Score the last trained candidates and the champion; promote the best by margin."""

    def action() -> dict[str, Any]:
        settings, graph, lake = open_workspace()
        materialize(
            ["models/model_evaluation", "models/champion_model", "models/training_report"],
            settings=settings,
            graph=graph,
            lake=lake,
            config={
                "models/model_evaluation": {"split": split},
                "models/champion_model": {"margin": margin},
            },
        )
        champion = load_value(lake, graph["models/champion_model"])
        report = load_value(lake, graph["models/training_report"])
        return {
            **champion["decision"],
            "champion_version": champion["version"],
            "champion_uri": champion["alias_uri"],
            "report_uri": report["report_html_uri"],
        }

    def human(result: dict[str, Any]) -> None:
        Console(soft_wrap=True).print(
            f"{'promoted' if result['promoted'] else 'kept out'}: {result['reason']}\n"
            f"champion: v{result['champion_version']}; report: {result['report_uri']}"
        )

    run_command(json_mode, action, human)


@models_app.command("list")
def list_models(json_mode: bool = JSON_OPTION) -> None:
    """Every registered version with its aliases, architecture and scores."""

    def action() -> dict[str, Any]:
        import mlflow

        from fruitops_core.tracking import configure_mlflow

        settings = FruitOpsSettings()
        configure_mlflow(settings)
        client = mlflow.MlflowClient()
        versions = client.search_model_versions(f"name = '{settings.registered_model}'")
        aliases: dict[str, list[str]] = {}
        if versions:
            model = client.get_registered_model(settings.registered_model)
            for alias, number in model.aliases.items():
                aliases.setdefault(str(number), []).append(alias)
        rows = []
        for mv in sorted(versions, key=lambda v: int(v.version)):
            metrics = client.get_run(mv.run_id).data.metrics if mv.run_id else {}
            rows.append(
                {
                    "version": int(mv.version),
                    "aliases": aliases.get(str(mv.version), []),
                    "arch": mv.tags.get("arch"),
                    "run_id": mv.run_id,
                    "val_macro_f1": metrics.get("val_macro_f1"),
                    "test_macro_f1": metrics.get("test_macro_f1"),
                    "promotion": mv.tags.get("promotion.reason"),
                }
            )
        return {"name": settings.registered_model, "versions": rows}

    def human(result: dict[str, Any]) -> None:
        table = Table("version", "aliases", "arch", "val macro-F1", "test macro-F1", "run")
        for r in result["versions"]:
            table.add_row(
                str(r["version"]),
                ",".join(r["aliases"]),
                r["arch"] or "",
                f"{r['val_macro_f1']:.3f}" if r["val_macro_f1"] is not None else "",
                f"{r['test_macro_f1']:.3f}" if r["test_macro_f1"] is not None else "",
                (r["run_id"] or "")[:8],
            )
        Console().print(table)

    run_command(json_mode, action, human)
