"""``arcforge env``: versions and paths, for bug reports and to check an install."""

from __future__ import annotations

import platform
import sys
from importlib.metadata import PackageNotFoundError, version

from arcforge import __version__, paths
from arcforge.cli.console import console, reports
from arcforge.cli.options import JsonOpt
from arcforge.sources.manifest import MANIFEST_DIR

PACKAGES = (
    "typer",
    "rich",
    "polars",
    "pyarrow",
    "numpy",
    "huggingface_hub",
    "torch",
    "safetensors",
    "pillow",
)


def env_report() -> dict:
    pkgs = {}
    for p in PACKAGES:
        try:
            pkgs[p] = version(p)
        except PackageNotFoundError:
            pkgs[p] = None
    return {
        "arcforge": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": pkgs,
        "paths": {
            "home": str(paths.home()),
            "sources": str(paths.sources_dir()),
            "manifests": str(MANIFEST_DIR),
        },
    }


def _print_env(rep: dict) -> None:
    console.print(f"arcforge {rep['arcforge']} (Python {rep['python']}, {rep['platform']})")
    for k, v in rep["packages"].items():
        console.print(f"  {k:16} {v or 'not installed'}")
    for k, v in rep["paths"].items():
        console.print(f"  {k:16} {v}")


@reports(_print_env)
def env_cmd(json_: JsonOpt = False) -> dict:
    """Print arcforge's version, its dependencies' versions and the paths it uses.

    Example: arcforge env --json
    """
    return env_report()
