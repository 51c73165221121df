"""Decoder-only transformer: pre-norm RMSNorm, SwiGLU, SDPA with RoPE (1-D, 2-D axial or mixed).

Packed rows are handled with a block-diagonal causal mask built from ``segments`` (a token attends to
earlier tokens of its own example only) and passed to ``F.scaled_dot_product_attention`` as a boolean
mask. (flex_attention would skip the masked blocks, but in torch 2.13 on CPU it needs torch.compile; the
dense mask is simple and exact, and the README reports the choice.)

Positions are ``[B, T, 3] = (seq, row, col)`` (see ``arcforge.train.tokenize``); ``rope_mode`` picks the
components: "1d" -> seq, "2d" -> (row, col), "2d+1d" -> all three (the default: the seq part tells
which grid of the task a token is in, which pure 2-D positions cannot, since every grid starts at (0, 0)).

Decoding uses a KV cache (``KVCache``) so greedy generation costs one token's forward per step.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from arcforge.train.config import ModelConfig  # the architecture's settings live with all the others
from arcforge.train.rope import RotaryEmbedding, rotate

ROPE_COMPONENTS = {"1d": slice(0, 1), "2d": slice(1, 3), "2d+1d": slice(0, 3)}


def n_params(cfg: ModelConfig, *, embeddings: bool = True) -> int:
    """Parameter count from the config (matches ``sum(p.numel())`` of the model)."""
    per_layer = 4 * cfg.d_model * cfg.d_model + 3 * cfg.d_model * cfg.d_ff + 2 * cfg.d_model
    emb = cfg.vocab_size * cfg.d_model * (1 if cfg.tie_embeddings else 2)
    return cfg.n_layers * per_layer + cfg.d_model + (emb if embeddings else 0)


def flops_per_token(cfg: ModelConfig, seq_len: int) -> float:
    """Training FLOPs per token (forward + backward): 6 N + 12 L d T (PaLM appendix B, dense attention)."""
    return 6 * n_params(cfg, embeddings=False) + 6 * cfg.vocab_size * cfg.d_model \
        + 12 * cfg.n_layers * cfg.d_model * seq_len


def mfu(tokens_per_s: float, cfg: ModelConfig, seq_len: int, peak_flops: float) -> float:
    """Model FLOPs utilization: achieved training FLOP/s over the device's peak (e.g. 989e12 H100 bf16)."""
    return tokens_per_s * flops_per_token(cfg, seq_len) / peak_flops


def block_causal_mask(segments: Tensor) -> Tensor:
    """``[B, T] segments -> [B, 1, T, T]`` bool: query i may see key j iff j <= i and same segment."""
    t = segments.shape[1]
    causal = torch.ones(t, t, dtype=torch.bool, device=segments.device).tril()
    same = segments[:, :, None] == segments[:, None, :]
    return (same & causal)[:, None]


class RMSNorm(nn.Module):
    def __init__(self, d: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d))

    def forward(self, x: Tensor) -> Tensor:
        xf = x.float()
        return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)).to(x.dtype) * self.weight


class KVCache:
    """Per-layer keys/values ``[B, H, T, D]`` for incremental decoding."""

    def __init__(self, n_layers: int) -> None:
        self.k: list[Tensor | None] = [None] * n_layers
        self.v: list[Tensor | None] = [None] * n_layers

    def update(self, layer: int, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        if self.k[layer] is not None:
            k = torch.cat([self.k[layer], k], dim=2)
            v = torch.cat([self.v[layer], v], dim=2)
        self.k[layer], self.v[layer] = k, v
        return k, v

    def layer_length(self, layer: int) -> int:
        k = self.k[layer]
        return 0 if k is None else int(k.shape[2])


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.attn_norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model, bias=False)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model, bias=False)
        self.mlp_norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.gate_up = nn.Linear(cfg.d_model, 2 * cfg.d_ff, bias=False)
        self.down = nn.Linear(cfg.d_ff, cfg.d_model, bias=False)

    def forward(self, x: Tensor, cos: Tensor, sin: Tensor, mask: Tensor | None, layer: int,
                cache: KVCache | None) -> Tensor:
        b, t, d = x.shape
        h = self.cfg.n_heads
        q, k, v = self.qkv(self.attn_norm(x)).view(b, t, 3, h, d // h).permute(2, 0, 3, 1, 4)  # 3x[B,H,T,Dh]
        cos, sin = cos.to(q.dtype), sin.to(q.dtype)  # bf16 under autocast
        q, k = rotate(q, cos, sin), rotate(k, cos, sin)
        if cache is not None:
            past = cache.layer_length(layer)
            k, v = cache.update(layer, k, v)
            if past and t > 1:  # new tokens see the whole cache and each other causally
                mask = torch.ones(t, past + t, dtype=torch.bool, device=x.device).tril(diagonal=past)
            causal = mask is None and past == 0 and t > 1
        else:
            causal = mask is None
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal)  # [B,H,T,Dh]
        x = x + self.proj(a.transpose(1, 2).reshape(b, t, d))
        gate, up = self.gate_up(self.mlp_norm(x)).chunk(2, dim=-1)
        return x + self.down(F.silu(gate) * up)


class ArcTransformer(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.rope = RotaryEmbedding(cfg.rope())
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.head = None if cfg.tie_embeddings else nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """GPT-2 style init: N(0, 0.02), residual projections scaled by 1/sqrt(2 * n_layers)."""
        for name, p in self.named_parameters():
            if p.dim() >= 2:
                std = 0.02 / math.sqrt(2 * self.cfg.n_layers) if name.endswith(("proj.weight", "down.weight")) \
                    else 0.02
                nn.init.normal_(p, mean=0.0, std=std)

    def set_rope_scaling(self, scaling: str, factor: float = 1.0) -> None:
        """Switch the context-extension method at eval time."""
        self.rope.set_scaling(scaling, factor)

    def forward(self, tokens: Tensor, positions: Tensor, segments: Tensor | None = None,
                cache: KVCache | None = None) -> Tensor:
        """``tokens [B,T]``, ``positions [B,T,3]``, ``segments [B,T]`` (packing; None = one example per
        row) -> logits ``[B, T, V]`` (float32)."""
        x = self.embed(tokens)  # [B, T, d]
        pos = positions[..., ROPE_COMPONENTS[self.cfg.rope_mode]]
        if pos.shape[-1] == 1:
            pos = pos[..., 0]
        cos, sin = self.rope.cos_sin(pos, dtype=x.dtype)  # [B, 1, T, Dh]
        mask = block_causal_mask(segments) if segments is not None else None
        for i, blk in enumerate(self.blocks):
            x = blk(x, cos, sin, mask, i, cache)
        x = self.norm(x)
        w = self.embed.weight if self.head is None else self.head.weight
        return F.linear(x, w).float()
