"""Decoder-only transformer: pre-norm RMSNorm, SwiGLU, SDPA with RoPE (1-D, 2-D axial or mixed).

Packed rows are handled with a block-diagonal causal mask built from ``segments`` (a token attends to
earlier tokens of its own example only), once per batch. On CUDA it is a flex_attention ``BlockMask``
(compiled kernel, masked blocks skipped); on CPU a dense boolean mask for
``F.scaled_dot_product_attention`` (flex_attention on CPU needs torch.compile to be fast; the dense mask is
exact and simple). Both give the same result (tested on CPU with ``ARCFORGE_FLEX=1``).

Positions are ``[B, T, POS_DIMS] = (seq, row, col, h, w, pair, frame lookups, frame evidence)`` (see
``arcforge.train.tokenize``; ``[B, T, 3]`` or ``[B, T, 6]`` work too, without what they leave out);
``rope_mode`` picks the components: "1d" -> seq, "2d" -> (row,
col), "2d+1d" -> all three (the default: the seq part tells which grid of the task a token is in, which
pure 2-D positions cannot, since every grid starts at (0, 0); with ``pair_seq`` it is the pair index).

Decoding uses a preallocated KV cache (``KVCache``) so generation costs one token's forward per step
(see ``arcforge.train.decode``).
"""

from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.attention.flex_attention import BlockMask, create_block_mask, flex_attention

from arcforge.errors import TrainError
from arcforge.train.config import ModelConfig  # the architecture's settings live with all the others
from arcforge.train.rope import (
    D8_FRAMES,
    FRAMES,
    RopeConfig,
    RotaryEmbedding,
    framed_positions,
    head_frames,
    rotate,
)
from arcforge.train.tokenize import GRID_START, N_COLORS, NO_CELL, POS, ROW

# the columns of (seq, row, col) each RoPE mode reads
ROPE_COMPONENTS = {"1d": slice(POS.seq, POS.seq + 1), "2d": POS.rc, "2d+1d": POS.place}


def n_params(cfg: ModelConfig, *, embeddings: bool = True) -> int:
    """Parameter count from the config (matches ``sum(p.numel())`` of the model)."""
    per_layer = 4 * cfg.d_model * cfg.d_model + 3 * cfg.d_model * cfg.d_ff + 2 * cfg.d_model
    emb = (
        cfg.vocab_size * cfg.d_model * (1 if cfg.tie_embeddings else 2)
        + 2 * cfg.grid_pos * cfg.d_model
        + (2 * cfg.d_model if cfg.key_frames else 0)
        + (2 * (NO_CELL + 1) + 2) * cfg.frame_lookups * cfg.d_model
        + (cfg.d_model if cfg.frame_lookups else 0)
    )
    emb += (NO_CELL + 2) * cfg.d_model if cfg.frame_lookups and cfg.frame_votes else 0
    per_layer += 3 * cfg.d_model if cfg.qkv_bias else 0
    return cfg.n_layers * per_layer + cfg.d_model + (emb if embeddings else 0)


def flops_per_token(cfg: ModelConfig, seq_len: int) -> float:
    """Training FLOPs per token (forward + backward): 6 N + 12 L d T (PaLM appendix B, dense attention)."""
    return (
        6 * n_params(cfg, embeddings=False)
        + 6 * cfg.vocab_size * cfg.d_model
        + 12 * cfg.n_layers * cfg.d_model * seq_len
    )


def mfu(tokens_per_s: float, cfg: ModelConfig, seq_len: int, peak_flops: float) -> float:
    """Model FLOPs utilization: achieved training FLOP/s over the device's peak (e.g. 989e12 H100 bf16)."""
    return tokens_per_s * flops_per_token(cfg, seq_len) / peak_flops


def block_causal_mask(segments: Tensor) -> Tensor:
    """``[B, T] segments -> [B, 1, T, T]`` bool: query i may see key j iff j <= i and same segment."""
    t = segments.shape[1]
    causal = torch.ones(t, t, dtype=torch.bool, device=segments.device).tril()
    same = segments[:, :, None] == segments[:, None, :]
    return (same & causal)[:, None]


def use_flex(tokens: Tensor) -> bool:
    """flex_attention for packed rows on CUDA (it needs a compiled kernel to be fast; CPU keeps SDPA with a
    dense mask, exact and simple). ``ARCFORGE_FLEX=0`` turns it off, ``=1`` forces it (tests on CPU)."""
    flag = os.environ.get("ARCFORGE_FLEX", "")
    return flag == "1" or (flag != "0" and tokens.is_cuda)


def flex_block_mask(segments: Tensor) -> BlockMask:
    """The block-diagonal causal mask of packed rows as a flex_attention ``BlockMask`` (built once per
    batch: fully masked 128x128 blocks are skipped, so attention costs ~ sum of squared example lengths)."""
    b, t = segments.shape

    def keep(bi: Tensor, h: Tensor, qi: Tensor, ki: Tensor) -> Tensor:
        return (segments[bi, qi] == segments[bi, ki]) & (ki <= qi)

    return create_block_mask(keep, b, None, t, t, device=str(segments.device))


@functools.cache
def _flex_attention():  # compiled lazily, once per process
    if torch.cuda.is_available() and os.environ.get("ARCFORGE_FLEX") != "1":
        return torch.compile(flex_attention, dynamic=False)
    return flex_attention


def frame_votes(lookups: Tensor, evidence: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
    """``lookups [..., n]`` (each frame's color, or NO_CELL, at the predicted cell) and ``evidence [..., n]``
    (percent, -1 for none) -> ``[..., NO_CELL + 1]``: per color, the largest share of demonstration cells
    explained by a frame that puts that color there (0 where none does). A task the demonstrations show to
    be a rotation gets 1.0 on exactly the color the rotation of the test input puts at the next cell, and
    on NO_CELL where that rotation's row ends: the copy is one linear read-out."""
    share = evidence.clamp(min=0).to(dtype) / 100
    return (F.one_hot(lookups, NO_CELL + 1).to(dtype) * share[..., None]).amax(-2)


def next_cell_positions(tokens: Tensor, positions: Tensor) -> Tensor:
    """Where the token *predicted* at each position will sit: ``[B, T, 3]`` (seq, row, col) with the
    grid part moved one step on. A grid is written row by row, so that place is known before the token
    is: after a cell (r, c) comes (r, c + 1) (a cell or the ROW that closes the row), after a ROW comes
    (r + 1, 1), after GRID_START (1, 1). Queries placed there make "predict the cell that sits at (r, c)
    of some grid" a zero-offset match for RoPE, with no special case at the start of a row."""
    seq, r, c = positions[..., POS.seq], positions[..., POS.row], positions[..., POS.col]
    newline = (tokens == ROW) | (tokens == GRID_START)
    r = torch.where(tokens == ROW, r + 1, torch.where(tokens == GRID_START, torch.ones_like(r), r))
    c = torch.where(newline, torch.ones_like(c), torch.where(tokens < N_COLORS, c + 1, c))
    return torch.stack([seq, r, c], -1)


class RMSNorm(nn.Module):
    def __init__(self, d: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d))

    def forward(self, x: Tensor) -> Tensor:
        if x.dtype == torch.float32:  # one fused op; the same numbers as the formula below (tested)
            return F.rms_norm(x, (x.shape[-1],), self.weight, self.eps)
        xf = x.float()
        return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)).to(x.dtype) * self.weight


class KVCache:
    """Preallocated per-layer keys/values ``[L, B, H, capacity, Dh]`` for incremental decoding.

    ``length`` (a host int) is how many columns are filled; every row of the batch shares it (prompts are
    left-padded, see ``arcforge.train.decode``), so writing a step never needs a device->host sync. The
    capacity doubles on demand (a host-side decision on ``length``, again no sync). Columns past ``length``
    are never read before a forward writes them; ``zeroed=False`` leaves them uninitialized (no pass over
    the whole cache) for a caller that writes every column it will read, as the batched decoder does."""

    def __init__(
        self,
        n_layers: int,
        batch: int,
        n_heads: int,
        head_dim: int,
        capacity: int,
        device: torch.device | str,
        dtype: torch.dtype = torch.float32,
        *,
        zeroed: bool = True,
    ) -> None:
        shape = (n_layers, batch, n_heads, max(1, capacity), head_dim)
        alloc = torch.zeros if zeroed else torch.empty
        self.k = alloc(shape, device=device, dtype=dtype)
        self.v = alloc(shape, device=device, dtype=dtype)
        self.length = 0

    @classmethod
    def for_model(cls, model: nn.Module, batch: int, capacity: int) -> KVCache:
        p = next(model.parameters())
        cfg = model.cfg
        return cls(cfg.n_layers, batch, cfg.n_heads, cfg.head_dim, capacity, p.device, p.dtype)

    @property
    def capacity(self) -> int:
        return int(self.k.shape[3])

    def reserve(self, n: int) -> None:
        """Make room for ``n`` more columns (doubling)."""
        need = self.length + n
        if need <= self.capacity:
            return
        cap = max(need, 2 * self.capacity)
        for name in ("k", "v"):
            old = getattr(self, name)
            new = old.new_empty((*old.shape[:3], cap, old.shape[4]))  # columns past length: written first
            new[:, :, :, : self.length] = old[:, :, :, : self.length]
            setattr(self, name, new)

    def update(self, layer: int, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Write ``k, v [B, H, t, Dh]`` after the filled columns; returns the filled views
        ``[B, H, len+t, Dh]`` (``length`` advances once per forward, in ``advance``)."""
        t = k.shape[2]
        self.k[layer, :, :, self.length : self.length + t] = k
        self.v[layer, :, :, self.length : self.length + t] = v
        return self.k[layer, :, :, : self.length + t], self.v[layer, :, :, : self.length + t]

    def advance(self, t: int) -> None:
        self.length += t

    def reorder(self, index: Tensor) -> None:
        """Keep rows ``index`` of the batch (e.g. to share one prefilled prompt between several rows)."""
        self.k = self.k[:, index]
        self.v = self.v[:, index]


@dataclass
class RowSpans:
    """One decoding step's attention, split by rows: rows ``[r0, r1)`` of each span read key columns ``c0``
    onwards only, under the bool ``mask [B, 1, 1, keys]`` (True: may attend). The batched decoder keeps its
    rows sorted by prompt length and its prompts right-aligned, so every span skips the left padding all
    its rows share: keys that one dense call over the whole batch would read only to mask them out."""

    spans: list[tuple[int, int, int]]  # (r0, r1, c0)
    mask: Tensor

    def attend(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        """``q [B, H, 1, Dh]``, ``k, v [B, H, keys, Dh]`` -> ``[B, H, 1, Dh]``."""
        out = [
            F.scaled_dot_product_attention(
                q[r0:r1], k[r0:r1, :, c0:], v[r0:r1, :, c0:], attn_mask=self.mask[r0:r1, :, :, c0:]
            )
            for r0, r1, c0 in self.spans
        ]
        return out[0] if len(out) == 1 else torch.cat(out)


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.attn_norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        # a q/k bias lets a head attend by position alone, whatever the token (the copy heads)
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model, bias=cfg.qkv_bias)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model, bias=False)
        self.mlp_norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.gate_up = nn.Linear(cfg.d_model, 2 * cfg.d_ff, bias=False)
        self.down = nn.Linear(cfg.d_ff, cfg.d_model, bias=False)

    def forward(
        self,
        x: Tensor,
        query_cs: tuple[Tensor, Tensor],
        key_cs: tuple[Tensor, Tensor],
        mask: Tensor | None,
        layer: int,
        cache: KVCache | None,
        only: Tensor | None = None,
    ) -> Tensor:
        """``query_cs``: cos, sin ``[B, 1, T, Dh]`` rotating the queries; ``key_cs``: the keys'
        (``[B, 1, T, Dh]``, or ``[B, H, T, Dh]`` with per-head symmetry frames). ``only [B]``: compute the
        output at this position of each row only (``[B, 1, d]``; every token's keys and values still reach the
        cache)."""
        b, t, d = x.shape
        h = self.cfg.n_heads
        q, k, v = self.qkv(self.attn_norm(x)).view(b, t, 3, h, d // h).permute(2, 0, 3, 1, 4)  # 3x[B,H,T,Dh]
        (qc, qs), (kc, ks) = (
            (c.to(q.dtype), s.to(q.dtype)) for c, s in (query_cs, key_cs)
        )  # bf16 under autocast
        k = rotate(k, kc, ks)
        if only is not None:  # one query per row, at its position `only`, seeing every key up to it
            if mask is not None:
                raise TrainError(
                    "model(only=...) takes no mask: each row's query sees every key up to its position"
                )
            rows = torch.arange(b, device=x.device)
            q, qc, qs = (
                y[rows, :, only][:, :, None] for y in (q, qc.expand(b, -1, -1, -1), qs.expand(b, -1, -1, -1))
            )
            x = x[rows, only][:, None]  # [B, 1, d]
            past = cache.length if cache is not None else 0
            mask = (torch.arange(past + t, device=x.device) <= past + only[:, None])[
                :, None, None
            ]  # [B,1,1,keys]
        q = rotate(q, qc, qs)
        if cache is not None:
            past = cache.length
            cache.reserve(t)
            k, v = cache.update(layer, k, v)
            if mask is None and past and t > 1:  # new tokens see the whole cache and each other causally
                mask = torch.ones(t, past + t, dtype=torch.bool, device=x.device).tril(diagonal=past)
            causal = mask is None and past == 0 and t > 1
        else:
            causal = mask is None
        if isinstance(mask, BlockMask):  # CUDA packed rows: flex_attention skips the masked blocks
            a = _flex_attention()(q, k, v, block_mask=mask)
        elif isinstance(mask, RowSpans):  # a batched decoding step
            a = mask.attend(q, k, v)
        else:
            a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal)  # [B,H,T,Dh]
        x = x + self.proj(a.transpose(1, 2).reshape(b, q.shape[2], d))
        gate, up = self.gate_up(self.mlp_norm(x)).chunk(2, dim=-1)
        return x + self.down(F.silu(gate) * up)


class ArcTransformer(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.row_embed = nn.Embedding(cfg.grid_pos, cfg.d_model) if cfg.grid_pos else None
        self.col_embed = nn.Embedding(cfg.grid_pos, cfg.d_model) if cfg.grid_pos else None
        # input cell or not: what tells a frame head's input keys from the output keys it must ignore
        self.input_embed = nn.Embedding(2, cfg.d_model) if cfg.key_frames else None
        # (own / next, frame, color or NO_CELL) -> a vector; a token sums its 2 * frame_lookups of them
        self.lookup_embed = (
            nn.Embedding(2 * cfg.frame_lookups * (NO_CELL + 1), cfg.d_model) if cfg.frame_lookups else None
        )
        # per frame: "this output cell is what the frame of its pair's input puts here" (the evidence, on
        # every demonstration output, of which frame the task uses)
        self.agree_embed = (
            nn.Linear(cfg.frame_lookups, cfg.d_model, bias=False) if cfg.frame_lookups else None
        )
        # per frame: the share of the earlier demonstrations' output cells it explains (-1: none yet)
        self.evidence_embed = nn.Linear(cfg.frame_lookups, cfg.d_model) if cfg.frame_lookups else None
        # per color (or NO_CELL): the best evidence of a frame that puts it at the predicted cell
        self.vote_embed = (
            nn.Linear(NO_CELL + 1, cfg.d_model) if cfg.frame_lookups and cfg.frame_votes else None
        )
        self.rope = RotaryEmbedding(RopeConfig.from_model(cfg))
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.head = None if cfg.tie_embeddings else nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """GPT-2 style init: N(0, 0.02), residual projections scaled by 1/sqrt(2 * n_layers)."""
        for name, p in self.named_parameters():
            if p.dim() >= 2:
                std = (
                    0.02 / math.sqrt(2 * self.cfg.n_layers)
                    if name.endswith(("proj.weight", "down.weight"))
                    else 0.02
                )
                nn.init.normal_(p, mean=0.0, std=std)
            elif name.endswith("qkv.bias"):
                nn.init.zeros_(p)
        if self.cfg.copy_prior and self.cfg.qkv_bias:
            self._copy_prior(self.cfg.copy_prior)

    @torch.no_grad()
    def _copy_prior(self, a: float) -> None:
        """Start every head as a positional copy head: q and k biases of ``a`` on the row/col rotary dims
        (and ``a / 4`` on the sequence dims: a mild preference for the nearest grid), so at step 0 a query
        already attends to the cell at its (framed) place. Training then decides what each head keeps."""
        dh, d = self.cfg.head_dim, self.cfg.d_model
        prior = torch.zeros(dh)
        if self.cfg.rope_mode == "2d+1d":  # pairs: seq [0, D/4), row/col [D/4, D/2); dims i and i + D/2
            prior[dh // 4 : dh // 2] = prior[3 * dh // 4 :] = a
            prior[: dh // 4] = prior[dh // 2 : 3 * dh // 4] = a / 4
        elif self.cfg.rope_mode == "2d":
            prior[:] = a
        else:
            prior[:] = a / 4
        for blk in self.blocks:
            blk.qkv.bias[: 2 * d] = prior.repeat(2 * self.cfg.n_heads)  # q and k of every head

    def set_rope_scaling(self, scaling: str, factor: float = 1.0) -> None:
        """Switch the context-extension method at eval time."""
        self.rope.set_scaling(scaling, factor)

    def _cos_sin(self, p3: Tensor, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
        """``[N, T, 3]`` (seq, row, col) -> cos/sin ``[N, 1, T, Dh]`` of the components the RoPE mode uses."""
        p = p3[..., ROPE_COMPONENTS[self.cfg.rope_mode]]
        return self.rope.cos_sin(p[..., 0] if p.shape[-1] == 1 else p, dtype=dtype)

    def _add_frame_inputs(self, x: Tensor, tokens: Tensor, positions: Tensor) -> Tensor:
        """``x [B, T, d]`` plus what the frame lookups and evidence (``positions [B, T, POS_DIMS]``, see
        ``arcforge.train.tokenize``) add, for the model's first ``frame_lookups`` frames: the sum of the own
        and next lookups' embeddings, the output cells' per-frame agreement, and the evidence."""
        n = self.cfg.frame_lookups
        own = positions[..., POS.own][..., :n]  # [B, T, n] colors (or NO_CELL) at the token's own cell
        nxt = positions[..., POS.next][..., :n]  # [B, T, n] ... at the cell it predicts
        ids = torch.cat([own, nxt], -1) + torch.arange(2 * n, device=positions.device) * (
            NO_CELL + 1
        )  # [B, T, 2n] rows of lookup_embed
        b, t, k = ids.shape
        x = x + F.embedding_bag(ids.reshape(b * t, k), self.lookup_embed.weight, mode="sum").view(b, t, -1)
        output_cell = (tokens < N_COLORS) & (positions[..., POS.h] == 0)  # [B, T]
        agree = (own == tokens[..., None]) & output_cell[..., None]  # [B, T, n]
        x = x + self.agree_embed(agree.to(x.dtype))
        if positions.shape[-1] >= POS.evidence.stop:
            evidence = positions[..., POS.evidence][..., :n]  # [B, T, n] percent, -1 before any demonstration
            x = x + self.evidence_embed(evidence.to(x.dtype) / 100)  # percent -> share
            if self.vote_embed is not None:
                x = x + self.vote_embed(frame_votes(nxt, evidence, x.dtype))
        return x

    def _key_cos_sin(self, positions: Tensor, dtype: torch.dtype) -> list[tuple[Tensor, Tensor]] | None:
        """Per layer, the keys' cos/sin ``[B, H, T, Dh]`` under each head's symmetry frame (``key_frames``;
        ``rope.framed_positions``), or None: keys rotate like queries. Positions without the grid-size
        columns (``[B, T, 3]``) have no framed cells, so frames change nothing there."""
        if not self.cfg.key_frames or positions.shape[-1] < POS.size.stop or self.cfg.rope_mode == "1d":
            return None
        b, t = positions.shape[:2]
        h = self.cfg.n_heads
        done: dict[tuple[int, ...], tuple[Tensor, Tensor]] = {}
        out = []
        for layer in range(self.cfg.n_layers):
            frames = head_frames(h, layer, len(FRAMES) if self.cfg.edge_frames else len(D8_FRAMES))
            if frames not in done:
                fp = framed_positions(positions, frames).reshape(b * h, t, 3)  # [B*H, T, (seq, row', col')]
                c, s = self._cos_sin(fp, dtype)  # [B*H, 1, T, Dh]
                done[frames] = (c.view(b, h, t, -1), s.view(b, h, t, -1))
            out.append(done[frames])
        return out

    def _embed_inputs(self, tokens: Tensor, positions: Tensor) -> Tensor:
        """``[B, T, d]``: the token embeddings plus what the positions add: the row/col embeddings
        (``grid_pos``), input cell or not (``key_frames``) and the frame lookups and evidence."""
        x = self.embed(tokens)  # [B, T, d]
        if self.row_embed is not None:
            top = self.cfg.grid_pos - 1
            x = (
                x
                + self.row_embed(positions[..., POS.row].clamp(0, top))
                + self.col_embed(positions[..., POS.col].clamp(0, top))
            )
        if self.input_embed is not None:
            sized = (
                positions[..., POS.h] > 0
                if positions.shape[-1] >= POS.size.stop
                else torch.zeros_like(tokens, dtype=torch.bool)
            )
            x = x + self.input_embed(sized.long())
        if self.lookup_embed is not None and positions.shape[-1] >= POS.lookups.stop:
            x = self._add_frame_inputs(x, tokens, positions)
        return x

    def _rotations(
        self, tokens: Tensor, positions: Tensor, x: Tensor, framed_keys: bool
    ) -> tuple[list[tuple[Tensor, Tensor]], list[tuple[Tensor, Tensor]]]:
        """Per layer, the cos/sin rotating the queries and the keys, in the dtype q and k have (bf16 under
        autocast: converted once here, not in every layer). Keys rotate at each token's own place, or under
        their head's symmetry frame (``framed_keys``); queries, in the first ``own_query_layers`` layers at
        the token's own place (compare a cell with what a frame head finds there), in the others at the
        place of the token they predict (``next_cell_queries``)."""
        own = positions[..., POS.place]  # (seq, row, col) of each token
        dev = x.device.type
        cdt = torch.get_autocast_dtype(dev) if torch.is_autocast_enabled(dev) else x.dtype
        framed = self._key_cos_sin(positions, cdt) if framed_keys else None
        # each token's own place: computed only when the keys or the first layers' queries read it
        own_cs = (
            self._cos_sin(own, cdt)
            if framed is None or not self.cfg.next_cell_queries or self.cfg.own_query_layers
            else None
        )
        next_cs = (
            self._cos_sin(next_cell_positions(tokens, own), cdt) if self.cfg.next_cell_queries else own_cs
        )
        query_cs = [own_cs if i < self.cfg.own_query_layers else next_cs for i in range(self.cfg.n_layers)]
        return query_cs, framed or [own_cs] * self.cfg.n_layers

    def forward(
        self,
        tokens: Tensor,
        positions: Tensor,
        segments: Tensor | None = None,
        cache: KVCache | None = None,
        mask: Tensor | RowSpans | None = None,
        framed_keys: bool = True,
        only: Tensor | None = None,
    ) -> Tensor:
        """``tokens [B,T]``, ``positions [B,T,POS_DIMS]`` (or fewer columns, see the module docstring),
        ``segments [B,T]`` (packing; None = one example per row), ``mask`` (bool ``[B, 1, T, T_keys]``, True
        = may attend; overrides ``segments``; the batched decoder's left padding, or its ``RowSpans``) ->
        logits ``[B, T, V]`` (float32). ``framed_keys=False`` promises that no token is an input-grid cell (a
        decoder's generated output tokens): every key then rotates at its own place, and the per-head frames
        are not computed. ``only [B]``: the logits at this position of each row only, ``[B, 1, V]`` (a
        prefill: the last layer then computes its queries, attention and MLP there only; every token's keys
        and values still go to the cache)."""
        if (
            self.cfg.pair_seq and positions.shape[-1] > POS.pair
        ):  # rotate by the demonstration pair, not the token
            positions = torch.cat(
                [positions[..., POS.pair : POS.pair + 1], positions[..., POS.seq + 1 :]], -1
            )
        x = self._embed_inputs(tokens, positions)
        query_cs, key_cs = self._rotations(tokens, positions, x, framed_keys)
        if mask is None and segments is not None:
            # one mask per batch, shared by every layer
            mask = flex_block_mask(segments) if use_flex(tokens) else block_causal_mask(segments)
        last = len(self.blocks) - 1
        for i, blk in enumerate(self.blocks):
            x = blk(x, query_cs[i], key_cs[i], mask, i, cache, only if i == last else None)
        if cache is not None:
            cache.advance(tokens.shape[1])
        x = self.norm(x)
        w = self.embed.weight if self.head is None else self.head.weight
        return F.linear(x, w).float()
