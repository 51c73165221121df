"""LoRA adapters (Hu et al. 2021) for test-time training: ``y = W x + (alpha / r) * B A x``, ``A [r, in]``
random, ``B [out, r]`` zero, so an adapted model starts exactly equal to its base.

``add_lora`` swaps every ``nn.Linear`` of the transformer blocks for a ``LoRALinear`` wrapping it, freezes
every base weight and returns the adapter parameters (the only ones an optimizer should see).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from arcforge.train.config import TTTConfig


class LoRALinear(nn.Module):
    def __init__(self, base: nn.Linear, rank: int, alpha: float, generator: torch.Generator) -> None:
        super().__init__()
        self.base = base
        self.scale = alpha / rank
        a = torch.empty(rank, base.in_features, dtype=base.weight.dtype)  # drawn on the CPU generator
        nn.init.kaiming_uniform_(a, a=math.sqrt(5), generator=generator)
        self.a = nn.Parameter(a.to(base.weight.device))
        self.b = nn.Parameter(
            torch.zeros(base.out_features, rank, device=base.weight.device, dtype=base.weight.dtype)
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.base(x) + (x @ self.a.t() @ self.b.t()) * self.scale


def add_lora(
    model: nn.Module, rank: int, alpha: float | None = None, seed: int = TTTConfig.seed
) -> list[nn.Parameter]:
    """Wrap the linear layers of ``model.blocks`` in place (rank ``rank``, ``alpha`` default ``rank``:
    scale 1); freeze everything else. Returns the adapter parameters. ``A`` is drawn from a generator of its
    own seeded with ``seed``, never torch's global one, so adapters do not depend on what ran before or
    beside them."""
    if rank < 1:
        raise ValueError(f"LoRA rank must be >= 1, not {rank}")
    generator = torch.Generator().manual_seed(seed)
    for p in model.parameters():
        p.requires_grad_(False)
    params: list[nn.Parameter] = []
    for blk in model.blocks:
        for name, child in list(blk.named_children()):
            if isinstance(child, nn.Linear):
                lora = LoRALinear(child, rank, float(alpha if alpha is not None else rank), generator)
                setattr(blk, name, lora)
                params += [lora.a, lora.b]
    return params
