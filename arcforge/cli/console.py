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


def progress_enabled(json_output: bool = False) -> bool:
    """Progress bars only on an interactive terminal, never with --json."""
    return not json_output and err_console.is_terminal


def make_progress(*, bytes_mode: bool = False, enabled: bool = True) -> Progress:
    """A rich Progress on stderr; ``disable=True`` when not a TTY so nothing is printed."""
    cols = [TextColumn("[bold]{task.description}"), BarColumn(), TaskProgressColumn()]
    cols += [DownloadColumn(), TransferSpeedColumn()] if bytes_mode else [MofNCompleteColumn()]
    cols.append(TimeRemainingColumn())
    return Progress(*cols, console=err_console, disable=not enabled, transient=False)
