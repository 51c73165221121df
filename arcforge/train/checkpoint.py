"""Checkpoints and the run folder: one folder per save, written atomically, plus a ``latest`` pointer.

Layout of a run folder::

    RUN/checkpoints/step-000300/model.safetensors   # weights (unwrapped model, float32)
                               /state.safetensors   # tensors of the training state (optimizer, grokfast, RNG)
                               /state.json          # the rest (data positions, counters), see statefile.py
                               /config.json         # model + data + train configs, step, and the sha256
                                                    # and size of every other file (written last)
    RUN/latest                                      # name of the newest complete checkpoint
    RUN/run.toml                                    # run config (`arcforge train --config RUN/run.toml`)
    RUN/metrics.jsonl, RUN/tb/                      # written by the loop

A checkpoint is written into ``.tmp-step-XXXXXX`` and renamed into place; ``latest`` is replaced
atomically after that, so an interrupted save never leaves a broken ``latest``. A step folder that
already exists is replaced (never kept: it may hold another run's weights).

Reading: nothing read from a checkpoint runs code (no pickle: safetensors and JSON only). A damaged
checkpoint (a file whose checksum or size differs from config.json's, truncated weights, a weight that is
NaN or infinite, a garbage ``latest``) is named in the error; reading a run folder falls back to the newest
intact checkpoint and reports the damaged ones it skipped. A checkpoint of an older arcforge (its training
state in a pickled ``state.pt``, no checksums) is still read for its weights, never for its state.

One process writes a run folder at a time: ``run_lock`` holds an exclusive lock on it for a whole
training run (a second ``train``, ``--resume`` or ``--overwrite`` into it is refused at once).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from arcforge import fslock
from arcforge.errors import TrainError
from arcforge.train import statefile

LATEST = "latest"
RUN_TOML = "run.toml"
WEIGHTS, STATE_TENSORS, STATE_JSON, CONFIG = (
    "model.safetensors",
    "state.safetensors",
    "state.json",
    "config.json",
)
LEGACY_STATE = "state.pt"  # older arcforge: a pickle, never loaded
CKPT_FILES = (WEIGHTS, STATE_TENSORS, STATE_JSON, CONFIG, LEGACY_STATE)
STEP_RE = re.compile(r"step-\d{6,}")
_WORK_RE = re.compile(r"\.(?:tmp|old)-step-\d{6,}")
# Everything a training run writes at the top of its folder (``--overwrite`` removes these and nothing else;
# inside checkpoints/ and tb/ only the step folders' files and TensorBoard's event files, see _remove_run)
RUN_FILES = (LATEST, RUN_TOML, "metrics.jsonl", f".{LATEST}.tmp", f".{RUN_TOML}.tmp", ".metrics.jsonl.tmp")
RUN_ENTRIES = ("checkpoints", "tb", *RUN_FILES)
_TB_EVENTS = re.compile(r"events\.out\.tfevents\..+")


def _write_text_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


@contextlib.contextmanager
def run_lock(run: Path) -> Iterator[None]:
    """Hold the one-writer lock of run folder ``run`` (created if missing) while training into it."""
    run = Path(run)
    if run.exists() and not run.is_dir():
        raise TrainError(f"{run}: exists and is not a folder", hint="pass a folder for --out")
    try:
        run.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise TrainError(
            f"{run}: cannot create the run folder ({e.strerror or e})", hint="pick another --out"
        ) from None
    with fslock.exclusive(run) as got:
        if not got:
            raise TrainError(
                f"{run}: another arcforge process is training into this run folder",
                hint="wait for it to finish (or stop it), or pick another --out",
            )
        yield


def is_run(run: Path) -> bool:
    """A folder a training run wrote (its ``latest`` pointer or its ``run.toml``)."""
    return (Path(run) / LATEST).is_file() or (Path(run) / RUN_TOML).is_file()


def prepare_run_folder(run: Path, *, resume: bool, overwrite: bool) -> None:
    """Refuse to train into a folder holding anything unless resuming or ``overwrite``; with ``overwrite``
    remove only what a training run writes (``RUN_ENTRIES``), keeping the user's own files."""
    run = Path(run)
    if run.exists() and not run.is_dir():
        raise TrainError(f"{run}: exists and is not a folder", hint="pass a folder for --out")
    if resume:
        if not has_checkpoint(run):
            raise TrainError(
                f"{run}: --resume, but there is no checkpoint to resume from",
                hint="drop --resume to start a new run there, or pass the --out of an earlier run",
            )
        return
    present = sorted(p.name for p in run.iterdir()) if run.is_dir() else []
    if present:
        _check_overwrite(run, present, overwrite)
        _remove_run(run)


def _check_overwrite(run: Path, present: list[str], overwrite: bool) -> None:
    """Refuse a folder holding ``present`` unless ``overwrite`` and it is a run's, or holds none of the names
    a run writes (then only the user's files are there, and they stay)."""
    if overwrite and (is_run(run) or not any(n in RUN_ENTRIES for n in present)):
        return
    what = "an earlier run" if is_run(run) else "files arcforge did not write"
    raise TrainError(
        f"{run}: the run folder already holds {what} ({', '.join(present[:4])}"
        f"{', ...' if len(present) > 4 else ''})",
        hint="continue it with --resume, replace the run with --overwrite, or pick another --out"
        if is_run(run)
        else "pick another --out (nothing there was changed)",
    )


def _unlink_file(p: Path) -> None:
    """Remove ``p`` if it is a file or a link (never a folder)."""
    if p.is_file() or p.is_symlink():
        p.unlink()


def _is_folder(p: Path) -> bool:
    return p.is_dir() and not p.is_symlink()


def _remove_run(run: Path) -> None:
    """Delete what a training run wrote in ``run``: its top files, the step folders' files in checkpoints/
    and TensorBoard's event files in tb/; anything else (the user's) stays."""
    for name in RUN_FILES:
        _unlink_file(run / name)
    ck = run / "checkpoints"
    if _is_folder(ck):
        for d in ck.iterdir():
            if _is_folder(d) and (STEP_RE.fullmatch(d.name) or _WORK_RE.fullmatch(d.name)):
                for name in CKPT_FILES:
                    _unlink_file(d / name)
                _rmdir_if_empty(d)
        _rmdir_if_empty(ck)
    tb = run / "tb"
    if _is_folder(tb):
        for f in tb.iterdir():
            if _TB_EVENTS.fullmatch(f.name):
                _unlink_file(f)
        _rmdir_if_empty(tb)


def _rmdir_if_empty(d: Path) -> None:
    with contextlib.suppress(OSError):
        d.rmdir()


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def non_finite(tensors: dict[str, torch.Tensor]) -> list[str]:
    """Names of the floating-point tensors holding a NaN or an infinity."""
    return [k for k, v in tensors.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]


def save_checkpoint(
    run: Path,
    step: int,
    weights: dict[str, torch.Tensor],
    state: dict[str, Any],
    config: dict[str, Any],
    *,
    keep: int = 3,
) -> Path:
    """Write ``RUN/checkpoints/step-XXXXXX`` atomically, point ``latest`` at it, keep the newest ``keep``.
    Weights that are not finite are never saved (the run diverged): a ``TrainError`` says so."""
    weights = {k: v.detach().to("cpu").contiguous() for k, v in weights.items()}
    bad = non_finite(weights)
    if bad:
        raise TrainError(
            f"{run}: training diverged at step {step}: {len(bad)} weight tensor(s) hold NaN or "
            f"infinite values ({', '.join(bad[:3])}); no checkpoint was written for it",
            hint="lower --lr (or raise --warmup), then --resume from the last checkpoint",
        )
    ckdir = Path(run) / "checkpoints"
    ckdir.mkdir(parents=True, exist_ok=True)
    name = f"step-{step:06d}"
    final = ckdir / name
    tmp = ckdir / f".tmp-{name}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    tree, tensors = statefile.flatten(state)
    save_file(weights, str(tmp / WEIGHTS))
    save_file(tensors, str(tmp / STATE_TENSORS))
    (tmp / STATE_JSON).write_text(json.dumps(tree))
    files = {
        n: {"sha256": _digest(tmp / n), "bytes": (tmp / n).stat().st_size}
        for n in (WEIGHTS, STATE_TENSORS, STATE_JSON)
    }
    (tmp / CONFIG).write_text(json.dumps({**config, "step": step, "files": files}, indent=2, sort_keys=True))
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
        olds = sorted(p for p in ckdir.iterdir() if p.is_dir() and STEP_RE.fullmatch(p.name))
        for p in olds[:-keep]:
            if p != final:
                shutil.rmtree(p, ignore_errors=True)
    return final


def _latest_name(run: Path) -> str:
    """The step folder ``RUN/latest`` names; a ``TrainError`` for a pointer that is not one."""
    p = Path(run) / LATEST
    try:
        name = p.read_bytes()[:64].decode("ascii").strip()
    except (OSError, UnicodeDecodeError):
        name = ""
    if not STEP_RE.fullmatch(name):
        raise TrainError(f"{p}: damaged (it does not name a checkpoint folder step-NNNNNN)")
    return name


def resolve(path: Path) -> Path:
    """A checkpoint folder from a run folder (its ``latest``) or a checkpoint folder itself."""
    path = Path(path)
    if (path / WEIGHTS).is_file():
        return path
    if (path / LATEST).is_file():
        ck = path / "checkpoints" / _latest_name(path)
        if (ck / WEIGHTS).is_file():
            return ck
        raise TrainError(f"{path / LATEST} points at {ck}, which is missing or incomplete")
    raise TrainError(
        f"{path}: no checkpoint found (neither a run folder with 'latest' nor a checkpoint)",
        hint="pass the --out folder of `arcforge train` or one of its checkpoints/step-* folders",
    )


def _damaged(p: Path, why: str) -> TrainError:
    return TrainError(f"{p}: damaged checkpoint file ({why})")


def _read_config(ck: Path) -> dict:
    p = ck / CONFIG
    if not p.is_file():
        raise TrainError(f"{p}: missing (incomplete checkpoint)")
    try:
        config = json.loads(p.read_bytes())
    except (OSError, ValueError, RecursionError) as e:
        raise _damaged(
            p, f"not JSON: {str(e).splitlines()[0][:120] if str(e) else type(e).__name__}"
        ) from None
    if not isinstance(config, dict) or not isinstance(config.get("model"), dict):
        raise _damaged(p, "no [model] table: not a config.json of arcforge train")
    files = config.get("files", {})
    if not isinstance(files, dict) or not all(isinstance(v, dict) for v in files.values()):
        raise _damaged(p, "its list of files is malformed")
    return config


def _checked(ck: Path, name: str, config: dict) -> Path:
    """``ck/name``, once its size and sha256 match what config.json recorded (when it recorded them)."""
    p = ck / name
    if not p.is_file():
        raise TrainError(f"{p}: missing (incomplete checkpoint)")
    want = config.get("files", {}).get(name)
    if want is not None:
        size = p.stat().st_size
        if size != want.get("bytes"):
            raise _damaged(p, f"{size:,} bytes, config.json recorded {want.get('bytes')!r}")
        if _digest(p) != want.get("sha256"):
            raise _damaged(p, "its sha256 differs from the one config.json recorded")
    return p


def _load_tensors(p: Path) -> dict[str, torch.Tensor]:
    try:
        got = load_file(str(p))
    except Exception as e:  # truncated / foreign files: safetensors raises several kinds
        raise _damaged(
            p,
            f"{p.stat().st_size:,} bytes, {type(e).__name__}: "
            f"{str(e).splitlines()[0][:160] if str(e) else 'unreadable'}",
        ) from None
    bad = non_finite(got)
    if bad:
        raise _damaged(p, f"{len(bad)} tensor(s) hold NaN or infinite values: {', '.join(bad[:3])}")
    return got


def _read_state(ck: Path, config: dict) -> dict:
    if not (ck / STATE_JSON).is_file() and (ck / LEGACY_STATE).is_file():
        raise TrainError(
            f"{ck / LEGACY_STATE}: the training state of an older arcforge, a pickle, which is "
            "never loaded (reading a pickle can run code)",
            hint="evaluate the checkpoint (eval reads only its weights), or start a new run",
        )
    tensors = _load_tensors(_checked(ck, STATE_TENSORS, config))
    p = _checked(ck, STATE_JSON, config)
    try:
        tree = json.loads(p.read_bytes())
    except (ValueError, RecursionError):
        raise _damaged(p, "not JSON") from None
    state = statefile.unflatten(tree, tensors, p)
    if not isinstance(state, dict) or not isinstance(state.get("step"), int):
        raise _damaged(p, "no training state in it")
    return state


def read_checkpoint(ck: Path, *, with_state: bool = True) -> tuple[dict, dict[str, torch.Tensor], dict]:
    """(config, weights, state) of one checkpoint folder; a ``TrainError`` naming the damaged file."""
    ck = Path(ck)
    config = _read_config(ck)
    weights = _load_tensors(_checked(ck, WEIGHTS, config))
    state = _read_state(ck, config) if with_state else {}
    return config, weights, state


@dataclass
class Loaded:
    path: Path  # the checkpoint folder used
    config: dict
    weights: dict[str, torch.Tensor]
    state: dict
    skipped: list[str] = field(default_factory=list)  # one line per damaged newer checkpoint


def _newest_first(run: Path, ckdir: Path) -> tuple[list[str], list[str]]:
    """The step folders of ``run`` to try, newest first: ``latest`` then the older ones, or when the
    pointer is damaged every step folder (then its error is the first line of the second list)."""
    names = (
        sorted((p.name for p in ckdir.iterdir() if p.is_dir() and STEP_RE.fullmatch(p.name)), reverse=True)
        if ckdir.is_dir()
        else []
    )
    try:
        latest = _latest_name(run)
    except TrainError as e:  # a damaged pointer: the newest step folder that reads
        return names, [e.message]
    return [latest] + [n for n in names if n < latest], []


def load_latest_intact(path: Path, *, with_state: bool = True) -> Loaded:
    """The checkpoint ``path`` names: a checkpoint folder (must be intact), or a run folder, where the
    newest intact checkpoint is used (from ``latest`` back through older ones; damaged ones are listed)."""
    path = Path(path)
    if (path / WEIGHTS).exists() or (path / CONFIG).exists():
        return Loaded(path, *read_checkpoint(path, with_state=with_state))
    if not has_checkpoint(path):
        resolve(path)  # raises the "no checkpoint found" error
    ckdir = path / "checkpoints"
    order, skipped = _newest_first(path, ckdir)
    first_error = skipped[0] if skipped else None
    for name in order:
        try:
            return Loaded(
                ckdir / name, *read_checkpoint(ckdir / name, with_state=with_state), skipped=skipped
            )
        except TrainError as e:
            first_error = first_error or e.message
            skipped.append(e.message)
    raise TrainError(
        f"{first_error or f'{ckdir}: no checkpoint folder in it'}; no older intact checkpoint in {ckdir}",
        hint="start a new run (--overwrite) or restore the file",
    )


def load_checkpoint(path: Path, *, with_state: bool = True) -> tuple[dict, dict[str, torch.Tensor], dict]:
    """(config, weights, state) of a checkpoint (``state`` is {} when ``with_state`` is False)."""
    got = load_latest_intact(path, with_state=with_state)
    return got.config, got.weights, got.state


def fit_weights(model: torch.nn.Module, weights: dict[str, torch.Tensor], where: Path) -> None:
    """Load ``weights`` into ``model``, or a ``TrainError`` naming ``where`` and every tensor that is missing,
    extra, or of another shape or type than the model's (a checkpoint of another config, foreign tensors)."""
    own = model.state_dict()
    missing = sorted(set(own) - set(weights))
    extra = sorted(set(weights) - set(own))
    wrong = sorted(
        f"{k} {tuple(weights[k].shape)} {str(weights[k].dtype).removeprefix('torch.')}"
        for k in set(own) & set(weights)
        if weights[k].shape != own[k].shape or weights[k].dtype != own[k].dtype
    )
    if missing or extra or wrong:
        parts = [
            f"{what} {', '.join(names[:3])}{', ...' if len(names) > 3 else ''}"
            for what, names in (
                ("missing", missing),
                ("not in the model", extra),
                ("of another shape or type", wrong),
            )
            if names
        ]
        raise TrainError(
            f"{where}: the weights do not fit the model its config.json describes ({'; '.join(parts)})",
            hint="a checkpoint from another model or a damaged one: use the run's own checkpoint",
        )
    model.load_state_dict(weights)


def has_checkpoint(run: Path) -> bool:
    return (Path(run) / LATEST).is_file()
