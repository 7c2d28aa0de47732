"""`fruitops train` and `fruitops models …` (added through the ``fruitops.cli`` entry points)."""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer
from rich.table import Table

from fruitops_core.asset_keys import (
    CHAMPION_MODEL,
    MODEL_EVALUATION,
    TRAINED_MODEL,
    TRAINING_CACHE,
    TRAINING_REPORT,
)
from fruitops_core.materialize import materialize
from fruitops_core.options import ConfigOption, with_options
from fruitops_core.output import JsonFlag, plain_console, run_command
from fruitops_core.records import load_value, read_record
from fruitops_core.workspace import open_workspace
from fruitops_models.config import EvaluationConfig, PromotionConfig
from fruitops_models.options import TRAIN_COMMAND
from fruitops_models.records import GATE_TAG

CANDIDATE_METRICS = ("val_accuracy", "val_macro_f1", "test_accuracy", "test_macro_f1")

models_app = typer.Typer(
    help="The model registry: list versions, promote the best.", no_args_is_help=True
)


@with_options(TRAIN_COMMAND)
def train(config: dict[str, dict[str, Any]], json_mode: JsonFlag = False) -> None:
    """Train one candidate per --arch on the ingested data set, log everything to MLflow and
    register it. Missing or stale upstream steps (validation, cache) run first; the first
    model registered becomes champion, later ones wait for `fruitops models promote`."""

    def action() -> dict[str, Any]:
        from fruitops_models.hardware import dist_info

        ws = open_workspace()
        settings, graph, lake = ws.settings, ws.graph, ws.lake
        rank, world = dist_info()
        if rank > 0:
            return _train_follower(settings, graph, lake, config[TRAINED_MODEL])
        start = time.perf_counter()
        records = materialize(
            [TRAINED_MODEL],
            graph=graph,
            resources=ws.resources,
            with_upstream=True,
            config=config,
        )
        trained = load_value(lake, graph[TRAINED_MODEL])
        crowned = ws.tracking.champion_summary()
        return {
            "candidates": [
                {
                    "arch": c.arch,
                    "run_id": c.run_id,
                    "model_name": c.name,
                    "model_version": c.version,
                    "metrics": {k: c.metrics.get(k) for k in CANDIDATE_METRICS},
                    "images_per_second": c.images_per_second,
                }
                for c in trained.candidates
            ],
            "classes": len(trained.classes),
            "source": load_value(lake, graph[TRAINING_CACHE]).source,
            "champion_version": crowned["version"] if crowned else None,
            "champion_reason": crowned["reason"] if crowned else None,
            "seconds": round(time.perf_counter() - start, 2),
            "asset_run_id": records[-1].run_id,
            "world_size": world,
        }

    def human(result: dict[str, Any]) -> None:
        out = plain_console()
        out.print(f"trained on {result['source']} ({result['classes']} classes)")
        for c in result["candidates"]:
            scores = ", ".join(f"{k}={v:.3f}" for k, v in c["metrics"].items() if v is not None)
            out.print(
                f"{c['arch']} → {c['model_name']} v{c['model_version']} "
                f"(MLflow run {c['run_id']}), {c['images_per_second']} img/s: {scores}"
            )
        out.print(f"champion: v{result['champion_version']} ({result['champion_reason']})")
        if result["champion_version"] not in {c["model_version"] for c in result["candidates"]}:
            out.print("`fruitops models promote` weighs the new candidates against it")

    run_command(json_mode, action, human)


def _train_follower(settings, graph, lake, config: dict[str, Any]) -> dict[str, Any]:
    """A torchrun process other than rank 0: train in step with rank 0, log nothing."""
    from fruitops_models.config import CandidatesConfig
    from fruitops_models.train import train as train_model
    from fruitops_models.training_run import open_splits

    if read_record(lake, graph[TRAINING_CACHE]) is None:
        raise ValueError(
            "under torchrun the training cache must exist first: run "
            "`fruitops materialize data/training_cache --with-upstream`"
        )
    cache = load_value(lake, graph[TRAINING_CACHE])
    splits = open_splits(lake, cache, settings)
    candidates = CandidatesConfig(**config)
    (arch,) = candidates.architectures  # torchrun trains one architecture at a time
    train_config = candidates.for_arch(arch)
    result = train_model(train_config, splits["train"], splits["val"], cache.classes)
    return {"rank_follower": True, "images_per_second": result.images_per_second}


@models_app.command("promote")
@with_options(
    [
        ConfigOption(CHAMPION_MODEL, PromotionConfig, "margin"),
        ConfigOption(MODEL_EVALUATION, EvaluationConfig, "split"),
    ]
)
def promote(config: dict[str, dict[str, Any]], json_mode: JsonFlag = False) -> None:
    """Score every candidate registered since the champion was chosen (whichever `train`
    made it) and the champion on one split; move the alias to the best by the margin."""

    def action() -> dict[str, Any]:
        ws = open_workspace()
        graph, lake = ws.graph, ws.lake
        if read_record(lake, graph[TRAINED_MODEL]) is None:
            raise ValueError("nothing has been trained yet: run `fruitops train` first")
        materialize(
            [MODEL_EVALUATION, CHAMPION_MODEL, TRAINING_REPORT],
            graph=graph,
            resources=ws.resources,
            config=config,
        )
        champion = load_value(lake, graph[CHAMPION_MODEL])
        report = load_value(lake, graph[TRAINING_REPORT])
        evaluation = load_value(lake, graph[MODEL_EVALUATION])
        return {
            **champion.decision,
            "champion_version": champion.version,
            "champion_uri": champion.alias_uri,
            "report_uri": report["report_html_uri"],
            # every model weighed, not only the best candidate the decision names
            "weighed": [
                s.model_dump(include={"version", "role", "arch", "macro_f1"})
                for s in sorted(evaluation.scores, key=lambda s: -s.macro_f1)
            ],
            "split": evaluation.split,
        }

    def human(result: dict[str, Any]) -> None:
        weighed = ", ".join(
            f"v{s['version']} {s['arch']}{' (champion)' if s['role'] == 'champion' else ''} "
            f"{s['macro_f1']:.3f}"
            for s in result["weighed"]
        )
        plain_console().print(
            f"weighed on {result['split']} (macro-F1): {weighed}\n"
            f"{'promoted' if result['promoted'] else 'kept out'}: {result['reason']}\n"
            f"champion: v{result['champion_version']}; report: {result['report_uri']}"
        )

    run_command(json_mode, action, human)


@models_app.command("upgrade")
def upgrade(
    version: Annotated[int, typer.Argument(help="the registered version to register again")],
    json_mode: JsonFlag = False,
) -> None:
    """Register a version logged before versions took photos again, as one that does (what
    `fruitops serve` and `mlflow models serve` need); the champion alias follows it."""

    def action() -> dict[str, Any]:
        from fruitops_models.registry import register_for_photos

        return register_for_photos(open_workspace().tracking, version)

    def human(result: dict[str, Any]) -> None:
        if result.get("unchanged"):
            plain_console().print(f"v{version} takes photos already: nothing to do")
        else:
            plain_console().print(f"v{version} registered again as {result['model_uri']}")

    run_command(json_mode, action, human)


@models_app.command("list")
def list_models(
    card: Annotated[
        int | None,
        typer.Option(
            "--card",
            metavar="VERSION",
            help="Print that version's model card (Markdown: data, recipe, hardware, scores "
            "with their intervals, weakest classes, intended use and limits) instead of the "
            "list.",
        ),
    ] = None,
    json_mode: JsonFlag = False,
) -> None:
    """Every registered version with its aliases, architecture and scores."""
    if card is not None:
        _print_card(card, json_mode)
        return

    def action() -> dict[str, Any]:
        ws = open_workspace()
        settings, client = ws.settings, ws.tracking.client
        versions = client.search_model_versions(f"name = '{settings.registered_model}'")
        aliases: dict[str, list[str]] = {}
        if versions:
            model = client.get_registered_model(settings.registered_model)
            for alias, number in model.aliases.items():
                aliases.setdefault(str(number), []).append(alias)
        rows = []
        for mv in sorted(versions, key=lambda v: int(v.version)):
            run = client.get_run(mv.run_id).data if mv.run_id else None
            metrics, params = (run.metrics, run.params) if run else ({}, {})
            rows.append(
                {
                    "version": int(mv.version),
                    "aliases": aliases.get(str(mv.version), []),
                    "arch": mv.tags.get("arch"),
                    "run_id": mv.run_id,
                    "classes": int(params["classes"]) if "classes" in params else None,
                    "data_source": params.get("data_source"),
                    "val_macro_f1": metrics.get("val_macro_f1"),
                    "test_macro_f1": metrics.get("test_macro_f1"),
                    "promotion": mv.tags.get("promotion.reason"),
                    "precision_gate": mv.tags.get(GATE_TAG),
                }
            )
        return {"name": settings.registered_model, "versions": rows}

    def human(result: dict[str, Any]) -> None:
        table = Table("version", "aliases", "arch", "classes", "val F1", "test F1", "data")
        for r in result["versions"]:
            table.add_row(
                str(r["version"]),
                ",".join(r["aliases"]),
                r["arch"] or "",
                str(r["classes"] or ""),
                f"{r['val_macro_f1']:.3f}" if r["val_macro_f1"] is not None else "",
                f"{r['test_macro_f1']:.3f}" if r["test_macro_f1"] is not None else "",
                r["data_source"] or "",
            )
        out = plain_console()
        out.print(table)
        for r in result["versions"]:
            if "champion" in r["aliases"]:
                out.print(f"champion v{r['version']}: {r['promotion']}")
                if r["precision_gate"]:
                    out.print(f"served in: {r['precision_gate']}")

    run_command(json_mode, action, human)


def _print_card(version: int, json_mode: bool) -> None:
    def action() -> dict[str, Any]:
        from fruitops_models.card import read_card

        return {"version": version, "card": read_card(open_workspace().tracking, version)}

    run_command(json_mode, action, lambda result: typer.echo(result["card"]))
