"""Progress of one point: a rich bar on a terminal, plain-text lines otherwise (CI logs, pipes).

The plain form prints `requests: done/total (pct%) elapsed` at most once per `PLAIN_INTERVAL_S`
wall seconds and once at the end, so a log shows a run is alive without one line per request.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

PLAIN_INTERVAL_S = 10.0


@contextlib.contextmanager
def progress_reporter(enabled: bool, console: Console, total: int
                      ) -> Iterator[Callable[[object], None]]:
    """A callback to call once per finished request (its argument is ignored)."""
    if not enabled:
        yield lambda _result: None
    elif console.is_terminal:
        with _bar(console) as bar:
            task = bar.add_task("requests", total=total)
            yield lambda _result: bar.advance(task)
    else:
        plain = _PlainProgress(console, total)
        yield plain.advance
        plain.print()


def _bar(console: Console) -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=console, transient=True)


class _PlainProgress:
    def __init__(self, console: Console, total: int) -> None:
        self.console = console
        self.total = total
        self.done = 0
        self.started = self.printed = time.monotonic()

    def advance(self, _result: object) -> None:
        self.done += 1
        if time.monotonic() - self.printed >= PLAIN_INTERVAL_S:
            self.print()

    def print(self) -> None:
        self.printed = time.monotonic()
        pct = 100.0 * self.done / self.total if self.total else 100.0
        self.console.print(f"requests: {self.done}/{self.total} ({pct:.0f}%) "
                           f"{self.printed - self.started:.0f} s", highlight=False)
