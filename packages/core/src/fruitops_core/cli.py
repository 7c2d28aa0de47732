"""The ``fruitops`` command. Packages add sub-commands through the ``fruitops.cli`` entry points.

Every command takes ``--json``: then stdout carries exactly one JSON object and progress
bars and logs go to stderr.
"""

from __future__ import annotations

import json
import os
import sys
from importlib.metadata import entry_points
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from fruitops_core.demo import DEMO_CONFIG, demo_summary
from fruitops_core.materialize import materialize as run_materialize
from fruitops_core.output import DEBUG_VARIABLE, JsonFlag, plain_console, run_command
from fruitops_core.workspace import open_workspace

CLI_ENTRY_POINT_GROUP = "fruitops.cli"


app = typer.Typer(
    name="fruitops",
    help="FruitOps: fruit image classification, from a folder of photos to a monitored model.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def installed_versions() -> dict[str, str]:
    """Every installed FruitOps package and its version (each package is versioned apart)."""
    from importlib.metadata import distributions

    found = {d.metadata["Name"]: d.version for d in distributions()}
    return {name: found[name] for name in sorted(found) if name.startswith("fruitops")}


def _print_versions(asked: bool) -> None:
    if not asked:
        return
    versions = installed_versions()  # `fruitops --version --json`: `main` answers it
    typer.echo("\n".join(f"{name} {version}" for name, version in versions.items()))
    raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_print_versions,
            is_eager=True,
            help="Print the version of each installed FruitOps package and exit.",
        ),
    ] = False,
    debug: Annotated[
        bool,
        typer.Option(
            "--debug",
            envvar=DEBUG_VARIABLE,
            help="Raise errors with their full traceback instead of a one-line message.",
        ),
    ] = False,
) -> None:
    if debug:
        os.environ[DEBUG_VARIABLE] = "1"


assets_app = typer.Typer(help="Inspect the asset graph.", no_args_is_help=True)
app.add_typer(assets_app, name="assets")


def parse_config(items: list[str]) -> dict[str, dict[str, Any]]:
    """``asset/key.field=value`` items → ``{asset/key: {field: value}}`` (values JSON or text)."""
    config: dict[str, dict[str, Any]] = {}
    for item in items:
        target, sep, raw = item.partition("=")
        key, dot, field = target.rpartition(".")
        if not sep or not dot or not key or not field:
            raise typer.BadParameter(
                f"{item!r}: expected ASSET_KEY.FIELD=VALUE, e.g. models/trained_model.epochs=3",
                param_hint="--config",
            )
        try:
            value: Any = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        config.setdefault(key, {})[field] = value
    return config


@assets_app.command("list")
def assets_list(json_mode: JsonFlag = False) -> None:
    """List every asset, its upstream assets and its checks, in dependency order."""

    def action() -> dict[str, Any]:
        graph, lake = (ws := open_workspace()).graph, ws.lake
        return {
            "assets": [
                {
                    "key": key,
                    "deps": list(graph[key].deps),
                    "io": graph[key].io.name,
                    "checks": [c.name for c in graph[key].checks],
                    "description": graph[key].description,
                    "materialized": lake.exists(graph[key].record_path),
                }
                for key in graph.topological_order()
            ]
        }

    def human(result: dict[str, Any]) -> None:
        table = Table(title="FruitOps assets (dependency order)")
        for name in ("asset", "upstream", "checks", "stored"):
            table.add_column(name, no_wrap=True)
        table.add_column("description", ratio=1)
        for a in result["assets"]:
            table.add_row(
                a["key"],
                "\n".join(a["deps"]),
                "\n".join(a["checks"]),
                "yes" if a["materialized"] else "-",
                a["description"],
            )
        plain_console().print(table)

    run_command(json_mode, action, human)


@app.command()
def materialize(
    keys: Annotated[list[str], typer.Argument(help="Asset keys, e.g. data/image_manifest")],
    with_upstream: Annotated[
        bool,
        typer.Option("--with-upstream", help="Also run upstream assets that are missing or stale."),
    ] = False,
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="With --with-upstream: run every upstream asset, fresh or not."
        ),
    ] = False,
    config: Annotated[
        list[str] | None, typer.Option("--config", "-c", help="ASSET_KEY.FIELD=VALUE, repeatable.")
    ] = None,
    run_id: Annotated[
        str | None, typer.Option(help="Run id to record (default: a new one).")
    ] = None,
    json_mode: JsonFlag = False,
) -> None:
    """Materialize assets; with --with-upstream also what they need that is missing or stale
    (never made, made from other upstream versions, by other code or with other config)."""
    parsed = parse_config(config or [])

    def action() -> dict[str, Any]:
        ws = open_workspace()
        records = run_materialize(
            keys,
            graph=ws.graph,
            resources=ws.resources,
            with_upstream=with_upstream,
            config=parsed,
            run_id=run_id,
            force=force,
        )
        return {
            "run_id": records[0].run_id if records else run_id,
            "materialized": [r.model_dump(mode="json") for r in records],
        }

    def human(result: dict[str, Any]) -> None:
        table = Table("asset", "version", "seconds", "artifact")
        for r in result["materialized"]:
            table.add_row(r["asset_key"], r["version"], f"{r['seconds']:.1f}", r["artifact_uri"])
        plain_console().print(table)

    run_command(json_mode, action, human)


@app.command("task")
def task_command(
    key: Annotated[str, typer.Argument(help="Asset key, e.g. models/trained_model")],
    run_id: Annotated[str, typer.Option(help="The orchestrator's run id (retries reuse it).")],
    params: Annotated[str, typer.Option(help="The DAG run's params, as JSON.")] = "{}",
    param_map: Annotated[
        str, typer.Option(help="JSON: param name -> [asset key, config field].")
    ] = "{}",
    ds: Annotated[
        str | None, typer.Option(help="Logical date YYYY-MM-DD ({ds} in params).")
    ] = None,
    mapped_config: Annotated[
        str | None,
        typer.Option("--mapped", help="JSON config overrides: run one mapped item, store nothing."),
    ] = None,
    xcom_file: Annotated[
        Path | None,
        typer.Option(
            help="Also write the result there (KubernetesPodOperator: /airflow/xcom/return.json)."
        ),
    ] = None,
    json_mode: JsonFlag = False,
) -> None:
    """One orchestrator task: what Airflow's Docker and Kubernetes task modes run."""
    from fruitops_core.orchestration import run_serialized

    def action() -> dict[str, Any]:
        result = run_serialized(
            key, params, json.loads(param_map), run_id, ds, mapped_json=mapped_config
        )
        if xcom_file is not None:
            xcom_file.parent.mkdir(parents=True, exist_ok=True)
            xcom_file.write_text(json.dumps(result, default=str))
        return result

    run_command(json_mode, action, lambda result: plain_console().print_json(data=result))


@app.command()
def demo(
    run: Annotated[
        bool,
        typer.Option(
            "--run/--no-run",
            help="Run the whole pipeline in-process first (--no-run: "
            "only summarise what an earlier run, e.g. the Airflow DAG, stored).",
        ),
    ] = True,
    dag_conf: Annotated[
        bool,
        typer.Option("--dag-conf", help="Only print the demo's DAG run conf (JSON) and exit."),
    ] = False,
    json_mode: JsonFlag = False,
) -> None:
    """Run the pipeline end to end on the shipped real photos; summarise where results are."""
    if dag_conf:
        typer.echo(json.dumps({"asset_config": DEMO_CONFIG}))
        return

    def action() -> dict[str, Any]:
        ws = open_workspace()
        if run:
            run_materialize(
                ws.graph.topological_order(),
                graph=ws.graph,
                resources=ws.resources,
                config=DEMO_CONFIG,
            )
        return demo_summary(ws)

    def human(result: dict[str, Any]) -> None:
        out = plain_console()
        out.rule("FruitOps demo", style="bold")
        champ = result["champion"]
        if champ:
            out.print(
                f"champion model   {champ['name']} v{champ['version']} "
                f"(MLflow run {champ['run_id']})"
            )
        for info in result["runs"][:5]:
            scores = ", ".join(
                f"{k}={v:.3f}"
                for k, v in info["metrics"].items()
                if k in ("val_accuracy", "val_macro_f1", "test_accuracy", "test_macro_f1")
            )
            out.print(f"  training run   {info['arch']} {info['run_id'][:8]}: {scores}")
        for label, key in (
            ("predictions", "predictions_uri"),
            ("drift report", "drift_report_uri"),
            ("validation", "validation_report_uri"),
            ("Data Docs", "validation_docs_uri"),
            ("lake", "lake_uri"),
            ("MLflow store", "mlflow_tracking_uri"),
        ):
            out.print(f"{label:<16} {result[key] or '(not built yet)'}", soft_wrap=True)
            if key == "predictions_uri" and result.get("scored_in"):
                out.print(
                    f"{'  scored in':<16} {result['scored_in']} (the precision gate's choice)"
                )
        tracking = result["mlflow_tracking_uri"]
        if tracking.startswith("http"):  # a server (services profile): its UI is right there
            out.print(f"\nLook at runs and models:  open {tracking}", soft_wrap=True)
        else:
            out.print(
                f"\nLook at runs and models:  .venv/bin/mlflow ui --backend-store-uri {tracking}"
                " --port 5000   (then open http://127.0.0.1:5000)",
                soft_wrap=True,
            )
        if result["drift_report_uri"]:
            out.print(f"Open the drift report:   {result['drift_report_uri']}", soft_wrap=True)

    run_command(json_mode, action, human)


def _add_plugin_commands(root: typer.Typer) -> None:
    """A Typer app becomes a command group, a plain function a single command."""
    for ep in sorted(entry_points(group=CLI_ENTRY_POINT_GROUP), key=lambda e: e.name):
        loaded = ep.load()
        if isinstance(loaded, typer.Typer):
            root.add_typer(loaded, name=ep.name)
        else:
            root.command(name=ep.name)(loaded)


def main() -> None:
    """The ``fruitops`` entry point; with ``--json`` even a command-line error is JSON."""
    _add_plugin_commands(app)
    if not sys.stderr.isatty():  # MLflow's download bars are noise in a log or a pipe
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    if "--json" not in sys.argv[1:]:
        app()
        return
    # every command takes --json: accept it anywhere (`fruitops --json train …` too)
    args = [a for a in sys.argv[1:] if a != "--json"] + ["--json"]
    if args[0] == "--version":
        typer.echo(json.dumps(installed_versions()))
        return
    try:
        code = app(args, standalone_mode=False)
    except typer.TyperException as err:  # a usage error of Typer's own Click (its public base)
        ctx = getattr(err, "ctx", None)
        hint = f" (see: {ctx.command_path} --help)" if ctx else ""
        typer.echo(json.dumps({"error": err.format_message() + hint, "error_type": "UsageError"}))
        sys.exit(getattr(err, "exit_code", 2))
    sys.exit(code if isinstance(code, int) else 0)
