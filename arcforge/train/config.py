"""Every setting of training, evaluation and the demo, and its default: the one place they live.

One dataclass per concern (nanoGPT style, no torch here so the CLI can read it cheaply):

- ``ModelConfig``: the architecture (saved with every checkpoint; it rebuilds the model);
- ``DataConfig``: what the loader reads and how it packs it (``AugmentConfig`` nested);
- ``TrainConfig``: optimisation, logging, checkpoints, device (``GrokfastConfig`` nested);
- ``EvalConfig``: ``arcforge eval`` (decoding, voting; test-time training adds its fields here).

``RunConfig`` groups model + data + train: it is what ``arcforge train --config run.toml`` loads, what every
run saves as ``RUN/run.toml`` and what every checkpoint's ``config.json`` holds. The CLI options are
declared against these fields (``arcforge.cli.train``) and take their defaults from here only; a test
checks that every option maps to a field and shows that field's default.

Every value is checked when a config is made (``__post_init__``): a bad one raises ``ConfigError``
naming the field, which the CLI reports as a usage error of the matching option (exit 2).
"""

from __future__ import annotations

import math
import re
import tomllib
from dataclasses import asdict, dataclass, field, fields, is_dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

from arcforge.errors import TrainError
from arcforge.task import MAX_GRID_SIDE
from arcforge.train.tokenize import LOOKUP_FRAMES, VOCAB_SIZE

# The dataset folder train and eval read by default: the default ``--out`` of ``arcforge build``.
DEFAULT_DATA = "arc-dataset"


class ConfigError(TrainError):
    """A setting is out of range or unknown. ``field`` is its dotted path, e.g. ``"data.batch_size"``."""

    def __init__(self, field: str, message: str, *, hint: str | None = None) -> None:
        super().__init__(f"{field}: {message}", hint=hint)
        self.field = field
        self.detail = message


# ---------------------------------------------------------------------------------------------- choices


class RopeMode(StrEnum):
    """Which position components rotate: sequence index, (row, col) of the grid cell, or all three."""

    seq = "1d"
    grid = "2d"
    grid_seq = "2d+1d"


class RopeScaling(StrEnum):
    """RoPE context extension (see ``arcforge.train.rope``)."""

    none = "none"
    linear = "linear"
    ntk = "ntk"
    dynamic_ntk = "dynamic_ntk"
    yarn = "yarn"


class GrokfastKind(StrEnum):
    """Gradient filter (see ``arcforge.train.grokfast``)."""

    none = "none"
    ema = "ema"
    ma = "ma"


class Amp(StrEnum):
    """bf16 autocast: ``auto`` = on CUDA, and on a CPU only with native bf16 (AMX / AVX512-BF16) or when a
    startup probe measures it faster; ``bf16`` = always; ``off`` = fp32."""

    auto = "auto"
    bf16 = "bf16"
    off = "off"


class LossOn(StrEnum):
    """Which tokens are targets: the test output only, or every output grid of the task."""

    test = "test"
    outputs = "outputs"


class Rank(StrEnum):
    """How voted candidates are ranked: log-probability summed over every transform, or vote count."""

    poe = "poe"
    votes = "votes"


_NOUNS = {
    "RopeMode": "RoPE mode",
    "RopeScaling": "RoPE scaling",
    "GrokfastKind": "Grokfast filter",
    "Amp": "amp mode",
    "LossOn": "loss_on",
    "Rank": "ranking",
}


def _choice(path: str, enum: type[StrEnum], value: Any) -> Any:
    try:
        return enum(value)
    except ValueError:
        raise ConfigError(
            path,
            f"unknown {_NOUNS.get(enum.__name__, 'value')} {value!r}",
            hint=f"use one of {', '.join(m.value for m in enum)}",
        ) from None


def _check(path: str, ok: bool, need: str, value: Any) -> None:
    if not ok:
        raise ConfigError(path, f"must be {need} (got {value!r})")


# Every integer option fits a signed 64-bit integer (torch and numpy take no more); a few have tighter
# bounds of their own (votes below; CPU threads and loader workers from the machine: arcforge.train.device).
INT_MAX = 2**63 - 1
MIN_SEQ_LEN = 16  # the tokens of the smallest example (one 1x1 pair and a 1x1 test pair)
MAX_VOTES = 64  # transforms decoded per test input: each is a whole decode, and 64 votes settle any pool
MAX_LR = 10.0  # an AdamW step moves each weight by about lr: past 10 every run diverges at once


def _int_at_least(path: str, value: Any, low: int, high: int = INT_MAX) -> None:
    ok = isinstance(value, int) and not isinstance(value, bool) and low <= value <= high
    need = f"an integer from {low} to {high}" if high < INT_MAX else f"an integer >= {low}"
    if isinstance(value, int) and value > high == INT_MAX:
        need += " and < 2^63"
    _check(path, ok, need, value)


def _finite_float(value: int | float) -> bool:
    try:
        return math.isfinite(float(value))
    except OverflowError:  # an integer past the largest float
        return False


def _finite(path: str, value: Any, low: float = 0.0, *, strict: bool = False, high: float = math.inf) -> None:
    ok = (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and _finite_float(value)
        and (value > low if strict else value >= low)
        and value <= high
    )
    need = f"a finite number {'>' if strict else '>='} {low:g}" + (
        f" and <= {high:g}" if high < math.inf else ""
    )
    _check(path, ok, need, value)


# ------------------------------------------------------------------------------------------------ model


@dataclass
class ModelConfig:
    """Architecture; saved as JSON in every checkpoint (``to_dict``/``from_dict``)."""

    vocab_size: int = VOCAB_SIZE
    d_model: int = 128
    n_layers: int = 3
    n_heads: int = 4
    d_ff: int = 0  # SwiGLU hidden size; 0 = 8/3 * d_model rounded up to a multiple of 64
    rope_mode: RopeMode = RopeMode.grid_seq
    rope_base: float = 10000.0
    rope_scaling: RopeScaling = RopeScaling.none
    rope_factor: float = 1.0
    max_seq_len: int = 2048  # the training context (RoPE's original_max_len); the trainer sets data.seq_len
    rope_original_max_side: int | None = None  # RoPE's L for the row/col components (None: max_seq_len)
    # RoPE base for the row/col components (None: rope_base). Grids are at most 30 cells a side: base 100
    # spreads the row/col frequencies over that range, so neighbouring cells differ in every rotary pair.
    rope_axis_base: float | None = 100.0
    # the row/col frequencies times this. RoPE's fastest pair turns 1 radian per cell, so at scale 1 a cell
    # and its neighbour score almost alike; larger angles make "the cell at exactly (r, c)" a sharp match.
    # Checkpoints saved without this field load with 1.
    rope_axis_scale: float = 1.0
    norm_eps: float = 1e-5
    tie_embeddings: bool = True
    # learned absolute (row, col) embeddings added to the token embeddings (0 = none; else the table size,
    # positions clamped to it). RoPE only sees relative offsets; flips, rotations and transposes move a cell
    # by its absolute coordinates. Checkpoints saved without this field load with 0 (``from_checkpoint``).
    grid_pos: int = 32
    # symmetry frames: each attention head sees input-grid keys under one of the 8 symmetries of the square
    # (``arcforge.train.rope.frame_rc``), so a flip, rotation or transpose is a zero-offset copy for some
    # head. Checkpoints saved without this field load with False.
    key_frames: bool = True
    # with key_frames, heads also cycle through the 4 edge frames (``rope.EDGE_FRAMES``: the input's mirror
    # image or copy beyond its right or bottom edge). Checkpoints saved without this field load with False.
    edge_frames: bool = False
    # queries rotate by the place of the token they predict (``arcforge.train.model.next_cell_positions``),
    # keys by their own: "the cell at (r, c) of another grid" is then a zero-offset match. Checkpoints
    # saved without this field load with False (queries at their own position).
    next_cell_queries: bool = True
    # RoPE's sequence component counts demonstration pairs instead of tokens (``tokenize``'s ``pair``): an
    # output cell and its own input grid are then a zero offset apart, every other pair's grids farther.
    # Checkpoints saved without this field load with False.
    pair_seq: bool = True
    # frame lookups (``arcforge.train.tokenize``): every token's embedding gets, for each of this many
    # frames (the 8 symmetries, the 4 edge frames, then the input tiled over the plane), the color that
    # frame of its pair's input grid puts at the token's own cell and at the cell it predicts. What a flip,
    # rotation, mirror or tiling of the input would write there is then known exactly at every layer; the
    # model has to learn from the demonstrations which frame the task uses (0 = off). Checkpoints saved
    # without it load with 0; those saved with 12 (before the tiling frame) read the first 12.
    frame_lookups: int = 13
    # frame votes (with frame_lookups): per color, the best evidence of a frame that puts that color at the
    # cell the token predicts (``arcforge.train.model.frame_votes``). "Copy what the frame the
    # demonstrations name puts here" is then one linear read-out, where from the summed lookups and the
    # evidence alone the model has to learn which lookup to trust. Checkpoints saved without this field
    # load with False.
    frame_votes: bool = True
    own_query_layers: int = 0  # the first layers' queries stay at their own token's place (0 = none)
    qkv_bias: bool = True  # a bias on q, k, v: heads can attend by position whatever the token
    copy_prior: float = 3.0  # init q/k biases so every head starts attending to its (framed) cell (0 = off)
    extra: dict = field(default_factory=dict)  # free-form notes (e.g. what it was trained on)

    def __post_init__(self) -> None:
        _int_at_least("model.grid_pos", self.grid_pos, 0)
        _int_at_least("model.own_query_layers", self.own_query_layers, 0)
        _int_at_least("model.frame_lookups", self.frame_lookups, 0)
        if self.frame_lookups > LOOKUP_FRAMES:
            raise ConfigError(
                "model.frame_lookups",
                f"{self.frame_lookups}: there are {LOOKUP_FRAMES} frames (8 symmetries, 4 edge, tiling)",
            )
        self.rope_mode = _choice("model.rope_mode", RopeMode, self.rope_mode)
        self.rope_scaling = _choice("model.rope_scaling", RopeScaling, self.rope_scaling)
        for name in ("vocab_size", "d_model", "n_layers", "n_heads", "max_seq_len"):
            _int_at_least(f"model.{name}", getattr(self, name), 1)
        _int_at_least("model.d_ff", self.d_ff, 0)
        _finite("model.rope_factor", self.rope_factor, 1.0)
        _finite("model.rope_axis_scale", self.rope_axis_scale, 0.0, strict=True)
        _finite("model.rope_base", self.rope_base, 1.0, strict=True)
        if self.d_model % self.n_heads:
            raise ConfigError("model.d_model", f"{self.d_model} is not divisible by n_heads {self.n_heads}")
        div = {RopeMode.seq: 2, RopeMode.grid: 4, RopeMode.grid_seq: 8}[self.rope_mode]
        if self.head_dim % div:
            raise ConfigError(
                "model.n_heads",
                f"head dim d_model/n_heads = {self.head_dim} must be a multiple "
                f"of {div} for rope {self.rope_mode.value}",
                hint="change --d-model or --heads",
            )
        if not self.d_ff:
            self.d_ff = 64 * math.ceil(self.d_model * 8 / 3 / 64)

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    def to_dict(self) -> dict:
        return _plain(asdict(self))

    @classmethod
    def from_dict(cls, d: dict) -> ModelConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    @classmethod
    def from_checkpoint(cls, d: dict) -> ModelConfig:
        """A checkpoint's model: fields it predates take the value it was trained with (``grid_pos`` 0,
        ``rope_axis_base`` None, ``key_frames``, ``edge_frames``, ``pair_seq``, ``next_cell_queries`` and
        ``qkv_bias`` and ``frame_votes`` False, ``rope_axis_scale`` 1, ``frame_lookups`` 0)."""
        old = {
            "grid_pos": 0,
            "rope_axis_base": None,
            "key_frames": False,
            "edge_frames": False,
            "pair_seq": False,
            "next_cell_queries": False,
            "qkv_bias": False,
            "rope_axis_scale": 1.0,
            "frame_lookups": 0,
            "frame_votes": False,
        }
        return cls.from_dict({**old, **d})


# ------------------------------------------------------------------------------------------------- data


@dataclass(frozen=True)
class AugmentConfig:
    """Which augmentations are drawn (``arcforge.train.augment``; all on by default for training; eval uses
    none)."""

    symmetries: bool = True
    colors: bool = True
    keep_zero: bool = True  # color 0 stays 0 (the background in most ARC tasks)
    shuffle_train: bool = True

    @classmethod
    def none(cls) -> AugmentConfig:
        return cls(symmetries=False, colors=False, shuffle_train=False)


@dataclass
class DataConfig:
    """The training stream (see ``arcforge.train.data``)."""

    root: str = DEFAULT_DATA  # a built dataset folder (or what hub.data.resolve_data made of ORG/NAME)
    sources: list[str] | None = None  # None: every source
    splits: list[str] | None = field(default_factory=lambda: ["training"])  # None: every split
    seq_len: int = 2048  # tokens per packed row (the context)
    batch_size: int = 8  # packed rows per micro-batch per rank
    chunk_tasks: int = 256  # tasks shuffled and packed together
    shuffle_tasks: int = 16384  # tasks per shuffle window (rounded up to whole chunks); see data._chunks
    loss_on: LossOn = LossOn.test
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    seed: int = 0

    def __post_init__(self) -> None:
        self.root = str(self.root)
        self.loss_on = _choice("data.loss_on", LossOn, self.loss_on)
        if isinstance(self.augment, dict):
            self.augment = AugmentConfig(**self.augment)
        _int_at_least("data.seq_len", self.seq_len, MIN_SEQ_LEN)
        for name in ("batch_size", "chunk_tasks", "shuffle_tasks"):
            _int_at_least(f"data.{name}", getattr(self, name), 1)
        _int_at_least("data.seed", self.seed, 0)
        for name in ("sources", "splits"):
            v = getattr(self, name)
            if v is not None:
                v = [str(x) for x in v]
                _check(f"data.{name}", bool(v), "a non-empty list (or left out for all)", v)
                setattr(self, name, v)

    def to_dict(self) -> dict:
        return _plain(asdict(self))

    @classmethod
    def from_dict(cls, d: dict) -> DataConfig:
        d = _known(cls, d)
        if isinstance(d.get("augment"), dict):
            d["augment"] = AugmentConfig(**_known(AugmentConfig, d["augment"]))
        return cls(**d)


# ------------------------------------------------------------------------------------------------ train


@dataclass
class GrokfastConfig:
    """Which filter and its knobs; see ``arcforge.train.grokfast`` for the pinned defaults."""

    kind: GrokfastKind = GrokfastKind.none
    alpha: float = 0.98  # EMA momentum
    lamb: float = 2.0  # amplification of the slow component
    window: int = 100  # MA window (gradients)
    warmup: bool = False  # MA: filter only once the window is full

    def __post_init__(self) -> None:
        self.kind = _choice("train.grokfast.kind", GrokfastKind, self.kind)
        _finite("train.grokfast.alpha", self.alpha, 0.0, high=0.999999)
        _finite("train.grokfast.lamb", self.lamb, 0.0)
        _int_at_least("train.grokfast.window", self.window, 1)


_DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?|mps)$")


@dataclass
class TrainConfig:
    out: str = "runs/arc"  # the run folder: checkpoints, metrics.jsonl, run.toml, tb/
    max_steps: int = 300
    lr: float = 1e-3
    min_lr_ratio: float = 0.1  # cosine decays to lr * min_lr_ratio
    warmup_steps: int = 30
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0  # 0 = off
    grad_accum: int = 1
    log_every: int = 10
    eval_every: int = 0  # 0 = only at the end (when an eval split exists)
    eval_split: str = "evaluation"
    eval_tasks: int = 16  # tasks per in-training eval (the `eval` command does the full split)
    eval_votes: int = 1
    ckpt_every: int = 100  # 0 = only at the end
    keep_checkpoints: int = 3  # 0 = keep all
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    compile: bool = False
    amp: Amp = Amp.auto
    num_workers: int = 0
    threads: int = (
        0  # torch CPU threads; 0 = the CPUs free now (affinity minus load), see arcforge.train.device
    )
    seed: int = 0
    tensorboard: bool = True
    grokfast: GrokfastConfig = field(default_factory=GrokfastConfig)

    def __post_init__(self) -> None:
        self.out = str(self.out)
        self.amp = _choice("train.amp", Amp, self.amp)
        if isinstance(self.grokfast, dict):
            self.grokfast = GrokfastConfig(**_known(GrokfastConfig, self.grokfast))
        for name, low in (
            ("max_steps", 1),
            ("warmup_steps", 0),
            ("grad_accum", 1),
            ("log_every", 1),
            ("eval_every", 0),
            ("eval_tasks", 0),
            ("ckpt_every", 0),
            ("keep_checkpoints", 0),
            ("num_workers", 0),
            ("threads", 0),
            ("seed", 0),
        ):
            _int_at_least(f"train.{name}", getattr(self, name), low)
        _int_at_least("train.eval_votes", self.eval_votes, 1, MAX_VOTES)
        _finite("train.lr", self.lr, 0.0, strict=True, high=MAX_LR)
        _finite("train.min_lr_ratio", self.min_lr_ratio, 0.0, high=1.0)
        _finite("train.weight_decay", self.weight_decay, 0.0)
        _finite("train.beta1", self.beta1, 0.0, high=0.999999)
        _finite("train.beta2", self.beta2, 0.0, high=0.999999)
        _finite("train.grad_clip", self.grad_clip, 0.0)
        _check(
            "train.device",
            isinstance(self.device, str) and bool(_DEVICE.match(self.device)),
            "auto, cpu, cuda, cuda:N or mps",
            self.device,
        )

    def to_dict(self) -> dict:
        return _plain(asdict(self))

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        return cls(**_known(cls, d))


# ------------------------------------------------------------------------------------------------- eval


@dataclass
class TTTConfig:
    """Test-time training (``arcforge.train.ttt``): per task, a copy of the model is fine-tuned on
    leave-one-out examples of its demonstration pairs. ``steps == 0``: off."""

    steps: int = 0  # AdamW steps per task
    lr: float = 3e-4
    batch_size: int = 8  # leave-one-out examples per step
    lora_rank: int = 0  # 0 = full fine-tuning; > 0 = LoRA adapters of this rank on every block's linears
    lora_alpha: float = 0.0  # 0 = the rank (scale 1)
    weight_decay: float = 0.0
    loss_on: LossOn = LossOn.outputs  # every output grid of an example is a target, or the held-out one
    symmetries: bool = True  # random D8 symmetry per example
    colors: bool = True  # random color permutation per example
    keep_zero: bool = True  # color 0 (background) is never permuted
    shuffle_train: bool = True  # random context order
    # the second attempt is the base model's best answer when it differs from the tuned model's first:
    # a tuned copy can overfit a task's three or four demonstrations, the base model cannot
    base_attempt: bool = True
    seed: int = 0
    # tasks fine-tuned at once, each in its own thread with its share of the torch threads (0 = auto: up
    # to 4 on a CPU, one per torch thread; 1 on an accelerator). Results do not depend on it.
    workers: int = 0

    def __post_init__(self) -> None:
        self.loss_on = _choice("eval.ttt.loss_on", LossOn, self.loss_on)
        for name in ("steps", "lora_rank", "seed", "workers"):
            _int_at_least(f"eval.ttt.{name}", getattr(self, name), 0)
        _int_at_least("eval.ttt.batch_size", self.batch_size, 1)
        _finite("eval.ttt.lr", self.lr, 0.0, strict=True, high=MAX_LR)
        _finite("eval.ttt.lora_alpha", self.lora_alpha, 0.0)
        _finite("eval.ttt.weight_decay", self.weight_decay, 0.0)

    def to_dict(self) -> dict:
        return _plain(asdict(self))

    @classmethod
    def from_dict(cls, d: dict) -> TTTConfig:
        return cls(**_known(cls, d))


MAX_SIDE = MAX_GRID_SIDE  # the largest grid side the model reads and writes (the official ARC limit)
MAX_NEW_TOKENS = MAX_SIDE * (MAX_SIDE + 1) + 1  # a 30x30 grid: 30 rows of 30 cells + ROW, then GRID_END


@dataclass
class EvalConfig:
    """``arcforge eval``: which tasks, how they are decoded, voted and ranked, and test-time training.
    CPU-sane defaults (a full ARC split with 8 votes takes long on a CPU: ``limit`` and ``votes`` keep the
    default run to minutes). ``arcforge.train.evaluate`` reads the inference fields."""

    data: str = DEFAULT_DATA
    split: str = "evaluation"
    sources: list[str] | None = None
    limit: int = 0  # the first N tasks (0 = all)
    votes: int = 8  # transforms decoded and voted over for pass@2
    seq_len: int = 0  # prompt budget (0 = the training seq_len)
    rope_scaling: RopeScaling | None = None  # None: as trained
    rope_factor: float = 1.0
    device: str = "auto"
    threads: int = 0
    seed: int = 0
    rank: Rank = Rank.poe  # candidates: log-prob summed over every transform (poe) or vote count
    poe_top: int = 4  # candidates re-scored under every transform
    vote_symmetries: bool = True  # vote over the 8 symmetries (False: identity + color permutations only)
    batch_rows: int = 64  # rows decoded as one batch (transforms x test inputs)
    max_new: int = MAX_NEW_TOKENS  # decoded tokens per output at most
    size_limit: bool = True  # cap each output's side from the task's own pairs
    amp: Amp = Amp.off  # bf16 autocast and a bf16 KV cache while decoding and scoring (see Amp)
    ttt: TTTConfig = field(default_factory=TTTConfig)

    def __post_init__(self) -> None:
        self.data = str(self.data)
        if self.rope_scaling is not None:
            self.rope_scaling = _choice("eval.rope_scaling", RopeScaling, self.rope_scaling)
        self.rank = _choice("eval.rank", Rank, self.rank)
        self.amp = _choice("eval.amp", Amp, self.amp)
        if isinstance(self.ttt, dict):
            self.ttt = TTTConfig.from_dict(self.ttt)
        _int_at_least("eval.limit", self.limit, 0)
        _int_at_least("eval.votes", self.votes, 1, MAX_VOTES)
        _int_at_least("eval.seq_len", self.seq_len, 0)
        _check(
            "eval.seq_len",
            self.seq_len == 0 or self.seq_len >= MIN_SEQ_LEN,
            f"0 (the training --seq-len) or at least {MIN_SEQ_LEN} tokens (the prompt of a 1x1 task)",
            self.seq_len,
        )
        _int_at_least("eval.threads", self.threads, 0)
        _int_at_least("eval.seed", self.seed, 0)
        _int_at_least("eval.poe_top", self.poe_top, 1)
        _int_at_least("eval.batch_rows", self.batch_rows, 1)
        _int_at_least("eval.max_new", self.max_new, 1)
        _finite("eval.rope_factor", self.rope_factor, 1.0)
        _check(
            "eval.device",
            isinstance(self.device, str) and bool(_DEVICE.match(self.device)),
            "auto, cpu, cuda, cuda:N or mps",
            self.device,
        )
        if self.sources is not None:
            self.sources = [str(x) for x in self.sources] or None

    def to_dict(self) -> dict:
        return _plain(asdict(self))

    @classmethod
    def from_dict(cls, d: dict) -> EvalConfig:
        d = _known(cls, d)
        if isinstance(d.get("ttt"), dict):
            d["ttt"] = TTTConfig.from_dict(d["ttt"])
        return cls(**d)


# -------------------------------------------------------------------------------------------------- run


@dataclass
class RunConfig:
    """One training run: ``[model]``, ``[data]``, ``[train]`` tables of ``run.toml``."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        # the model's context is the rows it is trained on
        if self.model.max_seq_len != self.data.seq_len:
            self.model = replace(self.model, max_seq_len=self.data.seq_len)

    def to_dict(self) -> dict:
        return {"model": self.model.to_dict(), "data": self.data.to_dict(), "train": self.train.to_dict()}

    @staticmethod
    def check_keys(d: dict, where: str) -> None:
        """``ConfigError`` naming ``where`` for a table or key no config has (a typo in run.toml)."""
        _reject_unknown(d, {"model": ModelConfig, "data": DataConfig, "train": TrainConfig}, where)

    @classmethod
    def from_dict(cls, d: dict, *, strict: bool = False, where: str = "config") -> RunConfig:
        if strict:
            cls.check_keys(d, where)
        return cls(
            model=ModelConfig.from_dict(d.get("model", {})),
            data=DataConfig.from_dict(d.get("data", {})),
            train=TrainConfig.from_dict(d.get("train", {})),
        )

    def with_values(self, values: dict[str, Any]) -> RunConfig:
        """A copy with dotted-path values set (``{"model.d_model": 64, "train.grokfast.kind": "ema"}``)."""
        return RunConfig.from_dict(set_paths(self.to_dict(), values))

    def to_toml(self) -> str:
        return dumps_toml(self.to_dict())

    @classmethod
    def load(cls, path: Path) -> RunConfig:
        """A run config from ``run.toml`` (unknown keys are refused) or a checkpoint's ``config.json``."""
        return cls.from_dict(load_tables(path), strict=Path(path).suffix != ".json", where=str(path))


# ------------------------------------------------------------------------------------------------ files


def load_tables(path: Path) -> dict:
    """The tables of a ``.toml`` (or ``.json``) config file; ``ConfigError`` naming the file otherwise."""
    import json

    path = Path(path)
    kind = "JSON" if path.suffix == ".json" else "TOML"
    try:
        text = path.read_bytes().decode("utf-8")
    except IsADirectoryError:
        raise ConfigError(str(path), "a folder, not a config file") from None
    except OSError as e:
        raise ConfigError(str(path), f"cannot read the config file ({e.strerror or e})") from None
    except UnicodeDecodeError:
        raise ConfigError(
            str(path),
            f"not a {kind} config file (binary content: a Parquet shard, a checkpoint?)",
            hint="pass a run's run.toml or a checkpoint's config.json",
        ) from None
    try:
        tables = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (ValueError, RecursionError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(str(path), f"not valid {kind}: {str(e)[:200]}") from None
    if not isinstance(tables, dict):
        raise ConfigError(str(path), f"not a config: the {kind} holds a {type(tables).__name__}, not tables")
    return tables


def dumps_toml(tables: dict) -> str:
    """TOML text of nested dicts. TOML has no null: a ``None`` is written as a comment line, so loading
    the file gives the field its default, which is ``None`` for every optional field here."""
    import tomli_w

    def strip(d: dict) -> dict:
        return {k: strip(v) if isinstance(v, dict) else v for k, v in d.items() if v is not None}

    return tomli_w.dumps(strip(tables))


def write_toml_atomic(path: Path, tables: dict) -> None:
    import os

    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(dumps_toml(tables))
    os.replace(tmp, path)


def set_paths(d: dict, values: dict[str, Any]) -> dict:
    """``d`` (nested dicts) with each dotted path in ``values`` set."""
    import copy

    out = copy.deepcopy(d)
    for path, v in values.items():
        node = out
        *parents, leaf = path.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = v
    return out


def default_of(path: str) -> Any:
    """The default of a dotted path (``"model.d_model"`` -> 128), read from the dataclasses."""
    section, *rest = path.split(".")
    node: Any = {"model": ModelConfig, "data": DataConfig, "train": TrainConfig, "eval": EvalConfig}[
        section
    ]()
    for name in rest:
        node = getattr(node, name)
    return node


def _plain(d: Any) -> Any:
    """Enums -> their string values (for JSON/TOML)."""
    if isinstance(d, dict):
        return {k: _plain(v) for k, v in d.items()}
    if isinstance(d, list | tuple):
        return [_plain(v) for v in d]
    if isinstance(d, StrEnum):
        return d.value
    return d


def _known(cls: type, d: dict) -> dict:
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in dict(d).items() if k in names}


def _reject_unknown(d: dict, tables: dict[str, type], where: str) -> None:
    for key, value in d.items():
        if key not in tables:
            raise ConfigError(
                where, f"unknown table [{key}]", hint=f"use {', '.join(f'[{t}]' for t in tables)}"
            )
        cls = tables[key]
        if not isinstance(value, dict):
            raise ConfigError(where, f"[{key}] must be a table")
        names = {f.name: f for f in fields(cls)}
        for k, v in value.items():
            if k not in names:
                raise ConfigError(
                    where, f"unknown key {key}.{k}", hint=f"[{key}] keys: {', '.join(sorted(names))}"
                )
            sub = getattr(cls(), k) if k in ("augment", "grokfast") else None
            if isinstance(v, dict) and is_dataclass(sub):
                _reject_unknown({k: v}, {k: type(sub)}, where)
