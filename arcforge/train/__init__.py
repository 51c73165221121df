"""The torch trainer: the only package (besides experiments) that imports torch.

``rope`` (1-D / 2-D rotary embeddings and context extension), ``grokfast`` (gradient filters), and the
model, data and loop modules built on them.
"""
