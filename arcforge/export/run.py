"""``export()``: stream the selected tasks of a built dataset through one writer into a new folder.

The writer fills ``.<out>.exporting-<pid>`` beside ``out``; ``export.json`` (what was exported, from
what, how) is written last, and the folder then takes the place of ``out`` (an earlier export is moved to
``.<out>.old-<pid>`` for that moment). What a killed export left behind is put right by the next one
(``recover``). ``out`` may be missing, an
empty folder, or (with ``overwrite``) an earlier export; a folder holding anything else is refused before
any work, so nothing arcforge did not write is ever replaced. Memory holds one batch of tasks and one
task's augmentations, plus the id columns of the selection (``arcforge.export.select``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from arcforge.errors import ExportError
from arcforge.export import get_writer, writers
from arcforge.export.config import ExportConfig
from arcforge.export.select import Selection, plan
from arcforge.fslock import pid_alive
from arcforge.progress import NULL_PROGRESS, Progress
from arcforge.shards import iter_batches

METADATA_FILE = "export.json"
METADATA_VERSION = 1
_BATCH = 256


@dataclass
class ExportResult:
    out: str
    format: str
    tasks: int
    written: dict[str, Any] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "out": self.out,
            "format": self.format,
            "tasks": self.tasks,
            "written": self.written,
            "files": self.files,
            "metadata": METADATA_FILE,
        }


def export(data: Path, out: Path, cfg: ExportConfig, *, progress: Progress | None = None) -> ExportResult:
    """Export the tasks of the built dataset ``data`` selected by ``cfg`` into ``out``."""
    progress = progress or NULL_PROGRESS
    cfg.check(tuple(writers()))
    out = Path(out)
    recover(out)
    check_out(out, cfg.overwrite)
    sel = plan(Path(data), cfg)
    staging = out.parent / f".{out.name}.exporting-{os.getpid()}"
    try:
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        writer = get_writer(cfg.format)(staging, cfg, sel)
    except OSError as e:
        shutil.rmtree(staging, ignore_errors=True)
        raise _write_error(out, e) from None
    try:
        progress.start("export", f"export {cfg.format}", total=sel.total)
        _stream(sel, writer, progress)
        written = writer.close()
        progress.finish("export")
        files = [*_files(staging), METADATA_FILE]
        _write_metadata(staging / METADATA_FILE, cfg, sel, written, sorted(files))
        _swap(staging, out)
    except BaseException as e:  # Ctrl-C included: no half-written export is left behind
        writer.abort()
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(e, OSError) and e.strerror and not isinstance(e, ConnectionError | TimeoutError):
            raise _write_error(out, e) from None
        raise
    return ExportResult(
        out=str(out), format=cfg.format, tasks=sel.total, written=written, files=sorted(files)
    )


def _write_error(out: Path, e: OSError) -> ExportError:
    return ExportError(
        f"--out {out}: cannot write the export there: {e.strerror or e}",
        hint="choose a folder you can write to, with room for the export",
    )


def _stream(sel: Selection, writer: Any, progress: Progress) -> None:
    for batch in iter_batches(sel.root, sources=sel.sources, splits=sel.splits, batch_size=_BATCH):
        idx = sel.classify(batch)
        keep = idx >= 0
        if not keep.any():
            continue
        part = batch.filter(pa.array(keep))
        ids = [sel.export_id(t) for t in part.column("id").to_pylist()]
        writer.add_batch(part, ids, [sel.subsets[i] for i in idx[keep].tolist()])
        progress.advance("export", part.num_rows)


def _files(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def _write_metadata(
    path: Path, cfg: ExportConfig, sel: Selection, written: dict[str, Any], files: list[str]
) -> None:
    from arcforge import __version__

    meta = {
        "format_version": METADATA_VERSION,
        "format": cfg.format,
        "arcforge_version": __version__,
        "seed": cfg.seed,
        "options": cfg.to_dict(),
        "selection": sel.to_dict(),
        "written": written,
        "build_provenance": sel.provenance,
        "files": files,
    }
    path.write_text(json.dumps(meta, indent=2, sort_keys=True, default=_jsonable) + "\n", encoding="utf-8")


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.integer):
        return int(value)
    return str(value)


def read_metadata(folder: Path) -> dict[str, Any] | None:
    """An earlier export's metadata, or None when ``folder`` holds none that arcforge wrote."""
    try:
        meta = json.loads((Path(folder) / METADATA_FILE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    ok = isinstance(meta, dict) and "arcforge_version" in meta and isinstance(meta.get("files"), list)
    return meta if ok else None


def recover(out: Path) -> None:
    """Undo what a killed export into ``out`` left beside it: its staging folder is removed; an earlier
    export it had moved aside goes back to ``out`` (if ``out`` is missing) or is removed."""
    if not out.parent.is_dir():
        return
    work = re.compile(re.escape(f".{out.name}.") + r"(?P<kind>exporting|old)-(?P<pid>\d+)$")
    for path in sorted(out.parent.iterdir()):
        m = work.match(path.name)
        if not m or not path.is_dir() or pid_alive(int(m["pid"])):
            continue
        if m["kind"] == "old" and not out.exists():
            path.rename(out)
        else:
            shutil.rmtree(path, ignore_errors=True)


def check_out(out: Path, overwrite: bool) -> None:
    """Refuse an output that is not missing, empty, or (with ``overwrite``) an earlier arcforge export."""
    if not out.exists() and not out.is_symlink():
        return
    if not out.is_dir() or out.is_symlink():
        raise ExportError(f"{out}: exists and is not a folder", hint="choose another --out")
    present = set(_files(out))
    if not present and not any(out.iterdir()):
        return
    meta = read_metadata(out)
    if meta is None or not present <= set(meta["files"]):
        raise ExportError(
            f"{out}: the folder holds files that arcforge export did not write; nothing was changed",
            hint="choose an empty or new --out",
        )
    if not overwrite:
        raise ExportError(f"{out}: holds an earlier export", hint="pass --overwrite to replace it")


def _swap(staging: Path, out: Path) -> None:
    if not out.exists():
        staging.rename(out)
        return
    old = out.parent / f".{out.name}.old-{os.getpid()}"
    out.rename(old)
    staging.rename(out)
    shutil.rmtree(old)
