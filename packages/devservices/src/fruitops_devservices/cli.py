"""`fruitops services`: registered through the ``fruitops.cli`` entry points.

Every `fruitops` start imports this module: the supervisor is imported by the commands that
run it, not here.
"""

from __future__ import annotations

from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from fruitops_core.output import JsonFlag, plain_console, run_command

app = typer.Typer(
    help="The services profile: PostgreSQL, SeaweedFS S3 and MLflow server on 127.0.0.1.",
    no_args_is_help=True,
)
console = Console(stderr=True)


def _services_table(result: dict[str, Any]) -> None:
    table = Table("service", "state", "address")
    table.add_row("postgres", result["postgres"]["state"], result["postgres"]["dsn"])
    s3 = result["s3"]
    table.add_row("s3", s3["state"], f"{s3['s3_endpoint']} (buckets: {', '.join(s3['buckets'])})")
    table.add_row("mlflow", result["mlflow"]["state"], result["mlflow"]["mlflow_url"])
    table.add_row("airflow db", "", result["airflow_db"])
    plain_console().print(table)
    plain_console().print(f"logs: {result['logs']}")


@app.command("up")
def services_up(json_mode: JsonFlag = False) -> None:
    """Start whatever is not running yet (idempotent); logs under <home>/services/."""
    from fruitops_devservices.stack import Services

    run_command(json_mode, lambda: Services(log=console.print).up(), _services_table)


@app.command("down")
def services_down(json_mode: JsonFlag = False) -> None:
    """Stop the MLflow server, the S3 server and PostgreSQL (data is kept)."""
    from fruitops_devservices.stack import Services

    run_command(json_mode, lambda: Services(log=console.print).down(), _services_table)


@app.command("status")
def services_status(json_mode: JsonFlag = False) -> None:
    """Each service's state and address (no passwords)."""
    from fruitops_devservices.stack import Services

    run_command(json_mode, lambda: Services().status(), _services_table)


@app.command("env")
def services_env() -> None:
    """`export` lines pointing FruitOps, MLflow, boto3 and Airflow at the services.

    Use: eval "$(fruitops services env)"
    """
    import shlex

    from fruitops_devservices.stack import Services

    for name, value in Services().env().items():
        typer.echo(f"export {name}={shlex.quote(value)}")
