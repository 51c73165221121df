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
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.utils.data import DataLoader

from arcforge import __version__
from arcforge.errors import TrainError
from arcforge.progress import NULL_PROGRESS, Progress
from arcforge.shards import read_tasks
from arcforge.train import checkpoint as ckpt
from arcforge.train.data import DataConfig, DataPosition, PackedBatches
from arcforge.train.evaluate import evaluate_tasks
from arcforge.train.grokfast import Grokfast, GrokfastConfig
from arcforge.train.model import ArcTransformer, ModelConfig, n_params

try:  # TensorBoard is optional
    from torch.utils.tensorboard import SummaryWriter
except Exception:  # pragma: no cover - depends on the install
    SummaryWriter = None


@dataclass
class TrainConfig:
    out: str = "runs/arc"
    max_steps: int = 300
    lr: float = 1e-3
    min_lr_ratio: float = 0.1  # cosine decays to lr * min_lr_ratio
    warmup_steps: int = 30
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0
    grad_accum: int = 1
    log_every: int = 10
    eval_every: int = 0  # 0 = only at the end (when an eval split exists)
    eval_split: str = "evaluation"
    eval_tasks: int = 16  # tasks per in-training eval (the `eval` command does the full split)
    eval_votes: int = 1
    ckpt_every: int = 100
    keep_checkpoints: int = 3
    device: str = "auto"
    compile: bool = False
    amp: str = "auto"  # "auto": bf16 autocast on CUDA, fp32 on CPU | "bf16": bf16 on CPU too (AMX) | "off"
    num_workers: int = 0
    seed: int = 0
    tensorboard: bool = True
    grokfast: GrokfastConfig = field(default_factory=GrokfastConfig)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        d = dict(d)
        d["grokfast"] = GrokfastConfig(**d.get("grokfast", {}))
        return cls(**d)


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warmup to ``lr`` over ``warmup_steps``, then cosine to ``lr * min_lr_ratio`` at max_steps."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    span = max(1, cfg.max_steps - cfg.warmup_steps)
    t = min(1.0, (step - cfg.warmup_steps) / span)
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t)))


AMP_MODES = ("auto", "bf16", "off")


def autocast_for(device: torch.device, amp: str) -> contextlib.AbstractContextManager:
    """The forward pass's autocast: bf16 on CUDA unless ``amp == "off"``; on CPU only with ``"bf16"``
    (worth it on CPUs with AMX/AVX512-BF16: about 2x for d_model 256; weights and optimizer stay fp32)."""
    if amp not in AMP_MODES:
        raise TrainError(f"unknown amp mode {amp!r}", hint=f"use one of {', '.join(AMP_MODES)}")
    if amp == "off" or (amp == "auto" and device.type != "cuda"):
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


def pick_device(name: str) -> torch.device:
    if name == "auto":
        if dist.is_initialized() and torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


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
    logits = model(tokens, batch["positions"].to(device, non_blocking=True),
                   batch["segments"].to(device, non_blocking=True))  # [B, T, V]
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
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        if train_cfg.compile:
            self.net = torch.compile(self.net)
        decay = [p for p in self.model.parameters() if p.dim() >= 2]
        no_decay = [p for p in self.model.parameters() if p.dim() < 2]
        self.opt = torch.optim.AdamW(
            [{"params": decay, "weight_decay": train_cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=train_cfg.lr, betas=(train_cfg.beta1, train_cfg.beta2),
            fused=self.device.type == "cuda")
        self.grokfast = Grokfast(self.model, train_cfg.grokfast)
        self.step_no = 0
        self.tokens_seen = 0
        self.autocast = autocast_for(self.device, train_cfg.amp)

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
        gnorm = torch.nn.utils.clip_grad_norm_(self.model.parameters(),
                                               self.cfg.grad_clip if self.cfg.grad_clip > 0 else float("inf"))
        finite = bool(torch.isfinite(gnorm))
        if finite:
            self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        self.step_no += 1
        real = sum(int((b["segments"] > 0).sum()) for b in micro_batches)
        self.tokens_seen += int(self._all_sum(float(real)))
        return {"step": self.step_no, "loss": self._all_sum(loss_sum) / n_global, "lr": lr,
                "grad_norm": float(gnorm), "skipped": not finite, "grokfast": filtered,
                "target_tokens": int(n_global)}

    def state(self) -> dict:
        return {"optimizer": self.opt.state_dict(), "grokfast": self.grokfast.state_dict(), "rng": rng_state(),
                "step": self.step_no, "tokens_seen": self.tokens_seen}

    def load_state(self, weights: dict, state: dict) -> None:
        self.model.load_state_dict(weights)
        self.opt.load_state_dict(state["optimizer"])
        self.grokfast.load_state_dict(state["grokfast"])
        self.step_no = int(state["step"])
        self.tokens_seen = int(state.get("tokens_seen", 0))
        set_rng_state(state["rng"])


def _gather(obj: object, world: int) -> list:
    if world == 1:
        return [obj]
    out: list = [None] * world
    dist.all_gather_object(out, obj)
    return out


def _trim_metrics(path: Path, step: int) -> None:
    """On resume, drop metric lines written after the checkpoint (they will be written again)."""
    if not path.is_file():
        return
    keep = [ln for ln in path.read_text().splitlines() if ln.strip() and json.loads(ln).get("step", 0) <= step]
    path.write_text("".join(ln + "\n" for ln in keep))


def train(model_cfg: ModelConfig, data_cfg: DataConfig, cfg: TrainConfig, *, resume: bool = False,
          progress: Progress | None = None, on_log: Callable[[dict], None] | None = None) -> dict:
    """Train; returns a summary ``{"history": [...], "eval": {...}, "checkpoint": path, ...}``.

    ``on_log`` receives every logged record (step metrics every ``log_every`` steps, eval records).
    Ctrl-C saves a checkpoint and re-raises ``KeyboardInterrupt``.
    """
    progress = progress or NULL_PROGRESS
    owns_group = not dist.is_initialized()  # we tear down only a process group we created
    rank, world = init_distributed()
    owns_group = owns_group and dist.is_initialized()
    run = Path(cfg.out)
    main = rank == 0
    tr = Trainer(model_cfg, cfg)
    positions: dict[int, DataPosition] = {}
    batches_done = 0
    if resume and ckpt.has_checkpoint(run):
        conf, weights, state = ckpt.load_checkpoint(run)
        if conf["model"] != model_cfg.to_dict():
            model_cfg = ModelConfig.from_dict(conf["model"])
            tr = Trainer(model_cfg, cfg)
        tr.load_state(weights, state)
        data_state = state["data"]
        if data_state["world"] != world or data_state["num_workers"] != max(1, cfg.num_workers):
            raise TrainError(f"{run}: checkpoint was written with world_size={data_state['world']}, "
                             f"num_workers={data_state['num_workers']}; this run has {world}, {cfg.num_workers}",
                             hint="resume with the same number of processes and --workers")
        positions = {int(w): DataPosition(*p) for w, p in data_state["positions"][rank].items()}
        batches_done = int(data_state["batches"])
    elif main:
        run.mkdir(parents=True, exist_ok=True)
    metrics_path = run / "metrics.jsonl"
    if main:
        run.mkdir(parents=True, exist_ok=True)
        _trim_metrics(metrics_path, tr.step_no)
    n_workers = max(1, cfg.num_workers)
    ds = PackedBatches(data_cfg, num_workers=n_workers, positions=positions,
                       first_worker=batches_done % n_workers)
    loader = DataLoader(ds, batch_size=None, num_workers=cfg.num_workers,
                        pin_memory=tr.device.type == "cuda", persistent_workers=False)
    writer = SummaryWriter(str(run / "tb")) if (main and cfg.tensorboard and SummaryWriter) else None
    history: list[dict] = []
    eval_tasks = None
    config = {"model": model_cfg.to_dict(), "data": data_cfg.to_dict(), "train": cfg.to_dict(),
              "arcforge": __version__, "params": n_params(model_cfg)}

    def log(rec: dict) -> None:
        if not main:
            return
        with metrics_path.open("a") as f:
            f.write(json.dumps(rec, sort_keys=True) + "\n")
        if writer is not None:
            for k, v in rec.items():
                if k != "step" and isinstance(v, int | float) and not isinstance(v, bool):
                    writer.add_scalar(k, v, rec["step"])
        if on_log is not None:
            on_log(rec)

    def save() -> Path | None:
        all_pos = _gather({w: (p.epoch, p.chunk, p.row) for w, p in positions.items()}, world)
        state = {**tr.state(), "data": {"positions": all_pos, "batches": batches_done, "world": world,
                                        "num_workers": n_workers}}
        if not main:
            return None
        weights = {k: v for k, v in tr.model.state_dict().items()}
        return ckpt.save_checkpoint(run, tr.step_no, weights, state, config, keep=cfg.keep_checkpoints)

    def run_eval() -> dict | None:
        nonlocal eval_tasks
        if not main:
            return None
        if eval_tasks is None:
            try:
                eval_tasks = list(read_tasks(Path(data_cfg.root), sources=data_cfg.sources,
                                             splits=[cfg.eval_split]))[: cfg.eval_tasks]
            except Exception:
                eval_tasks = []
        if not eval_tasks:
            return None
        res = evaluate_tasks(tr.model, eval_tasks, seq_len=data_cfg.seq_len, device=tr.device,
                             votes=cfg.eval_votes)
        rec = {"step": tr.step_no, **{f"eval/{k}": v for k, v in res.metrics.items()}}
        log(rec)
        return rec

    progress.start("train", "train", total=cfg.max_steps)
    progress.update("train", completed=tr.step_no)
    t0 = time.perf_counter()
    tok0 = tr.tokens_seen
    last_eval: dict | None = None
    stats = (0, 0, 0)
    it = iter(loader)
    saved: Path | None = None
    try:
        while tr.step_no < cfg.max_steps:
            micro = []
            for _ in range(cfg.grad_accum):
                b = next(it)
                positions[b["worker"]] = DataPosition(*b["position"])
                stats = b["stats"]
                batches_done += 1
                micro.append(b)
            rec = tr.step(micro)
            history.append(rec)
            progress.advance("train")
            if tr.step_no % cfg.log_every == 0 or tr.step_no == cfg.max_steps:
                dt = time.perf_counter() - t0
                rec = {**rec, "tokens_per_s": (tr.tokens_seen - tok0) / max(dt, 1e-9),
                       "tokens": tr.tokens_seen, "elapsed_s": dt,
                       "eta_s": dt / max(1, len(history)) * (cfg.max_steps - tr.step_no)}
                log(rec)
            if cfg.eval_every and tr.step_no % cfg.eval_every == 0 and tr.step_no < cfg.max_steps:
                last_eval = run_eval() or last_eval
                if world > 1:
                    dist.barrier()
            if cfg.ckpt_every and tr.step_no % cfg.ckpt_every == 0:
                saved = save()
    except KeyboardInterrupt:
        saved = save()
        progress.finish("train")
        raise
    finally:
        if writer is not None:
            writer.flush()
    if tr.step_no % max(1, cfg.ckpt_every) or not cfg.ckpt_every or saved is None:
        saved = save()
    progress.finish("train")
    last_eval = run_eval() or last_eval
    if writer is not None:
        writer.close()
    if world > 1:
        dist.barrier()  # every rank is done with collectives before any tears down (gloo aborts otherwise)
    if owns_group:
        dist.destroy_process_group()
    return {"history": history, "eval": last_eval, "checkpoint": str(saved) if saved else None,
            "steps": tr.step_no, "tokens": tr.tokens_seen, "elapsed_s": time.perf_counter() - t0,
            "examples": stats[0], "truncated": stats[1], "dropped": stats[2], "params": n_params(model_cfg),
            "device": str(tr.device), "world_size": world}
