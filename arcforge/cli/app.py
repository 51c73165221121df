"""The ``arcforge`` command: a typer app assembled from one module per command group."""

from __future__ import annotations

import errno
import importlib

import typer

app = typer.Typer(
    name="arcforge",
    help="Compile the public ARC datasets into one clean, decontaminated, Hub-ready Parquet dataset, "
    "and train on it.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Each module defines register(app). Order = order in --help.
COMMAND_MODULES = (
    "fetch",  # sources, fetch
    "build",  # build
    "inspect",  # stats, show
    "overlap",  # overlap
    "export",  # export
    "train",  # train, eval
    "publish",  # publish
    "demo",  # demo
    "env",  # env
)

for _name in COMMAND_MODULES:
    importlib.import_module(f"arcforge.cli.{_name}").register(app)


def _print_version(value: bool) -> None:
    # A parameter callback runs while the options are parsed, before typer looks for a command.
    if value:
        from arcforge import __version__

        typer.echo(f"arcforge {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", help="Print the version and exit.", is_eager=True, metavar="",
                                 callback=_print_version),
) -> None:
    """Compile the public ARC datasets into one clean, decontaminated, Hub-ready Parquet dataset."""


def main() -> None:
    from arcforge.cli.errors import debug_enabled, report
    from arcforge.cli.streams import guard_stderr, silence_stdout_if_broken

    guard_stderr()  # a log reader that goes away never stops the work
    try:
        app()
    except OSError as e:  # --help or --version into a full disk or a closed pipe (commands report their own)
        if debug_enabled() or e.filename or e.errno not in (errno.EPIPE, errno.ENOSPC):
            raise
        report(e)
        raise SystemExit(1) from None
    finally:
        silence_stdout_if_broken()
