"""Runnable reproductions of the papers behind the trainer (issue 7): Grokfast on modular arithmetic
(``grokfast_modarith``) and RoPE context extension, 1-D vs 2-D (``rope_extension``)."""
