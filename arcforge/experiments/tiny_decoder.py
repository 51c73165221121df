"""A tiny decoder-only transformer for the paper reproductions (SDPA attention, learned positions or RoPE).

Stand-in until the trainer's model lands: the experiments need a 2-layer, width-128 decoder (Grokfast's
modular arithmetic, post-norm like the paper's code) and a small RoPE decoder (1-D / 2-D / mixed) for the
context extension study. RoPE comes from ``arcforge.train.rope`` (no second copy of the math).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from arcforge.train.rope import RopeConfig, RotaryEmbedding, rotate


class Block(nn.Module):
    """Causal self-attention + GELU MLP (4x); post-norm (the grokking papers' code) or pre-norm."""

    def __init__(self, d: int, heads: int, post_norm: bool) -> None:
        super().__init__()
        self.heads, self.post_norm = heads, post_norm
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))
        self.n1, self.n2 = nn.LayerNorm(d), nn.LayerNorm(d)

    def attn(self, x: Tensor, cos_sin: tuple[Tensor, Tensor] | None) -> Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)  # [B,H,T,Dh]
        if cos_sin is not None:
            q, k = rotate(q, *cos_sin), rotate(k, *cos_sin)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # [B, H, T, Dh]
        return self.proj(y.transpose(1, 2).reshape(b, t, d))

    def forward(self, x: Tensor, cos_sin: tuple[Tensor, Tensor] | None) -> Tensor:
        if self.post_norm:
            x = self.n1(x + self.attn(x, cos_sin))
            return self.n2(x + self.mlp(x))
        x = x + self.attn(self.n1(x), cos_sin)
        return x + self.mlp(self.n2(x))


class TinyDecoder(nn.Module):
    """Token embedding -> blocks -> norm -> logits ``[B, T, vocab]``.

    ``rope=None`` uses learned absolute positions (``max_len`` of them, positions ``[B, T]``); otherwise
    RoPE with ``rope.mode`` (positions ``[B, T]`` / ``[B, T, 2]`` / ``[B, T, 3]``).
    """

    def __init__(self, vocab: int, d: int = 128, heads: int = 4, layers: int = 2, max_len: int = 16,
                 rope: RopeConfig | None = None, post_norm: bool = True) -> None:
        super().__init__()
        self.tok = nn.Embedding(vocab, d)
        self.pos = nn.Embedding(max_len, d) if rope is None else None
        self.rope = RotaryEmbedding(rope) if rope is not None else None
        self.blocks = nn.ModuleList(Block(d, heads, post_norm) for _ in range(layers))
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, vocab)

    def forward(self, tokens: Tensor, positions: Tensor | None = None) -> Tensor:
        b, t = tokens.shape
        x = self.tok(tokens)  # [B, T, d]
        cs = None
        if self.rope is None:
            pos = torch.arange(t, device=tokens.device)[None].expand(b, t) if positions is None else positions
            x = x + self.pos(pos)
        else:
            pos = torch.arange(t, device=tokens.device)[None].expand(b, t) if positions is None else positions
            cs = self.rope.cos_sin(pos, dtype=x.dtype)
        for blk in self.blocks:
            x = blk(x, cs)
        return self.head(self.norm(x))
