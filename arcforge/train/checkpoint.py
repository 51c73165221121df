"""Checkpoints: one folder per save, written atomically, plus a ``latest`` pointer.

Layout of a run folder::

    RUN/checkpoints/step-000300/model.safetensors   # weights (unwrapped model, float32)
                               /state.pt            # optimizer, grokfast, RNG, data positions, counters
                               /config.json         # model + data + train configs, step
    RUN/latest                                      # name of the newest complete checkpoint
    RUN/metrics.jsonl, RUN/tb/                      # written by the loop

A checkpoint is written into ``.tmp-step-XXXXXX`` and renamed into place; ``latest`` is replaced
atomically after that, so an interrupted save never leaves a broken ``latest``.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from arcforge.errors import TrainError

LATEST = "latest"


def _write_text_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def save_checkpoint(run: Path, step: int, weights: dict[str, torch.Tensor], state: dict[str, Any],
                    config: dict[str, Any], *, keep: int = 3) -> Path:
    """Write ``RUN/checkpoints/step-XXXXXX`` atomically, point ``latest`` at it, keep the newest ``keep``."""
    ckdir = Path(run) / "checkpoints"
    ckdir.mkdir(parents=True, exist_ok=True)
    name = f"step-{step:06d}"
    final = ckdir / name
    if not final.exists():
        tmp = ckdir / f".tmp-{name}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        save_file({k: v.detach().to("cpu").contiguous() for k, v in weights.items()}, str(tmp / "model.safetensors"))
        torch.save(state, tmp / "state.pt")
        (tmp / "config.json").write_text(json.dumps({**config, "step": step}, indent=2, sort_keys=True))
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


def load_checkpoint(path: Path, *, with_state: bool = True) -> tuple[dict, dict[str, torch.Tensor], dict]:
    """(config, weights, state) of a checkpoint (``state`` is {} when ``with_state`` is False)."""
    ck = resolve(path)
    try:
        config = json.loads((ck / "config.json").read_text())
        weights = load_file(str(ck / "model.safetensors"))
        state = torch.load(ck / "state.pt", weights_only=False) if with_state else {}
    except (OSError, ValueError, RuntimeError) as e:
        raise TrainError(f"{ck}: unreadable checkpoint: {e}") from None
    return config, weights, state


def has_checkpoint(run: Path) -> bool:
    return (Path(run) / LATEST).is_file()
