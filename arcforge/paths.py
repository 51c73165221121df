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


HUB_KIND = "hub"


def source_dir(owner: str, repo: str, commit: str, kind: str = "repo", key: str = "") -> Path:
    """The cache folder of one source: ``<owner>/<repo>/<commit>``; a Hub dataset's under ``hf/``; a source
    with a ``cache_key`` (one of several that keep different files of one repository at one commit) in
    ``<commit>-<key>``."""
    folder = f"{commit}-{key}" if key else commit
    if kind == HUB_KIND:
        return sources_dir() / "hf" / owner / repo / folder
    return sources_dir() / owner / repo / folder


def tmp_dir() -> Path:
    d = home() / "tmp"
    d.mkdir(parents=True, exist_ok=True)
    return d
