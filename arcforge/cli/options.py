"""Options shared by several commands, defined once as ``Annotated`` aliases; choices as Enums.

One vocabulary: the dataset folder is ``--data/-d`` in every command that reads one, defaulting to
``build``'s default ``--out`` (``arc-dataset``); sources are ``--source/-s``; ``--json`` is one flag (its
output is written in one place, ``console.reports``).

Settings of ``train``, ``eval`` and ``demo`` are declared with ``cfg_opt(PATH, ...)``: the option has no
default of its own (None = not given) and shows the default of the config field(s) it sets
(``arcforge.train.config``, the demo's ``DemoConfig``), the only place defaults live. One option may set
fields of several commands (``--seed`` sets ``train.seed`` and ``data.seed`` in ``train``, ``eval.seed`` in
``eval``, ``demo.seed`` in ``demo``): their defaults must agree, checked when the option is declared.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from arcforge.export.config import FORMATS
from arcforge.synthetic.base import DIFFICULTIES
from arcforge.train import config as C

DEFAULT_DATA = Path(C.DEFAULT_DATA)  # build's default --out, every other command's default --data


def split_csv(text: str) -> list[str]:
    """``"a, b,,c"`` -> ``["a", "b", "c"]``: the items of a comma-separated option, blanks dropped."""
    return [x.strip() for x in text.split(",") if x.strip()]


def csv_items(value: list[str] | None) -> list[str] | None:
    """A repeatable option that also takes comma lists: ``-s a,b -s c`` -> ``["a", "b", "c"]``; none: None."""
    return [x for v in value or () for x in split_csv(str(v))] or None


def Flag(*names: str, **kwargs: Any) -> typer.models.OptionInfo:
    """A boolean flag: typer.Option without a ``<bool>`` type column in the help (a flag takes no value)."""
    return typer.Option(*names, metavar="", **kwargs)


# ---------------------------------------------------------------------------------- config-backed settings

# option flag -> the config field(s) it sets, one tuple per declaration (filled by cfg_opt)
OPTION_FIELDS: dict[str, list[tuple[str, ...]]] = {}
TRAIN_SECTIONS = ("model", "data", "train")
EVAL_SECTIONS = ("eval",)
DEMO_SECTIONS = ("demo",)


def setting_default(path: str) -> Any:
    """The default of a dotted setting: ``"model.d_model"`` from ``arcforge.train.config``, ``"demo.steps"``
    from the demo's ``DemoConfig``."""
    section, _, name = path.partition(".")
    if section == "demo":
        from arcforge.demo.run import DemoConfig

        return getattr(DemoConfig(), name)
    return C.default_of(path)


def shown_default(d: Any, flag: str) -> str:
    """How ``--help`` shows default ``d`` of ``flag``: a flag by its name, a list joined, None as "all"."""
    if isinstance(d, bool):
        return flag.split("/")[0 if d else -1].lstrip("-")
    if isinstance(d, list | tuple):
        return ",".join(d)
    return "all" if d is None else str(getattr(d, "value", d))


def cfg_opt(paths: str | tuple[str, ...], *decls: str, help: str, **kw: Any) -> Any:
    """A typer option for config field(s) ``paths`` ("section.field"): default None (= not given), the
    fields' default shown in --help (they must share it)."""
    paths = (paths,) if isinstance(paths, str) else paths
    defaults = {repr(setting_default(p)) for p in paths}
    if len(defaults) > 1:
        raise ValueError(f"{decls[0]} sets {', '.join(paths)}, whose defaults differ ({', '.join(defaults)})")
    OPTION_FIELDS.setdefault(decls[0].split("/")[0], []).append(paths)
    d = setting_default(paths[0])
    if isinstance(d, bool):
        kw.setdefault("metavar", "")  # a flag takes no value: no <bool> column in --help
    return typer.Option(*decls, help=help, show_default=shown_default(d, decls[0]), **kw)


def fields_of(flag: str, sections: tuple[str, ...]) -> tuple[str, ...] | None:
    """The config field(s) ``flag`` sets in the command whose configs are ``sections``."""
    for paths in OPTION_FIELDS.get(flag, []):
        mine = tuple(p for p in paths if p.split(".")[0] in sections)
        if mine:
            return mine
    return None


def given(ctx: typer.Context, sections: tuple[str, ...]) -> dict[str, Any]:
    """``{field path: value}`` of the config options given (on the command line or by env)."""
    out: dict[str, Any] = {}
    for p in ctx.command.params:
        paths = fields_of(p.opts[0], sections) if p.opts else None
        value = ctx.params.get(p.name or "")
        if isinstance(value, list | tuple):  # repeatable options also take comma lists; none given: []
            value = csv_items(value)
        if paths and value is not None:
            for path in paths:
                out[path] = getattr(value, "value", value)
    return out


# ------------------------------------------------------------------------------------------ the aliases

JsonOpt = Annotated[bool, Flag("--json", help="Print a machine-readable JSON report on stdout.")]
ManifestsOpt = Annotated[
    Path | None,
    typer.Option(
        "--manifests",
        help="Folder of source manifests (default: the bundled manifests/).",
        envvar="ARCFORGE_MANIFESTS",
        show_default=False,
    ),
]
MirrorOpt = Annotated[
    str | None,
    typer.Option(
        "--mirror",
        envvar="ARCFORGE_MIRROR",
        show_default=False,
        help="Offline mirror: a folder laid out <owner>/<repo>/<files>, or an http(s) base URL "
        "serving tarballs in GitHub's URL layout.",
    ),
]
DataOpt = Annotated[
    Path, typer.Option("--data", "-d", help="A built dataset folder (the --out of `arcforge build`).")
]
DataSpecOpt = Annotated[
    str | None,
    cfg_opt(
        ("data.root", "eval.data"),
        "--data",
        "-d",
        help="A built dataset folder (the --out of `arcforge build`), or a dataset on the Hub: "
        "ORG/NAME(@REV) or "
        "hf://datasets/ORG/NAME(@REV).",
    ),
]
OutOpt = Annotated[Path, typer.Option("--out", "-o", help="Output folder.")]
SourceOpt = Annotated[
    list[str] | None,
    cfg_opt(
        ("data.sources", "eval.sources"),
        "--source",
        "-s",
        help="Only these sources (repeatable or comma-separated).",
        callback=csv_items,
    ),
]
ConfigFileOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        help="A config file (run.toml of an earlier run, or a checkpoint's config.json); options "
        "given on the command line override it.",
        show_default=False,
    ),
]
DeviceOpt = Annotated[
    str | None, cfg_opt(("train.device", "eval.device"), "--device", help="auto | cpu | cuda | cuda:N.")
]
ThreadsOpt = Annotated[
    int | None,
    cfg_opt(
        ("train.threads", "eval.threads", "demo.threads"),
        "--threads",
        help="torch CPU threads (0: the CPUs free now, from affinity and load).",
    ),
]
SeedOpt = Annotated[
    int | None,
    cfg_opt(
        ("train.seed", "data.seed", "eval.seed", "demo.seed"),
        "--seed",
        help="Random seed (every random choice derives from it).",
    ),
]
BuildSeedOpt = Annotated[
    int, typer.Option("--seed", help="Random seed (every random choice derives from it).")
]

# Enum of the synthetic generator's difficulty presets (values come from arcforge.synthetic).
Difficulty = Enum("Difficulty", {name: name for name in DIFFICULTIES}, type=str)  # type: ignore[misc]
Difficulty.__doc__ = "Synthetic difficulty preset: grid sizes, objects and colors of generated tasks."

# Enum of the export formats (arcforge.export registers one writer per name).
ExportFormat = Enum("ExportFormat", {name: name for name in FORMATS}, type=str)  # type: ignore[misc]
ExportFormat.__doc__ = (
    "Export format: kaggle (ARC Prize JSON), trm (TRM/HRM .npy puzzles), jsonl (text for LMs)."
)
