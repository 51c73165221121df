"""Terminal output helpers for the CLI: one rich console, the one place ``--json`` is handled
(``reports``), progress that hides itself, and the small helpers several commands share."""

from __future__ import annotations

import functools
import json
import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer
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

from arcforge.cli.logprogress import PlainProgress, fmt_duration
from arcforge.errors import ArcforgeError

console = Console()
err_console = Console(stderr=True)


def print_json(data: Any) -> None:
    """Write JSON to stdout (plain, so it pipes into jq)."""
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
    sys.stdout.flush()


def json_data(result: Any) -> Any:
    """What ``--json`` prints of a command's result: its ``to_dict()``, or the result itself."""
    return result.to_dict() if hasattr(result, "to_dict") else result


def reports(human: Callable[[Any], None], *, exit_code: Callable[[Any], int] | None = None) -> Callable:
    """Decorator of a command that returns its result: with ``--json`` (the parameter ``json_``) the result
    is printed as JSON on stdout, else ``human(result)`` prints it for people. None prints nothing (a
    non-zero torchrun rank). ``exit_code(result)``, when given, is the exit status after printing."""

    def decorate(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def command(*args: Any, **kwargs: Any) -> None:
            result = fn(*args, **kwargs)
            if result is None:
                return
            if kwargs.get("json_"):
                print_json(json_data(result))
            else:
                human(result)
            code = exit_code(result) if exit_code is not None else 0
            if code:
                raise typer.Exit(code)

        return command

    return decorate


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
            tasks = prog.tasks
            t = tasks[tid] if isinstance(tasks, dict) else next(x for x in tasks if x.id == tid)
            prog.update(tid, completed=t.total if t.total is not None else t.completed)


class LogProgress(PlainProgress):
    """Plain log lines on stderr for runs without a terminal (CI logs, ``nohup``, pipes): PlainProgress, plus
    a timer thread that writes a line for every running bar at least every ``interval`` seconds (30 by
    default, ``ARCFORGE_LOG_SECONDS``) even while the work reports nothing. Thread-safe (fetch reports from
    several threads)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> LogProgress:
        if self.interval > 0:
            self._thread = threading.Thread(target=self._tick, name="arcforge-log", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _tick(self) -> None:
        while not self._stop.wait(min(self.interval, 1.0)):
            with self._lock:
                for key in list(self._bars):
                    self._maybe(key)

    def start(self, key: str, description: str, total: float | None = None, *, unit: str = "items") -> None:
        with self._lock:
            super().start(key, description, total, unit=unit)

    def advance(self, key: str, amount: float = 1) -> None:
        with self._lock:
            super().advance(key, amount)

    def update(self, key: str, *, completed: float | None = None, total: float | None = None) -> None:
        with self._lock:
            super().update(key, completed=completed, total=total)

    def finish(self, key: str) -> None:
        with self._lock:
            super().finish(key)


def run_progress(json_output: bool, main: bool = True) -> Any:
    """The progress of train, eval and demo: rich bars on a terminal; plain log lines every 30 s otherwise
    (also with --json: they go to stderr); nothing on a torchrun rank other than 0 (``main`` False)."""
    if not main:
        return RichProgress(enabled=False)
    if err_console.is_terminal:
        return RichProgress(enabled=progress_enabled(json_output))
    return PlainProgress()


def fmt_log(rec: dict) -> str:
    """One line of a training log record (a step's loss, or an in-training eval)."""
    if "loss" in rec:
        eta = rec.get("eta_s", 0.0)
        return (
            f"step {rec['step']:>6}  loss {rec['loss']:.4f}  lr {rec['lr']:.2e}  "
            f"gnorm {rec['grad_norm']:.2f}  tok/s {rec.get('tokens_per_s', 0):,.0f}  "
            f"s/step {rec.get('s_per_step', 0):.3f}  eta {fmt_duration(eta)}"
        )
    keys = ("exact_match", "pass@2", "token_accuracy", "loss")
    return f"eval  step {rec['step']:>6}  " + "  ".join(f"{k} {rec[f'eval/{k}']:.4f}" for k in keys)


def need_train_extra(command: str) -> None:
    """torch and safetensors come with the ``[train]`` extra; say so instead of an ImportError."""
    missing = []
    for mod in ("torch", "safetensors"):
        try:
            __import__(mod)
        except ImportError:
            missing.append(mod)
    if missing:
        raise ArcforgeError(
            f"`arcforge {command}` needs {' and '.join(missing)}, which the base install leaves out",
            hint="pip install 'arcforge[train]'",
        )


def resolve_data(spec: str) -> Path:
    """A ``--data`` value (a folder, ORG/NAME[@REV], hf://datasets/...) as a local dataset folder."""
    from arcforge.hub.data import resolve_data as resolve

    # HF_ENDPOINT (a mirror, a private Hub) is read now, not only when huggingface_hub was imported
    return resolve(spec, endpoint=os.environ.get("HF_ENDPOINT") or None)


def cli_progress(json_output: bool = False) -> RichProgress | LogProgress:
    """The progress a command shows: rich bars on a terminal (none with --json), plain log lines on stderr
    when it is not a terminal (with --json too: they never touch stdout)."""
    if err_console.is_terminal:
        return RichProgress(enabled=not json_output)
    return LogProgress()
