"""The demo's ``--out`` folder: the demo writes only into a new or empty folder, or one an earlier demo
wrote, and there replaces only what it wrote itself (the rule of ``build`` and ``train``).

``.arcforge-demo.json`` in the folder lists the top files the demo wrote (``demo.json``, ``loss.png``,
``gallery.png``); ``data/`` follows the build's rules (its own list of files) and ``run/`` the trainer's
(only a run's files are replaced). So ``demo --out /`` or ``--out ~`` is refused before anything is
written, and a user's ``loss.png``, ``run/metrics.jsonl`` or ``run/checkpoints/notes.txt`` is never lost.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from arcforge.errors import ArcforgeError

MARKER = ".arcforge-demo.json"
TOP_FILES = ("demo.json", "loss.png", "gallery.png")
_SUBDIRS = ("data", "run")


class DemoError(ArcforgeError):
    """A demo option out of its range, or an --out the demo may not write into."""


def owned(out: Path) -> set[str] | None:
    """The top files an earlier demo wrote in ``out`` (its marker's list); None when ``out`` has none."""
    try:
        data = json.loads((out / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    files = data.get("files") if isinstance(data, dict) else None
    if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
        return None
    return {f for f in files if f in TOP_FILES}


def _is_run(run: Path) -> bool:
    return (run / "latest").is_file() or (run / "run.toml").is_file()


def prepare(out: Path) -> None:
    """Refuse, before anything is written, an ``out`` that holds files no demo wrote; then mark it."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise DemoError(f"{out}: exists and is not a folder", hint="pass a new or empty folder for --out")
    mine = owned(out)
    _refuse_foreign(out, mine)
    _refuse_clash(out, mine)
    out.mkdir(parents=True, exist_ok=True)
    _write_marker(out, mine or set())


def _refuse_foreign(out: Path, mine: set[str] | None) -> None:
    """Refuse a non-empty ``out`` that no demo marked."""
    present = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
    if present and mine is None:
        raise DemoError(
            f"{out}: holds files the demo did not write ({', '.join(present[:4])}"
            f"{', ...' if len(present) > 4 else ''}); nothing was changed",
            hint="pass a new or empty folder (or an earlier demo's) for --out",
        )


def _refuse_clash(out: Path, mine: set[str] | None) -> None:
    """Refuse an ``out`` where the demo would replace a top file it did not write, or a ``run/`` that is not
    a training run."""
    clash = [n for n in TOP_FILES if (out / n).exists() and n not in (mine or set())]
    run = out / "run"
    if run.is_dir() and any(run.iterdir()) and not _is_run(run):
        clash.append("run/ (not a training run)")
    if clash:
        raise DemoError(
            f"{out}: the demo would replace {', '.join(clash)}, which it did not write; nothing was changed",
            hint="move them away, or pick another --out",
        )


def record(out: Path, name: str) -> None:
    """Add top file ``name`` to what the demo wrote in ``out``."""
    _write_marker(Path(out), (owned(Path(out)) or set()) | {name})


def write_atomic(out: Path, name: str, data: bytes) -> Path:
    """Write ``out/name`` (one of ``TOP_FILES``) atomically and record it as the demo's."""
    path = Path(out) / name
    record(out, name)
    tmp = path.with_name(f".{name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return path


def _write_marker(out: Path, files: set[str]) -> None:
    tmp = out / f"{MARKER}.tmp"
    tmp.write_text(json.dumps({"files": sorted(files)}) + "\n", encoding="utf-8")
    os.replace(tmp, out / MARKER)
