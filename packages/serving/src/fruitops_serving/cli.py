"""`fruitops score` and `fruitops serve` (added through the ``fruitops.cli`` entry points)."""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer

from fruitops_core.asset_keys import BATCH_PREDICTIONS
from fruitops_core.options import ConfigOption, with_options
from fruitops_core.output import JsonFlag, plain_console, print_set_aside, run_command
from fruitops_serving.config import SERVE_ENV_PREFIX, ScoringConfig, ServingConfig

SCORE_OPTIONS = [
    ConfigOption(BATCH_PREDICTIONS, ScoringConfig, "output"),
    ConfigOption(BATCH_PREDICTIONS, ScoringConfig, "format"),
    ConfigOption(BATCH_PREDICTIONS, ScoringConfig, "model_uri", name="model"),
    ConfigOption(BATCH_PREDICTIONS, ScoringConfig, "batch_size"),
    ConfigOption(BATCH_PREDICTIONS, ScoringConfig, "precision"),
    ConfigOption(BATCH_PREDICTIONS, ScoringConfig, "backend"),
]


@with_options(SCORE_OPTIONS)
def score_command(
    config: dict[str, dict[str, Any]],
    input: Annotated[
        str,
        typer.Argument(help="folder, glob, s3://bucket/prefix or a .csv/.parquet list of files"),
    ],
    json_mode: JsonFlag = False,
) -> None:
    """Score images with the champion; undecodable files are quarantined, never dropped.

    An empty input exits 0 with an empty table and a warning.
    """
    scoring = ScoringConfig(**config.get(BATCH_PREDICTIONS, {}))

    def action() -> dict[str, Any]:
        from fruitops_core.materialize import run_asset
        from fruitops_core.workspace import open_workspace
        from fruitops_data.records import IncomingBatch
        from fruitops_serving.inputs import resolve_input

        started = time.perf_counter()
        ws = open_workspace()
        source = resolve_input(
            input,
            endpoint_url=ws.settings.s3_endpoint,
            allowed_roots=ws.settings.allowed_root_paths,
        )
        # the scoring asset's own function, on this input rather than the graph's incoming
        # batch, with the model asked for or the registry's champion; the precision gate is
        # read (or made) for the model it loads
        upstream = {
            "incoming_batch": IncomingBatch(
                uri=source.lake.root_uri,
                keys=source.keys,
                ignored=source.ignored,
                description=source.description,
            ),
            "champion_model": None,  # the model is named in the config
            "precision_gate": None,
        }
        output = scoring.output or ws.lake.uri(f"predictions/{source.name}.{scoring.format}")
        asset_config = {
            **scoring.model_dump(exclude_unset=True),
            "model_uri": scoring.model_uri or ws.tracking.champion_uri,
            "output": output,
        }
        scored = run_asset(ws.graph[BATCH_PREDICTIONS], ws.resources, upstream, asset_config)
        result = scored.model_dump(mode="json")
        result["precision_gate"] = result.pop("gate")
        # `seconds` is the scoring itself; this adds loading and compiling the model
        result["total_seconds"] = round(time.perf_counter() - started, 2)
        if not source.keys:
            result["warning"] = f"no files found in {input}: wrote an empty table"
        return result

    def human(result: dict[str, Any]) -> None:
        out = plain_console()
        if result.get("warning"):
            out.print(f"warning: {result['warning']}", style="yellow")
        out.print(
            f"{result['scored']} of {result['images']} images scored with "
            f"{result['model_uri']} v{result['model_version']} "
            f"({result['backend']} {result['precision']}), "
            f"{result['images_per_second']} img/s ({result['total_seconds']} s in all, "
            f"loading the model included); {len(result['quarantined'])} "
            f"quarantined\npredictions: {result['predictions_uri']}"
        )
        from fruitops_serving.gate import NOT_ASKED
        from fruitops_serving.precision import describe
        from fruitops_serving.records import Verdict

        verdict = Verdict.model_validate(result.get("precision_gate") or {})
        checked = verdict.precisions.get(result["precision"])
        if checked:
            out.print(f"{result['precision']} passed the precision gate: {describe(checked)}")
        elif verdict.reason not in (None, *NOT_ASKED):
            out.print(f"fp32 was used: {verdict.reason}")
        print_set_aside(out, result["quarantined"], result["ignored"])

    run_command(json_mode, action, human)


SERVE_OPTIONS = [
    ConfigOption("serve", ServingConfig, "model_uri", name="model"),
    *(
        ConfigOption("serve", ServingConfig, field)
        for field in (
            "host",
            "port",
            "workers",
            "watch_seconds",
            "max_photos",
            "max_request_bytes",
            "model_threads",
            "record",
        )
    ),
]


@with_options(SERVE_OPTIONS)
def serve_command(
    context: typer.Context, config: dict[str, dict[str, Any]], json_mode: JsonFlag = False
) -> None:
    """Answer photos over HTTP: MLflow's scoring app with the champion, plus /predict
    (curl -F image=@apple.jpg URL/predict) and a page at / to drop photos on.

    The champion alias is watched: a new champion is swapped in once loaded. Every answer
    is recorded in the lake (predictions/online/<date>/) for `fruitops monitor drift`.
    Each option can also be set as FRUITOPS_SERVE_<OPTION>. With --json, what is served is
    one JSON object on stdout before the server starts; its log goes to stderr.
    """
    import copy
    import os

    import uvicorn
    from uvicorn.config import LOGGING_CONFIG

    from fruitops_core.output import setup_logging

    # options typed on the command line win; the others come from FRUITOPS_SERVE_* (as in a
    # container), then the defaults: Typer hands over defaults too, so they are left out here
    given = {
        option.field: config.get("serve", {}).get(option.field)
        for option in SERVE_OPTIONS
        if getattr(context.get_parameter_source(option.param), "name", "") == "COMMANDLINE"
    }
    chosen: list[ServingConfig] = []

    def preflight() -> dict[str, Any]:
        """What is wrong (a bad setting, no champion, an old version), before any worker."""
        from fruitops_core.workspace import open_workspace
        from fruitops_serving.server import servable_version

        chosen.append(ServingConfig(**given))
        serving, tracking = chosen[0], open_workspace().tracking
        uri = serving.model_uri or tracking.champion_uri
        return {
            "model": servable_version(uri, tracking),
            "served_as": uri,
            "url": f"http://{serving.host}:{serving.port}",
        }

    run_command(json_mode, preflight, lambda found: None)  # the log names what is served
    serving = chosen[0]
    # the workers read their config from the environment (uvicorn starts them by name)
    for field, value in serving.model_dump(exclude_none=True).items():
        os.environ[f"{SERVE_ENV_PREFIX}{field.upper()}"] = str(value)
    setup_logging()
    log_config = copy.deepcopy(LOGGING_CONFIG)  # every log line on stderr, access log too
    log_config["handlers"]["access"]["stream"] = "ext://sys.stderr"
    uvicorn.run(
        "fruitops_serving.server:create_app",
        factory=True,
        host=serving.host,
        port=serving.port,
        workers=serving.workers,
        log_level="info",
        log_config=log_config,
    )
