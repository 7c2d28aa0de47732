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
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape

err_console = Console(stderr=True)
#: The ``--json`` option every fruitops command takes: ``json_mode: JsonFlag = False``.
JsonFlag = Annotated[bool, typer.Option("--json", help="Print exactly one JSON object on stdout.")]
#: Set (to 1) by ``fruitops --debug``: errors are raised with their traceback, not summed up.
DEBUG_VARIABLE = "FRUITOPS_DEBUG"


def _expected(err: BaseException) -> bool:
    """Errors raised on purpose, whose message says what to do (a wrong value, a missing
    file or step, a failed check); any other is a bug, worth its traceback."""
    from fruitops_core.lake import LakeError
    from fruitops_core.records import MaterializationError

    expected = ValueError | OSError | MaterializationError | LakeError | CommandFailed
    return isinstance(err, expected)


def error_log() -> Path:
    """Where tracebacks go: ``<FRUITOPS_HOME>/logs/errors.log``."""
    home = Path(os.environ.get("FRUITOPS_HOME", ".fruitops")).expanduser()
    return home.resolve() / "logs" / "errors.log"


def log_traceback(err: BaseException) -> Path | None:
    """Append ``err``'s traceback to the error log; its path, or None if it cannot be written."""
    path = error_log()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as out:
            out.write(f"--- {datetime.now(UTC).isoformat()} fruitops {' '.join(sys.argv[1:])}\n")
            out.write("".join(traceback.format_exception(err)))
    except OSError:
        return None
    return path


def describe_error(err: BaseException) -> dict[str, Any]:
    """``error`` (the message) and ``error_type``; for a bug also where its traceback is."""
    info: dict[str, Any] = {
        "error": str(err) or type(err).__name__,
        "error_type": type(err).__name__,
    }
    path = log_traceback(err)
    if not _expected(err):
        info["traceback"] = str(path) if path else None
        info["hint"] = (
            f"an unexpected {type(err).__name__}: the traceback is in {path}; "
            "run again with `fruitops --debug ...` (or FRUITOPS_DEBUG=1) to see it here"
        )
    return info


def debugging() -> bool:
    return os.environ.get(DEBUG_VARIABLE, "") not in ("", "0", "false")


class CommandFailed(Exception):
    """A command that has a full report to print, and must still exit with status 1."""

    def __init__(self, payload: dict[str, Any], message: str):
        super().__init__(message)
        self.payload = payload


def setup_logging(verbose: bool = False) -> None:
    """Log to stderr: through rich (above the progress bars) on a terminal, as plain whole
    lines elsewhere (a pipe, a log file), so a line is never wrapped or padded."""
    handler: logging.Handler
    if err_console.is_terminal:
        handler = RichHandler(console=err_console, show_path=False, rich_tracebacks=False)
        handler.setFormatter(logging.Formatter("%(message)s"))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logging.basicConfig(level=logging.WARNING, handlers=[handler], force=True)
    logging.getLogger("fruitops").setLevel(logging.DEBUG if verbose else logging.INFO)


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


def print_error(info: dict[str, Any]) -> None:
    """An error on stderr, its text printed as it is (no rich markup inside it)."""
    err_console.print(f"[bold red]error:[/] {escape(info['error'])}", soft_wrap=True)
    if "hint" in info:
        err_console.print(f"[dim]{escape(info['hint'])}[/]", soft_wrap=True)


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
            print_error(describe_error(failed))
            raise typer.Exit(1) from failed
        except Exception as err:
            if debugging():
                raise
            print_error(describe_error(err))
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
            if debugging():
                raise
            result = describe_error(err)
            code = 1
        text = json.dumps(result, default=str, sort_keys=True)
        with os.fdopen(os.dup(real_stdout), "w") as out:
            out.write(text + "\n")
    if code:
        raise typer.Exit(code)


def plain_console() -> Console:
    """The human output on stdout: text is printed as it is, brackets and all (no markup)."""
    return Console(soft_wrap=True, markup=False)


#: How many quarantined or left-out files a command's human output names (--json: all).
LISTED_FILES = 20


def print_set_aside(out: Console, quarantined: list[dict], ignored: list[dict]) -> None:
    """Name the files a command quarantined (undecodable) or left out (links, junk, too
    big), each with its reason, the same way in every command."""
    for what, items, field in (("quarantined", quarantined, "key"), ("left out", ignored, "path")):
        for item in items[:LISTED_FILES]:
            out.print(f"  {what} {item[field]}: {item['reason']}")
        if len(items) > LISTED_FILES:
            out.print(f"  … and {len(items) - LISTED_FILES} more {what} (--json lists all)")
