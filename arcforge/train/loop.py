"""The training loop: AdamW, warmup + cosine, clipping, accumulation, bf16 autocast on CUDA, optional
torch.compile, Grokfast, DDP (torchrun), eval, metrics, atomic checkpoints and exact resume.

Loss normalisation: the loss of one optimizer step is the sum of token losses over all micro-batches
and ranks divided by the global number of target tokens (all-reduced first). Each rank backpropagates
``sum * world / N`` so that DDP's gradient *average* gives exactly the global mean, whatever the split
of rows across ranks and micro-batches; hence 1 process with the global batch and N processes reach
the same parameters.

Order inside a step: backward (DDP all-reduces in the last micro-batch) -> [AMP unscale: not needed
for bf16] -> Grokfast (skipped on inf/NaN gradients) -> clip -> AdamW step (skipped on a non-finite
gradient norm).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.utils.data import DataLoader

from arcforge import __version__
from arcforge.errors import TrainError
from arcforge.progress import NULL_PROGRESS, Progress
from arcforge.shards import iter_batches, list_shards, read_tasks
from arcforge.train import checkpoint as ckpt
from arcforge.train.config import Amp, DataConfig, ModelConfig, RunConfig, TrainConfig, write_toml_atomic
from arcforge.train.data import DataPosition, PackedBatches
from arcforge.train.device import available_memory, check_cpus, choose_threads, pick_device, use_bf16
from arcforge.train.evaluate import evaluate_tasks
from arcforge.train.grokfast import Grokfast
from arcforge.train.model import ArcTransformer, n_params

try:  # TensorBoard is optional
    from torch.utils.tensorboard import SummaryWriter
except Exception:  # pragma: no cover - depends on the install
    SummaryWriter = None


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warmup to ``lr`` over ``warmup_steps``, then cosine to ``lr * min_lr_ratio`` at max_steps."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    span = max(1, cfg.max_steps - cfg.warmup_steps)
    t = min(1.0, (step - cfg.warmup_steps) / span)
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t)))


NAN_PATIENCE = 10  # steps in a row with a NaN/inf loss (each one skipped) before a run stops as diverged


def memory_needed(model_cfg: ModelConfig, data_cfg: DataConfig) -> int:
    """A rough upper estimate of the bytes one training step needs: parameters with AdamW state and
    gradients, activations, the [B, T, T] block mask of a packed batch and one layer's attention scores."""
    b, t, d = data_cfg.batch_size, data_cfg.seq_len, model_cfg.d_model
    params = n_params(model_cfg) * 4 * 4  # weights, grads, two AdamW moments
    acts = b * t * (12 * d + 3 * model_cfg.d_ff) * 4 * model_cfg.n_layers
    masks = 3 * b * t * t  # bool: same-segment, causal, their conjunction
    scores = b * model_cfg.n_heads * t * t * 4
    logits = 3 * b * t * model_cfg.vocab_size * 4
    return params + acts + masks + scores + logits


def _gib(n: float) -> str:
    return f"{n / 2**30:.1f} GiB"


def check_memory(
    model_cfg: ModelConfig, data_cfg: DataConfig, device: torch.device, cfg: TrainConfig | None = None
) -> None:
    """Refuse up front, with the size needed, a step that cannot fit in the memory available now (and
    Grokfast's MA window of past gradients, ``--grokfast-window`` copies of the parameters)."""
    need = memory_needed(model_cfg, data_cfg)
    if device.type == "cuda":
        have = torch.cuda.mem_get_info(device)[0]
    else:
        have = available_memory()
        if have is None:
            return
    window = cfg.grokfast.window if cfg is not None and cfg.grokfast.kind == "ma" else 0
    if window and need + window * n_params(model_cfg) * 4 > have:
        raise TrainError(
            f"--grokfast-window {window} keeps {window} copies of the gradients: about "
            f"{_gib(need + window * n_params(model_cfg) * 4)} with the training step; "
            f"{_gib(have)} is available on {device}",
            hint="lower --grokfast-window",
        )
    if need > have:
        raise TrainError(
            f"--seq-len {data_cfg.seq_len} x --batch-size {data_cfg.batch_size} needs about "
            f"{_gib(need)} per training step; {_gib(have)} is available on {device}",
            hint="lower --seq-len or --batch-size (use --grad-accum for a larger batch)",
        )


def has_split(data_cfg: DataConfig, split: str) -> bool:
    return bool(list_shards(Path(data_cfg.root), data_cfg.sources, [split]))


def check_eval_split(data_cfg: DataConfig, cfg: TrainConfig) -> None:
    """A named ``--eval-split`` that the dataset lacks is a ``TrainError`` up front (the default one,
    ``evaluation``, may be missing: the in-training eval is then off)."""
    if cfg.eval_tasks == 0 or cfg.eval_split == TrainConfig.eval_split or has_split(data_cfg, cfg.eval_split):
        return
    splits = sorted({s.split for s in list_shards(Path(data_cfg.root), data_cfg.sources, None)})
    raise TrainError(
        f"--eval-split {cfg.eval_split}: {data_cfg.root} has no such split"
        + (f" in source(s) {', '.join(data_cfg.sources)}" if data_cfg.sources else ""),
        hint=f"use one of {', '.join(splits) or 'none'}, or --eval-tasks 0",
    )


def check_workers(cfg: TrainConfig) -> None:
    """Loader workers and CPU threads within what this machine has (a ``TrainError`` naming the option)."""
    check_cpus("--workers", cfg.num_workers)
    check_cpus("--threads", cfg.threads)


def init_distributed() -> tuple[int, int]:
    """Join the torchrun process group when WORLD_SIZE > 1 (nccl on GPU, gloo on CPU)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict:
    st = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        st["cuda"] = torch.cuda.get_rng_state_all()
    return st


def set_rng_state(st: dict) -> None:
    torch.set_rng_state(st["torch"])
    np.random.set_state(st["numpy"])
    random.setstate(st["python"])
    if "cuda" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(st["cuda"])


def token_loss_sum(model: torch.nn.Module, batch: dict, device: torch.device) -> tuple[torch.Tensor, int]:
    """Sum of next-token cross-entropy over target tokens of a packed batch, and their count."""
    tokens = batch["tokens"].to(device, non_blocking=True)
    logits = model(
        tokens,
        batch["positions"].to(device, non_blocking=True),
        batch["segments"].to(device, non_blocking=True),
    )  # [B, T, V]
    mask = batch["targets"][:, 1:].to(device, non_blocking=True)
    loss = F.cross_entropy(logits[:, :-1][mask], tokens[:, 1:][mask], reduction="sum")
    return loss, int(batch["targets"][:, 1:].sum())


class Trainer:
    """Owns model, optimizer and Grokfast; ``step(micro_batches)`` is one optimizer step."""

    def __init__(self, model_cfg: ModelConfig, train_cfg: TrainConfig, *, device: torch.device | None = None):
        self.rank, self.world = (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)
        self.cfg = train_cfg
        self.model_cfg = model_cfg
        self.device = device or pick_device(train_cfg.device)
        seed_everything(train_cfg.seed)
        self.model = ArcTransformer(model_cfg).to(self.device)
        self.net: torch.nn.Module = self.model
        if self.world > 1:
            self.net = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None
            )
        if train_cfg.compile:
            self.net = torch.compile(self.net)
        decay = [p for p in self.model.parameters() if p.dim() >= 2]
        no_decay = [p for p in self.model.parameters() if p.dim() < 2]
        self.opt = torch.optim.AdamW(
            [
                {"params": decay, "weight_decay": train_cfg.weight_decay},
                {"params": no_decay, "weight_decay": 0.0},
            ],
            lr=train_cfg.lr,
            betas=(train_cfg.beta1, train_cfg.beta2),
            fused=self.device.type == "cuda",
        )
        self.grokfast = Grokfast(self.model, train_cfg.grokfast)
        self.step_no = 0
        self.tokens_seen = 0
        self._set_bf16(use_bf16(self.device, train_cfg.amp))

    def _set_bf16(self, on: bool) -> None:
        if self.world > 1:  # every rank computes alike: bf16 only if all chose it
            t = torch.tensor([float(on)], device=self.device)
            dist.all_reduce(t, op=dist.ReduceOp.MIN)
            on = bool(t.item())
        self.bf16 = on
        self.autocast = (
            torch.autocast(self.device.type, dtype=torch.bfloat16) if on else contextlib.nullcontext()
        )

    def _all_sum(self, x: float) -> float:
        if self.world == 1:
            return x
        t = torch.tensor([x], dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return float(t.item())

    def step(self, micro_batches: list[dict]) -> dict:
        """Forward/backward every micro-batch, then filter, clip and update. Returns step metrics."""
        n_local = sum(int(b["targets"][:, 1:].sum()) for b in micro_batches)
        n_global = self._all_sum(float(n_local))
        if n_global == 0:
            raise TrainError("a training batch has no target tokens")
        lr = lr_at(self.step_no, self.cfg)
        for g in self.opt.param_groups:
            g["lr"] = lr
        loss_sum = 0.0
        for i, b in enumerate(micro_batches):
            sync = i == len(micro_batches) - 1
            ctx = self.net.no_sync() if (self.world > 1 and not sync) else contextlib.nullcontext()
            with ctx:
                with self.autocast:
                    s, _ = token_loss_sum(self.net, b, self.device)
                (s * (self.world / n_global)).backward()
            loss_sum += float(s.detach())
        filtered = self.grokfast.step(skip_if_nonfinite=True)
        gnorm = torch.nn.utils.clip_grad_norm_(
            self.model.parameters(), self.cfg.grad_clip if self.cfg.grad_clip > 0 else float("inf")
        )
        finite = bool(torch.isfinite(gnorm))
        if finite:
            self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        self.step_no += 1
        real = sum(int((b["segments"] > 0).sum()) for b in micro_batches)
        self.tokens_seen += int(self._all_sum(float(real)))
        return {
            "step": self.step_no,
            "loss": self._all_sum(loss_sum) / n_global,
            "lr": lr,
            "grad_norm": float(gnorm),
            "skipped": not finite,
            "grokfast": filtered,
            "target_tokens": int(n_global),
        }

    def state(self) -> dict:
        return {
            "optimizer": self.opt.state_dict(),
            "grokfast": self.grokfast.state_dict(),
            "rng": rng_state(),
            "step": self.step_no,
            "tokens_seen": self.tokens_seen,
            "bf16": self.bf16,
        }

    def load_state(self, weights: dict, state: dict, where: Path | None = None) -> None:
        """Weights and training state of a checkpoint (``where``: its folder, named in a ``TrainError``
        when they do not fit this model and optimizer)."""
        where = where or Path("checkpoint")
        ckpt.fit_weights(self.model, weights, where)
        try:
            self.opt.load_state_dict(state["optimizer"])
            for group in self.opt.param_groups:
                for p in group["params"]:
                    for k, v in self.opt.state.get(p, {}).items():
                        if isinstance(v, torch.Tensor) and v.dim() and v.shape != p.shape:
                            raise ValueError(
                                f"optimizer {k} of shape {tuple(v.shape)} for a {tuple(p.shape)}"
                            )
            self.grokfast.load_state_dict(state["grokfast"])
            self.step_no = int(state["step"])
            self.tokens_seen = int(state.get("tokens_seen", 0))
            set_rng_state(state["rng"])
        except TrainError:
            raise
        except (KeyError, TypeError, ValueError, IndexError, RuntimeError, AttributeError) as e:
            raise TrainError(
                f"{where}: its training state does not fit this run ({type(e).__name__}: "
                f"{str(e).splitlines()[0][:160] if str(e) else 'malformed'})",
                hint="a damaged or foreign checkpoint: restore it, or start a new run",
            ) from None
        if self.cfg.amp == Amp.auto and "bf16" in state:  # a resumed run keeps the choice --amp auto made
            self._set_bf16(bool(state["bf16"]))


def _gather(obj: object, world: int) -> list:
    if world == 1:
        return [obj]
    out: list = [None] * world
    dist.all_gather_object(out, obj)
    return out


def _data_state(loaded: ckpt.Loaded) -> dict:
    """The data stream's saved position, checked (a ``TrainError`` naming the checkpoint if malformed)."""
    d = loaded.state.get("data")
    ok = (
        isinstance(d, dict)
        and all(isinstance(d.get(k), int) for k in ("world", "num_workers", "batches"))
        and isinstance(d.get("positions"), list)
        and all(isinstance(p, dict) for p in d["positions"])
    )
    if not ok:
        raise TrainError(f"{loaded.path}: damaged checkpoint (its data position is malformed)")
    return d


def _trim_metrics(path: Path, step: int) -> None:
    """On resume, drop metric lines written after the checkpoint (they will be written again)."""
    if not path.is_file():
        return
    keep = []
    for ln in path.read_text(errors="replace").splitlines():
        try:
            rec = json.loads(ln)
        except ValueError:  # a line cut short by a kill mid-write: dropped
            continue
        if isinstance(rec, dict) and isinstance(rec.get("step", 0), int) and rec.get("step", 0) <= step:
            keep.append(ln)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("".join(ln + "\n" for ln in keep))
    os.replace(tmp, path)


# Data-stream settings a resumed run must share with its checkpoint (else its saved position means nothing).
_STREAM_FIELDS = (
    "sources",
    "splits",
    "seq_len",
    "chunk_tasks",
    "shuffle_tasks",
    "loss_on",
    "augment",
    "seed",
)


def resume_mismatch(saved: dict, run: RunConfig) -> list[str]:
    """``name: saved -> now`` for every model option and data-stream setting that differs from the
    checkpoint's (the model cannot change under a resumed run)."""
    out = []
    now_model = run.model.to_dict()
    saved_model = ModelConfig.from_checkpoint(saved.get("model", {})).to_dict()
    for k, v in now_model.items():
        if k != "extra" and saved_model.get(k) != v:
            out.append(f"model.{k}: {saved_model.get(k)!r} -> {v!r}")
    now_data, saved_data = run.data.to_dict(), saved.get("data", {})
    for k in _STREAM_FIELDS:
        if k in saved_data and saved_data[k] != now_data[k]:
            out.append(f"data.{k}: {saved_data[k]!r} -> {now_data[k]!r}")
    return out


def _close_loader(it: object) -> None:
    shutdown = getattr(it, "_shutdown_workers", None)  # torch's multi-process loader iterator
    if shutdown is not None:
        shutdown()


def _init_worker(_worker_id: int) -> None:
    """DataLoader workers leave Ctrl-C to the main process (which finishes the step and saves), and stay quiet
    when the main process stops reading: a batch's shared-memory handle that a worker is still sending when
    the loader shuts down breaks its pipe in multiprocessing's handle-sharing thread, which would print a
    traceback (kept with ``ARCFORGE_DEBUG=1``)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if not os.environ.get("ARCFORGE_DEBUG"):
        sys.excepthook = _quiet_when_unread


def _quiet_when_unread(kind: type[BaseException], value: BaseException, tb: Any) -> None:
    """A worker's excepthook: a closed pipe means the main process is gone or done; anything else is shown."""
    if not issubclass(kind, (BrokenPipeError, ConnectionResetError)):
        sys.__excepthook__(kind, value, tb)


class TrainInterrupted(KeyboardInterrupt):
    """A run stopped by Ctrl-C after saving ``checkpoint`` (the folder of the steps done; None if none)."""

    def __init__(self, checkpoint: Path | None) -> None:
        super().__init__()
        self.checkpoint = checkpoint


class _Interrupts:
    """Ctrl-C during training: the first SIGINT lets the running step finish (the loop then saves a
    checkpoint of exactly the steps done and raises ``TrainInterrupted``); a second one stops at once
    (a plain KeyboardInterrupt, even mid-save); any later one is ignored while the run winds down."""

    def __init__(self) -> None:
        self.requested = False
        self.count = 0
        self._old = None

    def __enter__(self) -> _Interrupts:
        import signal
        import threading

        if threading.current_thread() is threading.main_thread():
            self._old = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        self.count += 1
        self.requested = True
        if self.count == 2:
            raise KeyboardInterrupt

    def __exit__(self, *exc: object) -> None:
        import signal

        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)


def train(
    model_cfg: ModelConfig,
    data_cfg: DataConfig,
    cfg: TrainConfig,
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: Progress | None = None,
    on_log: Callable[[dict], None] | None = None,
    on_step: Callable[[dict], None] | None = None,
) -> dict:
    """Train; returns a summary ``{"history": [...], "eval": {...}, "checkpoint": path, ...}``.

    The run folder ``cfg.out`` must be empty or new, unless ``resume`` (continue its newest intact
    checkpoint; the model and data stream must not change) or ``overwrite`` (remove the earlier run's
    files first). ``on_log`` receives every logged record (step metrics every ``log_every`` steps, eval
    records); ``on_step`` a status record after every step (step, loss, tokens/s, s/step, ETA).
    Ctrl-C finishes the running step, saves a checkpoint and re-raises ``KeyboardInterrupt``.
    """
    progress = progress or NULL_PROGRESS
    run_cfg = RunConfig(model=model_cfg, data=data_cfg, train=cfg)  # the model's context = data.seq_len
    model_cfg = run_cfg.model
    owns_group = not dist.is_initialized()  # we tear down only a process group we created
    rank, world = init_distributed()
    owns_group = owns_group and dist.is_initialized()
    run = Path(cfg.out)
    main = rank == 0
    device = pick_device(cfg.device)
    check_workers(cfg)
    check_eval_split(data_cfg, cfg)
    if main and resume and not ckpt.has_checkpoint(run):
        ckpt.prepare_run_folder(run, resume=True, overwrite=False)  # says there is nothing to resume
    with ckpt.run_lock(run) if main else contextlib.nullcontext():  # one writer per run folder
        if main:
            ckpt.prepare_run_folder(run, resume=resume, overwrite=overwrite)
        check_memory(model_cfg, data_cfg, device, cfg)
        if world > 1:
            dist.barrier()  # the run folder is ready before any rank reads it
        loaded = ckpt.load_latest_intact(run) if resume else None
        if loaded is not None:
            diff = resume_mismatch(loaded.config, run_cfg)
            if diff:
                raise TrainError(
                    f"{run}: --resume with other options than the checkpoint's ({'; '.join(diff)})",
                    hint="resume without changing model or data options, "
                    "or start a new run (another --out, or --overwrite)",
                )
        threads_before = torch.get_num_threads()
        if device.type == "cpu":
            local = int(os.environ.get("LOCAL_WORLD_SIZE", world))
            torch.set_num_threads(cfg.threads or max(1, choose_threads(0) // max(1, local)))
        try:
            return _train(
                run_cfg, run, _Ranks(rank, world, main, owns_group), device, loaded, progress, on_log, on_step
            )
        finally:
            torch.set_num_threads(threads_before)


@dataclass
class _Ranks:
    """This process's place in the run: its rank, the world size, whether it is rank 0, and whether
    the run created (and so tears down) the process group."""

    rank: int
    world: int
    main: bool
    owns_group: bool


@dataclass
class _RunState:
    """What one run's steps share: the trainer, the data stream's committed position, the logs and the
    latest checkpoint and eval."""

    run_cfg: RunConfig
    run: Path
    ranks: _Ranks
    tr: Trainer
    progress: Progress
    on_log: Callable[[dict], None] | None
    on_step: Callable[[dict], None] | None
    positions: dict[int, DataPosition]
    batches_done: int
    n_workers: int
    loader: DataLoader
    writer: object | None
    config: dict
    history: list[dict] = field(default_factory=list)
    eval_tasks: list | None = None
    last_eval: dict | None = None
    stats: tuple = (0, 0, 0, 0)
    nan_streak: int = 0
    saved: Path | None = None
    saved_step: int = -1
    t0: float = 0.0
    tok0: int = 0
    step0: int = 0

    @property
    def metrics_path(self) -> Path:
        return self.run / "metrics.jsonl"

    def log(self, rec: dict) -> None:
        """Append ``rec`` to metrics.jsonl (and TensorBoard, and ``on_log``) on rank 0."""
        if not self.ranks.main:
            return
        with self.metrics_path.open("a") as f:
            f.write(json.dumps(rec, sort_keys=True) + "\n")
        if self.writer is not None:
            for k, v in rec.items():
                if k != "step" and isinstance(v, int | float) and not isinstance(v, bool):
                    self.writer.add_scalar(k, v, rec["step"])
        if self.on_log is not None:
            self.on_log(rec)

    def save(self) -> Path | None:
        """Checkpoint the completed steps (every rank gathers; rank 0 writes and returns the folder)."""
        # positions and batches_done only ever hold what the completed steps consumed
        tr, world = self.tr, self.ranks.world
        all_pos = _gather({w: (p.epoch, p.chunk, p.row) for w, p in self.positions.items()}, world)
        state = {
            **tr.state(),
            "data": {
                "positions": all_pos,
                "batches": self.batches_done,
                "world": world,
                "num_workers": self.n_workers,
            },
        }
        if not self.ranks.main:
            return None
        weights = {k: v for k, v in tr.model.state_dict().items()}
        return ckpt.save_checkpoint(
            self.run, tr.step_no, weights, state, self.config, keep=self.run_cfg.train.keep_checkpoints
        )

    def run_eval(self) -> dict | None:
        """Evaluate on the eval split's first tasks (rank 0 only); the logged record, or None."""
        data_cfg, cfg = self.run_cfg.data, self.run_cfg.train
        if not self.ranks.main or cfg.eval_tasks == 0:
            return None
        if self.eval_tasks is None:
            self.eval_tasks = (
                []
                if not has_split(data_cfg, cfg.eval_split)
                else list(
                    islice(
                        read_tasks(Path(data_cfg.root), sources=data_cfg.sources, splits=[cfg.eval_split]),
                        cfg.eval_tasks,
                    )
                )
            )
        if not self.eval_tasks:
            return None
        res = evaluate_tasks(
            self.tr.model,
            self.eval_tasks,
            seq_len=data_cfg.seq_len,
            device=self.tr.device,
            votes=cfg.eval_votes,
        )
        rec = {"step": self.tr.step_no, **{f"eval/{k}": v for k, v in res.metrics.items()}}
        self.log(rec)
        return rec

    def stop_requested(self, flag: bool) -> bool:
        """Whether any rank asked to stop (every rank stops at the same step)."""
        if self.ranks.world == 1:
            return flag
        t = torch.tensor([float(flag)], device=self.tr.device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)  # every rank stops at the same step
        return bool(t.item())


def _train(
    run_cfg: RunConfig,
    run: Path,
    ranks: _Ranks,
    device: torch.device,
    loaded: ckpt.Loaded | None,
    progress: Progress,
    on_log: Callable[[dict], None] | None,
    on_step: Callable[[dict], None] | None,
) -> dict:
    st = _setup_run(run_cfg, run, ranks, device, loaded, progress, on_log, on_step)
    _start_clock(st, loaded)
    it = iter(st.loader)
    _run_steps(st, it)
    return _finish_run(st, loaded)


def _setup_run(
    run_cfg: RunConfig,
    run: Path,
    ranks: _Ranks,
    device: torch.device,
    loaded: ckpt.Loaded | None,
    progress: Progress,
    on_log: Callable[[dict], None] | None,
    on_step: Callable[[dict], None] | None,
) -> _RunState:
    """Build the trainer (restored from ``loaded`` if resuming), prepare the run folder and open the data."""
    model_cfg, cfg = run_cfg.model, run_cfg.train
    tr = Trainer(model_cfg, cfg, device=device)
    positions: dict[int, DataPosition] = {}
    batches_done = 0
    if loaded is not None:
        positions, batches_done = _resume_trainer(tr, loaded, run, ranks, cfg)
    if ranks.main:
        run.mkdir(parents=True, exist_ok=True)
        _trim_metrics(run / "metrics.jsonl", tr.step_no)
        write_toml_atomic(run / ckpt.RUN_TOML, run_cfg.to_dict())
    n_workers = max(1, cfg.num_workers)
    loader = _open_loader(run_cfg.data, cfg, tr, positions, batches_done % n_workers)
    writer = SummaryWriter(str(run / "tb")) if (ranks.main and cfg.tensorboard and SummaryWriter) else None
    config = {**run_cfg.to_dict(), "arcforge": __version__, "params": n_params(model_cfg)}
    return _RunState(
        run_cfg=run_cfg,
        run=run,
        ranks=ranks,
        tr=tr,
        progress=progress,
        on_log=on_log,
        on_step=on_step,
        positions=positions,
        batches_done=batches_done,
        n_workers=n_workers,
        loader=loader,
        writer=writer,
        config=config,
    )


def _resume_trainer(
    tr: Trainer, loaded: ckpt.Loaded, run: Path, ranks: _Ranks, cfg: TrainConfig
) -> tuple[dict[int, DataPosition], int]:
    """Restore the trainer from ``loaded``; this rank's saved data positions and the batches consumed."""
    tr.load_state(loaded.weights, loaded.state, loaded.path)
    data_state = _data_state(loaded)
    world = ranks.world
    if data_state["world"] != world or data_state["num_workers"] != max(1, cfg.num_workers):
        raise TrainError(
            f"{run}: checkpoint was written with world_size={data_state['world']}, "
            f"num_workers={data_state['num_workers']}; this run has {world}, {cfg.num_workers}",
            hint="resume with the same number of processes and --workers",
        )
    try:
        positions = {
            int(w): DataPosition(*map(int, p)) for w, p in data_state["positions"][ranks.rank].items()
        }
    except (TypeError, ValueError, IndexError):
        raise TrainError(f"{loaded.path}: damaged checkpoint (its data position is malformed)") from None
    return positions, int(data_state["batches"])


def _open_loader(
    data_cfg: DataConfig, cfg: TrainConfig, tr: Trainer, positions: dict[int, DataPosition], first_worker: int
) -> DataLoader:
    """The packed-batch loader, resuming at ``positions``; the data selection is checked first."""
    n_workers = max(1, cfg.num_workers)
    # the selection exists and opens, checked here, before any loader worker (its errors come back wrapped)
    next(
        iter_batches(Path(data_cfg.root), sources=data_cfg.sources, splits=data_cfg.splits, batch_size=1),
        None,
    )
    ds = PackedBatches(data_cfg, num_workers=n_workers, positions=positions, first_worker=first_worker)
    return DataLoader(
        ds,
        batch_size=None,
        num_workers=cfg.num_workers,
        worker_init_fn=_init_worker,
        pin_memory=tr.device.type == "cuda",
        persistent_workers=False,
    )


def _start_clock(st: _RunState, loaded: ckpt.Loaded | None) -> None:
    """Start the progress bar and the throughput clock; the resumed checkpoint counts as saved."""
    cfg, tr = st.run_cfg.train, st.tr
    st.progress.start("train", "train", total=cfg.max_steps)
    st.progress.update("train", completed=tr.step_no)
    st.t0 = time.perf_counter()
    st.tok0 = tr.tokens_seen
    st.step0 = tr.step_no
    st.saved = loaded.path if loaded is not None else None
    st.saved_step = tr.step_no if loaded is not None else -1


def _run_steps(st: _RunState, it: object) -> None:
    """The step loop; on Ctrl-C it saves the completed steps and raises ``TrainInterrupted``."""
    with _Interrupts() as interrupts:
        try:
            while st.tr.step_no < st.run_cfg.train.max_steps:
                rec = _train_step(st, it)
                _after_step(st, rec, interrupts)
        except BaseException as e:
            if not isinstance(e, KeyboardInterrupt) and not interrupts.requested:
                raise
            if st.saved_step != st.tr.step_no:  # only what the completed steps consumed is saved
                st.saved = st.save()
            st.progress.finish("train")
            raise TrainInterrupted(st.saved) from None
        finally:
            _close_loader(it)  # its workers stop now, while Ctrl-C is still ours (not in a late __del__)
            if st.writer is not None:
                st.writer.flush()


def _train_step(st: _RunState, it: object) -> dict:
    """One optimizer step over ``grad_accum`` micro-batches; commits the data position, returns its record."""
    cfg, tr = st.run_cfg.train, st.tr
    micro, new_pos = [], dict(st.positions)
    for _ in range(cfg.grad_accum):
        b = next(it)  # an arcforge error from a loader worker keeps its one line (errors.py)
        new_pos[b["worker"]] = DataPosition(*b["position"])
        st.stats = b["stats"]
        micro.append(b)
    rec = tr.step(micro)
    st.nan_streak = 0 if math.isfinite(rec["loss"]) else st.nan_streak + 1
    if st.nan_streak >= NAN_PATIENCE or (st.nan_streak and tr.step_no >= cfg.max_steps):
        raise TrainError(
            f"{st.run}: the loss is {rec['loss']} at step {tr.step_no} ({st.nan_streak} "
            "step(s) in a row): the run diverged, its steps were skipped",
            hint="lower --lr, or --resume from an earlier checkpoint",
        )
    st.positions.update(new_pos)  # committed only once the step is done
    st.batches_done += len(micro)
    st.history.append(rec)
    st.progress.advance("train")
    return rec


def _after_step(st: _RunState, rec: dict, interrupts: _Interrupts) -> None:
    """Report the step, then log, evaluate and checkpoint when due; stop on a requested Ctrl-C."""
    cfg, tr = st.run_cfg.train, st.tr
    dt = time.perf_counter() - st.t0
    done = tr.step_no - st.step0
    rec = {
        **rec,
        "tokens_per_s": (tr.tokens_seen - st.tok0) / max(dt, 1e-9),
        "tokens": tr.tokens_seen,
        "elapsed_s": dt,
        "s_per_step": dt / max(1, done),
        "eta_s": dt / max(1, done) * (cfg.max_steps - tr.step_no),
    }
    if st.ranks.main and st.on_step is not None:
        st.on_step({**rec, "max_steps": cfg.max_steps})
    if tr.step_no % cfg.log_every == 0 or tr.step_no == cfg.max_steps:
        st.log(rec)
    if cfg.eval_every and tr.step_no % cfg.eval_every == 0 and tr.step_no < cfg.max_steps:
        st.last_eval = st.run_eval() or st.last_eval
        if st.ranks.world > 1:
            dist.barrier()
    if cfg.ckpt_every and tr.step_no % cfg.ckpt_every == 0:
        st.saved, st.saved_step = st.save(), tr.step_no
    if st.stop_requested(interrupts.requested) and tr.step_no < cfg.max_steps:
        raise KeyboardInterrupt


def _finish_run(st: _RunState, loaded: ckpt.Loaded | None) -> dict:
    """Save the last steps, run the final eval, tear down and return the run's summary."""
    tr, world = st.tr, st.ranks.world
    if st.saved_step != tr.step_no:
        st.saved = st.save()
    st.progress.finish("train")
    st.last_eval = st.run_eval() or st.last_eval
    if st.writer is not None:
        st.writer.close()
    if world > 1:
        dist.barrier()  # every rank is done with collectives before any tears down (gloo aborts otherwise)
    if st.ranks.owns_group:
        dist.destroy_process_group()
    stats = st.stats
    return {
        "history": st.history,
        "eval": st.last_eval,
        "checkpoint": str(st.saved) if st.saved else None,
        "steps": tr.step_no,
        "tokens": tr.tokens_seen,
        "elapsed_s": time.perf_counter() - st.t0,
        "examples": stats[0],
        "truncated": stats[1],
        "dropped": stats[2],
        "left_out": stats[3],
        "params": n_params(st.run_cfg.model),
        "device": str(tr.device),
        "world_size": world,
        "threads": torch.get_num_threads(),
        "bf16": tr.bf16,
        "skipped_checkpoints": loaded.skipped if loaded is not None else [],
    }
