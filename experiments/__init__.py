"""Runnable reproductions of the papers behind the trainer, outside the arcforge package: Grokfast on
modular arithmetic (``grokfast_modarith``) and RoPE context extension, 1-D vs 2-D (``rope_extension``).
Run them with ``python -m experiments grokfast|rope`` from the repository root."""


def set_threads(n: int) -> None:
    """torch's CPU threads (``n`` > 0; 0 keeps torch's default)."""
    if n > 0:
        import torch

        torch.set_num_threads(n)
