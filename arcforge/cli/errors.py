"""The one place that turns exceptions into messages and exit codes.

``ArcforgeError`` -> ``Error: <message>`` (+ ``hint``) on stderr, exit 1. Usage errors stay typer's
(exit 2). Anything unexpected -> a one-line ``Error: internal error ...`` asking for a report, exit 1.
``ARCFORGE_DEBUG=1`` re-raises so the full traceback is shown.
"""

from __future__ import annotations

import errno
import functools
import os
from collections.abc import Callable
from typing import Any, TypeVar

import typer

from arcforge.errors import ArcforgeError

F = TypeVar("F", bound=Callable[..., Any])


def debug_enabled() -> bool:
    return os.environ.get("ARCFORGE_DEBUG", "") not in ("", "0", "false", "False")


# Optional dependencies and the extra that installs each (pyproject.toml [project.optional-dependencies]).
EXTRAS = {
    "torch": "train",
    "safetensors": "train",
    "tomli_w": "train",
    "PIL": "png",
    "tensorboard": "tensorboard",
}


def missing_extra(exc: BaseException) -> tuple[str, str] | None:
    """(module, extra) when ``exc`` is the import of an optional dependency that is not installed."""
    if isinstance(exc, ModuleNotFoundError) and exc.name:
        top = exc.name.split(".")[0]
        if top in EXTRAS:
            return top, EXTRAS[top]
    return None


def report(exc: BaseException) -> None:
    """One line (plus a hint) on stderr. Text is printed literally (a ``[/x]`` in a path is not markup) and
    with every token redacted."""
    from rich.markup import escape

    from arcforge.cli.console import err_console
    from arcforge.errors import printable, redact

    if extra := missing_extra(exc):
        module, name = extra
        torch_first = "pip install torch==2.13.0 && " if name == "train" else ""
        err_console.print(
            f"[bold red]Error:[/] this command needs {module}, which is not installed: "
            f"{torch_first}pip install 'arcforge\\[{name}]'",
            highlight=False,
            soft_wrap=True,
        )
    elif (
        isinstance(exc, BrokenPipeError | OSError)
        and exc.errno in (errno.EPIPE, errno.ENOSPC)
        and not exc.filename
    ):  # stdout: its reader closed (| head, a killed parent), or a full disk
        err_console.print(
            f"[bold red]Error:[/] cannot write the output ({exc.strerror or 'broken pipe'})",
            highlight=False,
            soft_wrap=True,
        )
    elif isinstance(exc, OSError) and exc.strerror and not isinstance(exc, ConnectionError | TimeoutError):
        # A filesystem refusal (read-only folder, no permission, a path under a file, /proc): the path and
        # why.
        where = f"{exc.filename}: " if exc.filename else ""
        err_console.print(
            f"[bold red]Error:[/] {escape(printable(redact(where + exc.strerror)))}",
            highlight=False,
            soft_wrap=True,
        )
    elif isinstance(exc, ArcforgeError):
        err_console.print(
            f"[bold red]Error:[/] {escape(printable(redact(exc.message)))}", highlight=False, soft_wrap=True
        )
        if exc.hint:
            err_console.print(
                f"  [dim]hint:[/] {escape(printable(redact(exc.hint)))}", highlight=False, soft_wrap=True
            )
    else:
        err_console.print(
            f"[bold red]Error:[/] internal error: "
            f"{escape(printable(redact(f'{type(exc).__name__}: {exc}')))} "
            "(re-run with ARCFORGE_DEBUG=1 for the traceback, and please report it)",
            highlight=False,
            soft_wrap=True,
        )


def handle_errors(fn: F) -> F:
    """Decorator for command functions: map errors to one clear line and exit code 1."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (typer.Exit, typer.Abort, typer.BadParameter, KeyboardInterrupt):  # usage errors: exit 2
            raise
        except Exception as exc:
            if debug_enabled():
                raise
            report(exc)
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]
