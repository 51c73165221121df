"""The ``arcforge`` command: a typer app with one top-level function per command.

The commands live in one module per command group (``fetch``, ``build``, ``inspect``, ...); their shared
options in ``options.py``, their output (``--json`` or text) in ``console.reports`` and their errors in
``errors.handle_errors``, applied here to every command.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from typing import Annotated, Any

import typer
from typer.core import TyperCommand, TyperGroup

from arcforge.cli import build, demo, env, export, fetch, inspect, overlap, publish, train
from arcforge.cli.errors import handle_errors
from arcforge.cli.options import Flag


class _PlainHelpOption:
    """``--help`` takes no value: no ``<bool>`` type column beside it in the help (as for every flag)."""

    def get_help_option(self, ctx: Any) -> Any:
        option = super().get_help_option(ctx)  # type: ignore[misc]
        if option is not None:
            option.metavar = ""
        return option


class Command(_PlainHelpOption, TyperCommand):
    pass


class Group(_PlainHelpOption, TyperGroup):
    pass


app = typer.Typer(
    name="arcforge",
    help="Compile the public ARC datasets into one clean, decontaminated, Hub-ready Parquet dataset, "
    "and train on it.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    cls=Group,
)

# name -> command function, in the order of --help
COMMANDS: dict[str, Callable[..., Any]] = {
    "sources": fetch.sources_cmd,
    "fetch": fetch.fetch_cmd,
    "build": build.build_cmd,
    "stats": inspect.stats_cmd,
    "show": inspect.show_cmd,
    "overlap": overlap.overlap_cmd,
    "export": export.export_cmd,
    "train": train.train_cmd,
    "eval": train.eval_cmd,
    "publish": publish.publish_cmd,
    "demo": demo.demo_cmd,
    "env": env.env_cmd,
}
HELP = {"export": export.HELP}  # a help text with paragraphs of its own (the others: the docstring)

for _name, _fn in COMMANDS.items():
    app.command(_name, cls=Command, help=HELP.get(_name))(handle_errors(_fn))


def _print_version(value: bool) -> None:
    # A parameter callback runs while the options are parsed, before typer looks for a command.
    if value:
        from arcforge import __version__

        typer.echo(f"arcforge {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, Flag("--version", help="Print the version and exit.", is_eager=True, callback=_print_version)
    ] = False,
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
