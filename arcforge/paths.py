"""Where arcforge keeps things. ``ARCFORGE_HOME`` (default: ``$XDG_CACHE_HOME/arcforge``) holds:

- ``sources/<owner>/<repo>/<commit>/``: verified upstream files, written by ``fetch``
- ``tmp/``: downloads and extractions in progress (same filesystem, so moves are atomic renames)
"""

from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    env = os.environ.get("ARCFORGE_HOME")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "arcforge"


def sources_dir() -> Path:
    return home() / "sources"


def source_dir(owner: str, repo: str, commit: str) -> Path:
    return sources_dir() / owner / repo / commit


def tmp_dir() -> Path:
    d = home() / "tmp"
    d.mkdir(parents=True, exist_ok=True)
    return d
