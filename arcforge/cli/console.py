"""Terminal output helpers for the CLI: one rich console, JSON printing, progress that hides itself."""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

console = Console()
err_console = Console(stderr=True)


def print_json(data: Any) -> None:
    """Write JSON to stdout (plain, so it pipes into jq)."""
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
    sys.stdout.flush()


def color_enabled() -> bool:
    """ANSI colors on stdout: only on a terminal, never with NO_COLOR set or TERM=dumb (rich's rules)."""
    return console.is_terminal and not console.no_color and not console.is_dumb_terminal


def progress_enabled(json_output: bool = False) -> bool:
    """Progress bars only on an interactive terminal, never with --json."""
    return not json_output and err_console.is_terminal


def make_progress(*, bytes_mode: bool = False, enabled: bool = True) -> Progress:
    """A rich Progress on stderr; ``disable=True`` when not a TTY so nothing is printed."""
    cols = [TextColumn("[bold]{task.description}"), BarColumn(), TaskProgressColumn()]
    cols += [DownloadColumn(), TransferSpeedColumn()] if bytes_mode else [MofNCompleteColumn()]
    cols.append(TimeRemainingColumn())
    return Progress(*cols, console=err_console, disable=not enabled, transient=False)


class RichProgress:
    """``arcforge.progress.Progress`` on top of rich; thread-safe (rich's Progress locks internally).

    Use as a context manager. Disabled (prints nothing) when ``enabled`` is False.
    """

    def __init__(self, enabled: bool = True) -> None:
        self._items = make_progress(enabled=enabled)
        self._bytes = make_progress(bytes_mode=True, enabled=enabled)
        self._ids: dict[str, tuple[Progress, int]] = {}
        self.enabled = enabled

    def __enter__(self) -> RichProgress:
        if self.enabled:
            from rich.console import Group
            from rich.live import Live

            self._live = Live(Group(self._bytes, self._items), console=err_console, refresh_per_second=8)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            self._live.__exit__(*exc)

    def start(self, key: str, description: str, total: float | None = None, *, unit: str = "items") -> None:
        prog = self._bytes if unit == "bytes" else self._items
        self._ids[key] = (prog, prog.add_task(description, total=total))

    def advance(self, key: str, amount: float = 1) -> None:
        if key in self._ids:
            prog, tid = self._ids[key]
            prog.advance(tid, amount)

    def update(self, key: str, *, completed: float | None = None, total: float | None = None) -> None:
        if key in self._ids:
            prog, tid = self._ids[key]
            prog.update(tid, completed=completed, total=total)

    def finish(self, key: str) -> None:
        if key in self._ids:
            prog, tid = self._ids[key]
            t = prog.tasks[tid] if isinstance(prog.tasks, dict) else next(x for x in prog.tasks if x.id == tid)
            prog.update(tid, completed=t.total if t.total is not None else t.completed)
