"""Checkpoints and the run folder: one folder per save, written atomically, plus a ``latest`` pointer.

Layout of a run folder::

    RUN/checkpoints/step-000300/model.safetensors   # weights (unwrapped model, float32)
                               /state.pt            # optimizer, grokfast, RNG, data positions, counters
                               /config.json         # model + data + train configs, step
    RUN/latest                                      # name of the newest complete checkpoint
    RUN/run.toml                                    # the run's config (`arcforge train --config RUN/run.toml`)
    RUN/metrics.jsonl, RUN/tb/                      # written by the loop

A checkpoint is written into ``.tmp-step-XXXXXX`` and renamed into place; ``latest`` is replaced
atomically after that, so an interrupted save never leaves a broken ``latest``. A step folder that
already exists is replaced (never kept: it may hold another run's weights).

Reading: a damaged checkpoint (truncated weights, empty state) is named in the error; reading a run
folder falls back to the newest intact checkpoint and reports the damaged ones it skipped.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from arcforge.errors import TrainError

LATEST = "latest"
RUN_TOML = "run.toml"
# Everything a training run writes in its folder (``--overwrite`` removes these and nothing else).
RUN_ENTRIES = ("checkpoints", LATEST, RUN_TOML, "metrics.jsonl", "tb", f".{LATEST}.tmp", f".{RUN_TOML}.tmp")


def _write_text_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def prepare_run_folder(run: Path, *, resume: bool, overwrite: bool) -> None:
    """Refuse to train into a folder holding anything unless resuming or ``overwrite``; with ``overwrite``
    remove only what a training run writes (``RUN_ENTRIES``), keeping the user's own files."""
    run = Path(run)
    if run.exists() and not run.is_dir():
        raise TrainError(f"{run}: exists and is not a folder", hint="pass a folder for --out")
    if resume:
        if not has_checkpoint(run):
            raise TrainError(f"{run}: --resume, but there is no checkpoint to resume from",
                             hint="drop --resume to start a new run there, or pass the --out of an earlier run")
        return
    present = sorted(p.name for p in run.iterdir()) if run.is_dir() else []
    if not present:
        return
    if not overwrite:
        what = "an earlier run" if has_checkpoint(run) or "metrics.jsonl" in present else "files"
        raise TrainError(f"{run}: the run folder already holds {what} ({', '.join(present[:4])}"
                         f"{', ...' if len(present) > 4 else ''})",
                         hint="continue it with --resume, replace the run with --overwrite, or pick another --out")
    for name in RUN_ENTRIES:
        p = run / name
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        elif p.exists() or p.is_symlink():
            p.unlink()


def save_checkpoint(run: Path, step: int, weights: dict[str, torch.Tensor], state: dict[str, Any],
                    config: dict[str, Any], *, keep: int = 3) -> Path:
    """Write ``RUN/checkpoints/step-XXXXXX`` atomically, point ``latest`` at it, keep the newest ``keep``."""
    ckdir = Path(run) / "checkpoints"
    ckdir.mkdir(parents=True, exist_ok=True)
    name = f"step-{step:06d}"
    final = ckdir / name
    tmp = ckdir / f".tmp-{name}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    save_file({k: v.detach().to("cpu").contiguous() for k, v in weights.items()}, str(tmp / "model.safetensors"))
    torch.save(state, tmp / "state.pt")
    (tmp / "config.json").write_text(json.dumps({**config, "step": step}, indent=2, sort_keys=True))
    if final.exists():  # an older save of this step: swap it out, then delete it
        old = ckdir / f".old-{name}"
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, final)
    _write_text_atomic(Path(run) / LATEST, name + "\n")
    if keep > 0:
        olds = sorted(p for p in ckdir.iterdir() if p.is_dir() and p.name.startswith("step-"))
        for p in olds[:-keep]:
            if p != final:
                shutil.rmtree(p, ignore_errors=True)
    return final


def resolve(path: Path) -> Path:
    """A checkpoint folder from a run folder (its ``latest``) or a checkpoint folder itself."""
    path = Path(path)
    if (path / "model.safetensors").is_file():
        return path
    latest = path / LATEST
    if latest.is_file():
        ck = path / "checkpoints" / latest.read_text().strip()
        if (ck / "model.safetensors").is_file():
            return ck
        raise TrainError(f"{latest} points at {ck}, which is missing or incomplete")
    raise TrainError(f"{path}: no checkpoint found (neither a run folder with 'latest' nor a checkpoint)",
                     hint="pass the --out folder of `arcforge train` or one of its checkpoints/step-* folders")


def read_checkpoint(ck: Path, *, with_state: bool = True) -> tuple[dict, dict[str, torch.Tensor], dict]:
    """(config, weights, state) of one checkpoint folder; a ``TrainError`` naming the damaged file."""
    ck = Path(ck)
    files = [("config.json", lambda p: json.loads(p.read_text())),
             ("model.safetensors", lambda p: load_file(str(p)))]
    if with_state:
        files.append(("state.pt", lambda p: torch.load(p, weights_only=False)))
    out: list[Any] = []
    for name, reader in files:
        p = ck / name
        if not p.is_file():
            raise TrainError(f"{p}: missing (incomplete checkpoint)")
        try:
            got = reader(p)
        except Exception as e:  # truncated / empty / foreign files raise many kinds (safetensors, pickle, zip)
            size = p.stat().st_size
            raise TrainError(f"{p}: damaged checkpoint file ({size:,} bytes): {type(e).__name__}: "
                             f"{str(e).splitlines()[0][:160] if str(e) else 'unreadable'}") from None
        if not isinstance(got, dict):
            raise TrainError(f"{p}: damaged checkpoint file (not a {name} mapping)")
        out.append(got)
    config, weights = out[0], out[1]
    state = out[2] if with_state else {}
    if with_state and "step" not in state:
        raise TrainError(f"{ck / 'state.pt'}: damaged checkpoint file (no training state in it)")
    return config, weights, state


@dataclass
class Loaded:
    path: Path  # the checkpoint folder used
    config: dict
    weights: dict[str, torch.Tensor]
    state: dict
    skipped: list[str] = field(default_factory=list)  # one line per damaged newer checkpoint


def load_latest_intact(path: Path, *, with_state: bool = True) -> Loaded:
    """The checkpoint ``path`` names: a checkpoint folder (must be intact), or a run folder, where the
    newest intact checkpoint is used (from ``latest`` back through older ones; damaged ones are listed)."""
    path = Path(path)
    if (path / "model.safetensors").exists() or (path / "config.json").exists():
        return Loaded(path, *read_checkpoint(path, with_state=with_state))
    if not has_checkpoint(path):
        resolve(path)  # raises the "no checkpoint found" error
    ckdir = path / "checkpoints"
    latest = (path / LATEST).read_text().strip()
    names = sorted((p.name for p in ckdir.iterdir() if p.is_dir() and p.name.startswith("step-")),
                   reverse=True) if ckdir.is_dir() else []
    order = [latest] + [n for n in names if n < latest]
    skipped: list[str] = []
    first_error: TrainError | None = None
    for name in order:
        try:
            return Loaded(ckdir / name, *read_checkpoint(ckdir / name, with_state=with_state), skipped=skipped)
        except TrainError as e:
            first_error = first_error or e
            skipped.append(e.message)
    assert first_error is not None
    raise TrainError(f"{first_error.message}; no older intact checkpoint in {ckdir}",
                     hint="start a new run (--overwrite) or restore the file")


def load_checkpoint(path: Path, *, with_state: bool = True) -> tuple[dict, dict[str, torch.Tensor], dict]:
    """(config, weights, state) of a checkpoint (``state`` is {} when ``with_state`` is False)."""
    got = load_latest_intact(path, with_state=with_state)
    return got.config, got.weights, got.state


def has_checkpoint(run: Path) -> bool:
    return (Path(run) / LATEST).is_file()
