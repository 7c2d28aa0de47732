"""Progress bars for long work, on the same stderr console as the log.

One rich `Progress` display is shared by every bar open at a time (rich allows one live
display per console), so log lines print above the bars instead of through them. Bars
are transient: they vanish when their work is done, and draw nothing when stderr is not a
terminal (Airflow task logs, pipes).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from fruitops_core.output import err_console

T = TypeVar("T")

_lock = threading.Lock()
_display: Progress | None = None
_open = 0


class Bar:
    """One bar: ``update`` advances it (safe from worker threads), ``note`` sets its suffix."""

    def __init__(self, display: Progress | None, task: TaskID | None):
        self._display, self._task = display, task

    def update(self, n: int = 1) -> None:
        if self._display is not None and self._task is not None:
            self._display.advance(self._task, n)

    def note(self, text: str) -> None:
        if self._display is not None and self._task is not None:
            self._display.update(self._task, note=text)


def _new_display() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[unit]}"),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[note]}"),
        console=err_console,
        transient=True,
    )


@contextmanager
def progress_bar(
    total: int | None, desc: str, unit: str = "item", disable: bool = False
) -> Iterator[Bar]:
    """A bar for ``total`` units of work called ``desc``; ``disable`` draws nothing."""
    global _display, _open
    if disable or not err_console.is_terminal:  # a log file gets no bars (nor blank lines)
        yield Bar(None, None)
        return
    with _lock:
        if _display is None:
            _display = _new_display()
            _display.start()
        display = _display
        task = display.add_task(desc, total=total, unit=unit, note="")
        _open += 1
    try:
        yield Bar(display, task)
    finally:
        with _lock:
            display.remove_task(task)
            _open -= 1
            if _open == 0:
                display.stop()
                _display = None


def track(items: Iterable[T], total: int, desc: str, unit: str = "item") -> Iterator[T]:
    """Iterate ``items`` with a bar."""
    with progress_bar(total, desc, unit) as bar:
        for item in items:
            yield item
            bar.update()
