"""Rotary position embeddings (RoPE): 1-D, 2-D axial, mixed, and context extension by frequency scaling.

The math is pure functions (``inv_freq``, ``attention_scale``, ``rope_angles``, ``cos_sin``, ``rotate``,
``apply_rope``); ``RotaryEmbedding`` is a small module that caches cos/sin tables and lets the scaling be
switched at eval time (``set_scaling``).

Layout ("rotate-half", as in Llama / HF): a head vector of ``D`` rotary dims is split into two halves;
rotary pair ``i`` is ``(x[i], x[i + D/2])`` and turns by angle ``pos * inv_freq[i]``. The ``D/2`` pairs are
divided between position *components*:

- ``"1d"``: one component, positions ``[B, T]``; all ``D/2`` pairs.
- ``"2d"``: axial; positions ``[B, T, 2]`` = (row, col); ``D/4`` pairs rotate by row, ``D/4`` by col
  (``D`` divisible by 4). Each axis gets its own full frequency spectrum ``inv_freq(dim=D/2)``.
- ``"2d+1d"``: positions ``[B, T, 3]`` = (seq_pos, row, col); HALF of the pairs (``D/4``) rotate by the
  sequence position, a quarter (``D/8``) by row and a quarter by col (``D`` divisible by 8). The sequence
  part tells the model which grid of a task a token is in; the axial part gives the within-grid geometry.

Context extension (``scaling``, factor ``s``, training length ``L`` = ``original_max_len``; for the row/col
components ``L`` = ``original_max_side`` if set, else ``original_max_len``):

- ``"linear"`` (position interpolation, Chen et al. 2023): ``inv_freq / s``.
- ``"ntk"`` (NTK-aware, bloc97): ``base' = base * s ** (d / (d - 2))``.
- ``"dynamic_ntk"`` (emozilla): ``base' = base * (s * L' / L - (s - 1)) ** (d / (d - 2))`` where ``L'`` is the
  current length (max position + 1), only when ``L' > L``; plain RoPE otherwise.
- ``"yarn"`` (Peng et al. 2023, arXiv 2309.00071): per-dim blend of interpolation (``inv_freq / s``) and
  extrapolation (``inv_freq``). With ``r_i = L / wavelength_i`` rotations over the training context, dims
  with ``r_i < beta_slow`` (wavelength > L / beta_slow) are fully interpolated, dims with ``r_i > beta_fast``
  kept as is, and a linear ramp in between. Like the authors' released code (and HF transformers) the ramp
  is linear in the *dimension index* between the floor/ceil of the two boundary dims (the paper writes it
  linear in ``r``; both agree outside the ramp). Plus the attention temperature
  ``sqrt(1/t) = 0.1 ln s + 1`` (``attention_scale``).

``factor == 1`` turns every method off (plain RoPE), including dynamic NTK.

YaRN temperature convention: cos and sin are multiplied by ``mscale = attention_scale(cfg)``, so q and k are
each scaled by ``mscale`` and the attention logits by ``mscale ** 2 = 1 / t`` (the paper's
``softmax(q.k / (t sqrt(d)))``); the same convention as HF transformers' ``attention_scaling``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
from torch import Tensor, nn

from arcforge.errors import TrainError
from arcforge.train.config import ModelConfig, RopeMode, RopeScaling
from arcforge.train.tokenize import POS, frame_table

N_COMPONENTS = {"1d": 1, "2d": 2, "2d+1d": 3}


@dataclass
class RopeConfig:
    """RoPE settings; saved with the model config. See the module docstring for the formulas."""

    head_dim: int  # rotary dims per head (even; "2d": divisible by 4; "2d+1d": divisible by 8)
    base: float = ModelConfig.rope_base
    # a RopeMode value; plain 1D RoPE here (a model's RoPE is RopeConfig.from_model: its rope_mode)
    mode: str = RopeMode.seq.value
    scaling: str = RopeScaling.none.value  # a RopeScaling value
    factor: float = ModelConfig.rope_factor  # context extension factor s (>= 1)
    # training context L ("2d": the max grid side seen in training, per axis)
    original_max_len: int = ModelConfig.max_seq_len
    yarn_beta_fast: float = 32.0
    yarn_beta_slow: float = 1.0
    original_max_side: int | None = None  # L for row/col components (default: original_max_len)
    axis_base: float | None = None  # base for row/col components (default: base)
    axis_scale: float = (
        1.0  # row/col frequencies times this (> 1: neighbouring cells differ by larger angles)
    )

    @classmethod
    def from_model(cls, cfg: ModelConfig) -> RopeConfig:
        """The RoPE of a model (its ``rope_*`` fields, ``max_seq_len`` as the training context)."""
        return cls(
            head_dim=cfg.head_dim,
            base=cfg.rope_base,
            mode=RopeMode(cfg.rope_mode).value,
            scaling=RopeScaling(cfg.rope_scaling).value,
            factor=cfg.rope_factor,
            original_max_len=cfg.max_seq_len,
            original_max_side=cfg.rope_original_max_side,
            axis_base=cfg.rope_axis_base,
            axis_scale=cfg.rope_axis_scale,
        )

    def __post_init__(self) -> None:
        for name, enum in (("mode", RopeMode), ("scaling", RopeScaling)):
            choices = [m.value for m in enum]
            if getattr(self, name) not in choices:
                raise TrainError(
                    f"unknown RoPE {name} {getattr(self, name)!r}", hint=f"use one of {', '.join(choices)}"
                )
        div = {"1d": 2, "2d": 4, "2d+1d": 8}[self.mode]
        if self.head_dim <= 0 or self.head_dim % div:
            raise TrainError(
                f"RoPE head_dim {self.head_dim} must be a positive multiple of {div} in mode {self.mode!r}"
            )
        if not self.factor >= 1.0:
            raise TrainError(
                f"RoPE factor must be >= 1 (got {self.factor})",
                hint="factor is the context extension ratio: new length / training length",
            )
        if self.original_max_len < 1 or (self.original_max_side is not None and self.original_max_side < 1):
            raise TrainError("RoPE original_max_len / original_max_side must be >= 1")

    @property
    def n_components(self) -> int:
        """How many position components ``positions[..., c]`` this mode reads (1, 2 or 3)."""
        return N_COMPONENTS[self.mode]


def components(cfg: RopeConfig) -> list[tuple[int, int, float, float]]:
    """Per position component: (number of rotary pairs, training length L, base, frequency multiplier).
    Sums to head_dim/2 pairs."""
    side = cfg.original_max_side if cfg.original_max_side is not None else cfg.original_max_len
    ab = cfg.axis_base if cfg.axis_base is not None else cfg.base
    d, m = cfg.head_dim, cfg.axis_scale
    if cfg.mode == "1d":
        return [(d // 2, cfg.original_max_len, cfg.base, 1.0)]
    if cfg.mode == "2d":
        return [(d // 4, side, ab, m), (d // 4, side, ab, m)]
    return [(d // 4, cfg.original_max_len, cfg.base, 1.0), (d // 8, side, ab, m), (d // 8, side, ab, m)]


def _plain(base: float, dim: int) -> Tensor:
    # [dim/2]: base ** (-2i/dim), i = 0 .. dim/2 - 1
    return 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.float64) / dim))


def _yarn_correction_dim(rotations: float, dim: int, base: float, length: int) -> float:
    # the (fractional) dim index i whose wavelength 2*pi*base**(2i/dim) fits `rotations` times into `length`
    return dim * math.log(length / (rotations * 2 * math.pi)) / (2 * math.log(base))


def _linear(cfg: RopeConfig, dim: int, b: float, s: float, length: int, seq_len: int | None) -> Tensor:
    return _plain(b, dim) / s


def _ntk(cfg: RopeConfig, dim: int, b: float, s: float, length: int, seq_len: int | None) -> Tensor:
    return _plain(b * s ** (dim / (dim - 2)), dim)


def _dynamic_ntk(cfg: RopeConfig, dim: int, b: float, s: float, length: int, seq_len: int | None) -> Tensor:
    if seq_len is None or seq_len <= length:
        return _plain(b, dim)
    return _plain(b * (s * seq_len / length - (s - 1)) ** (dim / (dim - 2)), dim)


def _yarn(cfg: RopeConfig, dim: int, b: float, s: float, length: int, seq_len: int | None) -> Tensor:
    extrap = _plain(b, dim)
    interp = extrap / s
    low = max(math.floor(_yarn_correction_dim(cfg.yarn_beta_fast, dim, b, length)), 0)
    high = min(math.ceil(_yarn_correction_dim(cfg.yarn_beta_slow, dim, b, length)), dim - 1)
    if low == high:
        high += 0.001  # avoid a zero-width ramp
    # ramp 0 -> keep (extrapolate, high frequency), 1 -> interpolate (low frequency)
    ramp = ((torch.arange(dim // 2, dtype=torch.float64) - low) / (high - low)).clamp(0, 1)
    return extrap * (1 - ramp) + interp * ramp


# the scaled frequencies (float64) of each scaling, from (cfg, dim, base, factor, L, L')
_SCALED = {"linear": _linear, "ntk": _ntk, "dynamic_ntk": _dynamic_ntk, "yarn": _yarn}


def inv_freq(
    cfg: RopeConfig,
    dim: int | None = None,
    seq_len: int | None = None,
    original_max_len: int | None = None,
    base: float | None = None,
) -> Tensor:
    """Scaled inverse frequencies ``[dim/2]`` (float32) for one position component.

    ``dim`` defaults to ``cfg.head_dim`` (the 1-D case); ``seq_len`` is the current length ``L'`` (used by
    ``dynamic_ntk`` only); ``original_max_len``/``base`` override the config's (used for row/col components).
    """
    dim = cfg.head_dim if dim is None else dim
    length = cfg.original_max_len if original_max_len is None else original_max_len
    b = cfg.base if base is None else base
    s = float(cfg.factor)
    if dim % 2 or dim < 2 or (dim == 2 and cfg.scaling in ("ntk", "dynamic_ntk") and s > 1.0):
        raise TrainError(f"RoPE rotary dim must be even, and > 2 for NTK scaling (got {dim})")
    if cfg.scaling == "none" or s == 1.0:
        return _plain(b, dim).to(torch.float32)
    return _SCALED.get(cfg.scaling, _yarn)(cfg, dim, b, s, length, seq_len).to(torch.float32)


def attention_scale(cfg: RopeConfig) -> float:
    """YaRN's ``mscale = sqrt(1/t) = 0.1 ln(s) + 1`` applied to q and k (logits times mscale**2); 1 else."""
    if cfg.scaling == "yarn" and cfg.factor > 1.0:
        return 0.1 * math.log(cfg.factor) + 1.0
    return 1.0


def _split_positions(positions: Tensor, cfg: RopeConfig) -> list[Tensor]:
    # [B, T] or [B, T, C] -> C tensors [B, T]
    n = cfg.n_components
    if n == 1 and positions.dim() == 2:
        return [positions]
    if positions.dim() != 3 or positions.shape[-1] != n:
        raise TrainError(
            f"RoPE mode {cfg.mode!r} needs positions [B, T{'' if n == 1 else f', {n}'}], "
            f"got shape {tuple(positions.shape)}"
        )
    return list(positions.unbind(-1))


def rope_angles(positions: Tensor, cfg: RopeConfig) -> Tensor:
    """Rotation angles ``[B, T, head_dim/2]`` for integer positions ([B, T] or [B, T, C])."""
    parts = []
    for pos, (pairs, length, b, m) in zip(_split_positions(positions, cfg), components(cfg), strict=True):
        seq_len = int(pos.max().item()) + 1 if cfg.scaling == "dynamic_ntk" and pos.numel() else None
        f = m * inv_freq(cfg, dim=2 * pairs, seq_len=seq_len, original_max_len=length, base=b).to(pos.device)
        parts.append(pos.to(torch.float32)[..., None] * f)  # [B, T, pairs]
    return torch.cat(parts, dim=-1)


def _to_cos_sin(angles: Tensor, scale: float, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    # angles [B, T, D/2] -> cos, sin [B, 1, T, D] (duplicated for the two halves; 1 broadcasts over heads)
    emb = torch.cat([angles, angles], dim=-1)[:, None]
    if scale == 1.0:  # no YaRN temperature: skip two multiplies by one
        return emb.cos().to(dtype), emb.sin().to(dtype)
    return (emb.cos() * scale).to(dtype), (emb.sin() * scale).to(dtype)


def cos_sin(positions: Tensor, cfg: RopeConfig, dtype: torch.dtype = torch.float32) -> tuple[Tensor, Tensor]:
    """cos and sin ``[B, 1, T, head_dim]``, already multiplied by ``attention_scale(cfg)``."""
    return _to_cos_sin(rope_angles(positions, cfg), attention_scale(cfg), dtype)


def _rotate_half(x: Tensor) -> Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat([-x2, x1], dim=-1)


def rotate(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate ``x [..., T, D]`` by ``cos``/``sin [..., T, R]`` (broadcastable). If ``D > R`` only the first
    ``R`` dims rotate (partial rotary) and the rest pass through."""
    r = cos.shape[-1]
    if x.shape[-1] == r:
        return x * cos + _rotate_half(x) * sin
    xr, rest = x[..., :r], x[..., r:]
    return torch.cat([xr * cos + _rotate_half(xr) * sin, rest], dim=-1)


def apply_rope(q: Tensor, k: Tensor, positions: Tensor, cfg: RopeConfig) -> tuple[Tensor, Tensor]:
    """Rotate ``q, k [B, H, T, D]`` by ``positions`` (Long ``[B, T]`` for "1d", ``[B, T, C]`` otherwise)."""
    c, s = cos_sin(positions, cfg, dtype=q.dtype)
    return rotate(q, c, s), rotate(k, c, s)


class RotaryEmbedding(nn.Module):
    """RoPE as a module: caches per-component inverse frequencies and computes cos/sin from positions.

    The model should call ``cos_sin(positions)`` once per forward and ``rotate`` q/k in every layer (or call
    ``forward(q, k, positions)`` per layer). ``set_scaling`` switches the context extension method at eval
    time. Frequencies are plain attributes keyed by device (not state), so checkpoints only carry ``cfg``.
    Nothing here reads a device tensor back to the host (no ``.item()``), so a forward pass never waits
    for the GPU and compiles without graph breaks; ``dynamic_ntk`` computes its length-dependent base on
    the device (``dynamic_ntk_inv_freq``).
    """

    def __init__(self, cfg: RopeConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self._freqs: dict[tuple[int, str], Tensor] = {}  # (component, device) -> inv_freq [pairs_c]

    def set_scaling(self, scaling: str, factor: float = 1.0) -> None:
        """Switch the context extension method (e.g. train with "none", evaluate with "yarn", factor 4)."""
        self.cfg = replace(self.cfg, scaling=scaling, factor=factor)
        self._freqs.clear()

    def _inv_freq(self, c: int, device: torch.device) -> Tensor:
        key = (c, str(device))
        f = self._freqs.get(key)
        if f is None:
            pairs, length, b, m = components(self.cfg)[c]
            f = self._freqs[key] = m * inv_freq(self.cfg, dim=2 * pairs, original_max_len=length, base=b).to(
                device
            )
        return f

    def cos_sin(self, positions: Tensor, dtype: torch.dtype = torch.float32) -> tuple[Tensor, Tensor]:
        """cos, sin ``[B, 1, T, head_dim]`` (times the YaRN mscale) for non-negative integer positions."""
        dyn = self.cfg.scaling == "dynamic_ntk" and self.cfg.factor > 1.0
        parts = []
        for c, pos in enumerate(_split_positions(positions, self.cfg)):
            if dyn:
                pairs, length, b, m = components(self.cfg)[c]
                f = m * dynamic_ntk_inv_freq(pos, 2 * pairs, length, b, self.cfg.factor)  # [B, pairs]
                parts.append(pos.to(torch.float32)[..., None] * f[:, None, :])
            else:
                parts.append(
                    pos.to(torch.float32)[..., None] * self._inv_freq(c, pos.device)
                )  # [B, T, pairs]
        return _to_cos_sin(torch.cat(parts, dim=-1), attention_scale(self.cfg), dtype)

    def forward(self, q: Tensor, k: Tensor, positions: Tensor) -> tuple[Tensor, Tensor]:
        """Rotate ``q, k [B, H, T, D]`` by ``positions``; returns the rotated pair."""
        c, s = self.cos_sin(positions, dtype=q.dtype)
        return rotate(q, c, s), rotate(k, c, s)


# ------------------------------------------------------------------------------------- symmetry frames
# A head with frame ``g`` (one of the 8 symmetries of the square, D8) sees every *input-grid cell* key at the
# position that cell takes after applying ``g`` to its grid, while queries keep their own position. RoPE
# scores depend on the offset between query and key, so "output cell (r, c) copies the input cell that
# ``g`` sends to (r, c)" becomes a zero-offset match for that head: flips, rotations and transposes are as
# easy to express as a plain copy. Keys of other tokens (output grids, markers, ROW) keep their position,
# so a token's key never depends on the size of a grid still being generated.

# Name -> image of 1-based cell (r, c) of an h x w grid, as (row, col) in the transformed grid.
D8_FRAMES = ("identity", "flip_lr", "flip_ud", "rot180", "transpose", "anti_transpose", "rot90", "rot270")
# beyond the grid's edge: its mirror image across the right / bottom edge, and a copy shifted one grid
# width right / one grid height down (mirrored concatenations, tilings, symmetry completion)
EDGE_FRAMES = ("mirror_right", "mirror_down", "shift_right", "shift_down")
FRAMES = D8_FRAMES + EDGE_FRAMES


def frame_rc(rc: Tensor, hw: Tensor, frame: int) -> Tensor:
    """``rc [..., 2]`` 1-based (row, col) of cells in grids of size ``hw [..., 2]`` -> their (row, col) after
    ``FRAMES[frame]``: a symmetry of the square (``np.rot90`` convention: rot90 is counter-clockwise), or an
    edge frame (``EDGE_FRAMES``: the cell's place in the grid's mirror image or copy beyond its right or
    bottom edge). Entries with ``h == 0`` (not a framed cell) are returned unchanged."""
    r, c = rc.unbind(-1)
    h, w = hw.unbind(-1)
    image = frame_table(r, c, h, w)[frame]
    return torch.where((h > 0)[..., None], torch.stack(image, -1), rc)


def head_frames(n_heads: int, layer: int, n_frames: int = len(D8_FRAMES)) -> tuple[int, ...]:
    """The frame of each head of ``layer``: heads cycle through the first ``n_frames`` of ``FRAMES`` (D8, or
    D8 and the edge frames) continuing from layer to layer, so every frame appears in the model once it has
    ``n_frames`` heads in all (and in every layer once ``n_heads >= n_frames``)."""
    return tuple((layer * n_heads + i) % n_frames for i in range(n_heads))


def framed_positions(positions: Tensor, frames: tuple[int, ...]) -> Tensor:
    """``positions [B, T, >= 5] = (seq, row, col, h, w, ...)`` -> ``[B, H, T, 3]`` key positions (seq, row',
    col'), one per head frame (``h, w`` > 0 only on input-grid cells, see ``arcforge.train.tokenize``)."""
    seq, rc, hw = positions[..., POS.seq : POS.seq + 1], positions[..., POS.rc], positions[..., POS.size]
    return torch.stack([torch.cat([seq, frame_rc(rc, hw, f)], -1) for f in frames], 1)


def dynamic_ntk_inv_freq(pos: Tensor, dim: int, length: int, base: float, factor: float) -> Tensor:
    """Dynamic NTK frequencies ``[B, dim/2]`` with the current length ``L' = max(pos) + 1`` computed on the
    device (``inv_freq``'s formula; plain RoPE while ``L' <= L``). Same for every row, as in
    ``rope_angles``."""
    cur = (pos.amax().to(torch.float64) + 1).expand(pos.shape[0])  # [B]
    scaled = base * (factor * cur / length - (factor - 1)).clamp(min=1.0) ** (dim / (dim - 2))
    b = torch.where(cur > length, scaled, torch.full_like(scaled, base))  # [B]
    expo = torch.arange(0, dim, 2, dtype=torch.float64, device=pos.device) / dim  # [dim/2]
    return (1.0 / b[:, None] ** expo).to(torch.float32)
