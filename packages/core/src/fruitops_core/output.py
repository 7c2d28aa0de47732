"""Command output: one JSON object on stdout with ``--json``, everything else on stderr.

Libraries we call (MLflow, Airflow, Evidently) sometimes print to stdout. In JSON mode the
process's stdout file descriptor is pointed at stderr while a command runs, so the only
thing a caller ever reads from stdout is the JSON object.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import typer
from rich.console import Console
from rich.logging import RichHandler

err_console = Console(stderr=True)
#: The ``--json`` option every fruitops command takes.
JSON_OPTION = typer.Option(False, "--json", help="Print exactly one JSON object on stdout.")


class CommandFailed(Exception):
    """A command that has a full report to print, and must still exit with status 1."""

    def __init__(self, payload: dict[str, Any], message: str):
        super().__init__(message)
        self.payload = payload


def setup_logging(verbose: bool = False) -> None:
    level = logging.DEBUG if verbose else logging.INFO
    logging.basicConfig(
        level=logging.WARNING,
        format="%(message)s",
        handlers=[RichHandler(console=err_console, show_path=False, rich_tracebacks=False)],
        force=True,
    )
    logging.getLogger("fruitops").setLevel(level)


@contextmanager
def stdout_to_stderr() -> Iterator[int]:
    """Send fd 1 (C and Python writers alike) to stderr; yield a duplicate of the real stdout."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield saved
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def run_command(
    json_mode: bool,
    action: Callable[[], dict[str, Any]],
    human: Callable[[dict[str, Any]], None],
) -> None:
    """Run ``action``; print its result as JSON or through ``human``; errors exit 1."""
    setup_logging()
    if not json_mode:
        try:
            result = action()
        except CommandFailed as failed:
            human(failed.payload)
            err_console.print(f"[bold red]error:[/] {failed}", soft_wrap=True, markup=True)
            raise typer.Exit(1) from failed
        except Exception as err:
            err_console.print(f"[bold red]error:[/] {err}", soft_wrap=True, markup=True)
            raise typer.Exit(1) from err
        human(result)
        return
    code = 0
    with stdout_to_stderr() as real_stdout:
        try:
            result = action()
        except CommandFailed as failed:
            result = {**failed.payload, "error": str(failed)}
            code = 1
        except Exception as err:
            result = {"error": str(err), "error_type": type(err).__name__}
            code = 1
        text = json.dumps(result, default=str, sort_keys=True)
        with os.fdopen(os.dup(real_stdout), "w") as out:
            out.write(text + "\n")
    if code:
        raise typer.Exit(code)
